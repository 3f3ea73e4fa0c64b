//! Events, their Event Pro seats, collaborators and collaborator membership.
//!
//! This file reads a person's standing in an event, which every operation starts from;
//! `event.rs` holds the event itself (create, read, change, list, its people), `seats.rs`
//! the Event Pro seats, `collaborators.rs` the collaborators, `members.rs` membership and
//! invitations, and `devices.rs` the devices that synced an event.

mod collaborators;
mod devices;
mod event;
mod members;
mod seats;

use serde::Deserialize;
use serde_json::json;

use crate::{
    Engine, Error, Result,
    access::{Action, Decision, Membership, Module, Standing, Target, decide},
    model::{Event, MyAccess},
};

pub use event::{EventPatch, NewEvent};
pub use members::InviteInput;

pub(crate) const EVENT_FIELDS: &str = "record::id(id) AS id, org, name, license, default_collaborator, created_by, created_at, (keep_photo_location ?? false) AS keep_photo_location";

impl Engine {
    /// An event's record, for work done on behalf of a grant already given (no standing).
    pub(crate) async fn event_by_id(&self, event: &str) -> Result<Event> {
        self.store
            .run(&format!("SELECT {EVENT_FIELDS} FROM type::record('event', $e)"), json!({ "e": event }))
            .await?
            .first(0)?
            .ok_or_else(|| Error::not_found("event"))
    }

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
}

pub(crate) fn my_access(s: &Standing) -> MyAccess {
    MyAccess {
        seat: s.seat,
        org_role: s.org_role,
        collaborator: s.membership.as_ref().map(|m| m.collaborator.clone()),
        read_only: !s.seat && s.membership.as_ref().is_some_and(|m| m.read_only),
    }
}
