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
    Engine, Kind,
    access::Standing,
    changes::Change,
    feed::{Step, View, ViewKey},
    protocol::{Limits, ServerMessage, WireChange, close},
};
use tokio::sync::{Mutex, Notify, mpsc, watch};

use super::kept::Kept;
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
    /// The sessions the feed delivers to.
    subs: HashMap<u64, Sub>,
    /// Sessions catching up on their own (outside this lock), to join `subs` near the head.
    catching: HashMap<u64, Arc<Catching>>,
    /// The last changes fanned out (consecutive, up to `fanned`): a session joining a little
    /// behind the feed (a shared snapshot, a catch-up's last stretch) takes them from here
    /// under the lock instead of reading the log there, which would hold up live delivery.
    recent: std::collections::VecDeque<Change>,
}

/// Changes a feed keeps in memory for sessions joining behind it.
const RECENT_MAX: usize = 2_048;

impl FeedState {
    /// Starts the feed at `cursor` (nobody follows it from further back).
    fn restart(&mut self, cursor: i64) {
        self.fanned = cursor;
        self.recent.clear();
    }

    fn remember(&mut self, batch: &[Change]) {
        if self.recent.back().is_some_and(|c| batch.first().is_some_and(|b| b.seq != c.seq + 1)) {
            self.recent.clear();
        }
        self.recent.extend(batch.iter().cloned());
        while self.recent.len() > RECENT_MAX {
            self.recent.pop_front();
        }
    }

    /// The changes after `cursor` up to `fanned`, if they are all still kept.
    fn recent_after(&self, cursor: i64) -> Option<Vec<Change>> {
        let first = self.recent.front()?.seq;
        (cursor + 1 >= first && self.recent.back()?.seq == self.fanned)
            .then(|| self.recent.iter().filter(|c| c.seq > cursor).cloned().collect())
    }
}

/// A session catching up on one event by itself: from an old cursor, or paused by the feed
/// because its queue had no room for a batch. Its task reads the log from its cursor and
/// waits for the socket (flow control, not a cut), then joins the feed under its lock when
/// near the head.
struct Catching {
    /// Everything up to here has been queued for the client.
    cursor: AtomicI64,
    /// Set when the session leaves the event: the task stops, sending nothing more.
    gone: watch::Sender<bool>,
}

/// How far behind the feed a catching session may be to join it under the feed's lock
/// (what it reads there): about one read of the log.
const JOIN_GAP: i64 = 500;
/// Tries a catching session makes to find the feed within [`JOIN_GAP`] (the feed moves
/// meanwhile) before it joins under the lock from wherever it is.
const JOIN_TRIES: u32 = 8;
/// How long a catching session waits for room in its queue before looking again.
const ROOM_WAIT: Duration = Duration::from_millis(10);
/// How long a widening read is kept for other sessions that widen at the same seq the same
/// way (a module granted to a collaborator whose members are connected).
const WIDEN_KEPT: Duration = Duration::from_secs(30);
/// Widening reads kept at most.
const WIDEN_KEPT_MAX: usize = 16;

