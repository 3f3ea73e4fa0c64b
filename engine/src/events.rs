//! Events, their Event Pro seats, collaborators and collaborator membership.

use serde::Deserialize;
use serde_json::json;

use crate::{
    Engine, Error, Result,
    access::{Action, Decision, Membership, Module, OrgAction, Standing, Target, decide, decide_org, require},
    accounts::{validate_email, validate_name},
    kind::Kind,
    model::{
        CollabMember, Collaborator, DeviceSeen, Event, EventView, Invitation, LicenseStatus, MyAccess, Person, Seat,
        Seats, new_id,
    },
    plan::Write,
    store::on_duplicate,
    time,
};

/// What the event team may change of an event.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventPatch {
    #[serde(default)]
    pub name: Option<String>,
    /// Whether others download photos with their location and camera metadata.
    #[serde(default)]
    pub keep_photo_location: Option<bool>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    pub name: String,
    pub default_collaborator_name: String,
    pub license: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteInput {
    pub email: String,
    #[serde(default)]
    pub read_only: bool,
}

pub(crate) const EVENT_FIELDS: &str = "record::id(id) AS id, org, name, license, default_collaborator, created_by, created_at, (keep_photo_location ?? false) AS keep_photo_location";
const COLLAB_FIELDS: &str = "record::id(id) AS id, event, name, read_only, created_at";
const SEAT_FIELDS: &str = "event, slot, person, assigned_by, created_at";

impl Engine {
    /// Loads an event and `actor`'s standing in it. A missing event and an event the actor
    /// has no standing in are both "not found".
    pub(crate) async fn standing(&self, actor: &str, event: &str) -> Result<(Event, Standing)> {
        self.read_standing_at(actor, event).await.map(|(ev, s, _)| (ev, s))
    }

    /// The caller's standing for a write: from the write path's access cache when it is
    /// there (the returned event carries the [`Basis`](crate::cache::Basis) its commit is
    /// checked against, see [`Engine::commit_as`]), read and kept otherwise.
    pub(crate) async fn standing_for_write(&self, actor: &str, event: &str) -> Result<(Event, Standing)> {
        let (mut ev, standing, version) = match self.shared.access.standing(actor, event) {
            Some(found) => found,
            None => {
                let (ev, standing, version) = self.read_standing_at(actor, event).await?;
                self.shared.access.keep_standing(actor, &ev, standing.clone(), version);
                (ev, standing, version)
            }
        };
        ev.basis = Some(std::sync::Arc::new(crate::cache::Basis {
            actor: actor.to_string(),
            version,
            standing: standing.clone(),
        }));
        Ok((ev, standing))
    }

    /// The standing with the event's access version, read BEFORE the facts: facts at least
    /// as new as the version they are kept under can only make a commit check fail safe.
    async fn read_standing_at(&self, actor: &str, event: &str) -> Result<(Event, Standing, i64)> {
        let mut rows = self
            .store
            .run(
                &format!(
                    "SELECT VALUE access FROM type::record('event_seq', $event);
                     SELECT {EVENT_FIELDS} FROM type::record('event', $event);
                     SELECT VALUE slot FROM seat WHERE event = $event AND person = $p;
                     SELECT collaborator, read_only,
                            type::record('collaborator', collaborator).read_only AS collaborator_read_only,
                            type::record('module_grant', $event + '|' + collaborator + '|gate').module AS gate,
                            type::record('module_grant', $event + '|' + collaborator + '|labor').module AS labor,
                            type::record('module_grant', $event + '|' + collaborator + '|assets').module AS assets
                         FROM type::record('collab_member', $event + '|' + $p);"
                ),
                json!({ "event": event, "p": actor }),
            )
            .await?;
        let version: i64 = rows.value::<Option<i64>>(0)?.flatten().unwrap_or(0);
        let Some(ev) = rows.first::<Event>(1)? else { return Err(Error::not_found("event")) };
        let seat = !rows.all::<i64>(2)?.is_empty();
        #[derive(Deserialize)]
        struct M {
            collaborator: String,
            read_only: bool,
            #[serde(default)]
            collaborator_read_only: Option<bool>,
            #[serde(default)]
            gate: Option<Module>,
            #[serde(default)]
            labor: Option<Module>,
            #[serde(default)]
            assets: Option<Module>,
        }
        let membership = rows.first::<M>(3)?.map(|m| Membership {
            collaborator: m.collaborator,
            read_only: m.read_only || m.collaborator_read_only.unwrap_or(false),
            modules: [m.gate, m.labor, m.assets].into_iter().flatten().collect(),
        });
        let org_role = self.org_role(actor, &ev.org).await?;
        let standing = Standing { person: actor.into(), seat, org_role, membership };
        if decide(&standing, Action::Read, Target::EventInfo) == Decision::Hidden {
            return Err(Error::not_found("event"));
        }
        Ok((ev, standing, version))
    }

