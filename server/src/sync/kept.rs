//! Reads shared by the sessions that need the same thing at about the same time: one read
//! (and one serialization) serves them all, kept a short while for sessions that come later.

use std::{sync::Arc, time::Duration};

use tokio::time::Instant;

/// One shared read: filled by the first session that asks, awaited by the others.
pub(super) type Cell<T> = Arc<tokio::sync::OnceCell<Arc<T>>>;

/// Shared reads by key, each kept for `ttl`, at most `max` of them (the oldest go first).
pub(super) struct Kept<T> {
    kept: std::sync::Mutex<Vec<(String, Instant, Cell<T>)>>,
    ttl: Duration,
    max: usize,
}

impl<T> Kept<T> {
    pub(super) fn new(ttl: Duration, max: usize) -> Kept<T> {
        Kept { kept: std::sync::Mutex::new(Vec::new()), ttl, max: max.max(1) }
    }

    /// The read kept under `key`, or a new empty one kept from now.
    pub(super) fn get(&self, key: String) -> Cell<T> {
        let now = Instant::now();
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.retain(|(_, at, _)| now.duration_since(*at) < self.ttl);
        if let Some((_, _, c)) = kept.iter().find(|(k, _, _)| *k == key) {
            return c.clone();
        }
        if kept.len() >= self.max {
            kept.remove(0);
        }
        let c = Cell::default();
        kept.push((key, now, c.clone()));
        c
    }
}
