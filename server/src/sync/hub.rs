//! The fan-out: one feed task per subscribed event reads the event's change log forward
//! (woken by this node's commit notices, and by the heads poller for commits other nodes
//! made) and delivers every batch through an index: event → view (seat holders,
//! members of collaborator X, organization managers) → sessions. A batch is judged and
//! serialized once per distinct view; only a session whose own access changes inside the
//! batch (or that is not aligned with the feed) is judged on its own. Each session has a
//! bounded queue ([`SessionQueue`]); one that does not keep up is closed with its resume
//! cursors instead of growing memory.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::extract::ws::Utf8Bytes;
use engine::{
    Engine,
    changes::Change,
    feed::{Step, View, ViewKey},
    protocol::{Limits, ServerMessage, WireChange, close},
};
use tokio::sync::{Mutex, Notify, mpsc, watch};

use crate::devices::{NodeTiming, Seen};

/// How often the node reads the heads of every event it follows (one query for all of
/// them): the bound on how late a commit made by another node reaches this node's clients.
/// Its own commits wake their feed at once.
const HEADS_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// The heads of followed events are read at least this often, even when no other node told
/// of a commit (a node that crashed between committing and telling).
const HEADS_FULL_INTERVAL: Duration = Duration::from_secs(1);
/// A node tells of its commits at most this often (under load, one write per interval).
const TELL_INTERVAL: Duration = Duration::from_millis(10);
/// [`EventFeed::fanned`] of a feed nobody on this node follows.
const IDLE: i64 = i64::MAX;

/// A frame on its way to one client.
pub(super) enum Out {
    Frame(Utf8Bytes),
}

/// Why a session must end, sent by whoever decides it.
#[derive(Clone, Debug)]
pub(super) struct Closing {
    pub(super) code: u16,
    pub(super) reason: String,
    /// Frames already queued are sent before the close (a slow consumer's are not).
    pub(super) after_queued: bool,
}

/// A session's side of the fan-out: its bounded queue of frames and its kill switch.
#[derive(Clone)]
pub(super) struct SessionQueue {
    pub(super) session: u64,
    pub(super) tx: mpsc::Sender<Out>,
    pub(super) kill: watch::Sender<Option<Closing>>,
}

