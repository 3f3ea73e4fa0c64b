//! [`BackOpsClient`]: the one object the crew app holds.
//!
//! It owns a Tokio runtime of its own (two worker threads), the device replica and, while
//! connected, the [`Link`]. Every call is answered from the device: reads from the replica's
//! memory, writes with one local transaction. The network is only ever touched by the link's
//! background task, so no call waits on it. A listener hears changes, status and rejections
//! on a thread of its own, never on the runtime's, so it may call back into the client.
//!
//! This module holds the object, its opening, connection and shutdown, the listener and the
//! helpers every call shares; the exported methods of each concern live in a module of their
//! own: `tabs`, `files`, `gate` (the front gate), `labor` (crew time) and `assets` (gear
//! custody).

use std::{
    future::Future,
    path::Path,
    sync::{Arc, Mutex, MutexGuard, RwLock},
    time::Duration,
};

use engine::{
    device::{LocalWrite, Notice, Replica, SignInTokens},
    protocol::MutationOp,
};
use tokio::{runtime::Handle, sync::broadcast::error::RecvError};

use crate::{
    BackOpsError, Link,
    link::Trust,
    types::{Receipt, Rejection, SyncStatus},
};

mod assets;
mod files;
mod gate;
mod labor;
mod tabs;

/// A token's shape checked (three base64url parts), trimmed.
fn checked_token(token: &str) -> Result<String, BackOpsError> {
    let t = token.trim();
    let looks_like_a_token = t.len() <= TOKEN_BYTES_MAX
        && t.split('.').count() == 3
        && t.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    if looks_like_a_token { Ok(t.into()) } else { Err(BackOpsError::invalid("that is not a BackOps sign-in token")) }
}

/// Longest a token may be.
const TOKEN_BYTES_MAX: usize = 8 * 1024;
/// Longest a record or event id may be.
const ID_BYTES_MAX: usize = 128;
/// How long disconnecting waits for the connection to close before cutting it.
const DISCONNECT_WAIT: Duration = Duration::from_secs(2);
/// How long shutting down waits for the replica's files to close.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);
/// Notices waiting for a slow listener before older ones give way to "re-read everything".
const LISTENER_QUEUE_MAX: usize = 256;

/// What the app implements to hear from the client. Called on a thread of the client's own,
/// one notice at a time, in order; it may call the client. An error (an exception) it
/// returns is logged and the next notice is delivered as usual.
#[uniffi::export(callback_interface)]
pub trait SyncListener: Send + Sync {
    /// Records of `event` changed (from the server or a local write): `kinds` are those that
    /// changed (`task`, `activity`, `file_meta`, `advance`, `collaborator`, …). Re-read what
    /// is on screen.
    fn on_change(&self, event: String, kinds: Vec<String>) -> Result<(), BackOpsError>;
    /// The sync status changed.
    fn on_status(&self, status: SyncStatus) -> Result<(), BackOpsError>;
    /// The server refused a local change; the device has already rolled it back.
    fn on_rejection(&self, rejection: Rejection) -> Result<(), BackOpsError>;
}