    /// Creates an event in `org` with its default collaborator, in one transaction. The
    /// creator takes the event's first Event Pro seat.
    pub async fn create_event(&self, actor: &str, org: &str, input: NewEvent) -> Result<EventView> {
        let role = self.org_role(actor, org).await?;
        match decide_org(role, OrgAction::Manage) {
            Decision::Allow => {}
            Decision::Hidden => return Err(Error::not_found("organization")),
            _ => {
                return Err(Error::forbidden(
                    "org_admin_required",
                    "only the organization's owners and admins can create events",
                ));
            }
        }
        let name = validate_name("name", &input.name)?;
        let collab_name = validate_name("default_collaborator_name", &input.default_collaborator_name)?;
        let license = self.org_license(org, input.license.trim()).await?.ok_or(Error::not_found("license"))?;
        if self.event_pro_slots(org).await? < 1 {
            return Err(Error::rule(
                "event_pro_required",
                "creating an event needs at least one active Event Pro license in this organization",
            ));
        }
        if license.status != LicenseStatus::Active {
            return Err(Error::rule("license_not_active", "that license is not active yet"));
        }
        if !license.kind.allows_event_creation() {
            return Err(Error::rule(
                "license_cannot_create_events",
                "an Org Standard license does not include event creation; choose an Org Pro or Event Pro license",
            ));
        }
        let now = time::now();
        let ev = Event {
            id: new_id(),
            org: org.into(),
            name,
            license: license.id,
            default_collaborator: new_id(),
            created_by: actor.into(),
            created_at: now.clone(),
            keep_photo_location: false,
            basis: None,
        };
        let collab = Collaborator {
            id: ev.default_collaborator.clone(),
            event: ev.id.clone(),
            name: collab_name,
            read_only: false,
            created_at: now.clone(),
        };
        let seat =
            Seat { event: ev.id.clone(), slot: 0, person: actor.into(), assigned_by: actor.into(), created_at: now };
        self.commit(
            &ev.id,
            vec![
                Write::create(Kind::Event, &ev.id, &ev, Vec::new())?,
                Write::create(Kind::Collaborator, &collab.id, &collab, vec![collab.id.clone()])?,
                Write::create(Kind::Seat, &seat_key(&ev.id, 0), &seat, Vec::new())?.about(actor),
            ],
        )
        .await?;
        tracing::info!(event = %ev.id, org, "event created");
        let access = MyAccess { seat: true, org_role: role, collaborator: None, read_only: false };
        Ok(EventView { event: ev, access })
    }

    pub async fn get_event(&self, actor: &str, event: &str) -> Result<EventView> {
        let (ev, s) = self.standing(actor, event).await?;
        Ok(EventView { event: ev, access: my_access(&s) })
    }

    pub async fn update_event(&self, actor: &str, event: &str, patch: EventPatch) -> Result<EventView> {
        let (mut ev, s) = self.standing(actor, event).await?;
        require(decide(&s, Action::Write, Target::Setup), "event")?;
        if let Some(name) = patch.name {
            ev.name = validate_name("name", &name)?;
        }
        if let Some(keep) = patch.keep_photo_location {
            ev.keep_photo_location = keep;
        }
        self.commit(&ev.id, vec![Write::replace(Kind::Event, &ev.id, &ev, Vec::new(), Vec::new())?]).await?;
        Ok(EventView { event: ev, access: my_access(&s) })
    }

