//! The sync socket `/v1/sync`: permission-filtered, resumable change feeds.
//!
//! A connection starts with `hello` (token verified, expiry timer). Its [`Session`] then
//! serves subscriptions (a snapshot in chunks, or a catch-up from a cursor), pushes and pings
//! until the client leaves, the token expires, the server shuts down or the client falls
//! behind. Delivering the change log to sessions is the [`Hub`]'s (`hub.rs`).

mod hub;
mod kept;
mod signins;
mod snapshots;

use std::{collections::HashMap, sync::Arc, sync::atomic::Ordering, time::Duration};

use axum::{
    extract::{
        State, WebSocketUpgrade,
        ws::{CloseFrame, Message, Utf8Bytes, WebSocket},
    },
    response::Response,
};
use engine::{
    Error,
    feed::Resume,
    protocol::{ClientMessage, ErrorCode, PROTOCOL_OLDEST, PROTOCOL_VERSION, RefusalCode, ServerMessage, close},
};
use futures_util::{
    SinkExt, StreamExt,
    stream::{SplitSink, SplitStream},
};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

pub use hub::Hub;
use hub::{Closing, Out, SessionQueue, Sub, frame};

use crate::{AppState, auth::TokenError, devices::Seen};

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
/// Frames a closing session reads (and drops) at most while it waits for the client's close.
const CLOSE_DRAIN_FRAMES: usize = 256;
/// The longest a subscribe waits for the account's subscription allowance before it is
/// refused with `rate_limited`.
const SUBSCRIBE_WAIT_MAX: Duration = Duration::from_secs(2);

pub async fn handler(
    ws: WebSocketUpgrade,
    State(st): State<AppState>,
    held: Option<axum::Extension<crate::listen::Held>>,
) -> Response {
    let limit = st.hub.limits.frame_bytes_max;
    // Small socket buffers: most connections are idle most of the time, and memory per
    // connection is what limits how many devices one server follows.
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .read_buffer_size(SOCKET_READ_BUFFER_BYTES)
        .write_buffer_size(SOCKET_WRITE_BUFFER_BYTES)
        .on_upgrade(move |socket| async move {
            // The socket counts against the node's connections while it is open.
            let _held = held;
            connection(socket, st).await
        })
}

/// Closes a socket that has not started a session.
async fn refuse(mut socket: WebSocket, code: u16, reason: &str) {
    let msg = Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from(reason) }));
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.send(msg)).await;
}

/// A new connection: its `hello`, then its session.
async fn connection(mut socket: WebSocket, st: AppState) {
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, socket.recv()).await {
        Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str::<ClientMessage>(&t).ok(),
        _ => None,
    };
    let Some(ClientMessage::Hello { protocol, token, device }) = hello else {
        return refuse(socket, close::BAD_HELLO, "the first frame must be a hello message").await;
    };
    if !(PROTOCOL_OLDEST..=PROTOCOL_VERSION).contains(&protocol) {
        let reason =
            format!("protocol {protocol} is not supported; this server speaks {PROTOCOL_OLDEST} to {PROTOCOL_VERSION}");
        return refuse(socket, close::UNSUPPORTED_VERSION, &reason).await;
    }
    if !engine::hlc::valid_node(&device) {
        let reason = "device must be 1 to 64 characters of A-Z a-z 0-9 _ . : -";
        return refuse(socket, close::BAD_HELLO, reason).await;
    }
    let verified = match st.tokens.verify(&st, &token).await {
        Ok(v) => v,
        Err(TokenError::Expired) => return refuse(socket, close::TOKEN_EXPIRED, "the token has expired").await,
        Err(TokenError::Ended) => return refuse(socket, close::SIGN_IN_ENDED, "this sign-in has ended").await,
        Err(_) => return refuse(socket, close::TOKEN_INVALID, "the token is not valid").await,
    };
    let (account, exp, sign_in) = (verified.account, verified.exp, verified.sign_in);
    if let Some(sid) = &sign_in
        && let Err(e) = st.engine.sign_in_device(sid, &device).await
    {
        tracing::warn!(error = ?e, "noting a sign-in's device failed");
    }
    let hub = st.hub.clone();
    let id = hub.next_session.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!("sync", session = id, account = %account, device = %device);
    async move {
        tracing::info!("session started");
        let (sink, mut stream) = socket.split();
        let (tx, rx) = mpsc::channel::<Out>(hub.limits.queue_frames_max);
        let (kill, killed) = watch::channel::<Option<Closing>>(None);
        let writer = tokio::spawn(write_frames(sink, rx, killed, kill.clone(), silence_max(&hub.limits)));
        // Ending the sign-in closes this connection (on whichever node it ends).
        let signed_in = sign_in.as_ref().map(|sid| hub.sign_in_opened(sid, id, kill.clone()));
        let mut session = Session {
            out: SessionQueue { session: id, tx, kill },
            hub,
            tokens: st.clone(),
            account,
            sign_in,
            device,
            protocol,
            events: Vec::new(),
            deferred: HashMap::new(),
        };
        session.send(&session.welcome()).await;
        let ended = session.serve(&mut stream, exp).await;
        session.end(ended).await;
        drop(signed_in);
        // The closing handshake: what the client still sends is read and dropped until its
        // close arrives (at most CLOSE_TIMEOUT and CLOSE_DRAIN_FRAMES: a flooding client gets
        // no more of the server's time), so that unread bytes do not make the connection end
        // in a reset that loses the close frame and its code.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            let mut left = CLOSE_DRAIN_FRAMES;
            while let Some(Ok(m)) = stream.next().await {
                left -= 1;
                if matches!(m, Message::Close(_)) || left == 0 {
                    break;
                }
            }
        })
        .await;
        let _ = writer.await;
        tracing::info!("session ended");
    }
    .instrument(span)
    .await;
}

