//! The sync socket `/v1/sync`: permission-filtered, resumable change feeds.
//!
//! One [`Hub`] per server. Each subscribed event has one feed task that reads the event's
//! change log forward (woken by the engine's commit notices, with a short poll as the
//! fallback for commits made by other servers) and fans every batch out through an index:
//! event → view (seat holders, members of collaborator X, organization managers) →
//! sessions. A batch is judged and serialized once per distinct view; only a session whose
//! own access changes inside the batch (or that is not aligned with the feed) is handled
//! on its own. Each session has a bounded outgoing queue; a session that does not keep up
//! is closed with its resume cursors instead of growing memory.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    extract::{
        State, WebSocketUpgrade,
        ws::{CloseFrame, Message, Utf8Bytes, WebSocket},
    },
    response::Response,
};
use engine::{
    Engine, Error,
    changes::Change,
    feed::{Step, View, ViewKey},
    protocol::{ClientMessage, Limits, PROTOCOL_VERSION, Record, ServerMessage, WireChange, close},
};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{Mutex, Notify, mpsc, watch};
use tracing::Instrument;

use crate::{AppState, devices::Seen};

/// How often a feed looks at the log without being woken: the bound on how late a commit
/// made by another server reaches this server's clients.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How long a new connection may take to say `hello`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Read chunk of one socket (the default is 128 KiB).
const SOCKET_READ_BUFFER_BYTES: usize = 4 * 1024;
/// Bytes gathered before a socket write (each frame is flushed anyway).
const SOCKET_WRITE_BUFFER_BYTES: usize = 8 * 1024;
/// Queued frames a session writer sends in one socket write at most.
const WRITE_COALESCE_FRAMES_MAX: usize = 64;
/// How long a closing frame may take to leave before the connection is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A frame on its way to one client.
enum Out {
    Frame(Utf8Bytes),
}

/// Why a session must end, sent by whoever decides it.
#[derive(Clone, Debug)]
struct Closing {
    code: u16,
    reason: String,
}

/// A session's side of the fan-out: its queue and its kill switch.
#[derive(Clone)]
struct Outbox {
    session: u64,
    tx: mpsc::Sender<Out>,
    kill: watch::Sender<Option<Closing>>,
}