    /// The names of the people `actor` works with in an event: everyone holding a seat or
    /// a membership for a seat holder; a collaborator's own members for a member of it.
    pub async fn event_people(&self, actor: &str, event: &str) -> Result<Vec<Person>> {
        let (ev, s) = self.standing(actor, event).await?;
        let (query, collaborator) = match (&s.membership, s.seat) {
            (_, true) => (
                "LET $s = SELECT VALUE type::record('account', person) FROM seat WHERE event = $e;
                 LET $m = SELECT VALUE type::record('account', person) FROM collab_member WHERE event = $e;
                 SELECT record::id(id) AS id, name FROM array::union($s, $m) ORDER BY name;",
                None,
            ),
            (Some(m), false) => (
                "LET $s = [];
                 LET $m = SELECT VALUE type::record('account', person) FROM collab_member
                     WHERE event = $e AND collaborator = $c;
                 SELECT record::id(id) AS id, name FROM $m ORDER BY name;",
                Some(m.collaborator.clone()),
            ),
            (None, false) => {
                require(decide(&s, Action::Read, Target::EventInfo), "event")?;
                return Ok(Vec::new());
            }
        };
        let mut rows = self.store.run(query, json!({ "e": ev.id, "c": collaborator })).await?;
        rows.all(2)
    }

    /// Records that `account`'s `device` synced `event` up to `cursor` at `at` (RFC 3339),
    /// and whether it is still connected (`live`). Written by the sync servers, not by
    /// people: it is no event record and has no change-log entry.
    pub async fn device_synced(
        &self,
        event: &str,
        account: &str,
        device: &str,
        cursor: i64,
        at: &str,
        live: bool,
    ) -> Result<()> {
        self.store
            .run(
                "UPSERT type::record('device_seen', $k) SET event = $e, account = $a, device = $d,
                     cursor = IF cursor > $c THEN cursor ELSE $c END,
                     first_seen = IF first_seen THEN first_seen ELSE $now END,
                     live = $live,
                     last_seen = IF last_seen > $now THEN last_seen ELSE $now END;",
                json!({ "k": format!("{event}|{account}|{device}"), "e": event, "a": account, "d": device,
                        "c": cursor, "now": at, "live": live }),
            )
            .await?;
        Ok(())
    }

    /// The devices that synced an event, the most recent first (at most `limit`): for seat
    /// holders, who see the event as a whole.
    pub async fn devices_seen(&self, actor: &str, event: &str, limit: usize) -> Result<Vec<DeviceSeen>> {
        let (ev, s) = self.standing(actor, event).await?;
        require(decide(&s, Action::Read, Target::Setup), "event")?;
        self.store
            .run(
                "SELECT account, device, cursor, first_seen, last_seen, live FROM device_seen
                     WHERE event = $e ORDER BY last_seen DESC LIMIT $n;",
                json!({ "e": ev.id, "n": limit }),
            )
            .await?
            .all(0)
    }