/// How long either side of a session may go without the other hearing from it: three
/// heartbeats. A client that sends nothing for this long is idle (4009); a socket that takes
/// none of the server's bytes for this long is a slow consumer's (4008).
fn silence_max(limits: &engine::protocol::Limits) -> Duration {
    Duration::from_millis(limits.heartbeat_ms.saturating_mul(3))
}

/// The session's writer: owns the socket's sending half and sends what is queued, several
/// frames per socket write; a kill sends the close frame and stops it.
///
/// A socket that takes nothing for `stall_max` (the client stopped reading, and the kernel's
/// buffers on both sides are full) ends the session as a slow consumer, whether or not its
/// queue has filled: otherwise the writer would wait on it, and hold the connection, for as
/// long as the client keeps it open. A kill that comes while a write is blocked is heard at
/// once too.
async fn write_frames(
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Out>,
    mut killed: watch::Receiver<Option<Closing>>,
    kill: watch::Sender<Option<Closing>>,
    stall_max: Duration,
) {
    loop {
        let first = tokio::select! {
            biased;
            _ = killed.changed() => break,
            next = rx.recv() => match next {
                Some(Out::Frame(f)) => f,
                None => return,
            },
        };
        let written = tokio::select! {
            biased;
            _ = killed.changed() => break,
            w = write_queued(&mut sink, &mut rx, first, stall_max) => w,
        };
        match written {
            Written::Sent => {}
            Written::Failed => return,
            Written::Stalled => {
                let reason = serde_json::json!({
                    "message": format!("the client read nothing for {} ms", stall_max.as_millis()),
                    "resume": {},
                });
                let closing = Closing { code: close::SLOW_CONSUMER, reason: reason.to_string(), after_queued: false };
                // The session hears it and ends; the close frame is tried, but a client that
                // does not read rarely gets it.
                let _ = kill.send(Some(closing));
                break;
            }
        }
    }
    let closing = killed.borrow().clone();
    if let Some(c) = closing {
        let msg = Message::Close(Some(CloseFrame { code: c.code, reason: Utf8Bytes::from(c.reason) }));
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            if c.after_queued {
                while let Ok(Out::Frame(f)) = rx.try_recv() {
                    sink.feed(Message::Text(f)).await?;
                }
            }
            sink.send(msg).await
        })
        .await;
    }
}

/// How a socket write ended.
enum Written {
    Sent,
    /// The connection is gone.
    Failed,
    /// One step of it took no bytes for the whole allowance.
    Stalled,
}

