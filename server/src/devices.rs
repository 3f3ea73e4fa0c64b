//! Which devices follow an event and when each last synced, for the dashboard's devices
//! panel, exact across sync nodes.
//!
//! This node keeps its own sessions in memory. What it knows is written to the database:
//! the sessions each device has here (`Engine::device_sessions_on`, on every join and leave,
//! under this node's id) and its last sync (`Engine::device_synced`: on join and leave, and
//! at most every [`PERSIST_EVERY_MS`] in between), so the panel spans nodes and restarts. A
//! device is connected while it has a session on a node that is alive: each node writes a
//! heartbeat every [`NodeTiming::heartbeat`]; one that stops says so and its sessions go,
//! and one silent for [`NodeTiming::silent_max`] (it crashed) no longer counts and its
//! sessions are swept by the next node's heartbeat.
//!
//! Bounded: at most [`DEVICES_PER_EVENT_MAX`] devices per event in memory; past it the device
//! heard from longest ago that is not connected is forgotten (it stays in the database).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{SystemTime, UNIX_EPOCH},
};

use serde::Serialize;

/// Devices remembered per event.
pub const DEVICES_PER_EVENT_MAX: usize = 5_000;
/// A connected device's last sync is written at most this often.
pub const PERSIST_EVERY_MS: u128 = 30_000;

/// How often a node says it is alive, and how long a silent one still counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeTiming {
    pub heartbeat: std::time::Duration,
    /// A node not heard from for this long crashed: its device sessions no longer count.
    pub silent_max: std::time::Duration,
}

impl Default for NodeTiming {
    fn default() -> Self {
        NodeTiming { heartbeat: std::time::Duration::from_secs(2), silent_max: std::time::Duration::from_secs(10) }
    }
}

/// A device as this server holds it (the database's record is `engine::model::DeviceSeen`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Here {
    pub account: String,
    pub device: String,
    /// Sessions of this device following the event on this server now.
    pub sessions: u32,
    /// The change log position it has been sent up to (its cursor).
    pub cursor: i64,
    /// RFC 3339, UTC.
    pub first_seen: String,
    pub last_seen: String,
    last_seen_ms: u128,
    persisted_ms: u128,
}

/// What to write to the database about a device (see [`Devices::seen`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Persist {
    pub cursor: i64,
    pub at: String,
    pub live: bool,
    /// Its sessions on this node now, when they changed (a join or a leave).
    pub sessions: Option<u32>,
}

/// A device as the dashboard lists it: the database's record with this server's sessions.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct DeviceOut {
    pub account: String,
    pub device: String,
    /// Following the event now, through any sync node alive.
    pub connected: bool,
    /// Its sessions following the event, on every node alive.
    pub sessions: u32,
    pub cursor: i64,
    pub first_seen: String,
    pub last_seen: String,
}

/// One event's devices by (account, device).
type EventDevices = HashMap<(String, String), Here>;

#[derive(Debug)]
pub struct Devices {
    /// This node's id: its device sessions and heartbeat are written under it.
    pub node: String,
    pub started_at: String,
    events: Mutex<HashMap<String, EventDevices>>,
}

impl Default for Devices {
    fn default() -> Self {
        Devices {
            node: uuid::Uuid::new_v4().to_string(),
            started_at: engine::time::now(),
            events: Mutex::new(HashMap::new()),
        }
    }
}

fn now() -> (String, u128) {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    (engine::time::now(), ms)
}

/// What happened to a device's session on an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// It started following the event.
    Joined,
    /// It sent a frame (a push, a ping) or its cursor moved.
    Heard,
    /// A session of it stopped following the event.
    Left,
}