    /// Every event `actor` can reach, optionally only those of one organization.
    pub async fn list_events(&self, actor: &str, org: Option<&str>) -> Result<Vec<EventView>> {
        let mut rows = self
            .store
            .run(
                "SELECT VALUE event FROM seat WHERE person = $p;
                 SELECT VALUE event FROM collab_member WHERE person = $p;
                 LET $managed = SELECT VALUE org FROM org_member WHERE person = $p AND role IN ['owner', 'admin'];
                 SELECT VALUE record::id(id) FROM event WHERE org IN $managed;",
                json!({ "p": actor }),
            )
            .await?;
        let mut ids: Vec<String> = rows.all(0)?;
        ids.extend(rows.all::<String>(1)?);
        ids.extend(rows.all::<String>(3)?);
        ids.sort();
        ids.dedup();
        let mut out = Vec::new();
        for id in ids {
            match self.standing(actor, &id).await {
                Ok((ev, s)) if org.is_none_or(|o| o == ev.org) => {
                    out.push(EventView { event: ev, access: my_access(&s) })
                }
                Ok(_) | Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.event.created_at.cmp(&b.event.created_at));
        Ok(out)
    }

    // ---- seats ----

    pub async fn seats(&self, actor: &str, event: &str) -> Result<Seats> {
        let (ev, s) = self.standing(actor, event).await?;
        require(decide(&s, Action::Read, Target::Seats), "event")?;
        self.load_seats(&ev).await
    }

    async fn load_seats(&self, ev: &Event) -> Result<Seats> {
        let limit = self.event_pro_slots(&ev.org).await?;
        let seats: Vec<Seat> = self
            .store
            .run(&format!("SELECT {SEAT_FIELDS} FROM seat WHERE event = $e ORDER BY slot"), json!({ "e": ev.id }))
            .await?
            .all(0)?;
        Ok(Seats { limit, used: seats.len() as i64, seats })
    }

    /// Gives `email`'s account one of the event's Event Pro seats. Anyone with an account
    /// may hold a seat, inside the organization or not. The seats are the organization's
    /// active Event Pro quantity; past it the assignment is refused.
    pub async fn assign_seat(&self, actor: &str, event: &str, email: &str) -> Result<Seat> {
        let (ev, s) = self.standing(actor, event).await?;
        require(decide(&s, Action::Write, Target::Seats), "event")?;
        let email = validate_email(email)?;
        let person = self.account_by_email(&email).await?.ok_or_else(|| {
            Error::rule("no_account", "no BackOps account uses that email; ask the person to sign up first")
        })?;
        // Slots are keys: if two assignments race for the last free slot, one CREATE fails
        // and that request tries again, finding no free slot.
        for _ in 0..4 {
            let current = self.load_seats(&ev).await?;
            if current.seats.iter().any(|x| x.person == person.id) {
                return Err(Error::conflict("already_seated", "that person already holds a seat on this event"));
            }
            let Some(slot) = (0..current.limit).find(|n| !current.seats.iter().any(|x| x.slot == *n)) else {
                return Err(Error::conflict(
                    "seats_exhausted",
                    format!(
                        "all {} Event Pro seats of this event are taken (the limit is the organization's {} active Event Pro licenses); release a seat or buy more",
                        current.limit, current.limit
                    ),
                ));
            };
            let seat = Seat {
                event: ev.id.clone(),
                slot,
                person: person.id.clone(),
                assigned_by: actor.into(),
                created_at: time::now(),
            };
            match self
                .commit(
                    &ev.id,
                    vec![Write::create(Kind::Seat, &seat_key(&ev.id, slot), &seat, Vec::new())?.about(&person.id)],
                )
                .await
            {
                Ok(_) => return Ok(seat),
                Err(Error::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::conflict("busy", "seats changed while assigning; try again"))
    }

    pub async fn release_seat(&self, actor: &str, event: &str, person: &str) -> Result<()> {
        let (ev, s) = self.standing(actor, event).await?;
        require(decide(&s, Action::Write, Target::Seats), "event")?;
        let seats = self.load_seats(&ev).await?;
        let Some(seat) = seats.seats.iter().find(|x| x.person == person) else {
            return Err(Error::not_found("seat"));
        };
        self.commit(&ev.id, vec![Write::delete(Kind::Seat, &seat_key(&ev.id, seat.slot), Vec::new()).about(person)])
            .await?;
        Ok(())
    }

    // ---- collaborators ----

    pub(crate) async fn collaborator(&self, event: &str, id: &str) -> Result<Option<Collaborator>> {
        self.store
            .run(
                &format!("SELECT {COLLAB_FIELDS} FROM type::record('collaborator', $id) WHERE event = $e"),
                json!({ "id": id, "e": event }),
            )
            .await?
            .first(0)
    }

    /// A collaborator of `event` that `actor` may act on as `action` for `target`'s sake.
    async fn collaborator_for(
        &self,
        actor: &str,
        event: &str,
        collab: &str,
        action: Action,
        setup: bool,
    ) -> Result<(Collaborator, Standing)> {
        let (_, s) = self.standing(actor, event).await?;
        let c = self.collaborator(event, collab).await?;
        let ids = [collab.to_string()];
        // Whether the collaborator is visible at all is decided like a tab of it.
        let visible = decide(&s, Action::Read, Target::Tab { tab: crate::access::Tab::Dashboard, collaborators: &ids });
        require(visible, "collaborator")?;
        let Some(c) = c else { return Err(Error::not_found("collaborator")) };
        if setup || action == Action::Write {
            require(decide(&s, action, Target::Setup), "collaborator")?;
        }
        Ok((c, s))
    }

    pub async fn create_collaborator(&self, actor: &str, event: &str, name: &str) -> Result<Collaborator> {
        let (ev, s) = self.standing(actor, event).await?;
        require(decide(&s, Action::Write, Target::Setup), "event")?;
        let c = Collaborator {
            id: new_id(),
            event: ev.id,
            name: validate_name("name", name)?,
            read_only: false,
            created_at: time::now(),
        };
        self.commit(&c.event, vec![Write::create(Kind::Collaborator, &c.id, &c, vec![c.id.clone()])?]).await?;
        Ok(c)
    }

    /// Collaborators of the event the actor can see: all for seat holders, their own for
    /// collaborator members.
    pub async fn list_collaborators(&self, actor: &str, event: &str) -> Result<Vec<Collaborator>> {
        let (ev, s) = self.standing(actor, event).await?;
        let all: Vec<Collaborator> = self
            .store
            .run(
                &format!("SELECT {COLLAB_FIELDS} FROM collaborator WHERE event = $e ORDER BY created_at"),
                json!({ "e": ev.id }),
            )
            .await?
            .all(0)?;
        Ok(all
            .into_iter()
            .filter(|c| {
                let ids = [c.id.clone()];
                decide(&s, Action::Read, Target::Tab { tab: crate::access::Tab::Dashboard, collaborators: &ids })
                    == Decision::Allow
            })
            .collect())
    }

    /// Renames a collaborator and/or makes it read-only for its members.
    pub async fn update_collaborator(
        &self,
        actor: &str,
        event: &str,
        collab: &str,
        name: Option<&str>,
        read_only: Option<bool>,
    ) -> Result<Collaborator> {
        let (mut c, _) = self.collaborator_for(actor, event, collab, Action::Write, true).await?;
        if let Some(n) = name {
            c.name = validate_name("name", n)?;
        }
        if let Some(r) = read_only {
            c.read_only = r;
        }
        let scope = vec![c.id.clone()];
        self.commit(&c.event, vec![Write::replace(Kind::Collaborator, &c.id, &c, scope.clone(), scope)?]).await?;
        Ok(c)
    }

    /// Invites a person into a collaborator (free access). With an account they are a
    /// member at once; otherwise the invitation waits for an account with that email.
    pub async fn invite(&self, actor: &str, event: &str, collab: &str, input: InviteInput) -> Result<Invitation> {
        let (c, _) = self.collaborator_for(actor, event, collab, Action::Write, true).await?;
        let email = validate_email(&input.email)?;
        let now = time::now();
        let Some(person) = self.account_by_email(&email).await? else {
            let key = format!("{event}|{email}");
            let pending = PendingInvitation {
                event: event.into(),
                collaborator: c.id.clone(),
                email: email.clone(),
                read_only: input.read_only,
                invited_by: actor.into(),
                created_at: now,
            };
            let previous: Option<PendingInvitation> = self
                .store
                .run(
                    "SELECT event, collaborator, email, read_only, invited_by, created_at FROM type::record('invitation', $k)",
                    json!({ "k": key }),
                )
                .await?
                .first(0)?;
            let write = match previous {
                Some(p) => Write::replace(Kind::Invitation, &key, &pending, vec![p.collaborator], vec![c.id.clone()])?,
                None => Write::create(Kind::Invitation, &key, &pending, vec![c.id.clone()])?,
            };
            self.commit(event, vec![write]).await?;
            return Ok(Invitation::Pending { email, collaborator: c.id, read_only: input.read_only });
        };
        let member = CollabMember {
            event: event.into(),
            collaborator: c.id.clone(),
            person: person.id.clone(),
            read_only: input.read_only,
            invited_by: actor.into(),
            created_at: now,
        };
        let existing: Option<String> = self
            .store
            .run(
                "SELECT VALUE collaborator FROM type::record('collab_member', $e + '|' + $p)",
                json!({ "e": event, "p": person.id }),
            )
            .await?
            .value(0)?;
        if let Some(other) = existing {
            let message = if other == c.id {
                "that person is already a member of this collaborator"
            } else {
                "that person already belongs to another collaborator of this event; someone who needs more than one collaborator needs an Event Pro seat"
            };
            return Err(Error::conflict("already_member", message));
        }
        self.commit(
            event,
            vec![
                Write::create(Kind::CollabMember, &member_key(event, &person.id), &member, vec![c.id.clone()])?
                    .about(&person.id),
            ],
        )
        .await
        .map_err(|e| {
            on_duplicate(e, "already_member", "that person already belongs to a collaborator of this event")
        })?;
        Ok(Invitation::Member { person: person.id, collaborator: c.id, read_only: input.read_only })
    }

    pub async fn list_collab_members(&self, actor: &str, event: &str, collab: &str) -> Result<Vec<CollabMember>> {
        let (c, _) = self.collaborator_for(actor, event, collab, Action::Read, false).await?;
        self.store
            .run(
                "SELECT event, collaborator, person, read_only, invited_by, created_at FROM collab_member
                     WHERE collaborator = $c ORDER BY created_at",
                json!({ "c": c.id }),
            )
            .await?
            .all(0)
    }

    /// Sets read-only for one person in a collaborator.
    pub async fn set_member_read_only(
        &self,
        actor: &str,
        event: &str,
        collab: &str,
        person: &str,
        read_only: bool,
    ) -> Result<()> {
        let (c, _) = self.collaborator_for(actor, event, collab, Action::Write, true).await?;
        let mut member = self
            .collab_member(event, person)
            .await?
            .filter(|m| m.collaborator == c.id)
            .ok_or(Error::not_found("member"))?;
        member.read_only = read_only;
        let scope = vec![c.id.clone()];
        let write = Write::replace(Kind::CollabMember, &member_key(event, person), &member, scope.clone(), scope)?
            .about(person);
        self.commit(event, vec![write]).await?;
        Ok(())
    }

    pub async fn remove_collab_member(&self, actor: &str, event: &str, collab: &str, person: &str) -> Result<()> {
        let (c, _) = self.collaborator_for(actor, event, collab, Action::Write, true).await?;
        self.collab_member(event, person)
            .await?
            .filter(|m| m.collaborator == c.id)
            .ok_or(Error::not_found("member"))?;
        self.commit(
            event,
            vec![Write::delete(Kind::CollabMember, &member_key(event, person), vec![c.id.clone()]).about(person)],
        )
        .await?;
        Ok(())
    }

    async fn collab_member(&self, event: &str, person: &str) -> Result<Option<CollabMember>> {
        self.store
            .run(
                "SELECT event, collaborator, person, read_only, invited_by, created_at FROM type::record('collab_member', $k)",
                json!({ "k": member_key(event, person) }),
            )
            .await?
            .first(0)
    }

    /// Turns the invitations waiting for `person`'s email into memberships, one event at a
    /// time. Runs at sign-up and again at every login, so an interrupted run finishes later.
    pub(crate) async fn accept_invitations(&self, person: &str, email: &str) -> Result<()> {
        let pending: Vec<PendingInvitation> = self
            .store
            .run(
                "SELECT event, collaborator, email, read_only, invited_by, created_at FROM invitation WHERE email = $email",
                json!({ "email": email }),
            )
            .await?
            .all(0)?;
        for inv in pending {
            let member = CollabMember {
                event: inv.event.clone(),
                collaborator: inv.collaborator.clone(),
                person: person.into(),
                read_only: inv.read_only,
                invited_by: inv.invited_by.clone(),
                created_at: time::now(),
            };
            let scope = vec![inv.collaborator.clone()];
            let key = format!("{}|{}", inv.event, inv.email);
            let writes = vec![
                Write::create(Kind::CollabMember, &member_key(&inv.event, person), &member, scope.clone())?
                    .about(person),
                Write::delete(Kind::Invitation, &key, scope.clone()),
            ];
            match self.commit(&inv.event, writes).await {
                // Already a member there (invited twice, or a retry): drop the invitation.
                Err(Error::Conflict { .. }) => {
                    self.commit(&inv.event, vec![Write::delete(Kind::Invitation, &key, scope)]).await?;
                }
                other => {
                    other?;
                }
            }
        }
        Ok(())
    }
}

fn seat_key(event: &str, slot: i64) -> String {
    format!("{event}|{slot}")
}

fn member_key(event: &str, person: &str) -> String {
    format!("{event}|{person}")
}

/// An invitation waiting for an account with its email.
#[derive(Clone, Debug, serde::Serialize, Deserialize)]
struct PendingInvitation {
    event: String,
    collaborator: String,
    email: String,
    read_only: bool,
    invited_by: String,
    created_at: String,
}

pub(crate) fn my_access(s: &Standing) -> MyAccess {
    MyAccess {
        seat: s.seat,
        org_role: s.org_role,
        collaborator: s.membership.as_ref().map(|m| m.collaborator.clone()),
        read_only: !s.seat && s.membership.as_ref().is_some_and(|m| m.read_only),
    }
}