/// Sends `first` and what else is queued (frames already queued leave together: one socket
/// write, not one each), each step within `stall_max`.
async fn write_queued(
    sink: &mut SplitSink<WebSocket, Message>,
    rx: &mut mpsc::Receiver<Out>,
    first: Utf8Bytes,
    stall_max: Duration,
) -> Written {
    let step = |r: Result<Result<(), axum::Error>, tokio::time::error::Elapsed>| match r {
        Ok(Ok(())) => None,
        Ok(Err(_)) => Some(Written::Failed),
        Err(_) => Some(Written::Stalled),
    };
    if let Some(w) = step(tokio::time::timeout(stall_max, sink.feed(Message::Text(first))).await) {
        return w;
    }
    for _ in 0..WRITE_COALESCE_FRAMES_MAX {
        let Ok(Out::Frame(f)) = rx.try_recv() else { break };
        if let Some(w) = step(tokio::time::timeout(stall_max, sink.feed(Message::Text(f))).await) {
            return w;
        }
    }
    step(tokio::time::timeout(stall_max, sink.flush()).await).unwrap_or(Written::Sent)
}

/// Whether a socket read failed on a frame past the size limit (rather than a lost
/// connection): the one read error that is the client's to hear about.
fn too_large(e: &axum::Error) -> bool {
    use std::error::Error as _;
    matches!(e.source().and_then(|s| s.downcast_ref::<tungstenite::Error>()), Some(tungstenite::Error::Capacity(_)))
}

/// One connection after its hello.
struct Session {
    hub: Arc<Hub>,
    out: SessionQueue,
    /// The server's state, for verifying a renewed token.
    tokens: AppState,
    account: String,
    /// The sign-in of the token it was opened with (none: an identity provider's token).
    sign_in: Option<String>,
    device: String,
    /// The protocol version the client speaks (it said so in its hello).
    protocol: u32,
    /// The events it follows, in the order it subscribed.
    events: Vec<String>,
    /// Per event, the lowest counter `n` of a push deferred for the quotas: later pushes of
    /// the event are deferred too until it comes again, so no later mutation is applied
    /// before it (the device's mark would pass over it).
    deferred: HashMap<String, u64>,
}

impl Session {
    fn welcome(&self) -> ServerMessage {
        ServerMessage::Welcome {
            protocol: self.protocol,
            session: self.out.session.to_string(),
            account: self.account.clone(),
            limits: self.hub.limits.clone(),
        }
    }

    /// Queues a message, waiting for room (answers to the client's own frames: a client that
    /// does not read them stops being read).
    async fn send(&self, msg: &ServerMessage) {
        let _ = self.out.tx.send(Out::Frame(frame(msg))).await;
    }

    async fn error(&self, code: ErrorCode, message: &str) {
        self.send(&ServerMessage::Error { code, message: message.into() }).await;
    }

    async fn refused(&self, event: &str, code: RefusalCode, message: &str) {
        let msg = ServerMessage::Refused { event: event.into(), code, message: message.into(), retry_after_ms: None };
        self.send(&msg).await;
    }

    /// Reads and answers frames until the session must end; returns why (None: the client
    /// left, or a close was decided elsewhere).
    async fn serve(&mut self, stream: &mut SplitStream<WebSocket>, exp: u64) -> Option<Closing> {
        let mut shutdown = self.hub.shutdown.clone();
        let mut expires = expires_in(exp);
        let idle_max = silence_max(&self.hub.limits);
        let mut killed = self.out.kill.subscribe();
        let closing = |code, reason: &str| Some(Closing { code, reason: reason.into(), after_queued: false });
        // The client's message allowance: a token bucket of `messages_burst`, refilled at
        // `messages_per_minute`.
        let (burst, per_sec) = (
            f64::from(self.hub.limits.messages_burst.max(1)),
            f64::from(self.hub.limits.messages_per_minute.max(1)) / 60.0,
        );
        let (mut allowance, mut counted) = (burst, tokio::time::Instant::now());
        loop {
            let frame_in = tokio::select! {
                biased;
                _ = shutdown.changed() => return closing(close::GOING_AWAY, "the server is shutting down"),
                _ = killed.changed() => return None,
                () = tokio::time::sleep_until(expires) => return closing(close::TOKEN_EXPIRED, "the token has expired"),
                r = tokio::time::timeout(idle_max, stream.next()) => match r {
                    Err(_) => return closing(close::IDLE, "no frame within three heartbeats"),
                    Ok(None) => return None,
                    Ok(Some(Err(e))) if too_large(&e) => {
                        return closing(close::FRAME_TOO_LARGE, "the frame is larger than the server accepts");
                    }
                    Ok(Some(Err(_))) => return None,
                    Ok(Some(Ok(m))) => m,
                },
            };
            if matches!(frame_in, Message::Text(_) | Message::Binary(_)) {
                let now = tokio::time::Instant::now();
                allowance = (allowance + now.duration_since(counted).as_secs_f64() * per_sec).min(burst);
                counted = now;
                if allowance < 1.0 {
                    return closing(close::TOO_MANY_MESSAGES, "the client sends more messages than the server accepts");
                }
                allowance -= 1.0;
            }
            let text = match frame_in {
                Message::Text(t) => t,
                Message::Close(_) => return None,
                Message::Ping(_) | Message::Pong(_) => continue,
                Message::Binary(_) => {
                    self.error(ErrorCode::UnsupportedFrame, "frames are JSON text").await;
                    continue;
                }
            };
            match serde_json::from_str::<ClientMessage>(&text) {
                Ok(ClientMessage::Renew { token }) => match self.renew(&token).await {
                    Ok(exp) => {
                        expires = expires_in(exp);
                        self.send(&ServerMessage::Renewed { expires_at: exp }).await;
                    }
                    Err(c) => return Some(c),
                },
                Ok(msg) => self.answer(msg).await,
                Err(e) => {
                    let code = if serde_json::from_str::<serde_json::Value>(&text).is_err() {
                        ErrorCode::MalformedJson
                    } else {
                        ErrorCode::InvalidMessage
                    };
                    let message = format!("the message does not fit the protocol: {}", first_line(&e.to_string()));
                    self.error(code, &message).await;
                }
            }
        }
    }