#[derive(uniffi::Object)]
pub struct BackOpsClient {
    /// Taken by [`BackOpsClient::shutdown`], which closes it.
    replica: Mutex<Option<Replica>>,
    device: String,
    handle: Handle,
    /// Held (shared) by every call while it runs on the runtime; taken by
    /// [`BackOpsClient::shutdown`] once those calls are done.
    runtime: RwLock<Option<tokio::runtime::Runtime>>,
    /// Connecting, disconnecting, signing in or out, trusting and shutting down, one at a
    /// time (the session lock itself is only ever held for a moment).
    transition: Mutex<()>,
    session: Mutex<Session>,
    listener: Arc<Mutex<Option<Arc<dyn SyncListener>>>>,
    /// The task feeding the listener's thread.
    feeding: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

#[derive(Default)]
struct Session {
    token: Option<SignInTokens>,
    url: Option<String>,
    trust: Trust,
    link: Option<Link>,
}

impl std::fmt::Debug for BackOpsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackOpsClient").field("device", &self.device).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[uniffi::export]
impl BackOpsClient {
    /// Opens the device's replica in `data_dir` (created if missing). `device_name` names the
    /// device the first time (e.g. `gate-b-lane-3`, up to 55 characters); its id is that name
    /// and a mark of this installation (`gate-b-lane-3:1f0c9a2e`), so two devices given one
    /// name never mix up their changes. Later opens keep the stored id.
    #[uniffi::constructor]
    pub fn open(data_dir: String, device_name: Option<String>) -> Result<Arc<Self>, BackOpsError> {
        if data_dir.trim().is_empty() {
            return Err(BackOpsError::invalid("the data directory is required"));
        }
        let dir = Path::new(&data_dir).join("replica");
        std::fs::create_dir_all(&dir).map_err(|e| BackOpsError::Storage {
            code: "config".into(),
            message: format!("the data directory cannot be used: {}", e.kind()),
        })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("backops-sync")
            .enable_all()
            .build()
            .map_err(BackOpsError::storage)?;
        let url = format!("surrealkv://{}", dir.display());
        let files = engine::device::files::FilesConfig {
            dir: Path::new(&data_dir).join("files"),
            budget_bytes: engine::device::files::BUDGET_DEFAULT,
        };
        let replica = runtime.block_on(Replica::open_with_files(&url, device_name.as_deref(), Some(files)))?;
        // A sign-in kept from before (a restart with nobody at the device) connects again.
        let kept = runtime.block_on(replica.kept_sign_in())?;
        let client = BackOpsClient {
            handle: runtime.handle().clone(),
            device: replica.device().into(),
            replica: Mutex::new(Some(replica.clone())),
            runtime: RwLock::new(Some(runtime)),
            transition: Mutex::default(),
            session: Mutex::new(Session { token: kept, ..Session::default() }),
            listener: Arc::default(),
            feeding: Mutex::default(),
        };
        client.start_listening(replica)?;
        Ok(Arc::new(client))
    }

    /// This device's name (the server keys its mutations by it).
    pub fn device_id(&self) -> String {
        self.device.clone()
    }

    /// The account whose data the device holds, known after its first connection.
    pub fn account(&self) -> Result<Option<String>, BackOpsError> {
        let r = self.replica()?;
        self.run(async { Ok(r.account().await) })
    }

    /// Signs in with an access token alone (it is not renewed: past its expiry the app
    /// signs in again). A connected client uses it from its next connection (and reconnects
    /// at once if it was waiting for one). Prefer [`BackOpsClient::sign_in_device`].
    pub fn sign_in(&self, token: String) -> Result<(), BackOpsError> {
        self.signed_in(SignInTokens { token: checked_token(&token)?, refresh_token: None })
    }

    /// Signs in with the tokens of a device sign-in (`token` and `refresh_token` from
    /// `POST /v1/sessions`): the client renews the access token by itself before it
    /// expires, and after any time offline while the sign-in lives (30 days unused by
    /// default), and keeps both on the device, so it connects again after a restart with
    /// nobody at it. If the sign-in is ended (signed out elsewhere, by the event team, a
    /// password change), the status says so and the client waits for a new sign-in; nothing
    /// on the device is lost.
    pub fn sign_in_device(&self, token: String, refresh_token: String) -> Result<(), BackOpsError> {
        let refresh = refresh_token.trim();
        if refresh.is_empty() || refresh.len() > TOKEN_BYTES_MAX || !refresh.contains('.') {
            return Err(BackOpsError::invalid("that is not a BackOps refresh token"));
        }
        self.signed_in(SignInTokens { token: checked_token(&token)?, refresh_token: Some(refresh.into()) })
    }

    /// The access token the client signs in with now (renewed as it goes), for the app's own
    /// calls to the HTTP API; none before a sign-in.
    pub fn access_token(&self) -> Option<String> {
        let s = lock(&self.session);
        match &s.link {
            Some(link) => Some(link.tokens().token),
            None => s.token.as_ref().map(|t| t.token.clone()),
        }
    }

