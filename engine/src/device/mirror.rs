//! The replica's read model: every stored row, in memory, by event, kind and id.
//!
//! SurrealDB holds the replica durably; this copy answers reads without a query (a tab is a
//! filter over one map) and lets the replica rebuild records without reading them back. It
//! is loaded when the replica opens and changed right after each committed row write, under
//! the replica's state lock, with the same operations the write applied (see `ROWS_SQL`).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::Arc,
};

use serde_json::Value;

use super::Row;

/// The rows of one kind of one event, which ids each collaborator's tab shows, and which
/// rows are about one subject (the scans of a credential: see [`subject_of`]); and the rows in
/// the order their tab lists them (see [`order_of`]), all and per collaborator, so a page of a
/// tab is a range read.
#[derive(Default)]
struct Rows {
    by_id: BTreeMap<String, Arc<Row>>,
    by_collaborator: HashMap<String, std::collections::BTreeSet<String>>,
    by_subject: HashMap<String, std::collections::BTreeSet<String>>,
    ordered: BTreeSet<Place>,
    ordered_by_collaborator: HashMap<String, BTreeSet<Place>>,
}

/// A row's place in its tab: the tab's order field, then the id.
pub type Place = (String, String);

/// Where a row stands in its tab: the Schedule tab lists activities by start, the others by
/// creation; ties (and rows without the field) by id.
pub(super) fn order_of(r: &Row) -> Place {
    let field = match r.kind.as_str() {
        "activity" => "starts_at",
        _ => "created_at",
    };
    (r.data.get(field).and_then(Value::as_str).unwrap_or_default().to_string(), r.id.clone())
}

/// What an append-only record is about, for lookups that must not scan every row: a scan's
/// credential uid, a custody move's asset tag.
fn subject_of(r: &Row) -> Option<&str> {
    crate::kind::Kind::parse(&r.kind)?.subject_of(&r.data)
}

fn unindex(map: &mut HashMap<String, std::collections::BTreeSet<String>>, key: &str, id: &str) {
    if let Some(ids) = map.get_mut(key) {
        ids.remove(id);
        if ids.is_empty() {
            map.remove(key);
        }
    }
}

impl Rows {
    fn insert(&mut self, r: Arc<Row>) {
        self.remove(&r.id.clone());
        let place = order_of(&r);
        for c in &r.collaborators {
            self.by_collaborator.entry(c.clone()).or_default().insert(r.id.clone());
            self.ordered_by_collaborator.entry(c.clone()).or_default().insert(place.clone());
        }
        self.ordered.insert(place);
        if let Some(s) = subject_of(&r) {
            self.by_subject.entry(s.to_string()).or_default().insert(r.id.clone());
        }
        self.by_id.insert(r.id.clone(), r);
    }

    fn remove(&mut self, id: &str) -> Option<Arc<Row>> {
        let old = self.by_id.remove(id)?;
        let place = order_of(&old);
        for c in &old.collaborators {
            unindex(&mut self.by_collaborator, c, id);
            if let Some(places) = self.ordered_by_collaborator.get_mut(c) {
                places.remove(&place);
                if places.is_empty() {
                    self.ordered_by_collaborator.remove(c);
                }
            }
        }
        self.ordered.remove(&place);
        if let Some(s) = subject_of(&old) {
            unindex(&mut self.by_subject, s, id);
        }
        Some(old)
    }

    fn retain(&mut self, keep: impl Fn(&Row) -> bool) {
        let gone: Vec<String> = self.by_id.values().filter(|r| !keep(r)).map(|r| r.id.clone()).collect();
        for id in gone {
            self.remove(&id);
        }
    }
}

type Kinds = HashMap<String, Rows>;

#[derive(Default)]
pub(super) struct Mirror {
    events: HashMap<String, Kinds>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default()
}

impl Mirror {
    pub fn get(&self, event: &str, kind: &str, id: &str) -> Option<Arc<Row>> {
        self.events.get(event)?.get(kind)?.by_id.get(id).cloned()
    }

    /// The rows of one kind in every event.
    pub fn all_of_kind(&self, kind: &str) -> Vec<Arc<Row>> {
        self.events.values().filter_map(|k| k.get(kind)).flat_map(|m| m.by_id.values().cloned()).collect()
    }