    /// Takes a renewed token of the same sign-in: its expiry, or why the session ends.
    async fn renew(&self, token: &str) -> Result<u64, Closing> {
        let closing = |code, reason: &str| Closing { code, reason: reason.into(), after_queued: true };
        match self.tokens.tokens.verify(&self.tokens, token).await {
            Ok(v) if v.account == self.account && v.sign_in == self.sign_in => Ok(v.exp),
            Ok(_) => Err(closing(close::TOKEN_INVALID, "the renewed token is of another sign-in")),
            Err(TokenError::Ended) => Err(closing(close::SIGN_IN_ENDED, "this sign-in has ended")),
            Err(TokenError::Expired) => Err(closing(close::TOKEN_EXPIRED, "the renewed token has expired")),
            Err(_) => Err(closing(close::TOKEN_INVALID, "the renewed token is not valid")),
        }
    }

    /// Answers one message of the client's.
    async fn answer(&mut self, msg: ClientMessage) {
        match msg {
            ClientMessage::Hello { .. } => {
                self.error(ErrorCode::AlreadyHello, "hello is sent once per connection").await
            }
            ClientMessage::Ping => self.pong().await,
            ClientMessage::Renew { .. } => {}
            ClientMessage::Unsubscribe { event } => self.unsubscribe(event).await,
            ClientMessage::Push { event, mutations } => {
                if self.within_quotas(&event, &mutations).await {
                    self.push(event, mutations).await
                }
            }
            ClientMessage::Subscribe { event, cursor } => self.subscribe(event, cursor).await,
        }
    }

    async fn pong(&self) {
        let cursors = self.hub.cursors(&self.events, self.out.session).await;
        for (e, c) in &cursors {
            self.hub.device_seen(e, &self.account, &self.device, Seen::Heard, Some(*c)).await;
        }
        self.send(&ServerMessage::Pong { cursors: cursors.into_iter().collect() }).await;
    }

    async fn unsubscribe(&mut self, event: String) {
        if self.events.contains(&event) {
            let cursor = self.hub.unregister(&event, self.out.session).await;
            self.hub.device_seen(&event, &self.account, &self.device, Seen::Left, cursor).await;
            self.events.retain(|e| e != &event);
        }
    }

