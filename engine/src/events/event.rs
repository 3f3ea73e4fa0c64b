//! The event itself: creating one (license checks, its default collaborator and the
//! creator's seat in one transaction), reading and changing it, listing events, and the
//! people in one.

use serde::Deserialize;
use serde_json::json;

use super::{my_access, seats::seat_key};
use crate::{
    Engine, Error, Result,
    access::{Action, Decision, OrgAction, Target, decide, decide_org, require},
    accounts::validate_name,
    kind::Kind,
    model::{Collaborator, Event, EventView, LicenseStatus, MyAccess, Person, Seat, new_id},
    plan::Write,
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

impl Engine {
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
}
