//! The device's connection to a sync server: one background task that keeps a replica
//! connected while the app runs — it connects, says hello, resumes every subscription from
//! its cursor, pushes the outbox (two pushes in flight), takes what arrives, pings at the
//! server's heartbeat, and after any loss reconnects with backoff. With a refresh token it
//! keeps its sign-in alive by itself: it renews the access token before it expires (and
//! hands the connection the new one), and before connecting with one that expired while
//! the device was offline; each renewal is kept on the device at once. Nothing here decides
//! anything about data: that is the replica's ([`engine::device::Replica`]).

use std::{sync::Arc, time::Duration};

use engine::{
    device::{Replica, SignInTokens},
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
/// An access token is renewed when this much of its life is left (a quarter of it for
/// tokens shorter than four times this).
const RENEW_AHEAD: Duration = Duration::from_secs(120);
/// After a renewal that failed for the network, the next try.
const RENEW_RETRY: Duration = Duration::from_secs(5);

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
    tokens: Arc<watch::Sender<SignInTokens>>,
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
    /// The access token expired: renew it (with a refresh token) and connect again.
    Expired,
    /// The sign-in has ended (signed out elsewhere, ended by the event team, a password
    /// change): the kept tokens are forgotten and the link waits for a new sign-in.
    SignInOver,
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
        let tokens = SignInTokens { token: token.into(), refresh_token: None };
        Self::start_with(replica, url, tokens, Trust::default())
    }

    /// [`Link::start`] with `tokens` (a refresh token keeps the sign-in alive), trusting
    /// `trust`'s certificate authorities on `wss://`.
    pub fn start_with(replica: Replica, url: &str, tokens: SignInTokens, trust: Trust) -> Link {
        let token_tx = Arc::new(watch::Sender::new(tokens));
        let (stop, stop_rx) = watch::channel(false);
        let wake = Arc::new(Notify::new());
        let reconnect = Arc::new(Notify::new());
        let task = tokio::spawn(run(
            replica.clone(),
            url.to_string(),
            trust,
            token_tx.clone(),
            stop_rx,
            wake.clone(),
            reconnect.clone(),
        ));
        Link { tokens: token_tx, stop, wake, reconnect, task: Some(task), replica }
    }

    /// Something is ready to send (a local write, a new subscription): send it now rather
    /// than at the next heartbeat.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// A fresh token (after the old one expired, or before it does); the next connection
    /// uses it, and a link waiting for one reconnects at once.
    pub fn set_token(&self, token: &str) {
        self.set_tokens(SignInTokens { token: token.into(), refresh_token: None });
    }

    /// A new sign-in's tokens (see [`Link::set_token`]).
    pub fn set_tokens(&self, tokens: SignInTokens) {
        self.tokens.send_replace(tokens);
    }

    /// The access token the link signs in with now (renewed as it goes).
    pub fn tokens(&self) -> SignInTokens {
        self.tokens.borrow().clone()
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
    /// (a dead network); the replica is told it is offline either way. Returns the tokens
    /// as the link left them (it may have renewed them).
    pub async fn stop_within(mut self, wait: Duration) -> SignInTokens {
        self.stop.send_replace(true);
        if let Some(mut t) = self.task.take()
            && tokio::time::timeout(wait, &mut t).await.is_err()
        {
            t.abort();
            let _ = t.await;
            self.replica.disconnected(None).await;
        }
        self.tokens()
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
    keep: Arc<watch::Sender<SignInTokens>>,
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
    let mut token = keep.subscribe();
    let mut backoff = BACKOFF_MIN;
    loop {
        if *stop.borrow() {
            break;
        }
        let mut current = token.borrow_and_update().clone();
        // A token that expired while the device was offline (or soon will) is renewed
        // before connecting.
        if let (Some(http), Some(_)) = (&http, &current.refresh_token)
            && renew_due(&current.token) == Some(Duration::ZERO)
        {
            match renew(&replica, http, &keep, &current).await {
                Ok(renewed) => current = renewed,
                Err(Renewal::Ended) => {
                    ended_sign_in(&replica, &keep).await;
                    if wait_for_sign_in(&mut token, &mut stop).await {
                        break;
                    }
                    backoff = BACKOFF_MIN;
                    continue;
                }
                // Offline: the connection fails too, and is retried with the backoff; the
                // expired token is no worse than none.
                Err(Renewal::Retry(_)) => {}
            }
        }
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
                    Abort(tokio::spawn(crate::transfer::run(replica.clone(), http, keep.subscribe(), wake.clone())))
                });
                let renewing = http.as_ref().map(|http| Renewing { http, keep: &keep });
                let ended = session(&replica, ws, &current, renewing, &mut stop, &wake, &reconnect).await;
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
            Ended::Expired if current.refresh_token.is_some() && http.is_some() => {
                // Renewed before the next connection (see above), at once.
                replica.disconnected(Some("renewing the sign-in".into())).await;
                backoff = BACKOFF_MIN;
            }
            Ended::Expired => {
                replica.disconnected(Some("the sign-in expired; sign in again".into())).await;
                if wait_for_sign_in(&mut token, &mut stop).await {
                    break;
                }
                backoff = BACKOFF_MIN;
            }
            Ended::SignInOver => {
                ended_sign_in(&replica, &keep).await;
                if wait_for_sign_in(&mut token, &mut stop).await {
                    break;
                }
                backoff = BACKOFF_MIN;
            }
            Ended::Token(why) | Ended::Refused(why) => {
                replica.disconnected(Some(why)).await;
                if wait_for_sign_in(&mut token, &mut stop).await {
                    break;
                }
                backoff = BACKOFF_MIN;
            }
        }
    }
    replica.disconnected(None).await;
}

