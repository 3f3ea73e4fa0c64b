//! The sync sockets of each sign-in on this node, so that ending a sign-in closes them:
//! at once when it ends on this node, and within [`ENDED_POLL_INTERVAL`] when it ends on
//! another (every node reads the sign-ins ended lately).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use engine::{Engine, protocol::close};
use tokio::sync::watch;

use super::hub::Closing;

/// How often a node reads the sign-ins ended on any node: the bound on how long a socket
/// of a sign-in ended elsewhere stays open.
pub const ENDED_POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How far back each read looks behind the latest end it saw: nodes' clocks may differ.
const CLOCK_SKEW_MS: i64 = 60_000;

/// One sign-in's sockets on this node: each session's kill switch, by session.
type Sockets = HashMap<u64, watch::Sender<Option<Closing>>>;

/// Sockets by sign-in.
#[derive(Default)]
pub struct OpenSignIns {
    open: Mutex<HashMap<String, Sockets>>,
}

/// A socket's place in [`OpenSignIns`]; dropping it gives the place up.
pub struct Registered {
    sign_ins: Weak<OpenSignIns>,
    sign_in: String,
    session: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(s) = self.sign_ins.upgrade() {
            let mut open = s.open.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(sessions) = open.get_mut(&self.sign_in) {
                sessions.remove(&self.session);
                if sessions.is_empty() {
                    open.remove(&self.sign_in);
                }
            }
        }
    }
}

impl OpenSignIns {
    pub fn opened(self: &Arc<Self>, sign_in: &str, session: u64, kill: watch::Sender<Option<Closing>>) -> Registered {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.entry(sign_in.to_string()).or_default().insert(session, kill);
        Registered { sign_ins: Arc::downgrade(self), sign_in: sign_in.to_string(), session }
    }

    /// Closes every socket of these sign-ins with [`close::SIGN_IN_ENDED`].
    pub fn ended(&self, ids: &[String]) {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        for id in ids {
            for kill in open.get(id).into_iter().flat_map(HashMap::values) {
                let reason = serde_json::json!({ "message": "this sign-in has ended; sign in again" }).to_string();
                let _ = kill.send(Some(Closing { code: close::SIGN_IN_ENDED, reason, after_queued: false }));
            }
        }
    }

    fn any(&self) -> bool {
        !self.open.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
    }

    /// Reads the sign-ins ended on any node and closes their sockets here, until `shutdown`.
    pub fn watch(self: &Arc<Self>, engine: Engine, mut shutdown: watch::Receiver<bool>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(ENDED_POLL_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut latest = chrono::Utc::now().timestamp_millis();
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.changed() => return,
                }
                let Some(me) = weak.upgrade() else { return };
                if !me.any() {
                    continue;
                }
                match engine.sign_ins_ended_since(latest - CLOCK_SKEW_MS).await {
                    Ok(ended) => {
                        latest = ended.iter().map(|(_, ms)| *ms).max().unwrap_or(latest).max(latest);
                        let ids: Vec<String> = ended.into_iter().map(|(id, _)| id).collect();
                        me.ended(&ids);
                    }
                    Err(e) => tracing::warn!(error = ?e, "reading the sign-ins ended failed"),
                }
            }
        });
    }
}