    /// Whether a push may be applied now under the quotas (see `crate::quotas`); if not, it
    /// is answered (`deferred`, protocol 3) or the connection closes (try again later).
    async fn within_quotas(&mut self, event: &str, mutations: &[engine::protocol::Mutation]) -> bool {
        let first = mutations.iter().filter_map(|m| m.n).min();
        let held_back = self.deferred.get(event).copied();
        let wait = match held_back {
            // A later push while an earlier one waits: it waits too.
            Some(lowest) if first.is_none_or(|n| n > lowest) => Some(Duration::from_secs(1)),
            _ => {
                let scope = match self.hub.engine.push_scope(&self.account, event).await {
                    Ok(Some(scope)) => scope,
                    // No standing: the engine refuses the push whole, at no cost.
                    Ok(None) => return true,
                    Err(e) => {
                        tracing::warn!(error = ?e, "reading a push's scope failed");
                        return true;
                    }
                };
                let bytes = serde_json::to_vec(mutations).map_or(0, |v| v.len());
                self.hub.quotas.spend(&self.account, &scope, mutations.len(), bytes).err()
            }
        };
        let Some(wait) = wait else {
            if held_back.is_some() {
                self.deferred.remove(event);
            }
            return true;
        };
        if self.protocol < 3 {
            let reason = format!(
                "quota_exceeded: this account pushed more than it may this minute; push again in {} s",
                wait.as_secs().max(1)
            );
            let closing = Closing { code: close::TRY_AGAIN_LATER, reason, after_queued: true };
            let _ = self.out.kill.send(Some(closing));
            return false;
        }
        if let Some(n) = first {
            let lowest = self.deferred.entry(event.to_string()).or_insert(n);
            *lowest = (*lowest).min(n);
        }
        let message = "more was pushed this minute than the server's quotas allow; push it again later";
        let results = mutations
            .iter()
            .map(|m| engine::protocol::MutationResult::Deferred {
                mutation: m.id.clone(),
                code: "quota_exceeded".into(),
                message: message.into(),
                retry_after_ms: wait.as_millis() as u64,
            })
            .collect();
        self.send(&ServerMessage::Ack { event: event.to_string(), results }).await;
        false
    }

    /// A push needs no subscription: every mutation is judged by the rules, and a device that
    /// lost an event still learns the fate of what it pushed before.
    async fn push(&self, event: String, mutations: Vec<engine::protocol::Mutation>) {
        let max = self.hub.limits.push_mutations_max;
        if mutations.len() > max {
            return self.error(ErrorCode::BatchTooLarge, &format!("a push carries at most {max} mutations")).await;
        }
        if self.events.contains(&event) {
            self.hub.device_seen(&event, &self.account, &self.device, Seen::Heard, None).await;
        }
        let pushed = self.hub.engine.apply_mutations(&self.account, &event, &self.device, &mutations).await;
        if pushed.failed.is_none() || !pushed.results.is_empty() {
            self.send(&ServerMessage::Ack { event, results: pushed.results }).await;
        }
        // The server's own failure is no answer: the connection closes after the answers it
        // has, and the device pushes the rest again after a pause.
        if let Some(e) = pushed.failed {
            let reason = match e {
                Error::Unavailable(_) => "storage_unavailable: the server's storage is full; push the rest again later",
                _ => "the server could not store the push; push the rest again later",
            };
            let closing = Closing { code: close::TRY_AGAIN_LATER, reason: reason.into(), after_queued: true };
            let _ = self.out.kill.send(Some(closing));
        }
    }

    async fn subscribe(&mut self, event: String, cursor: Option<i64>) {
        if self.events.contains(&event) {
            let message = "this connection already follows that event";
            return self.refused(&event, RefusalCode::AlreadySubscribed, message).await;
        }
        if self.events.len() >= self.hub.limits.subscriptions_max {
            let message = "this connection follows as many events as it may";
            return self.refused(&event, RefusalCode::TooManySubscriptions, message).await;
        }
        // Each subscription costs a snapshot or a catch-up: an account may start
        // `subscribes_burst` at once, then `subscribes_per_minute`. A short wait is waited
        // out; a longer one is refused with when to come back.
        let rate = crate::attempts::Rate {
            burst: self.hub.limits.subscribes_burst,
            per_minute: self.hub.limits.subscribes_per_minute,
        };
        if let Err(crate::attempts::TooMany(wait)) = self.hub.subscribes.spend(&self.account, rate, 1.0) {
            if wait > SUBSCRIBE_WAIT_MAX {
                let msg = ServerMessage::Refused {
                    event,
                    code: RefusalCode::RateLimited,
                    message: format!(
                        "this account started more subscriptions than the server allows a minute; subscribe again in {} s",
                        wait.as_secs().max(1)
                    ),
                    retry_after_ms: Some(wait.as_millis() as u64),
                };
                return self.send(&msg).await;
            }
            tokio::time::sleep(wait).await;
            if self.hub.subscribes.spend(&self.account, rate, 1.0).is_err() {
                let msg = ServerMessage::Refused {
                    event,
                    code: RefusalCode::RateLimited,
                    message: "this account started more subscriptions than the server allows a minute; subscribe again in a few seconds".into(),
                    retry_after_ms: Some(SUBSCRIBE_WAIT_MAX.as_millis() as u64),
                };
                return self.send(&msg).await;
            }
        }
        if self.follow(&event, cursor).await {
            self.events.push(event);
        }
    }