impl SessionQueue {
    /// Queues a frame without waiting. A full queue closes the session as a slow consumer.
    pub(super) fn offer(&self, frame: Utf8Bytes, resume: &HashMap<String, i64>) -> bool {
        match self.tx.try_send(Out::Frame(frame)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                let reason = serde_json::json!({ "resume": resume }).to_string();
                let _ = self.kill.send(Some(Closing { code: close::SLOW_CONSUMER, reason, after_queued: false }));
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

pub(super) fn frame(msg: &ServerMessage) -> Utf8Bytes {
    Utf8Bytes::from(serde_json::to_string(msg).unwrap_or_default())
}

/// One session's subscription to one event.
pub(super) struct Sub {
    pub(super) view: View,
    pub(super) cursor: i64,
    pub(super) out: SessionQueue,
}

struct FeedState {
    /// The seq up to which this feed has fanned out.
    fanned: i64,
    subs: HashMap<u64, Sub>,
}

struct EventFeed {
    event: String,
    wake: Notify,
    /// The seq up to which the feed has fanned out, for the heads poller to compare with.
    fanned: AtomicI64,
    state: Mutex<FeedState>,
}

/// The server's fan-out index.
pub struct Hub {
    pub(super) engine: Engine,
    pub limits: Limits,
    feeds: std::sync::Mutex<HashMap<String, Arc<EventFeed>>>,
    pub(super) next_session: AtomicU64,
    pub(super) shutdown: watch::Receiver<bool>,
    /// Who follows each event from this server, and when each device last synced.
    pub devices: crate::devices::Devices,
    pub node_timing: NodeTiming,
    /// Commits this node made, and the signal to tell the other nodes (see `tell_commits`).
    committed: AtomicU64,
    commits_to_tell: Notify,
    /// The sockets of each sign-in on this node.
    sign_ins: Arc<super::signins::OpenSignIns>,
    /// How much may be pushed a minute.
    pub(super) quotas: crate::quotas::Quotas,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("limits", &self.limits).finish()
    }
}

impl Hub {
    pub fn new(
        engine: Engine,
        limits: Limits,
        node_timing: NodeTiming,
        quotas: crate::quotas::Quotas,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Hub> {
        let hub = Arc::new(Hub {
            engine,
            limits,
            feeds: std::sync::Mutex::new(HashMap::new()),
            next_session: AtomicU64::new(1),
            shutdown,
            devices: Default::default(),
            node_timing,
            committed: AtomicU64::new(0),
            commits_to_tell: Notify::new(),
            sign_ins: Arc::default(),
            quotas,
        });
        hub.sign_ins.watch(hub.engine.clone(), hub.shutdown.clone());
        // This node's heartbeat (the devices panel counts the sessions of nodes alive), and
        // its sessions' end when it stops.
        let weak = Arc::downgrade(&hub);
        let mut shutdown = hub.shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(node_timing.heartbeat);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let stopping = tokio::select! {
                    _ = tick.tick() => false,
                    _ = shutdown.changed() => true,
                };
                let Some(hub) = weak.upgrade() else { return };
                let d = &hub.devices;
                if stopping {
                    if let Err(e) = hub.engine.node_stopped(&d.node).await {
                        tracing::warn!(error = ?e, "recording this node's stop failed");
                    }
                    return;
                }
                let now = unix_ms();
                let since = now - node_timing.silent_max.as_millis() as i64;
                if let Err(e) = hub.engine.node_alive(&d.node, &d.started_at, now, since).await {
                    tracing::warn!(error = ?e, "recording this node's heartbeat failed");
                }
            }
        });
        // Wake the feed of every event this process commits to.
        let weak = Arc::downgrade(&hub);
        let mut notices = hub.engine.commit_notices();
        tokio::spawn(async move {
            loop {
                let notice = notices.recv().await;
                let Some(hub) = weak.upgrade() else { return };
                let feeds = hub.feeds.lock().map(|f| f.clone()).unwrap_or_default();
                if !matches!(notice, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                    hub.committed.fetch_add(1, Ordering::Relaxed);
                    hub.commits_to_tell.notify_one();
                }
                match notice {
                    Ok((event, _)) => {
                        if let Some(f) = feeds.get(&event) {
                            f.wake.notify_one();
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        feeds.values().for_each(|f| f.wake.notify_one());
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        // Tell the other nodes that this one committed: its commit count on its node record,
        // written at most every TELL_INTERVAL, by this task alone.
        let weak = Arc::downgrade(&hub);
        let mut shutdown = hub.shutdown.clone();
        tokio::spawn(async move {
            loop {
                let Some(told) = weak.upgrade() else { return };
                tokio::select! {
                    _ = told.commits_to_tell.notified() => {}
                    _ = shutdown.changed() => return,
                }
                let commits = told.committed.load(Ordering::Relaxed) as i64;
                if let Err(e) = told.engine.node_committed(&told.devices.node, commits).await {
                    tracing::warn!(error = ?e, "telling the other nodes of this node's commits failed");
                }
                drop(told);
                tokio::time::sleep(TELL_INTERVAL).await;
            }
        });
        // Wake the feed of every event another node committed to: every tick, read the other
        // nodes' commit counts, each by its key (one small read; none on a node alone); when
        // one moved, read the heads of every followed event (one query) and wake the feeds
        // behind them. Every second the heads are read whatever the counts say, and the nodes
        // alive are read again from their heartbeats.
        let weak = Arc::downgrade(&hub);
        let mut shutdown = hub.shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEADS_POLL_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut counts: HashMap<String, i64> = HashMap::new();
            let mut others: Vec<String> = Vec::new();
            let mut last_full =
                tokio::time::Instant::now().checked_sub(HEADS_FULL_INTERVAL).unwrap_or_else(tokio::time::Instant::now);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.changed() => return,
                }
                let Some(hub) = weak.upgrade() else { return };
                if !hub.follows_any() {
                    continue;
                }
                let full = last_full.elapsed() >= HEADS_FULL_INTERVAL;
                if full {
                    match hub.engine.nodes_alive(hub.nodes_alive_since()).await {
                        Ok(alive) => others = alive.into_iter().filter(|n| *n != hub.devices.node).collect(),
                        Err(e) => tracing::warn!(error = ?e, "reading the nodes alive failed"),
                    }
                }
                let moved = match hub.engine.node_commit_counts(&others).await {
                    Ok(now) => {
                        let moved = now.iter().any(|(n, c)| counts.get(n) != Some(c));
                        counts = now.into_iter().collect();
                        moved
                    }
                    Err(e) => {
                        tracing::warn!(error = ?e, "reading the nodes' commit counts failed");
                        true
                    }
                };
                if moved || full {
                    last_full = tokio::time::Instant::now();
                    hub.wake_moved_feeds().await;
                }
            }
        });
        hub
    }

    /// Notes a socket of a sign-in, to close it when the sign-in ends; dropping what it
    /// returns forgets it.
    pub(super) fn sign_in_opened(
        &self,
        sign_in: &str,
        session: u64,
        kill: watch::Sender<Option<Closing>>,
    ) -> super::signins::Registered {
        self.sign_ins.opened(sign_in, session, kill)
    }

    /// Closes this node's sockets of sign-ins that just ended (other nodes find them by
    /// polling).
    pub fn sign_ins_ended(&self, ids: &[String]) {
        self.sign_ins.ended(ids);
    }

    /// The heartbeat time (Unix ms) from which a node counts as alive.
    pub fn nodes_alive_since(&self) -> i64 {
        unix_ms() - self.node_timing.silent_max.as_millis() as i64
    }

    /// Whether any session on this node follows an event.
    fn follows_any(&self) -> bool {
        self.feeds.lock().is_ok_and(|f| f.values().any(|f| f.fanned.load(Ordering::Relaxed) != IDLE))
    }

    /// Reads the heads of every followed event in one query and wakes the feeds that are
    /// behind them (commits of other nodes; this node's own wake their feed directly).
    async fn wake_moved_feeds(&self) {
        let mut feeds: HashMap<String, Arc<EventFeed>> = self.feeds.lock().map(|f| f.clone()).unwrap_or_default();
        feeds.retain(|_, f| f.fanned.load(Ordering::Relaxed) != IDLE);
        if feeds.is_empty() {
            return;
        }
        let events: Vec<String> = feeds.keys().cloned().collect();
        match self.engine.heads(&events).await {
            Ok(heads) => {
                for (event, head) in heads {
                    if let Some(f) = feeds.get(&event)
                        && head > f.fanned.load(Ordering::Relaxed)
                    {
                        f.wake.notify_one();
                    }
                }
            }
            Err(e) => tracing::warn!(error = ?e, "reading the heads of followed events failed"),
        }
    }

    fn feed(self: &Arc<Self>, event: &str, head: i64) -> Arc<EventFeed> {
        let mut feeds = self.feeds.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = feeds.get(event) {
            return f.clone();
        }
        let f = Arc::new(EventFeed {
            event: event.to_string(),
            wake: Notify::new(),
            fanned: AtomicI64::new(head),
            state: Mutex::new(FeedState { fanned: head, subs: HashMap::new() }),
        });
        feeds.insert(event.to_string(), f.clone());
        let hub = self.clone();
        let feed = f.clone();
        tokio::spawn(async move { hub.run_feed(feed).await });
        f
    }

    /// The feed task of one event: read the log forward and fan it out, until shutdown.
    async fn run_feed(self: Arc<Self>, feed: Arc<EventFeed>) {
        let mut shutdown = self.shutdown.clone();
        loop {
            tokio::select! {
                () = feed.wake.notified() => {}
                _ = shutdown.changed() => return,
            }
            loop {
                let mut st = feed.state.lock().await;
                if st.subs.is_empty() {
                    // Followed by nobody here: the heads poller leaves it alone until a
                    // subscription registers (and says where the feed starts).
                    feed.fanned.store(IDLE, Ordering::Relaxed);
                    break;
                }
                let batch =
                    match self.engine.changes_since(&feed.event, st.fanned, self.limits.changes_per_frame_max).await {
                        Ok(b) => b,
                        Err(e) => {
                            tracing::error!(event = %feed.event, error = ?e, "reading the change log failed");
                            break;
                        }
                    };
                let Some(last) = batch.last().map(|c| c.seq) else { break };
                self.fan_out(&feed.event, &mut st, &batch).await;
                st.fanned = last;
                feed.fanned.store(last, Ordering::Relaxed);
            }
        }
    }

    /// Delivers one batch to every subscriber: once per view for the common case, one by one
    /// for subscribers whose own access changes in it or who are not aligned with the feed.
    async fn fan_out(&self, event: &str, st: &mut FeedState, batch: &[Change]) {
        let first = batch[0].seq;
        let last = batch[batch.len() - 1].seq;
        let subjects: Vec<&str> = batch.iter().filter_map(|c| c.subject.as_deref()).collect();
        // A module grant changes a whole collaborator's access (and every view keeps the
        // event's grants): such a batch is judged for each subscriber.
        let grants = batch.iter().any(|c| c.kind == "module_grant");
        let personal = batch.iter().any(|c| c.kind.personal());
        let mut shared: HashMap<ViewKey, Vec<Utf8Bytes>> = HashMap::new();
        let mut dropped = Vec::new();
        for (id, sub) in st.subs.iter_mut() {
            if sub.cursor >= last {
                continue;
            }
            if sub.cursor < first - 1 {
                // Entries this subscriber still needed were trimmed from the log: it must
                // resync, never skip them silently. Its resume cursor is below the floor.
                let _ = sub.out.kill.send(Some(Closing {
                    code: close::SLOW_CONSUMER,
                    after_queued: false,
                    reason: serde_json::json!({ "resume": { event: sub.cursor } }).to_string(),
                }));
                dropped.push(*id);
                continue;
            }
            let own = grants || subjects.contains(&sub.view.account.as_str()) || sub.cursor + 1 != first;
            let delivered = if own {
                let frames = self.judge(event, &mut sub.view, sub.cursor, batch).await;
                let resume = HashMap::from([(event.to_string(), sub.cursor)]);
                frames.into_iter().all(|f| sub.out.offer(f, &resume))
            } else {
                let key = sub.view.key(personal);
                let frames = match shared.get(&key) {
                    Some(f) => f.clone(),
                    None => {
                        let mut view = sub.view.clone();
                        let frames = self.judge(event, &mut view, sub.cursor, batch).await;
                        shared.insert(key, frames.clone());
                        frames
                    }
                };
                let resume = HashMap::from([(event.to_string(), sub.cursor)]);
                frames.into_iter().all(|f| sub.out.offer(f, &resume))
            };
            if delivered {
                sub.cursor = last;
            } else {
                dropped.push(*id);
            }
        }
        for id in dropped {
            st.subs.remove(&id);
        }
    }

    /// Judges `batch` (entries after `cursor`) for one view and returns the frames to send.
    async fn judge(&self, event: &str, view: &mut View, cursor: i64, batch: &[Change]) -> Vec<Utf8Bytes> {
        let mut wire = Vec::new();
        for c in batch.iter().filter(|c| c.seq > cursor) {
            for step in view.step(c) {
                match step {
                    Step::Send(w) => wire.push(w),
                    // The record that widened it (a seat) was sent by its own step already.
                    Step::Widen { seq, before, after } => match self.engine.widened(event, &before, &after).await {
                        Ok(records) => wire.extend(
                            records
                                .into_iter()
                                .filter(|r| !(r.kind == c.kind.as_str() && r.id == c.record))
                                .map(|r| WireChange::Upsert { seq, kind: r.kind, id: r.id, data: r.data }),
                        ),
                        Err(e) => tracing::warn!(event, error = ?e, "widening a view failed"),
                    },
                    Step::Reshape { seq, kinds, standing } => {
                        match self.engine.reshaped(event, &kinds, &standing).await {
                            Ok(records) => wire.extend(records.into_iter().map(|r| WireChange::Upsert {
                                seq,
                                kind: r.kind,
                                id: r.id,
                                data: r.data,
                            })),
                            Err(e) => tracing::warn!(event, error = ?e, "reshaping a view failed"),
                        }
                    }
                }
            }
        }
        let Some(last) = batch.last().map(|c| c.seq) else { return Vec::new() };
        if wire.is_empty() {
            return Vec::new();
        }
        let n = wire.len();
        let mut frames = Vec::new();
        let mut sent = 0;
        for chunk in sized_chunks(&wire, self.limits.changes_per_frame_max, self.limits.frame_out_bytes_target) {
            sent += chunk.len();
            // Intermediate frames move the cursor to their own last entry; the last frame to
            // the end of the batch.
            let cursor = if sent == n { last } else { chunk.last().map_or(last, wire_seq) };
            frames.push(frame(&ServerMessage::Changes { event: event.into(), changes: chunk.to_vec(), cursor }));
        }
        frames
    }

    /// Registers a subscription that has everything up to `cursor`; catches it up to the
    /// feed's position first, so no change is missed or sent twice.
    pub(super) async fn register(self: &Arc<Self>, event: &str, head: i64, mut sub: Sub) {
        let feed = self.feed(event, head);
        let mut st = feed.state.lock().await;
        if st.subs.is_empty() {
            // Nobody else follows this event: the feed starts where this subscriber is.
            st.fanned = sub.cursor;
            feed.fanned.store(sub.cursor, Ordering::Relaxed);
        }
        while sub.cursor < st.fanned {
            let batch = match self.engine.changes_since(event, sub.cursor, self.limits.changes_per_frame_max).await {
                Ok(b) if !b.is_empty() => b,
                _ => break,
            };
            let upto = batch.iter().map(|c| c.seq).filter(|s| *s <= st.fanned).max().unwrap_or(sub.cursor);
            let batch: Vec<Change> = batch.into_iter().filter(|c| c.seq <= upto).collect();
            let frames = self.judge(event, &mut sub.view, sub.cursor, &batch).await;
            let resume = HashMap::from([(event.to_string(), sub.cursor)]);
            if !frames.into_iter().all(|f| sub.out.offer(f, &resume)) {
                return;
            }
            sub.cursor = upto;
        }
        st.subs.insert(sub.out.session, sub);
        drop(st);
        feed.wake.notify_one();
    }

    /// Notes a device's sync on `event`, and writes it to the database when it is due (on
    /// join and leave, and at most every 30 s between: awaited, so a leave is written before
    /// the session is gone).
    pub(super) async fn device_seen(&self, event: &str, account: &str, device: &str, what: Seen, cursor: Option<i64>) {
        let Some(p) = self.devices.seen(event, account, device, what, cursor) else { return };
        if let Some(n) = p.sessions
            && let Err(e) = self.engine.device_sessions_on(&self.devices.node, event, account, device, n).await
        {
            tracing::warn!(error = ?e, event, device, "recording a device's sessions failed");
        }
        if let Err(e) = self.engine.device_synced(event, account, device, p.cursor, &p.at, p.live).await {
            tracing::warn!(error = ?e, event, device, "recording a device's sync failed");
        }
    }

    pub(super) async fn unregister(&self, event: &str, session: u64) -> Option<i64> {
        let feed = self.feeds.lock().ok()?.get(event).cloned()?;
        let mut st = feed.state.lock().await;
        st.subs.remove(&session).map(|s| s.cursor)
    }

    pub(super) async fn cursors(&self, events: &[String], session: u64) -> HashMap<String, i64> {
        let mut out = HashMap::new();
        for e in events {
            let feed = self.feeds.lock().ok().and_then(|f| f.get(e).cloned());
            if let Some(feed) = feed
                && let Some(s) = feed.state.lock().await.subs.get(&session)
            {
                out.insert(e.clone(), s.cursor);
            }
        }
        out
    }
}

/// Splits `items` into runs of at most `max_items` whose JSON stays within about
/// `target_bytes` (an item larger than that is a run of its own).
pub(super) fn sized_chunks<T: serde::Serialize>(items: &[T], max_items: usize, target_bytes: usize) -> Vec<&[T]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, item) in items.iter().enumerate() {
        let size = serde_json::to_vec(item).map_or(0, |v| v.len()) + 1;
        if i > start && (i - start >= max_items.max(1) || bytes + size > target_bytes) {
            out.push(&items[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}

fn wire_seq(w: &WireChange) -> i64 {
    match w {
        WireChange::Upsert { seq, .. }
        | WireChange::Delete { seq, .. }
        | WireChange::Remove { seq, .. }
        | WireChange::Narrow { seq, .. } => *seq,
    }
}

/// Now, in Unix milliseconds.
fn unix_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