/// A piece of what one view is sent of a batch: changes to put into frames, or frames made
/// already (a widening shared by many sessions) whose last cursor is `seq`.
enum Piece {
    Change(WireChange),
    Built(Arc<Vec<Utf8Bytes>>, i64),
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
    /// Widening reads shared by the sessions that widen alike: the frames of one widening,
    /// by the seq it happens at and the two standings (without the person: only kinds
    /// nobody owns alone are in it).
    widenings: Kept<Vec<Utf8Bytes>>,
    /// Snapshots shared by the sessions of one standing (see `snapshots.rs`).
    pub(super) snapshots_kept: Kept<super::snapshots::Shared>,
    /// Snapshots read at once on this node; the others wait their turn.
    pub(super) snapshots: tokio::sync::Semaphore,
    /// Subscriptions started, by account (`Limits::subscribes_per_minute`).
    pub(super) subscribes: crate::attempts::Buckets,
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
        snapshots_at_once: usize,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Hub> {
        // A kept snapshot's cursor stays well inside the log's retention.
        let snapshots_kept =
            Kept::new(super::snapshots::KEPT.min(engine.config().log_retention / 10), super::snapshots::KEPT_MAX);
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
            widenings: Kept::new(WIDEN_KEPT, WIDEN_KEPT_MAX),
            snapshots_kept,
            snapshots: tokio::sync::Semaphore::new(snapshots_at_once.max(1)),
            subscribes: crate::attempts::Buckets::default(),
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
                    background_failed(&e, "recording this node's heartbeat failed");
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
                    background_failed(&e, "telling the other nodes of this node's commits failed");
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
                        Err(e) => background_failed(&e, "reading the nodes alive failed"),
                    }
                }
                let moved = match hub.engine.node_commit_counts(&others).await {
                    Ok(now) => {
                        let moved = now.iter().any(|(n, c)| counts.get(n) != Some(c));
                        counts = now.into_iter().collect();
                        moved
                    }
                    Err(e) => {
                        background_failed(&e, "reading the nodes' commit counts failed");
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
            Err(e) => background_failed(&e, "reading the heads of followed events failed"),
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
            state: Mutex::new(FeedState {
                fanned: head,
                subs: HashMap::new(),
                catching: HashMap::new(),
                recent: Default::default(),
            }),
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
                self.fan_out(&feed, &mut st, &batch).await;
                st.remember(&batch);
                st.fanned = last;
                feed.fanned.store(last, Ordering::Relaxed);
            }
        }
    }

    /// Delivers one batch to every subscriber: once per view for the common case, one by one
    /// for subscribers whose own access changes in it or who are not aligned with the feed.
    /// A subscriber whose queue has no room for the whole batch is paused: it leaves the
    /// feed and catches up by itself from its cursor as its socket takes the frames.
    async fn fan_out(self: &Arc<Self>, feed: &Arc<EventFeed>, st: &mut FeedState, batch: &[Change]) {
        let event = feed.event.as_str();
        let first = batch[0].seq;
        let last = batch[batch.len() - 1].seq;
        let subjects: Vec<&str> = batch.iter().filter_map(|c| c.subject.as_deref()).collect();
        // A module grant changes a whole collaborator's access (and every view keeps the
        // event's grants): such a batch is judged for each subscriber (its widening is read
        // once, see `widen`).
        let grants = batch.iter().any(|c| c.kind == "module_grant");
        let personal = batch.iter().any(|c| c.kind.personal());
        let mut shared: HashMap<ViewKey, Vec<Utf8Bytes>> = HashMap::new();
        let mut dropped = Vec::new();
        let mut paused = Vec::new();
        for (id, sub) in st.subs.iter_mut() {
            if sub.cursor >= last {
                continue;
            }
            if sub.cursor < first - 1 {
                // Entries this subscriber still needed were trimmed from the log: it must
                // resync, never skip them silently. Its resume cursor is below the floor.
                trimmed(&sub.out, event, sub.cursor);
                dropped.push(*id);
                continue;
            }
            let own = grants || subjects.contains(&sub.view.account.as_str()) || sub.cursor + 1 != first;
            let (frames, view) = if own {
                let mut view = sub.view.clone();
                let frames = self.judge(event, &mut view, sub.cursor, batch).await;
                (frames, Some(view))
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
                (frames, None)
            };
            match sub.out.tx.try_reserve_many(frames.len()) {
                Ok(permits) => {
                    for (permit, f) in permits.zip(frames) {
                        permit.send(Out::Frame(f));
                    }
                    sub.cursor = last;
                    if let Some(v) = view {
                        sub.view = v;
                    }
                }
                Err(mpsc::error::TrySendError::Full(())) => paused.push(*id),
                Err(mpsc::error::TrySendError::Closed(())) => dropped.push(*id),
            }
        }
        for id in dropped {
            st.subs.remove(&id);
        }
        for id in paused {
            if let Some(sub) = st.subs.remove(&id) {
                self.catch_up(feed, st, sub);
            }
        }
    }

    /// Judges `batch` (entries after `cursor`) for one view and returns the frames to send.
    async fn judge(&self, event: &str, view: &mut View, cursor: i64, batch: &[Change]) -> Vec<Utf8Bytes> {
        let mut pieces = Vec::new();
        for c in batch.iter().filter(|c| c.seq > cursor) {
            for step in view.step(c) {
                match step {
                    Step::Send(w) => pieces.push(Piece::Change(w)),
                    Step::Widen { seq, before, after } => {
                        pieces.extend(self.widen(event, c, seq, &before, &after).await);
                    }
                    Step::Reshape { seq, kinds, standing } => {
                        match self.engine.reshaped(event, &kinds, &standing).await {
                            Ok(records) => pieces.extend(records.into_iter().map(|r| {
                                Piece::Change(WireChange::Upsert { seq, kind: r.kind, id: r.id, data: r.data })
                            })),
                            Err(e) => tracing::warn!(event, error = ?e, "reshaping a view failed"),
                        }
                    }
                }
            }
        }
        let Some(last) = batch.last().map(|c| c.seq) else { return Vec::new() };
        self.frames(event, pieces, last)
    }

    /// What a view widened at `seq` by `c` is sent: the records visible under `after` but
    /// not `before` — the person's own (read for them) first, then the rest, read once for
    /// every session that widens alike and kept a while for sessions that reach `seq`
    /// later. The record that widened it (a seat) was sent by its own step already.
    async fn widen(&self, event: &str, c: &Change, seq: i64, before: &Standing, after: &Standing) -> Vec<Piece> {
        let not_this = |r: &engine::protocol::Record| !(r.kind == c.kind.as_str() && r.id == c.record);
        let (personal, others): (Vec<Kind>, Vec<Kind>) = Kind::ALL.into_iter().partition(|k| k.personal());
        let mut pieces = Vec::new();
        match self.engine.widened(event, &personal, before, after).await {
            Ok(records) => pieces.extend(
                records
                    .into_iter()
                    .filter(not_this)
                    .map(|r| Piece::Change(WireChange::Upsert { seq, kind: r.kind, id: r.id, data: r.data })),
            ),
            Err(e) => tracing::warn!(event, error = ?e, "widening a view failed"),
        }
        // Without the person, the standings say only what every member alike may see.
        let anyone = |s: &Standing| Standing { person: String::new(), ..s.clone() };
        let (before, after) = (anyone(before), anyone(after));
        let key = format!("{event}\u{0}{seq}\u{0}{before:?}\u{0}{after:?}");
        let widening = self.widenings.get(key);
        let built = widening
            .get_or_try_init(|| async {
                let records = self.engine.widened(event, &others, &before, &after).await?;
                let wire: Vec<WireChange> = records
                    .into_iter()
                    .filter(not_this)
                    .map(|r| WireChange::Upsert { seq, kind: r.kind, id: r.id, data: r.data })
                    .collect();
                let chunks = sized_chunks(&wire, self.limits.changes_per_frame_max, self.limits.frame_out_bytes_target);
                let n = chunks.len();
                // Every frame but the last leaves the cursor before `seq`: a client cut off
                // in the middle resumes with the widening again, not past it.
                let frames = chunks
                    .into_iter()
                    .enumerate()
                    .map(|(i, chunk)| {
                        let cursor = if i + 1 == n { seq } else { seq - 1 };
                        frame(&ServerMessage::Changes { event: event.into(), changes: chunk.to_vec(), cursor })
                    })
                    .collect();
                Ok::<_, engine::Error>(Arc::new(frames))
            })
            .await;
        match built {
            Ok(frames) if !frames.is_empty() => pieces.push(Piece::Built(frames.clone(), seq)),
            Ok(_) => {}
            Err(e) => tracing::warn!(event, error = ?e, "widening a view failed"),
        }
        pieces
    }

    /// Puts `pieces` into frames. A frame's cursor is the seq of its last change — one less
    /// when the next frame carries more of that seq, so a client cut off between them
    /// resumes with the rest — and the batch's last frame moves it to `last`, the end of
    /// the batch.
    fn frames(&self, event: &str, pieces: Vec<Piece>, last: i64) -> Vec<Utf8Bytes> {
        enum Unit {
            Changes(Vec<WireChange>),
            Built(Utf8Bytes, i64),
        }
        let mut units = Vec::new();
        let mut run: Vec<WireChange> = Vec::new();
        let flush = |run: &mut Vec<WireChange>, units: &mut Vec<Unit>| {
            for chunk in sized_chunks(run, self.limits.changes_per_frame_max, self.limits.frame_out_bytes_target) {
                units.push(Unit::Changes(chunk.to_vec()));
            }
            run.clear();
        };
        for p in pieces {
            match p {
                Piece::Change(w) => run.push(w),
                Piece::Built(frames, seq) => {
                    flush(&mut run, &mut units);
                    units.extend(frames.iter().map(|f| Unit::Built(f.clone(), seq)));
                }
            }
        }
        flush(&mut run, &mut units);
        let first_seq = |u: &Unit| match u {
            Unit::Changes(c) => c.first().map_or(i64::MAX, wire_seq),
            Unit::Built(_, seq) => *seq,
        };
        let n = units.len();
        let mut frames = Vec::with_capacity(n);
        for i in 0..n {
            match &units[i] {
                Unit::Built(f, _) => frames.push(f.clone()),
                Unit::Changes(changes) => {
                    let own = changes.last().map_or(last, wire_seq);
                    let cursor = match units.get(i + 1) {
                        None => last,
                        Some(next) if first_seq(next) <= own => own - 1,
                        Some(_) => own,
                    };
                    frames.push(frame(&ServerMessage::Changes {
                        event: event.into(),
                        changes: changes.clone(),
                        cursor,
                    }));
                }
            }
        }
        frames
    }

    /// Registers a subscription that has everything up to `cursor`. Behind the feed, it
    /// catches up by itself first (see [`Catching`]): the feed's other sessions are not held
    /// up while it reads.
    pub(super) async fn register(self: &Arc<Self>, event: &str, head: i64, sub: Sub) {
        let feed = self.feed(event, head);
        let mut st = feed.state.lock().await;
        if st.subs.is_empty() && st.catching.is_empty() {
            // Nobody else follows this event: the feed starts where this subscriber is.
            st.restart(sub.cursor);
            feed.fanned.store(sub.cursor, Ordering::Relaxed);
        }
        let mut sub = sub;
        if sub.cursor < st.fanned
            && let Some(behind) = st.recent_after(sub.cursor)
        {
            // A little behind (a shared snapshot): what it lacks is in memory.
            let mut view = sub.view.clone();
            let frames = self.judge(event, &mut view, sub.cursor, &behind).await;
            if let Ok(permits) = sub.out.tx.try_reserve_many(frames.len()) {
                for (permit, f) in permits.zip(frames) {
                    permit.send(Out::Frame(f));
                }
                sub.view = view;
                sub.cursor = st.fanned;
            }
        }
        if sub.cursor >= st.fanned {
            st.subs.insert(sub.out.session, sub);
            drop(st);
            feed.wake.notify_one();
            return;
        }
        self.catch_up(&feed, &mut st, sub);
    }

    /// Starts `sub` catching up by itself from its cursor; it joins the feed near its head.
    fn catch_up(self: &Arc<Self>, feed: &Arc<EventFeed>, st: &mut FeedState, sub: Sub) {
        let (gone, stop) = watch::channel(false);
        let mark = Arc::new(Catching { cursor: AtomicI64::new(sub.cursor), gone });
        st.catching.insert(sub.out.session, mark.clone());
        let (hub, feed) = (self.clone(), feed.clone());
        tokio::spawn(async move { hub.catching(feed, sub, mark, stop).await });
    }

    /// The task of a catching session: read the log from its cursor and queue what its view
    /// is sent, waiting for room (the client's pace), outside the feed's lock; then join the
    /// feed under the lock for the last stretch, so nothing is missed or sent twice.
    async fn catching(
        self: Arc<Self>,
        feed: Arc<EventFeed>,
        mut sub: Sub,
        mark: Arc<Catching>,
        mut stop: watch::Receiver<bool>,
    ) {
        let event = feed.event.clone();
        let id = sub.out.session;
        let mut tries = 0;
        loop {
            if *stop.borrow() {
                return;
            }
            let fanned = feed.fanned.load(Ordering::Relaxed);
            if fanned != IDLE && fanned - sub.cursor > JOIN_GAP && tries < JOIN_TRIES {
                // Far behind: a stretch outside the lock.
                match self.read_on(&event, &mut sub, &mark, &mut stop, i64::MAX).await {
                    Ahead::Moved => continue,
                    Ahead::AtHead => tries += 1,
                    Ahead::Gone => return self.forget(&feed, id).await,
                }
                continue;
            }
            let mut st = feed.state.lock().await;
            if !st.catching.contains_key(&id) {
                return;
            }
            if st.subs.is_empty() {
                st.restart(sub.cursor);
                feed.fanned.store(sub.cursor, Ordering::Relaxed);
            }
            if st.fanned - sub.cursor > JOIN_GAP && tries < JOIN_TRIES {
                tries += 1;
                continue;
            }
            // Up to the feed's position under its lock, only with room for each batch whole:
            // without room the lock is let go and the session waits for its socket.
            let mut waiting = None;
            while sub.cursor < st.fanned {
                // From the feed's memory when it still holds the stretch: no read under the lock.
                let kept = st.recent_after(sub.cursor).filter(|b| !b.is_empty());
                let batch = match kept {
                    Some(b) => b,
                    None => {
                        match self.engine.changes_since(&event, sub.cursor, self.limits.changes_per_frame_max).await {
                            Ok(b) if !b.is_empty() => b,
                            Ok(_) => break,
                            Err(e) => {
                                tracing::warn!(event, error = ?e, "reading the change log for a catch-up failed");
                                break;
                            }
                        }
                    }
                };
                if batch[0].seq != sub.cursor + 1 {
                    trimmed(&sub.out, &event, sub.cursor);
                    st.catching.remove(&id);
                    return;
                }
                let upto = batch.iter().map(|c| c.seq).filter(|s| *s <= st.fanned).max().unwrap_or(sub.cursor);
                let batch: Vec<Change> = batch.into_iter().filter(|c| c.seq <= upto).collect();
                let mut view = sub.view.clone();
                let frames = self.judge(&event, &mut view, sub.cursor, &batch).await;
                match sub.out.tx.try_reserve_many(frames.len()) {
                    Ok(permits) => {
                        for (permit, f) in permits.zip(frames) {
                            permit.send(Out::Frame(f));
                        }
                        sub.view = view;
                        sub.cursor = upto;
                        mark.cursor.store(upto, Ordering::Relaxed);
                    }
                    Err(mpsc::error::TrySendError::Full(())) => {
                        waiting = Some((frames, view, upto));
                        break;
                    }
                    Err(mpsc::error::TrySendError::Closed(())) => {
                        st.catching.remove(&id);
                        return;
                    }
                }
            }
            let Some((frames, view, upto)) = waiting else {
                st.catching.remove(&id);
                st.subs.insert(id, sub);
                drop(st);
                feed.wake.notify_one();
                return;
            };
            drop(st);
            // No room: these frames go out at the socket's pace, outside the lock.
            for f in frames {
                if !self.queue(&sub.out, f, &mut stop).await {
                    return self.forget(&feed, id).await;
                }
            }
            sub.view = view;
            sub.cursor = upto;
            mark.cursor.store(upto, Ordering::Relaxed);
        }
    }

    /// One read of the log after `sub`'s cursor (up to `upto`), judged for its view and
    /// queued at the socket's pace.
    async fn read_on(
        &self,
        event: &str,
        sub: &mut Sub,
        mark: &Catching,
        stop: &mut watch::Receiver<bool>,
        upto: i64,
    ) -> Ahead {
        // Only the pages of kinds this view receives: a phone back after 400,000 scans it
        // never sees reads none of them.
        let kinds = engine::feed::kinds_seen(&sub.view.standing);
        let limit = self.limits.changes_per_frame_max;
        let read = match self.engine.changes_for(event, sub.cursor, limit, &kinds).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(event, error = ?e, "reading the change log for a catch-up failed");
                tokio::time::sleep(ROOM_WAIT).await;
                return Ahead::Moved;
            }
        };
        if read.first.is_some_and(|f| f > sub.cursor + 1) {
            trimmed(&sub.out, event, sub.cursor);
            return Ahead::Gone;
        }
        let last = read.through.min(upto);
        if last <= sub.cursor {
            return Ahead::AtHead;
        }
        let batch: Vec<Change> = read.changes.into_iter().filter(|c| c.seq <= last).collect();
        let frames = self.judge(event, &mut sub.view, sub.cursor, &batch).await;
        for f in frames {
            if !self.queue(&sub.out, f, stop).await {
                return Ahead::Gone;
            }
        }
        sub.cursor = last;
        mark.cursor.store(last, Ordering::Relaxed);
        Ahead::Moved
    }

    /// Queues a frame when there is room; false when the session left the event or ended.
    async fn queue(&self, out: &SessionQueue, f: Utf8Bytes, stop: &mut watch::Receiver<bool>) -> bool {
        if *stop.borrow() {
            return false;
        }
        tokio::select! {
            biased;
            _ = stop.changed() => false,
            sent = out.tx.send(Out::Frame(f)) => sent.is_ok(),
        }
    }

    /// Forgets a catching session that ended.
    async fn forget(&self, feed: &EventFeed, id: u64) {
        feed.state.lock().await.catching.remove(&id);
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
        if let Some(c) = st.catching.remove(&session) {
            let _ = c.gone.send(true);
            return Some(c.cursor.load(Ordering::Relaxed));
        }
        st.subs.remove(&session).map(|s| s.cursor)
    }

    pub(super) async fn cursors(&self, events: &[String], session: u64) -> HashMap<String, i64> {
        let mut out = HashMap::new();
        for e in events {
            let feed = self.feeds.lock().ok().and_then(|f| f.get(e).cloned());
            if let Some(feed) = feed {
                let st = feed.state.lock().await;
                let cursor = match (st.subs.get(&session), st.catching.get(&session)) {
                    (Some(s), _) => Some(s.cursor),
                    (None, Some(c)) => Some(c.cursor.load(Ordering::Relaxed)),
                    _ => None,
                };
                out.extend(cursor.map(|c| (e.clone(), c)));
            }
        }
        out
    }
}

/// Logs a failure of the node's background work: a warning, unless the database cannot
/// be reached (the store says so once for the whole outage; the work is tried again).
fn background_failed(e: &engine::Error, what: &str) {
    if matches!(e, engine::Error::DatabaseUnavailable) {
        tracing::debug!(what, "the database cannot be reached");
    } else {
        tracing::warn!(error = ?e, "{what}");
    }
}

/// How a stretch of a catch-up ended.
enum Ahead {
    Moved,
    /// Nothing more in the log.
    AtHead,
    /// The session left the event or ended, or the log was trimmed past it.
    Gone,
}

/// Closes a session whose next entries were trimmed from the log: it must resync, never
/// skip them silently. Its resume cursor is below the floor.
fn trimmed(out: &SessionQueue, event: &str, cursor: i64) {
    let _ = out.kill.send(Some(Closing {
        code: close::SLOW_CONSUMER,
        after_queued: false,
        reason: serde_json::json!({ "resume": { event: cursor } }).to_string(),
    }));
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