/// Waits for new tokens; true when the link is stopped instead.
async fn wait_for_sign_in(token: &mut watch::Receiver<SignInTokens>, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = stop.changed() => true,
        _ = token.changed() => false,
    }
}

/// The sign-in ended: its tokens are forgotten (on the device too); what the device holds,
/// its outbox included, stays for the next sign-in.
async fn ended_sign_in(replica: &Replica, keep: &watch::Sender<SignInTokens>) {
    keep.send_if_modified(|t| {
        t.refresh_token = None;
        false
    });
    if let Err(e) = replica.keep_sign_in(None).await {
        tracing::warn!(error = %e, "forgetting the ended sign-in failed");
    }
    let why = "this sign-in has ended (signed out, or ended from another device); sign in again; nothing on this device is lost";
    replica.disconnected(Some(why.into())).await;
}

/// Ends the sign-in of `token` on the server at `url` (the sync socket's address), within a
/// few seconds.
pub(crate) async fn end_sign_in(url: &str, trust: &Trust, token: &str) -> Result<(), String> {
    let http = trust
        .client_config()
        .ok()
        .and_then(|tls| crate::transfer::Http::new(url, tls))
        .ok_or_else(|| "no HTTP client for this address".to_string())?;
    let r =
        tokio::time::timeout(Duration::from_secs(3), http.delete("/v1/me/sessions/current").bearer_auth(token).send())
            .await
            .map_err(|_| "the server did not answer in time".to_string())?
            .map_err(|e| e.to_string())?;
    match r.status().as_u16() {
        204 | 401 => Ok(()),
        s => Err(format!("the server answered {s}")),
    }
}

/// How the link renews its token during a connection.
#[derive(Clone, Copy)]
struct Renewing<'a> {
    http: &'a crate::transfer::Http,
    keep: &'a Arc<watch::Sender<SignInTokens>>,
}

/// Why a renewal gave no token.
enum Renewal {
    /// The sign-in has ended (or the refresh token is spent): sign in again.
    Ended,
    /// The network or the server failed: try again later.
    Retry(String),
}

/// Seconds since the Unix epoch at which `token` (a JWT) expires, read from its payload.
fn expiry(token: &str) -> Option<u64> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64url(payload)?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("exp")?.as_u64()
}

/// How long until `token` should be renewed (zero: now); none when its expiry is unknown.
fn renew_due(token: &str) -> Option<Duration> {
    let exp = expiry(token)?;
    let iat = token
        .split('.')
        .nth(1)
        .and_then(base64url)
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v.get("iat")?.as_u64())
        .unwrap_or(exp);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?;
    let life = Duration::from_secs(exp.saturating_sub(iat));
    let ahead = RENEW_AHEAD.min(life / 4);
    Some(Duration::from_secs(exp).saturating_sub(ahead).saturating_sub(now))
}