    /// Forgets the sign-in (on the device too) and disconnects; a renewable sign-in is also
    /// ended on the server when it can be reached within a few seconds. What the device
    /// holds stays: signing in again as the same person picks up where it was; another
    /// person's first connection starts the device over once nothing is waiting to be sent.
    pub fn sign_out(&self) -> Result<(), BackOpsError> {
        let _t = lock(&self.transition);
        let current = {
            let mut s = lock(&self.session);
            let current = s.link.as_ref().map(Link::tokens).or_else(|| s.token.clone());
            s.token = None;
            current.filter(|t| t.refresh_token.is_some()).zip(s.url.clone().zip(Some(s.trust.clone())))
        };
        self.stop_link()?;
        let r = self.replica()?;
        self.run(r.keep_sign_in(None))?;
        if let Some((tokens, (url, trust))) = current {
            let ended = self.block_on(crate::link::end_sign_in(&url, &trust, &tokens.token));
            if let Ok(Err(why)) | Err(why) = ended.map_err(|e| e.to_string()) {
                tracing::info!(why, "the sign-in was forgotten here but could not be ended on the server");
            }
        }
        Ok(())
    }

    /// Keeps the device connected to the server at `server_url` (`https://host`, `ws://host:port`
    /// or the full `…/v1/sync` address) in the background: it reconnects by itself after any
    /// loss. Returns at once; progress arrives as status notices.
    pub fn connect(&self, server_url: String) -> Result<(), BackOpsError> {
        let url = sync_url(&server_url)?;
        let _t = lock(&self.transition);
        self.ready()?;
        {
            let mut s = lock(&self.session);
            if s.token.is_none() {
                return Err(BackOpsError::not_ready("sign_in", "sign in before connecting"));
            }
            if s.link.is_some() && s.url.as_deref() == Some(url.as_str()) {
                return Ok(());
            }
            s.url = Some(url);
        }
        self.relink()
    }

    /// Also trusts the certificate authorities in `pem` on `wss://` (for a server on a
    /// site's own network with its own authority); public authorities are always trusted.
    /// A connected client reconnects with it at once.
    pub fn trust_certificate(&self, pem: String) -> Result<(), BackOpsError> {
        let _t = lock(&self.transition);
        self.ready()?;
        let relink = {
            let mut s = lock(&self.session);
            s.trust.add_pem(&pem).map_err(BackOpsError::invalid)?;
            s.token.is_some() && s.link.is_some()
        };
        if relink { self.relink() } else { Ok(()) }
    }

    /// Stops syncing; local reads and writes go on, and writes wait for the next connection.
    pub fn disconnect(&self) -> Result<(), BackOpsError> {
        let _t = lock(&self.transition);
        self.stop_link()
    }

    /// Drops the connection and connects again at once (the network changed, the app came
    /// back to the foreground).
    pub fn reconnect_now(&self) {
        if let Some(link) = &lock(&self.session).link {
            link.reconnect();
        }
    }

    /// Follows `event`: its records arrive with the next connection (at once if connected).
    pub fn subscribe(&self, event: String) -> Result<(), BackOpsError> {
        check_id("event", &event)?;
        self.run(self.replica()?.subscribe(&event))?;
        self.wake();
        Ok(())
    }

    /// Stops following `event` and forgets its records; refused while changes made to it on
    /// the device are not synced yet.
    pub fn unsubscribe(&self, event: String) -> Result<(), BackOpsError> {
        check_id("event", &event)?;
        self.run(self.replica()?.unsubscribe(&event))?;
        self.wake();
        Ok(())
    }

    /// The events followed.
    pub fn subscriptions(&self) -> Result<Vec<String>, BackOpsError> {
        let r = self.replica()?;
        self.run(async { Ok(r.subscriptions().await.into_iter().map(|(e, _)| e).collect()) })
    }

    pub fn sync_status(&self) -> Result<SyncStatus, BackOpsError> {
        Ok(self.replica()?.status().into())
    }

    /// Sets (or with `None` removes) the listener.
    pub fn set_listener(&self, listener: Option<Box<dyn SyncListener>>) {
        *lock(&self.listener) = listener.map(Arc::from);
    }

    /// Changes the server refused, newest first (the last 100).
    pub fn rejections(&self) -> Result<Vec<Rejection>, BackOpsError> {
        Ok(self.run(self.replica()?.rejections())?.into_iter().map(Rejection::from).collect())
    }

