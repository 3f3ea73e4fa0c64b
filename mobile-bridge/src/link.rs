//! The device's connection to a sync server: one background task that keeps a replica
//! connected while the app runs — it connects, says hello, resumes every subscription from
//! its cursor, pushes the outbox (two pushes in flight), takes what arrives, pings at the
//! server's heartbeat, and after any loss reconnects with backoff. Nothing here decides
//! anything about data: that is the replica's ([`engine::device::Replica`]).

use std::{sync::Arc, time::Duration};

use engine::{
    device::Replica,
    protocol::{ClientMessage, Limits, ServerMessage, close},
};
use futures_util::{FutureExt, SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, pem::PemObject};
use tokio::sync::{Notify, watch};
use tokio_tungstenite::{
    Connector,
    tungstenite::{self, Message, protocol::CloseFrame},
};

/// First wait before reconnecting; doubles up to [`BACKOFF_MAX`] while attempts fail.
pub const BACKOFF_MIN: Duration = Duration::from_millis(250);
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long a connection may take to be opened, and then to be welcomed.
pub const WELCOME_TIMEOUT: Duration = Duration::from_secs(10);
/// Heartbeats without a word from the server before the connection is taken for dead.
const SILENT_BEATS_MAX: u32 = 3;
/// How long a welcomed connection must last for the next failure to start the backoff over
/// (a server that welcomes and then drops every connection is not retried in a tight loop).
const STABLE_AFTER: Duration = Duration::from_secs(10);
/// Frames that already arrived, taken together (a run of changes is one transaction).
const FRAMES_TOGETHER_MAX: usize = 64;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Which servers a link trusts on `wss://`: the public certificate authorities, and any a
/// deployment adds (a server on a site's own network, with its own authority).
#[derive(Clone, Debug, Default)]
pub struct Trust {
    extra: Vec<CertificateDer<'static>>,
}

impl Trust {
    /// Also trusts the certificate authorities in `pem` (one or more PEM certificates).
    /// Returns how many were added.
    pub fn add_pem(&mut self, pem: &str) -> Result<usize, String> {
        let bad = || "that is not a PEM certificate".to_string();
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(pem.as_bytes()).collect::<Result<_, _>>().map_err(|_| bad())?;
        if certs.is_empty() {
            return Err(bad());
        }
        let mut check = rustls::RootCertStore::empty();
        for c in &certs {
            check.add(c.clone()).map_err(|_| bad())?;
        }
        self.extra.extend(certs);
        Ok(check.len())
    }

    fn connector(&self) -> Result<Connector, String> {
        Ok(Connector::Rustls(Arc::new(self.client_config()?)))
    }

    /// The TLS settings of the socket and of file transfers alike.
    fn client_config(&self) -> Result<rustls::ClientConfig, String> {
        let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        for c in &self.extra {
            roots.add(c.clone()).map_err(|e| e.to_string())?;
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(config)
    }
}

/// A running link; stop it with [`Link::stop`] (dropping it stops it too).
pub struct Link {
    token: watch::Sender<String>,
    stop: watch::Sender<bool>,
    wake: Arc<Notify>,
    reconnect: Arc<Notify>,
    task: Option<tokio::task::JoinHandle<()>>,
    replica: Replica,
}

/// Why a session ended.
enum Ended {
    /// Connection lost or refused: try again after the backoff.
    Retry(String),
    /// The token is no good: wait for a new one.
    Token(String),
    /// The replica refused the connection (another account's changes are pending).
    Refused(String),
    Stopped,
}

impl std::fmt::Debug for Link {
    /// Never shows the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("device", &self.replica.device()).finish_non_exhaustive()
    }
}

impl Link {
    /// Starts keeping `replica` connected to the sync socket at `url`
    /// (`ws://host:port/v1/sync` or `wss://…`), signing in with `token`. Runs on the current
    /// Tokio runtime.
    pub fn start(replica: Replica, url: &str, token: &str) -> Link {
        Self::start_with(replica, url, token, Trust::default())
    }

