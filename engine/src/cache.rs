//! Access facts kept between requests by the write path, and checked by the commit.
//!
//! Deciding a write needs the writer's standing in the event (seat, membership, role) and
//! often whether a collaborator exists: several SurrealDB reads, more than the write itself.
//! The write path keeps these facts per event, tagged with the event's **access version**
//! (`event_seq.access`). Every commit that can change access (seats, memberships,
//! collaborators, the event itself) bumps that version in its own transaction, and so does
//! every change of an organization's members, for each of its events.
//!
//! A write decided on kept facts carries their version as its [`Basis`]; its commit fails
//! inside the transaction when the event's version has moved on — whoever moved it, on
//! whatever server. The engine then reads the facts afresh and retries only if the
//! writer's own standing is unchanged (collaborators are never deleted, so one that existed
//! still does); otherwise the write is refused as a conflict. Reads never use this cache.
//!
//! Bounded: past [`EVENTS_MAX`] events or [`FACTS_PER_EVENT_MAX`] facts in one event the
//! cache starts over, which only costs reads.

use std::{collections::HashMap, sync::Mutex};

use crate::{access::Standing, model::Event};

/// Events whose facts are kept at once.
pub const EVENTS_MAX: usize = 10_000;
/// Standings and collaborators kept per event.
pub const FACTS_PER_EVENT_MAX: usize = 50_000;

/// What a write's decisions were based on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Basis {
    pub actor: String,
    /// The event's access version when the facts were read.
    pub version: i64,
    pub standing: Standing,
}

struct EventFacts {
    version: i64,
    event: Event,
    standings: HashMap<String, Standing>,
    collaborators: HashMap<String, bool>,
}

#[derive(Default)]
pub(crate) struct AccessCache {
    events: Mutex<HashMap<String, EventFacts>>,
}

impl AccessCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, EventFacts>> {
        self.events.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The kept event and `actor`'s standing in it, with their version.
    pub fn standing(&self, actor: &str, event: &str) -> Option<(Event, Standing, i64)> {
        let events = self.lock();
        let f = events.get(event)?;
        f.standings.get(actor).map(|s| (f.event.clone(), s.clone(), f.version))
    }

    /// Keeps facts read at `version`; facts of an older version are dropped, older reads ignored.
    pub fn keep_standing(&self, actor: &str, event: &Event, standing: Standing, version: i64) {
        let mut events = self.lock();
        if events.len() >= EVENTS_MAX && !events.contains_key(&event.id) {
            events.clear();
        }
        let f = events.entry(event.id.clone()).or_insert_with(|| EventFacts {
            version,
            event: event.clone(),
            standings: HashMap::new(),
            collaborators: HashMap::new(),
        });
        if f.version > version {
            return;
        }
        if f.version < version || f.standings.len() >= FACTS_PER_EVENT_MAX {
            *f = EventFacts { version, event: event.clone(), standings: HashMap::new(), collaborators: HashMap::new() };
        }
        f.standings.insert(actor.to_string(), standing);
    }

    /// Whether collaborator `id` of `event` exists, if known at `version`.
    pub fn collaborator(&self, event: &str, version: i64, id: &str) -> Option<bool> {
        let events = self.lock();
        events.get(event).filter(|f| f.version == version).and_then(|f| f.collaborators.get(id).copied())
    }

    pub fn keep_collaborator(&self, event: &str, version: i64, id: &str, exists: bool) {
        let mut events = self.lock();
        if let Some(f) =
            events.get_mut(event).filter(|f| f.version == version && f.collaborators.len() < FACTS_PER_EVENT_MAX)
        {
            f.collaborators.insert(id.to_string(), exists);
        }
    }

    /// The event's access version is at least `version`: older facts are dropped.
    pub fn seen(&self, event: &str, version: i64) {
        let mut events = self.lock();
        if events.get(event).is_some_and(|f| f.version < version) {
            events.remove(event);
        }
    }

    pub fn forget(&self, event: &str) {
        self.lock().remove(event);
    }

    /// Drops every kept fact (an organization's members changed).
    pub fn forget_all(&self) {
        self.lock().clear();
    }
}