    /// Disconnects, stops the listener, closes the replica's files and stops the runtime.
    /// Every later call fails with `shut_down`; the data directory can be opened again at
    /// once. Waits for calls in progress, and at most a few seconds more.
    pub fn shutdown(&self) {
        let _t = lock(&self.transition);
        let Some(replica) = lock(&self.replica).take() else { return };
        let _ = self.stop_link();
        *lock(&self.listener) = None;
        let feeding = lock(&self.feeding).take();
        let runtime = self.runtime.write().unwrap_or_else(|e| e.into_inner()).take();
        let Some(rt) = runtime else { return };
        if Handle::try_current().is_ok() {
            rt.shutdown_background();
            return;
        }
        rt.block_on(async {
            if let Some(f) = feeding {
                f.abort();
                let _ = f.await;
            }
            // The store closes its files in tasks of its own once its last handle is gone.
            drop(replica);
            let deadline = tokio::time::Instant::now() + SHUTDOWN_WAIT;
            while rt.metrics().num_alive_tasks() > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        rt.shutdown_timeout(DISCONNECT_WAIT);
    }
}

impl BackOpsClient {
    /// (Re)starts the link with the session's address and trust. The caller holds
    /// `transition`.
    fn relink(&self) -> Result<(), BackOpsError> {
        self.stop_link()?;
        let (url, trust, token) = {
            let s = lock(&self.session);
            (s.url.clone(), s.trust.clone(), s.token.clone())
        };
        let token = token.ok_or_else(|| BackOpsError::not_ready("sign_in", "sign in before connecting"))?;
        let url = url.ok_or_else(|| BackOpsError::not_ready("connect", "connect to a server first"))?;
        let replica = self.replica()?;
        let link = {
            let _runtime = self.handle.enter();
            Link::start_with(replica, &url, token, trust)
        };
        lock(&self.session).link = Some(link);
        Ok(())
    }

    /// Stops the link, if any. The caller holds `transition`.
    fn stop_link(&self) -> Result<(), BackOpsError> {
        let link = lock(&self.session).link.take();
        if let Some(link) = link {
            let left = self.block_on(link.stop_within(DISCONNECT_WAIT))?;
            // The link renewed the tokens as it went: the spent ones must not be used again.
            let mut s = lock(&self.session);
            if s.token.is_some() {
                s.token = Some(left);
            }
        }
        Ok(())
    }

    /// Takes new tokens: kept on the device, and handed to a running link.
    fn signed_in(&self, tokens: SignInTokens) -> Result<(), BackOpsError> {
        let r = self.replica()?;
        let _t = lock(&self.transition);
        self.run(r.keep_sign_in(Some(&tokens)))?;
        let mut s = lock(&self.session);
        if let Some(link) = &s.link {
            link.set_tokens(tokens.clone());
        }
        s.token = Some(tokens);
        Ok(())
    }

    fn ready(&self) -> Result<(), BackOpsError> {
        self.replica().map(drop)
    }

    fn replica(&self) -> Result<Replica, BackOpsError> {
        lock(&self.replica)
            .clone()
            .ok_or_else(|| BackOpsError::not_ready("shut_down", "this client was shut down; open a new one"))
    }

    /// Runs `f` on the client's runtime and waits for it: for local work only. The runtime
    /// cannot be shut down under it.
    fn block_on<T>(&self, f: impl Future<Output = T>) -> Result<T, BackOpsError> {
        if Handle::try_current().is_ok() {
            return Err(BackOpsError::not_ready(
                "wrong_thread",
                "call the client from an app thread, not from inside an async runtime",
            ));
        }
        let runtime = self.runtime.read().unwrap_or_else(|e| e.into_inner());
        if runtime.is_none() {
            return Err(BackOpsError::not_ready("shut_down", "this client was shut down; open a new one"));
        }
        Ok(self.handle.block_on(f))
    }

    fn run<T>(&self, f: impl Future<Output = engine::Result<T>>) -> Result<T, BackOpsError> {
        self.block_on(f)?.map_err(BackOpsError::from)
    }

    fn list<T, U: From<T>>(&self, f: impl Future<Output = engine::Result<Vec<T>>>) -> Result<Vec<U>, BackOpsError> {
        Ok(self.run(f)?.into_iter().map(U::from).collect())
    }

    fn wake(&self) {
        if let Some(link) = &lock(&self.session).link {
            link.wake();
        }
    }

    fn write(
        &self,
        event: String,
        kind: &str,
        op: MutationOp,
        record: Option<String>,
        fields: serde_json::Value,
    ) -> Result<Receipt, BackOpsError> {
        check_id("event", &event)?;
        if let Some(id) = &record {
            check_id("record", id)?;
        }
        if lock(&self.session).token.is_none() {
            return Err(BackOpsError::not_ready("sign_in", "sign in before making changes"));
        }
        let w = LocalWrite { kind: kind.into(), op, record, fields };
        let written = self.run(self.replica()?.write(&event, w))?;
        self.wake();
        Ok(Receipt { mutation: written.mutation, record: written.record.id })
    }

    /// Starts the listener's thread, fed by a task that turns the replica's notices into
    /// calls (and a missed run of them into "re-read everything").
    fn start_listening(&self, replica: Replica) -> Result<(), BackOpsError> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Notice>(LISTENER_QUEUE_MAX);
        let mut notices = replica.notices();
        *lock(&self.feeding) = Some(self.handle.spawn(async move {
            loop {
                let n = match notices.recv().await {
                    Ok(n) => vec![n],
                    Err(RecvError::Lagged(_)) => {
                        let kinds: Vec<String> = engine::Kind::ALL.iter().map(|k| k.to_string()).collect();
                        let mut v: Vec<Notice> = replica
                            .subscriptions()
                            .await
                            .into_iter()
                            .map(|(event, _)| Notice::Changed { event, kinds: kinds.clone() })
                            .collect();
                        v.push(Notice::Status(replica.status()));
                        v
                    }
                    Err(RecvError::Closed) => break,
                };
                for n in n {
                    if tx.send(n).await.is_err() {
                        return;
                    }
                }
            }
        }));
        let listener = self.listener.clone();
        std::thread::Builder::new()
            .name("backops-listener".into())
            .spawn(move || {
                // Ends when the runtime stops (the feeding task is dropped with it).
                while let Some(n) = rx.blocking_recv() {
                    let Some(l) = lock(&listener).clone() else { continue };
                    // A listener that fails must not silence the notices after it (an error it
                    // returns is logged where it is converted; a panic here).
                    let heard = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match n {
                        Notice::Changed { event, kinds } => l.on_change(event, kinds),
                        Notice::Status(s) => l.on_status(s.into()),
                        Notice::Rejected(r) => l.on_rejection(r.into()),
                    }));
                    if heard.is_err() {
                        tracing::warn!("the app's sync listener panicked on a notice");
                    }
                }
            })
            .map_err(BackOpsError::storage)?;
        Ok(())
    }
}