    /// [`Link::start`], trusting `trust`'s certificate authorities on `wss://`.
    pub fn start_with(replica: Replica, url: &str, token: &str, trust: Trust) -> Link {
        let (token_tx, token_rx) = watch::channel(token.to_string());
        let (stop, stop_rx) = watch::channel(false);
        let wake = Arc::new(Notify::new());
        let reconnect = Arc::new(Notify::new());
        let task = tokio::spawn(run(
            replica.clone(),
            url.to_string(),
            trust,
            token_rx,
            stop_rx,
            wake.clone(),
            reconnect.clone(),
        ));
        Link { token: token_tx, stop, wake, reconnect, task: Some(task), replica }
    }

    /// Something is ready to send (a local write, a new subscription): send it now rather
    /// than at the next heartbeat.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// A fresh token (after the old one expired, or before it does); the next connection
    /// uses it, and a link waiting for one reconnects at once.
    pub fn set_token(&self, token: &str) {
        self.token.send_replace(token.to_string());
    }

    /// Drops the current connection and connects again at once (e.g. the network changed).
    pub fn reconnect(&self) {
        self.reconnect.notify_one();
    }

    /// Closes the connection and ends the task.
    pub async fn stop(mut self) {
        self.stop.send_replace(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    /// Like [`Link::stop`], but cuts the connection if closing it takes longer than `wait`
    /// (a dead network); the replica is told it is offline either way.
    pub async fn stop_within(mut self, wait: Duration) {
        self.stop.send_replace(true);
        if let Some(mut t) = self.task.take()
            && tokio::time::timeout(wait, &mut t).await.is_err()
        {
            t.abort();
            let _ = t.await;
            self.replica.disconnected(None).await;
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

async fn run(
    replica: Replica,
    url: String,
    trust: Trust,
    mut token: watch::Receiver<String>,
    mut stop: watch::Receiver<bool>,
    wake: Arc<Notify>,
    reconnect: Arc<Notify>,
) {
    let connector = match trust.connector() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "no TLS configuration");
            replica.disconnected(Some("this device cannot set up secure connections".into())).await;
            return;
        }
    };
    // File transfers go over HTTP to the same server, on the same TLS settings.
    let http = trust.client_config().ok().and_then(|tls| crate::transfer::Http::new(&url, tls));
    let mut backoff = BACKOFF_MIN;
    loop {
        if *stop.borrow() {
            break;
        }
        let current = token.borrow_and_update().clone();
        let connecting = tokio::time::timeout(
            WELCOME_TIMEOUT,
            tokio_tungstenite::connect_async_tls_with_config(url.as_str(), None, false, Some(connector.clone())),
        );
        let ended = match tokio::select! {
            biased;
            _ = stop.changed() => None,
            _ = reconnect.notified() => Some(Err("reconnecting".to_string())),
            c = connecting => Some(match c {
                Ok(Ok((ws, _))) => Ok(ws),
                Ok(Err(e)) => Err(format!("cannot reach the server: {e}")),
                Err(_) => Err("cannot reach the server: no answer".to_string()),
            }),
        } {
            None => Ended::Stopped,
            Some(Err(why)) => Ended::Retry(why),
            Some(Ok(ws)) => {
                let started = tokio::time::Instant::now();
                // Transfers run while the connection lasts (dropping the guard ends them).
                let _transfers = http.clone().map(|http| {
                    Abort(tokio::spawn(crate::transfer::run(replica.clone(), http, current.clone(), wake.clone())))
                });
                let ended = session(&replica, ws, &current, &mut stop, &wake, &reconnect).await;
                if matches!(ended, Ended::Retry(_)) && started.elapsed() >= STABLE_AFTER {
                    // It was connected for a while: the next failure starts the backoff over.
                    backoff = BACKOFF_MIN;
                }
                ended
            }
        };
        match ended {
            Ended::Stopped => break,
            Ended::Retry(why) => {
                replica.disconnected(Some(why)).await;
                let wait = backoff + jitter(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
                tokio::select! {
                    _ = stop.changed() => break,
                    _ = reconnect.notified() => backoff = BACKOFF_MIN,
                    () = tokio::time::sleep(wait) => {}
                }
            }
            Ended::Token(why) | Ended::Refused(why) => {
                replica.disconnected(Some(why)).await;
                tokio::select! {
                    _ = stop.changed() => break,
                    _ = token.changed() => backoff = BACKOFF_MIN,
                }
            }
        }
    }
    replica.disconnected(None).await;
}

/// Aborts its task when dropped.
struct Abort(tokio::task::JoinHandle<()>);

impl Drop for Abort {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Up to a quarter of `d`, so that many devices cut off together do not return together.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(rand::random::<f64>() / 4.0)
}

async fn send(ws: &mut Ws, m: &ClientMessage) -> Result<(), String> {
    let text = serde_json::to_string(m).map_err(|e| e.to_string())?;
    ws.send(Message::Text(text.into())).await.map_err(|e| format!("connection lost: {e}"))
}

/// Sends `ms` in order, stopping at the first that cannot be sent.
async fn send_all(ws: &mut Ws, ms: Vec<ClientMessage>) -> Result<(), String> {
    for m in ms {
        send(ws, &m).await?;
    }
    Ok(())
}

/// Why the server closed, as the link acts on it.
fn closed(frame: Option<CloseFrame>) -> Ended {
    let (code, reason) = frame.map(|f| (u16::from(f.code), f.reason.to_string())).unwrap_or((1005, String::new()));
    match code {
        close::TOKEN_EXPIRED => Ended::Token("the sign-in expired; sign in again".into()),
        close::TOKEN_INVALID => Ended::Token("the sign-in is not valid; sign in again".into()),
        close::TRY_AGAIN_LATER => {
            Ended::Retry("the server cannot store changes now; they stay on this device and are sent later".into())
        }
        close::UNSUPPORTED_VERSION => {
            Ended::Refused(format!("this app and the server speak different protocol versions: {reason}"))
        }
        _ => Ended::Retry(format!("the server closed the connection ({code})")),
    }
}

/// One connection, from hello to its end.
async fn session(
    replica: &Replica,
    mut ws: Ws,
    token: &str,
    stop: &mut watch::Receiver<bool>,
    wake: &Notify,
    reconnect: &Notify,
) -> Ended {
    let welcome = match hello(replica, &mut ws, token).await {
        Ok(welcome) => welcome,
        Err(ended) => return ended,
    };
    let limits = match resume(replica, &mut ws, welcome).await {
        Ok(limits) => limits,
        Err(ended) => return ended,
    };
    serve(replica, &mut ws, &limits, stop, wake, reconnect).await
}

/// Says hello with `token` and waits (a bounded time) for the server's welcome.
async fn hello(replica: &Replica, ws: &mut Ws, token: &str) -> Result<ServerMessage, Ended> {
    send(ws, &replica.hello(token)).await.map_err(Ended::Retry)?;
    let welcome = match tokio::time::timeout(WELCOME_TIMEOUT, ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str::<ServerMessage>(&t).ok(),
        Ok(Some(Ok(Message::Close(f)))) => return Err(closed(f)),
        _ => None,
    };
    let Some(welcome @ ServerMessage::Welcome { .. }) = welcome else {
        return Err(Ended::Retry("the server did not welcome the connection".into()));
    };
    Ok(welcome)
}

/// Hands the welcome to the replica (which may refuse the connection) and resumes every
/// subscription from its cursor. Returns the server's limits.
async fn resume(replica: &Replica, ws: &mut Ws, welcome: ServerMessage) -> Result<Limits, Ended> {
    let limits = match &welcome {
        ServerMessage::Welcome { limits, .. } => limits.clone(),
        _ => Limits::default(),
    };
    let subscribes = replica.handle(welcome).await.map_err(|e| Ended::Refused(e.to_string()))?;
    send_all(ws, subscribes).await.map_err(Ended::Retry)?;
    Ok(limits)
}

/// The welcomed connection until it ends: pushes the outbox, then waits for the first of a
/// stop, a reconnect, new local work, a heartbeat or frames from the server.
async fn serve(
    replica: &Replica,
    ws: &mut Ws,
    limits: &Limits,
    stop: &mut watch::Receiver<bool>,
    wake: &Notify,
    reconnect: &Notify,
) -> Ended {
    let heartbeat = Duration::from_millis(limits.heartbeat_ms.max(1000));
    let mut beat = tokio::time::interval(heartbeat);
    beat.tick().await;
    // Heartbeats since the server last said anything (it answers each ping).
    let mut silent_beats = 0;
    // Pushes stay well inside the frame the server accepts.
    let push_bytes = limits.frame_bytes_max / 2;
    loop {
        while let Some(p) = replica.next_push(limits.push_mutations_max, push_bytes).await {
            if let Err(e) = send(ws, &p).await {
                return Ended::Retry(e);
            }
        }
        let first = tokio::select! {
            biased;
            _ = stop.changed() => {
                let _ = ws.close(None).await;
                return Ended::Stopped;
            }
            _ = reconnect.notified() => {
                let _ = ws.close(None).await;
                return Ended::Retry("reconnecting".into());
            }
            _ = wake.notified() => {
                if let Err(e) = send_all(ws, replica.resubscribe().await).await {
                    return Ended::Retry(e);
                }
                continue;
            }
            _ = beat.tick() => {
                if let Err(ended) = beat_once(replica, ws, &mut silent_beats).await {
                    return ended;
                }
                continue;
            }
            m = ws.next() => {
                silent_beats = 0;
                m
            }
        };
        let frames = match gather(replica, ws, first).await {
            Ok(frames) => frames,
            Err(ended) => return ended,
        };
        if let Err(ended) = take(replica, ws, frames).await {
            return ended;
        }
    }
}

/// A heartbeat: a server silent for too many of them is taken for dead; otherwise refused
/// subscriptions are retried and the server is pinged.
async fn beat_once(replica: &Replica, ws: &mut Ws, silent_beats: &mut u32) -> Result<(), Ended> {
    *silent_beats += 1;
    if *silent_beats > SILENT_BEATS_MAX {
        let _ = ws.close(None).await;
        return Err(Ended::Retry("the server stopped answering".into()));
    }
    let mut out = replica.resubscribe().await;
    out.push(ClientMessage::Ping);
    send_all(ws, out).await.map_err(Ended::Retry)
}

/// `first` and the frames that already arrived after it, up to [`FRAMES_TOGETHER_MAX`]. A
/// close, an error or the end of the stream hands the replica what came before it and ends
/// the session.
async fn gather(
    replica: &Replica,
    ws: &mut Ws,
    first: Option<tungstenite::Result<Message>>,
) -> Result<Vec<ServerMessage>, Ended> {
    // What already arrived is taken together.
    let mut frames = Vec::new();
    let mut next = first;
    loop {
        match next {
            Some(Ok(Message::Text(t))) => match serde_json::from_str::<ServerMessage>(&t) {
                Ok(m) => frames.push(m),
                Err(e) => tracing::warn!(error = %e, "a frame from the server does not fit the protocol"),
            },
            Some(Ok(Message::Close(f))) => {
                let _ = replica.handle_all(frames).await;
                return Err(closed(f));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                let _ = replica.handle_all(frames).await;
                return Err(Ended::Retry(format!("connection lost: {e}")));
            }
            None => {
                let _ = replica.handle_all(frames).await;
                return Err(Ended::Retry("connection lost".into()));
            }
        }
        if frames.len() >= FRAMES_TOGETHER_MAX {
            break;
        }
        match ws.next().now_or_never() {
            Some(m) => next = m,
            None => break,
        }
    }
    Ok(frames)
}

/// Hands frames to the replica (a run of changes is one transaction) and sends its replies.
async fn take(replica: &Replica, ws: &mut Ws, frames: Vec<ServerMessage>) -> Result<(), Ended> {
    match replica.handle_all(frames).await {
        Ok(replies) => send_all(ws, replies).await.map_err(Ended::Retry),
        Err(e) => {
            tracing::error!(error = %e, "the replica could not take frames; reconnecting");
            let _ = ws.close(None).await;
            Err(Ended::Retry("the device could not store what the server sent".into()))
        }
    }
}
