//! Fair turns at password checks. A node checks as many passwords at once as it has cores
//! (each argon2 check holds 19 MiB while it runs); the requests waiting for a turn queue per
//! address, and turns go round the addresses, so a flood of guesses from a few addresses
//! delays an honest sign-in from another by about one check per flooding address, not by the
//! flood. Each address may have [`PasswordGate::waiting_per_address`] requests waiting, and
//! the node [`PasswordGate::waiting_max`] in all; past either the answer is 503 `busy`
//! with `Retry-After` at once.

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    sync::{Arc, Mutex},
};

use tokio::sync::oneshot;

/// The bounds (see the module's note).
#[derive(Clone, Copy, Debug)]
pub struct PasswordGateLimits {
    pub running: usize,
    pub waiting_per_address: usize,
    pub waiting_max: usize,
}

impl Default for PasswordGateLimits {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        PasswordGateLimits { running: cores, waiting_per_address: 2 * cores, waiting_max: 64 }
    }
}

#[derive(Default)]
struct State {
    running: usize,
    waiting: usize,
    queues: HashMap<IpAddr, VecDeque<oneshot::Sender<Turn>>>,
    /// Addresses with requests waiting, in turn order.
    order: VecDeque<IpAddr>,
}

pub struct PasswordGate {
    limits: PasswordGateLimits,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for PasswordGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordGate").field("limits", &self.limits).finish()
    }
}

/// A turn at a password check; dropping it hands the turn to the next address waiting.
pub struct Turn {
    /// None once handed on.
    state: Option<Arc<Mutex<State>>>,
}

/// No turn now: the node is at its bound.
#[derive(Debug)]
pub struct Busy;

impl PasswordGate {
    pub fn new(limits: PasswordGateLimits) -> PasswordGate {
        let limits = PasswordGateLimits {
            running: limits.running.max(1),
            waiting_per_address: limits.waiting_per_address.max(1),
            waiting_max: limits.waiting_max.max(1),
        };
        PasswordGate { limits, state: Arc::default() }
    }

    /// A turn for a request from `from`, waiting for it fairly, or `Busy`.
    pub async fn turn(&self, from: IpAddr) -> Result<Turn, Busy> {
        let rx = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if s.running < self.limits.running && s.waiting == 0 {
                s.running += 1;
                return Ok(Turn { state: Some(self.state.clone()) });
            }
            let queued = s.queues.get(&from).map_or(0, VecDeque::len);
            if queued >= self.limits.waiting_per_address || s.waiting >= self.limits.waiting_max {
                return Err(Busy);
            }
            let (tx, rx) = oneshot::channel();
            if queued == 0 {
                s.order.push_back(from);
            }
            s.queues.entry(from).or_default().push_back(tx);
            s.waiting += 1;
            rx
        };
        rx.await.map_err(|_| Busy)
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let Some(state) = self.state.take() else { return };
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        // The turn goes to the first waiting request of the next address, round the
        // addresses; one that gave up meanwhile is skipped.
        while let Some(addr) = s.order.pop_front() {
            let Some(q) = s.queues.get_mut(&addr) else { continue };
            let next = q.pop_front();
            let left = q.len();
            if left == 0 {
                s.queues.remove(&addr);
            } else {
                s.order.push_back(addr);
            }
            let Some(tx) = next else { continue };
            s.waiting -= 1;
            match tx.send(Turn { state: Some(state.clone()) }) {
                Ok(()) => return,
                // Its request gave up meanwhile: the turn comes back, disarmed (its drop
                // must not take this lock again), and goes to the next.
                Err(mut back) => back.state = None,
            }
        }
        s.running -= 1;
    }
}