impl Outbox {
    /// Queues a frame without waiting. A full queue closes the session as a slow consumer.
    fn offer(&self, frame: Utf8Bytes, resume: &HashMap<String, i64>) -> bool {
        match self.tx.try_send(Out::Frame(frame)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                let reason = serde_json::json!({ "resume": resume }).to_string();
                let _ = self.kill.send(Some(Closing { code: close::SLOW_CONSUMER, reason }));
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

fn frame(msg: &ServerMessage) -> Utf8Bytes {
    Utf8Bytes::from(serde_json::to_string(msg).unwrap_or_default())
}

/// One session's subscription to one event.
struct Sub {
    view: View,
    cursor: i64,
    out: Outbox,
}

struct FeedState {
    /// The seq up to which this feed has fanned out.
    fanned: i64,
    subs: HashMap<u64, Sub>,
}

struct EventFeed {
    event: String,
    wake: Notify,
    state: Mutex<FeedState>,
}

/// The server's fan-out index.
pub struct Hub {
    engine: Engine,
    pub limits: Limits,
    feeds: std::sync::Mutex<HashMap<String, Arc<EventFeed>>>,
    next_session: AtomicU64,
    shutdown: watch::Receiver<bool>,
    /// Who follows each event from this server, and when each device last synced.
    pub devices: crate::devices::Devices,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("limits", &self.limits).finish()
    }
}

impl Hub {
    pub fn new(engine: Engine, limits: Limits, shutdown: watch::Receiver<bool>) -> Arc<Hub> {
        let hub = Arc::new(Hub {
            engine,
            limits,
            feeds: std::sync::Mutex::new(HashMap::new()),
            next_session: AtomicU64::new(1),
            shutdown,
            devices: Default::default(),
        });
        // Wake the feed of every event this process commits to.
        let weak = Arc::downgrade(&hub);
        let mut notices = hub.engine.commit_notices();
        tokio::spawn(async move {
            loop {
                let notice = notices.recv().await;
                let Some(hub) = weak.upgrade() else { return };
                let feeds = hub.feeds.lock().map(|f| f.clone()).unwrap_or_default();
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
        hub
    }

    fn feed(self: &Arc<Self>, event: &str, head: i64) -> Arc<EventFeed> {
        let mut feeds = self.feeds.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = feeds.get(event) {
            return f.clone();
        }
        let f = Arc::new(EventFeed {
            event: event.to_string(),
            wake: Notify::new(),
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
                () = tokio::time::sleep(POLL_INTERVAL) => {}
                _ = shutdown.changed() => return,
            }
            loop {
                let mut st = feed.state.lock().await;
                if st.subs.is_empty() {
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
                    Step::Widen { seq, before, after } => match self.engine.widened(event, &before, &after).await {
                        Ok(records) => wire.extend(records.into_iter().map(|r| WireChange::Upsert {
                            seq,
                            kind: r.kind,
                            id: r.id,
                            data: r.data,
                        })),
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
    async fn register(self: &Arc<Self>, event: &str, head: i64, mut sub: Sub) {
        let feed = self.feed(event, head);
        let mut st = feed.state.lock().await;
        if st.subs.is_empty() {
            // Nobody else follows this event: the feed starts where this subscriber is.
            st.fanned = sub.cursor;
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
    async fn device_seen(&self, event: &str, account: &str, device: &str, what: Seen, cursor: Option<i64>) {
        let Some(p) = self.devices.seen(event, account, device, what, cursor) else { return };
        if let Err(e) = self.engine.device_synced(event, account, device, p.cursor, &p.at, p.live).await {
            tracing::warn!(error = ?e, event, device, "recording a device's sync failed");
        }
    }

    async fn unregister(&self, event: &str, session: u64) -> Option<i64> {
        let feed = self.feeds.lock().ok()?.get(event).cloned()?;
        let mut st = feed.state.lock().await;
        st.subs.remove(&session).map(|s| s.cursor)
    }

    async fn cursors(&self, events: &[String], session: u64) -> HashMap<String, i64> {
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
fn sized_chunks<T: serde::Serialize>(items: &[T], max_items: usize, target_bytes: usize) -> Vec<&[T]> {
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

pub async fn handler(ws: WebSocketUpgrade, State(st): State<AppState>) -> Response {
    let limit = st.hub.limits.frame_bytes_max;
    // Small socket buffers: most connections are idle most of the time, and memory per
    // connection is what limits how many devices one server follows.
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .read_buffer_size(SOCKET_READ_BUFFER_BYTES)
        .write_buffer_size(SOCKET_WRITE_BUFFER_BYTES)
        .on_upgrade(move |socket| session(socket, st))
}

/// Closes a socket that has not started a session.
async fn refuse(mut socket: WebSocket, code: u16, reason: &str) {
    let msg = Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from(reason) }));
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.send(msg)).await;
}

async fn session(mut socket: WebSocket, st: AppState) {
    // hello
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, socket.recv()).await {
        Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str::<ClientMessage>(&t).ok(),
        _ => None,
    };
    let Some(ClientMessage::Hello { protocol, token, device }) = hello else {
        return refuse(socket, close::BAD_HELLO, "the first frame must be a hello message").await;
    };
    if protocol != PROTOCOL_VERSION {
        let reason = format!("protocol {protocol} is not supported; this server speaks {PROTOCOL_VERSION}");
        return refuse(socket, close::UNSUPPORTED_VERSION, &reason).await;
    }
    if !engine::hlc::valid_node(&device) {
        let reason = "device must be 1 to 64 characters of A-Z a-z 0-9 _ . : -";
        return refuse(socket, close::BAD_HELLO, reason).await;
    }
    let (account, exp) = match st.tokens.verify(&st, &token).await {
        Ok(v) => v,
        Err(e) if e.code == "token_expired" => {
            return refuse(socket, close::TOKEN_EXPIRED, "the token has expired").await;
        }
        Err(_) => return refuse(socket, close::TOKEN_INVALID, "the token is not valid").await,
    };
    let hub = st.hub.clone();
    let session = hub.next_session.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!("sync", session, account = %account, device = %device);
    live(socket, hub, account, device, exp, session).instrument(span).await;
}

/// A session after its hello: serves subscriptions until the client leaves, the token
/// expires, the server shuts down, or the client falls behind.
async fn live(socket: WebSocket, hub: Arc<Hub>, account: String, device: String, exp: u64, session: u64) {
    tracing::info!("session started");

    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Out>(hub.limits.queue_frames_max);
    let (kill, mut killed) = watch::channel::<Option<Closing>>(None);
    let out = Outbox { session, tx, kill: kill.clone() };

    // The writer owns the socket's sending half; a kill sends the close frame and stops it.
    let writer = tokio::spawn(async move {
        loop {
            tokio::select! {
                biased;
                _ = killed.changed() => {
                    let closing = killed.borrow().clone();
                    if let Some(c) = closing {
                        let msg = Message::Close(Some(CloseFrame { code: c.code, reason: Utf8Bytes::from(c.reason) }));
                        let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(msg)).await;
                    }
                    return;
                }
                next = rx.recv() => match next {
                    Some(Out::Frame(f)) => {
                        // Frames already queued leave together: one socket write, not one each.
                        let mut ok = sink.feed(Message::Text(f)).await.is_ok();
                        let mut more = 0;
                        while ok && more < WRITE_COALESCE_FRAMES_MAX {
                            let Ok(Out::Frame(f)) = rx.try_recv() else { break };
                            ok = sink.feed(Message::Text(f)).await.is_ok();
                            more += 1;
                        }
                        if !ok || sink.flush().await.is_err() {
                            return;
                        }
                    }
                    None => return,
                },
            }
        }
    });

    let welcome = ServerMessage::Welcome {
        protocol: PROTOCOL_VERSION,
        session: session.to_string(),
        account: account.clone(),
        limits: hub.limits.clone(),
    };
    let _ = out.tx.send(Out::Frame(frame(&welcome))).await;

    let mut events: Vec<String> = Vec::new();
    let mut shutdown = hub.shutdown.clone();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let expires = tokio::time::Instant::now() + Duration::from_secs(exp.saturating_sub(now));
    let idle_max = Duration::from_millis(hub.limits.heartbeat_ms.saturating_mul(3));
    let mut kill_rx = kill.subscribe();
    let closing = loop {
        let frame_in = tokio::select! {
            biased;
            _ = shutdown.changed() => break Some(Closing { code: close::GOING_AWAY, reason: "the server is shutting down".into() }),
            _ = kill_rx.changed() => break None,
            () = tokio::time::sleep_until(expires) => {
                break Some(Closing { code: close::TOKEN_EXPIRED, reason: "the token has expired".into() })
            }
            r = tokio::time::timeout(idle_max, stream.next()) => match r {
                Err(_) => break Some(Closing { code: close::IDLE, reason: "no frame within three heartbeats".into() }),
                Ok(None) => break None,
                Ok(Some(Err(e))) => {
                    let e = e.to_string();
                    if e.contains("too long") || e.contains("Space limit") {
                        break Some(Closing { code: close::FRAME_TOO_LARGE, reason: "the frame is larger than the server accepts".into() });
                    }
                    break None;
                }
                Ok(Some(Ok(m))) => m,
            },
        };
        let text = match frame_in {
            Message::Text(t) => t,
            Message::Close(_) => break None,
            Message::Ping(_) | Message::Pong(_) => continue,
            Message::Binary(_) => {
                reply(&out, "unsupported_frame", "frames are JSON text").await;
                continue;
            }
        };
        let msg = match serde_json::from_str::<ClientMessage>(&text) {
            Ok(m) => m,
            Err(e) => {
                let code = if serde_json::from_str::<serde_json::Value>(&text).is_err() {
                    "malformed_json"
                } else {
                    "invalid_message"
                };
                reply(&out, code, &format!("the message does not fit the protocol: {}", first_line(&e.to_string())))
                    .await;
                continue;
            }
        };
        match msg {
            ClientMessage::Hello { .. } => reply(&out, "already_hello", "hello is sent once per connection").await,
            ClientMessage::Ping => {
                let cursors: HashMap<String, i64> = hub.cursors(&events, session).await;
                for (e, c) in &cursors {
                    hub.device_seen(e, &account, &device, Seen::Heard, Some(*c)).await;
                }
                let cursors = cursors.into_iter().collect();
                let _ = out.tx.send(Out::Frame(frame(&ServerMessage::Pong { cursors }))).await;
            }
            ClientMessage::Unsubscribe { event } => {
                if events.contains(&event) {
                    let cursor = hub.unregister(&event, session).await;
                    hub.device_seen(&event, &account, &device, Seen::Left, cursor).await;
                    events.retain(|e| e != &event);
                }
            }
            // A push needs no subscription: every mutation is judged by the rules, and a device
            // that lost an event still learns the fate of what it pushed before.
            ClientMessage::Push { event, mutations } => {
                if mutations.len() > hub.limits.push_mutations_max {
                    reply(
                        &out,
                        "batch_too_large",
                        &format!("a push carries at most {} mutations", hub.limits.push_mutations_max),
                    )
                    .await;
                } else {
                    if events.contains(&event) {
                        hub.device_seen(&event, &account, &device, Seen::Heard, None).await;
                    }
                    let results = hub.engine.apply_mutations(&account, &event, &device, &mutations).await;
                    let _ = out.tx.send(Out::Frame(frame(&ServerMessage::Ack { event, results }))).await;
                }
            }
            ClientMessage::Subscribe { event, cursor } => {
                if events.contains(&event) {
                    refused(&out, &event, "already_subscribed", "this connection already follows that event").await;
                } else if events.len() >= hub.limits.subscriptions_max {
                    refused(&out, &event, "too_many_subscriptions", "this connection follows as many events as it may")
                        .await;
                } else if subscribe(&hub, &out, &account, &event, cursor).await {
                    let at = hub.cursors(std::slice::from_ref(&event), session).await.get(&event).copied();
                    hub.device_seen(&event, &account, &device, Seen::Joined, at).await;
                    events.push(event);
                }
            }
        }
    };
    let cursors = hub.cursors(&events, session).await;
    for e in &events {
        hub.unregister(e, session).await;
        hub.device_seen(e, &account, &device, Seen::Left, cursors.get(e).copied()).await;
    }
    // A close decided elsewhere (slow consumer) stands; otherwise say why the session ends.
    if kill.borrow().is_none() {
        let c = match closing {
            Some(mut c) => {
                if c.code == close::TOKEN_EXPIRED || c.code == close::GOING_AWAY {
                    c.reason = serde_json::json!({ "message": c.reason, "resume": cursors }).to_string();
                }
                c
            }
            None => Closing { code: 1000, reason: String::new() },
        };
        let _ = kill.send(Some(c));
    }
    let _ = writer.await;
    tracing::info!("session ended");
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(200).collect()
}

async fn reply(out: &Outbox, code: &str, message: &str) {
    let _ = out.tx.send(Out::Frame(frame(&ServerMessage::Error { code: code.into(), message: message.into() }))).await;
}

async fn refused(out: &Outbox, event: &str, code: &str, message: &str) {
    let msg = ServerMessage::Refused { event: event.into(), code: code.into(), message: message.into() };
    let _ = out.tx.send(Out::Frame(frame(&msg))).await;
}

/// Starts following `event`: a snapshot (no cursor, or a cursor the server cannot resume)
/// or a catch-up from the cursor, then live changes. Returns whether it is subscribed.
async fn subscribe(hub: &Arc<Hub>, out: &Outbox, account: &str, event: &str, cursor: Option<i64>) -> bool {
    let (mut view, head) = match hub.engine.view(account, event).await {
        Ok(v) => v,
        Err(Error::NotFound { .. }) => {
            refused(out, event, "not_found", "event not found").await;
            return false;
        }
        Err(e) => {
            tracing::error!(event, error = ?e, "subscribe failed");
            refused(out, event, "internal", "the subscription could not start; try again").await;
            return false;
        }
    };
    let floor = hub.engine.log_floor(event).await.unwrap_or(i64::MAX);
    let resumable = match cursor {
        Some(c) if c < floor => {
            let msg = ServerMessage::Resync { event: event.into(), reason: "cursor_expired".into() };
            let _ = out.tx.send(Out::Frame(frame(&msg))).await;
            None
        }
        Some(c) if c >= 0 && c <= head => match hub.engine.changes_about(event, c, account).await {
            Ok(about) => {
                view.rewind(&about);
                Some(c)
            }
            Err(_) => None,
        },
        Some(_) => {
            let msg = ServerMessage::Resync { event: event.into(), reason: "cursor_unknown".into() };
            let _ = out.tx.send(Out::Frame(frame(&msg))).await;
            None
        }
        None => None,
    };
    let (view, start, head) = match resumable {
        Some(c) => (view, c, head),
        None => {
            let snap = match hub.engine.snapshot(account, event).await {
                Ok(s) => s,
                Err(_) => {
                    refused(out, event, "not_found", "event not found").await;
                    return false;
                }
            };
            let chunks: Vec<&[Record]> = if snap.records.is_empty() {
                vec![&[]]
            } else {
                sized_chunks(&snap.records, hub.limits.snapshot_chunk_records_max, hub.limits.frame_out_bytes_target)
            };
            let n = chunks.len();
            for (i, chunk) in chunks.into_iter().enumerate() {
                let msg = ServerMessage::Snapshot {
                    event: event.into(),
                    cursor: snap.cursor,
                    records: chunk.to_vec(),
                    last: i + 1 == n,
                };
                if out.tx.send(Out::Frame(frame(&msg))).await.is_err() {
                    return false;
                }
            }
            (snap.view, snap.cursor, snap.cursor)
        }
    };
    hub.register(event, head, Sub { view, cursor: start, out: out.clone() }).await;
    true
}