fn base64url(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.trim_end_matches('=').bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Renews `current` with its refresh token over HTTP, keeps the new tokens on the device
/// and in the link, and returns them.
async fn renew(
    replica: &Replica,
    http: &crate::transfer::Http,
    keep: &watch::Sender<SignInTokens>,
    current: &SignInTokens,
) -> Result<SignInTokens, Renewal> {
    let Some(refresh) = &current.refresh_token else { return Err(Renewal::Ended) };
    let renewed = http.renew(refresh).await?;
    // Kept before it is used: the spent token is no good after this.
    if let Err(e) = replica.keep_sign_in(Some(&renewed)).await {
        tracing::error!(error = %e, "keeping the renewed sign-in failed");
    }
    keep.send_replace(renewed.clone());
    Ok(renewed)
}

impl crate::transfer::Http {
    /// `POST /v1/sessions/refresh`: the sign-in's new tokens.
    async fn renew(&self, refresh: &str) -> Result<SignInTokens, Renewal> {
        #[derive(serde::Deserialize)]
        struct Renewed {
            token: String,
            refresh_token: String,
        }
        let r = self
            .post("/v1/sessions/refresh")
            .json(&serde_json::json!({ "refresh_token": refresh }))
            .send()
            .await
            .map_err(|e| Renewal::Retry(format!("cannot reach the server: {e}")))?;
        match r.status().as_u16() {
            200 => {
                let b: Renewed = r.json().await.map_err(|e| Renewal::Retry(e.to_string()))?;
                Ok(SignInTokens { token: b.token, refresh_token: Some(b.refresh_token) })
            }
            401 | 403 => Err(Renewal::Ended),
            s => Err(Renewal::Retry(format!("the server answered {s}"))),
        }
    }
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
        close::TOKEN_EXPIRED => Ended::Expired,
        close::SIGN_IN_ENDED => Ended::SignInOver,
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
    tokens: &SignInTokens,
    renewing: Option<Renewing<'_>>,
    stop: &mut watch::Receiver<bool>,
    wake: &Notify,
    reconnect: &Notify,
) -> Ended {
    let welcome = match hello(replica, &mut ws, &tokens.token).await {
        Ok(welcome) => welcome,
        Err(ended) => return ended,
    };
    let limits = match resume(replica, &mut ws, welcome).await {
        Ok(limits) => limits,
        Err(ended) => return ended,
    };
    let renewing = renewing.filter(|_| tokens.refresh_token.is_some());
    serve(replica, &mut ws, &limits, renewing, stop, wake, reconnect).await
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
    renewing: Option<Renewing<'_>>,
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
    // When the connection's token is renewed (never, without a refresh token).
    let renew_at = |t: &SignInTokens| {
        renew_due(&t.token)
            .map_or(tokio::time::Instant::now() + Duration::from_secs(3600), |d| tokio::time::Instant::now() + d)
    };
    let far = || tokio::time::Instant::now() + Duration::from_secs(365 * 24 * 3600);
    let mut renew_next = match &renewing {
        Some(r) => renew_at(&r.keep.borrow()),
        None => far(),
    };
    loop {
        while let Some(p) = replica.next_push(limits.push_mutations_max, push_bytes).await {
            if let Err(e) = send(ws, &p).await {
                return Ended::Retry(e);
            }
        }
        // Pushes the server deferred (its quotas) go again when it said.
        let hold = replica.push_hold().await.map_or_else(far, tokio::time::Instant::from_std);
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
            () = tokio::time::sleep_until(hold) => continue,
            () = tokio::time::sleep_until(renew_next) => {
                let Some(r) = renewing else { renew_next = far(); continue };
                let current = r.keep.borrow().clone();
                match renew(replica, r.http, r.keep, &current).await {
                    Ok(renewed) => {
                        renew_next = renew_at(&renewed);
                        if let Err(e) = send(ws, &ClientMessage::Renew { token: renewed.token }).await {
                            return Ended::Retry(e);
                        }
                    }
                    Err(Renewal::Ended) => {
                        let _ = ws.close(None).await;
                        return Ended::SignInOver;
                    }
                    Err(Renewal::Retry(why)) => {
                        tracing::info!(why, "renewing the sign-in failed; trying again");
                        renew_next = tokio::time::Instant::now() + RENEW_RETRY;
                    }
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