    /// Starts following `event`: a snapshot (no cursor, or a cursor the server cannot
    /// resume) or a catch-up from the cursor, then live changes. Returns whether it follows.
    async fn follow(&self, event: &str, cursor: Option<i64>) -> bool {
        let (hub, account) = (&self.hub, self.account.as_str());
        let (mut view, head) = match hub.engine.view(account, event).await {
            Ok(v) => v,
            Err(Error::NotFound { .. }) => {
                self.refused(event, RefusalCode::NotFound, "event not found").await;
                return false;
            }
            Err(e) => {
                tracing::error!(event, error = ?e, "subscribe failed");
                self.refused(event, RefusalCode::Internal, "the subscription could not start; try again").await;
                return false;
            }
        };
        // The device is recorded as following the event once its access is known, before
        // anything is sent: whoever looks at the event's devices sees it from its first frame.
        hub.device_seen(event, account, &self.device, Seen::Joined, Some(cursor.unwrap_or(head).clamp(0, head))).await;
        let left = || hub.device_seen(event, account, &self.device, Seen::Left, None);
        let floor = hub.engine.log_floor(event).await.unwrap_or(i64::MAX);
        let resync = |reason: &str| ServerMessage::Resync { event: event.into(), reason: reason.into() };
        let resumable = match cursor {
            Some(c) if c < floor => {
                self.send(&resync("cursor_expired")).await;
                None
            }
            // Replayed only if the person lost no access since the cursor (see
            // `engine::feed::resume`): what they could see in between is not theirs now.
            Some(c) if c >= 0 && c <= head => match hub.engine.changes_about(event, c, account).await {
                Ok(mut about) => {
                    about.retain(|x| x.seq <= head);
                    match engine::feed::resume(&view, &about) {
                        Resume::Replay(at_cursor) => {
                            view = at_cursor;
                            Some(c)
                        }
                        Resume::Narrowed => {
                            self.send(&resync("access_narrowed")).await;
                            None
                        }
                    }
                }
                Err(_) => None,
            },
            Some(_) => {
                self.send(&resync("cursor_unknown")).await;
                None
            }
            None => None,
        };
        let (view, start, head) = match resumable {
            Some(c) => (view, c, head),
            None => {
                // Read a few at a time on each node (a queue, not a refusal), and shared by
                // the sessions of one standing: 2,000 phones at call time are a few reads.
                let Ok(snap) = hub.snapshot(account, event, &view, head).await else {
                    left().await;
                    self.refused(event, RefusalCode::NotFound, "event not found").await;
                    return false;
                };
                for f in &snap.shared.frames {
                    if self.out.tx.send(Out::Frame(f.clone())).await.is_err() {
                        left().await;
                        return false;
                    }
                }
                // Live changes follow from the snapshot's cursor: a shared snapshot read
                // before this session's head is caught up from there.
                (snap.view, snap.cursor, snap.cursor)
            }
        };
        hub.register(event, head, Sub { view, cursor: start, out: self.out.clone() }).await;
        true
    }

    /// Leaves every event (noting the device's last cursors) and closes the socket, saying
    /// why unless a close was already decided elsewhere (a slow consumer's stands).
    async fn end(&self, ended: Option<Closing>) {
        let (hub, session) = (&self.hub, self.out.session);
        let cursors: HashMap<String, i64> = hub.cursors(&self.events, session).await;
        for e in &self.events {
            hub.unregister(e, session).await;
            hub.device_seen(e, &self.account, &self.device, Seen::Left, cursors.get(e).copied()).await;
        }
        if self.out.kill.borrow().is_some() {
            return;
        }
        let c = match ended {
            Some(mut c) => {
                if c.code == close::TOKEN_EXPIRED || c.code == close::GOING_AWAY {
                    c.reason = serde_json::json!({ "message": c.reason, "resume": cursors }).to_string();
                }
                c
            }
            None => Closing { code: 1000, reason: String::new(), after_queued: false },
        };
        let _ = self.out.kill.send(Some(c));
    }
}

/// The instant a token expiring at `exp` (Unix seconds) expires.
fn expires_in(exp: u64) -> tokio::time::Instant {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    tokio::time::Instant::now() + Duration::from_secs(exp.saturating_sub(now))
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(200).collect()
}
