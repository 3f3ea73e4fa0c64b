//! Hybrid logical clocks: the order of concurrent edits made on different devices.
//!
//! A stamp is wall-clock milliseconds, a counter for edits within one millisecond (or while
//! the wall clock lags a stamp already seen), and the node that made it. Stamps are written
//! as fixed-width text, `0001764064800000-000000-node`, so comparing the text compares the
//! stamps: wall time first, then counter, then node (a tie-break, so no two nodes' stamps
//! are ever equal).
//!
//! Every node keeps a [`Clock`]. It stamps its own edits with [`Clock::now`] and moves past
//! every stamp it receives with [`Clock::observe`], so an edit made after seeing another is
//! always later than it, whatever the two wall clocks say.

use std::{fmt, sync::Mutex};

use crate::{Error, Result};

/// Longest node name in a stamp (a device id).
pub const NODE_LEN_MAX: usize = 64;
const WALL_DIGITS: usize = 16;
const COUNTER_DIGITS: usize = 6;
const COUNTER_MAX: u32 = 999_999;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hlc {
    pub wall_ms: u64,
    pub counter: u32,
    pub node: String,
}

impl fmt::Display for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:0WALL_DIGITS$}-{:0COUNTER_DIGITS$}-{}", self.wall_ms, self.counter, self.node)
    }
}

/// Whether `node` may name a clock: 1 to [`NODE_LEN_MAX`] of `A-Z a-z 0-9 _ . : -`.
pub fn valid_node(node: &str) -> bool {
    !node.is_empty()
        && node.len() <= NODE_LEN_MAX
        && node.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

impl Hlc {
    /// Parses the text form; anything else is invalid input.
    pub fn parse(s: &str) -> Result<Hlc> {
        let bad = || Error::invalid("hlc must look like 0001764064800000-000000-node");
        let (wall, rest) = s.split_at_checked(WALL_DIGITS).ok_or_else(bad)?;
        let rest = rest.strip_prefix('-').ok_or_else(bad)?;
        let (counter, rest) = rest.split_at_checked(COUNTER_DIGITS).ok_or_else(bad)?;
        let node = rest.strip_prefix('-').ok_or_else(bad)?;
        if !wall.bytes().chain(counter.bytes()).all(|b| b.is_ascii_digit()) || !valid_node(node) {
            return Err(bad());
        }
        Ok(Hlc {
            wall_ms: wall.parse().map_err(|_| bad())?,
            counter: counter.parse().map_err(|_| bad())?,
            node: node.into(),
        })
    }
}

/// One node's clock.
#[derive(Debug)]
pub struct Clock {
    node: String,
    last: Mutex<(u64, u32)>,
}

fn wall_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Clock {
    pub fn new(node: &str) -> Clock {
        Clock { node: node.into(), last: Mutex::new((0, 0)) }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// A stamp later than every stamp this clock made or observed.
    pub fn now(&self) -> Hlc {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let wall = wall_now();
        *last = if wall > last.0 {
            (wall, 0)
        } else if last.1 < COUNTER_MAX {
            (last.0, last.1 + 1)
        } else {
            (last.0 + 1, 0)
        };
        Hlc { wall_ms: last.0, counter: last.1, node: self.node.clone() }
    }

    /// Moves the clock past `seen` (a stamp received from another node).
    pub fn observe(&self, seen: &Hlc) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if (seen.wall_ms, seen.counter) > *last {
            *last = (seen.wall_ms, seen.counter);
        }
    }

    /// Wall milliseconds of the local clock (for bounding stamps from the future).
    pub fn wall_ms(&self) -> u64 {
        wall_now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_order_is_stamp_order_and_round_trips() {
        let a = Hlc { wall_ms: 9, counter: 2, node: "b".into() };
        let b = Hlc { wall_ms: 10, counter: 0, node: "a".into() };
        let c = Hlc { wall_ms: 10, counter: 0, node: "b".into() };
        assert!(a < b && b < c);
        assert!(a.to_string() < b.to_string() && b.to_string() < c.to_string());
        for h in [a, b, c] {
            assert_eq!(Hlc::parse(&h.to_string()).unwrap(), h);
        }
        for bad in ["", "1-2-x", "000000000000000a-000000-x", "0000000000000001-000000-", "0000000000000001-000000-a b"]
        {
            assert!(Hlc::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_clock_moves_past_what_it_observes() {
        let c = Clock::new("dev");
        let first = c.now();
        let future = Hlc { wall_ms: first.wall_ms + 60_000, counter: 7, node: "other".into() };
        c.observe(&future);
        let next = c.now();
        assert!(next > future && next > first);
        assert_eq!((next.wall_ms, next.counter), (future.wall_ms, 8));
    }
}