    /// The rows of one kind, in id order.
    pub fn kind(&self, event: &str, kind: &str) -> Vec<Arc<Row>> {
        self.events
            .get(event)
            .and_then(|k| k.get(kind))
            .map(|m| m.by_id.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The rows of one kind that belong to `collaborator`, in id order.
    pub fn tab(&self, event: &str, kind: &str, collaborator: &str) -> Vec<Arc<Row>> {
        let Some(rows) = self.events.get(event).and_then(|k| k.get(kind)) else { return Vec::new() };
        rows.by_collaborator
            .get(collaborator)
            .map(|ids| ids.iter().filter_map(|id| rows.by_id.get(id).cloned()).collect())
            .unwrap_or_default()
    }

    /// Up to `limit` rows of one kind in their tab's order (see [`order_of`]), after the place
    /// `after`; of one collaborator's tab, or every held row of the kind.
    pub fn page(
        &self,
        event: &str,
        kind: &str,
        collaborator: Option<&str>,
        after: Option<&Place>,
        limit: usize,
    ) -> Vec<Arc<Row>> {
        let Some(rows) = self.events.get(event).and_then(|k| k.get(kind)) else { return Vec::new() };
        let places = match collaborator {
            Some(c) => match rows.ordered_by_collaborator.get(c) {
                Some(p) => p,
                None => return Vec::new(),
            },
            None => &rows.ordered,
        };
        let range = match after {
            Some(a) => places.range::<Place, _>((std::ops::Bound::Excluded(a.clone()), std::ops::Bound::Unbounded)),
            None => places.range::<Place, _>(..),
        };
        range.filter_map(|(_, id)| rows.by_id.get(id)).filter(|r| !r.data.is_null()).take(limit).cloned().collect()
    }

    /// The rows of one kind about `subject` (see [`subject_of`]), in id order.
    pub fn about(&self, event: &str, kind: &str, subject: &str) -> Vec<Arc<Row>> {
        let Some(rows) = self.events.get(event).and_then(|k| k.get(kind)) else { return Vec::new() };
        rows.by_subject
            .get(subject)
            .map(|ids| ids.iter().filter_map(|id| rows.by_id.get(id).cloned()).collect())
            .unwrap_or_default()
    }

    /// How many rows of one kind are held.
    pub fn count(&self, event: &str, kind: &str) -> usize {
        self.events.get(event).and_then(|k| k.get(kind)).map_or(0, |r| r.by_id.len())
    }

    /// Stores a row (the JSON written to the `rec` table).
    pub fn put(&mut self, event: &str, row: &Value) {
        let Ok(r) = serde_json::from_value::<Row>(row.clone()) else {
            tracing::error!("a replica row does not decode; reads will miss it until the replica reopens");
            return;
        };
        self.put_row(event, Arc::new(r));
    }

    /// Stores a decoded row.
    pub fn put_row(&mut self, event: &str, r: Arc<Row>) {
        let kinds = self.events.entry(event.to_string()).or_default();
        kinds.entry(r.kind.clone()).or_default().insert(r);
    }

    /// Every row of `event`.
    pub fn event_rows(&self, event: &str) -> Vec<Arc<Row>> {
        self.events
            .get(event)
            .map(|k| k.values().flat_map(|rows| rows.by_id.values().cloned()).collect())
            .unwrap_or_default()
    }

    /// How many rows of `event` are held.
    pub fn held(&self, event: &str) -> usize {
        self.events.get(event).map_or(0, |k| k.values().map(|rows| rows.by_id.len()).sum())
    }

    pub fn del(&mut self, event: &str, kind: &str, id: &str) {
        if let Some(m) = self.events.get_mut(event).and_then(|k| k.get_mut(kind)) {
            m.remove(id);
        }
    }

    /// Applies the row operations of `ROWS_SQL` (`put`, `del`, `narrow`), in order.
    pub fn apply(&mut self, event: &str, ops: &[Value]) {
        for o in ops {
            if let Some(row) = o.get("put").filter(|r| r.is_object()) {
                self.put(event, row);
            } else if let Some(d) = o.get("del") {
                self.del(event, d["kind"].as_str().unwrap_or_default(), d["id"].as_str().unwrap_or_default());
            } else if let Some(n) = o.get("narrow") {
                self.narrow(event, &strings(&n["keep"]), &strings(&n["keep_kinds"]));
            }
        }
    }

    /// Keeps only rows of `keep_kinds` or of a collaborator in `keep` (a row with unsent
    /// edits also when the server's version it keeps is in `keep`).
    fn narrow(&mut self, event: &str, keep: &[String], keep_kinds: &[String]) {
        let Some(kinds) = self.events.get_mut(event) else { return };
        for (kind, rows) in kinds.iter_mut() {
            if keep_kinds.contains(kind) {
                continue;
            }
            rows.retain(|r| {
                r.collaborators.iter().any(|c| keep.contains(c)) || r.base_of.iter().any(|c| keep.contains(c))
            });
        }
    }

    /// Removes the rows of an earlier snapshot, except those with unsent edits.
    pub fn sweep(&mut self, event: &str, generation: i64) {
        if let Some(kinds) = self.events.get_mut(event) {
            for rows in kinds.values_mut() {
                rows.retain(|r| r.generation == generation || r.pending);
            }
        }
    }

    /// Rows of an earlier snapshot (those with unsent edits, after a sweep): (kind, id).
    pub fn older(&self, event: &str, generation: i64) -> Vec<(String, String)> {
        let Some(kinds) = self.events.get(event) else { return Vec::new() };
        kinds
            .values()
            .flat_map(|rows| rows.by_id.values())
            .filter(|r| r.generation != generation)
            .map(|r| (r.kind.clone(), r.id.clone()))
            .collect()
    }

    pub fn clear(&mut self, event: &str) {
        self.events.remove(event);
    }

    pub fn clear_all(&mut self) {
        self.events.clear();
    }
}