impl Devices {
    /// Notes what happened; returns the cursor and time to write to the database when it is
    /// time to.
    pub fn seen(&self, event: &str, account: &str, device: &str, what: Seen, cursor: Option<i64>) -> Option<Persist> {
        let (stamp, ms) = now();
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let devices = events.entry(event.to_string()).or_default();
        let key = (account.to_string(), device.to_string());
        if !devices.contains_key(&key) && devices.len() >= DEVICES_PER_EVENT_MAX {
            let oldest = devices.iter().filter(|(_, d)| d.sessions == 0).min_by_key(|(_, d)| d.last_seen_ms);
            match oldest.map(|(k, _)| k.clone()) {
                Some(k) => {
                    devices.remove(&k);
                }
                None => return None,
            }
        }
        let d = devices.entry(key).or_insert_with(|| Here {
            account: account.to_string(),
            device: device.to_string(),
            sessions: 0,
            cursor: 0,
            first_seen: stamp.clone(),
            last_seen: stamp.clone(),
            last_seen_ms: ms,
            persisted_ms: 0,
        });
        match what {
            Seen::Joined => d.sessions += 1,
            Seen::Left => d.sessions = d.sessions.saturating_sub(1),
            Seen::Heard => {}
        }
        if let Some(c) = cursor {
            d.cursor = d.cursor.max(c);
        }
        d.last_seen = stamp;
        d.last_seen_ms = ms;
        let due = what != Seen::Heard || ms.saturating_sub(d.persisted_ms) >= PERSIST_EVERY_MS;
        if due {
            d.persisted_ms = ms;
        }
        let sessions = (what != Seen::Heard).then_some(d.sessions);
        due.then(|| Persist { cursor: d.cursor, at: d.last_seen.clone(), live: d.sessions > 0, sessions })
    }

    /// The database's records of `event`'s devices with their sessions: this node's own from
    /// memory, the other nodes' as they wrote them (`sessions`, of the nodes alive).
    pub fn merge(
        &self,
        event: &str,
        stored: Vec<engine::model::DeviceSeen>,
        sessions: Vec<engine::model::DeviceSessions>,
    ) -> Vec<DeviceOut> {
        let mut elsewhere: HashMap<(String, String), u32> = HashMap::new();
        for s in sessions.into_iter().filter(|s| s.node != self.node) {
            *elsewhere.entry((s.account, s.device)).or_default() += s.sessions;
        }
        let mut live: HashMap<(String, String), Here> =
            self.list(event).into_iter().map(|d| ((d.account.clone(), d.device.clone()), d)).collect();
        let mut out: Vec<DeviceOut> = stored
            .into_iter()
            .map(|row| {
                let key = (row.account.clone(), row.device.clone());
                let here = live.remove(&key);
                let (here_sessions, last_here) = here.as_ref().map_or((0, ""), |d| (d.sessions, d.last_seen.as_str()));
                let sessions = here_sessions + elsewhere.remove(&key).unwrap_or(0);
                DeviceOut {
                    connected: sessions > 0,
                    sessions,
                    cursor: row.cursor.max(here.as_ref().map_or(0, |d| d.cursor)),
                    last_seen: row.last_seen.as_str().max(last_here).to_string(),
                    account: row.account,
                    device: row.device,
                    first_seen: row.first_seen,
                }
            })
            .collect();
        out.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then_with(|| a.device.cmp(&b.device)));
        out
    }

    /// The event's devices, the most recently heard from first.
    pub fn list(&self, event: &str) -> Vec<Here> {
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<Here> = events.get(event).map(|d| d.values().cloned().collect()).unwrap_or_default();
        out.sort_by(|a, b| b.last_seen_ms.cmp(&a.last_seen_ms).then_with(|| a.device.cmp(&b.device)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_counted_and_the_oldest_idle_device_goes_first() {
        let d = Devices::default();
        d.seen("e", "a", "phone", Seen::Joined, Some(3));
        d.seen("e", "a", "phone", Seen::Joined, Some(2));
        d.seen("e", "a", "phone", Seen::Left, None);
        let l = d.list("e");
        assert_eq!((l.len(), l[0].sessions, l[0].cursor), (1, 1, 3));
        d.seen("e", "a", "phone", Seen::Left, Some(9));
        assert_eq!((d.list("e")[0].sessions, d.list("e")[0].cursor), (0, 9));
        assert!(d.list("other").is_empty());

        // The phone (idle) and connected gates fill the event's room.
        for i in 1..DEVICES_PER_EVENT_MAX {
            d.seen("e", "b", &format!("gate-{i}"), Seen::Joined, None);
        }
        assert_eq!(d.list("e").len(), DEVICES_PER_EVENT_MAX);
        // Full of connected devices and one idle one: the idle one makes room.
        d.seen("e", "c", "tablet", Seen::Joined, None);
        let l = d.list("e");
        assert_eq!(l.len(), DEVICES_PER_EVENT_MAX);
        assert!(!l.iter().any(|x| x.device == "phone") && l.iter().any(|x| x.device == "tablet"));
        // Nothing idle left: a newcomer is not remembered rather than dropping a connected one.
        d.seen("e", "c", "late", Seen::Joined, None);
        assert!(!d.list("e").iter().any(|x| x.device == "late"));
    }
}