impl Drop for BackOpsClient {
    /// An app that forgot [`BackOpsClient::shutdown`] still gets its files closed.
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn check_id(what: &str, id: &str) -> Result<(), BackOpsError> {
    if id.is_empty() || id.len() > ID_BYTES_MAX || id.chars().any(char::is_control) {
        return Err(BackOpsError::invalid(format!("{what} must be 1 to {ID_BYTES_MAX} characters")));
    }
    Ok(())
}

/// The sync socket's address from what the app was given: `http(s)://` becomes `ws(s)://`,
/// and a bare host gets the socket's path.
fn sync_url(given: &str) -> Result<String, BackOpsError> {
    let bad = || BackOpsError::invalid("the server address must look like https://host or ws://host:port");
    let given = given.trim();
    let (scheme, rest) = given.split_once("://").ok_or_else(bad)?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "ws" | "http" => "ws",
        "wss" | "https" => "wss",
        _ => return Err(bad()),
    };
    let (host, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
    if host.is_empty() || host.contains(['@', ' ', '?', '#']) {
        return Err(bad());
    }
    let path = path.trim_end_matches('/');
    let path = if path.is_empty() { "v1/sync" } else { path };
    Ok(format!("{scheme}://{host}/{path}"))
}

#[cfg(test)]
mod tests {
    use super::sync_url;

    #[test]
    fn server_addresses() {
        assert_eq!(sync_url("http://127.0.0.1:8080").unwrap(), "ws://127.0.0.1:8080/v1/sync");
        assert_eq!(sync_url("ws://h:1/v1/sync").unwrap(), "ws://h:1/v1/sync");
        assert_eq!(sync_url(" HTTP://h/ ").unwrap(), "ws://h/v1/sync");
        assert_eq!(sync_url("https://sync.example.com").unwrap(), "wss://sync.example.com/v1/sync");
        for bad in ["", "h:1", "ftp://h", "http://", "http://u@h", "http://a b"] {
            assert!(sync_url(bad).is_err(), "{bad}");
        }
    }
}
