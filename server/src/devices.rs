//! Which devices follow an event and when each last synced, for the dashboard's devices
//! panel. Kept by this server process from its sync sessions: a device is "connected" while
//! one of its sessions here follows the event, and its last sync is the last frame it sent
//! or the last cursor it was sent up to.
//!
//! Bounded: at most [`DEVICES_PER_EVENT_MAX`] devices per event; past it the device heard
//! from longest ago that is not connected is forgotten.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{SystemTime, UNIX_EPOCH},
};

use serde::Serialize;

/// Devices remembered per event.
pub const DEVICES_PER_EVENT_MAX: usize = 5_000;

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct DeviceSeen {
    pub account: String,
    pub device: String,
    /// Sessions of this device following the event on this server now.
    pub sessions: u32,
    /// The change log position it has been sent up to (its cursor).
    pub cursor: i64,
    /// RFC 3339, UTC.
    pub first_seen: String,
    pub last_seen: String,
    #[serde(skip)]
    last_seen_ms: u128,
}

/// One event's devices by (account, device).
type EventDevices = HashMap<(String, String), DeviceSeen>;

#[derive(Debug, Default)]
pub struct Devices {
    events: Mutex<HashMap<String, EventDevices>>,
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
    pub fn seen(&self, event: &str, account: &str, device: &str, what: Seen, cursor: Option<i64>) {
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
                None => return,
            }
        }
        let d = devices.entry(key).or_insert_with(|| DeviceSeen {
            account: account.to_string(),
            device: device.to_string(),
            sessions: 0,
            cursor: 0,
            first_seen: stamp.clone(),
            last_seen: stamp.clone(),
            last_seen_ms: ms,
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
    }

    /// The event's devices, the most recently heard from first.
    pub fn list(&self, event: &str) -> Vec<DeviceSeen> {
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<DeviceSeen> = events.get(event).map(|d| d.values().cloned().collect()).unwrap_or_default();
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
