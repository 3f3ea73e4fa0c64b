//! The BackOps server: the HTTP API under `/v1` (and, next to it, the sync socket) in
//! front of the engine. A library with [`run`] so that tests and the `backops` binary start
//! the very same server; `main.rs` only parses flags.
//!
//! Architecture invariant: handlers translate HTTP to engine calls and back; every rule and
//! every access decision lives in `engine`.

mod api;
mod assets;
pub mod attempts;
pub mod auth;
pub mod blobs;
mod dashboard;
pub mod devices;
mod error;
pub mod files;
mod frontgate;
pub mod gate;
pub mod images;
mod labor;
pub mod listen;
pub mod mail;
pub mod quotas;
pub mod signins;
pub mod strip;
pub mod sync;

use std::{
    future::Future,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use engine::{Engine, EngineConfig, RemoteAuth, protocol::Limits};
use tokio::sync::watch;

pub use error::{ApiError, ApiResult};

/// Everything the server needs to start.
#[derive(Clone, Debug)]
pub struct Config {
    /// `surrealkv://PATH` (default), `mem://` or `ws://HOST:PORT`.
    pub database_url: String,
    /// Credentials when the database is a SurrealDB server.
    pub database_auth: Option<RemoteAuth>,
    /// Where the server keeps its own files (the generated JWT secret).
    pub data_dir: PathBuf,
    /// HS256 secret; generated and kept in `data_dir` when absent.
    pub jwt_secret: Option<String>,
    /// An external identity provider's RSA public key (PEM): its RS256 tokens are accepted.
    pub jwt_public_key_pem: Option<String>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    /// Lifetime of the access tokens this server signs (renewed by refresh tokens).
    pub token_ttl: Duration,
    /// How often sign-ins and sign-ups may be tried (per address, per account).
    pub attempts: attempts::AttemptLimits,
    /// Largest accepted request body, in bytes.
    pub body_limit_bytes: usize,
    /// Largest accepted credential import (CSV), in bytes.
    pub import_limit_bytes: usize,
    /// Limits of the sync socket.
    pub sync: Limits,
    /// Password checks at once, and waiting, per address and in all.
    pub password_gate: gate::PasswordGateLimits,
    /// How much one person and one collaborator may push a minute.
    pub quotas: quotas::PushQuotas,
    /// Limits of plain HTTP: header and body time, connections.
    pub http: listen::HttpLimits,
    /// Where file contents are kept.
    pub file_store: FileStore,
    /// Images processed at once (thumbnails), each on a blocking thread of its own.
    pub image_workers: usize,
    /// Snapshots read at once by this node's sync sockets; more wait their turn.
    pub snapshots_at_once: usize,
    /// Bounds of image decoding.
    pub image_limits: images::ImageLimits,
    /// Uploads opened longer ago than this are forgotten with their partial bytes.
    pub upload_expiry: Duration,
    /// A chunk upload that sends nothing for this long is cut (what arrived is kept).
    pub chunk_idle_timeout: Duration,
    /// How often file storage is collected (expired uploads, unnamed blobs).
    pub file_sweep_interval: Duration,
    /// How long shutdown waits for connections to finish before it stops anyway.
    pub drain_timeout: Duration,
    /// This node's heartbeat, and how long a silent node still counts (the devices panel).
    pub node_timing: devices::NodeTiming,
    /// Where the mail the server sends goes (the codes that prove an email).
    pub mail: mail::MailConfig,
    pub engine: EngineConfig,
}

impl Config {
    /// The embedded default: SurrealKV under `data_dir`.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Config {
        let data_dir = data_dir.into();
        Config {
            database_url: format!("surrealkv://{}", data_dir.join("db").display()),
            database_auth: None,
            data_dir,
            jwt_secret: None,
            jwt_public_key_pem: None,
            jwt_issuer: None,
            jwt_audience: None,
            token_ttl: Duration::from_secs(15 * 60),
            attempts: attempts::AttemptLimits::default(),
            body_limit_bytes: 256 * 1024,
            import_limit_bytes: 16 * 1024 * 1024,
            sync: Limits::default(),
            http: listen::HttpLimits::default(),
            quotas: quotas::PushQuotas::default(),
            password_gate: gate::PasswordGateLimits::default(),
            file_store: FileStore::Directory,
            image_workers: 2,
            snapshots_at_once: std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
            image_limits: images::ImageLimits::default(),
            upload_expiry: Duration::from_secs(7 * 24 * 3600),
            file_sweep_interval: Duration::from_secs(3600),
            chunk_idle_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(10),
            node_timing: devices::NodeTiming::default(),
            mail: mail::MailConfig::default(),
            engine: EngineConfig::default(),
        }
    }
}

/// Where the server keeps file contents (blobs).
#[derive(Clone, Debug)]
pub enum FileStore {
    /// `DATA_DIR/blobs`: the embedded default.
    Directory,
    /// Another directory, which several servers may share (a network file system mount).
    SharedDirectory(std::path::PathBuf),
    /// An S3-compatible bucket, shared by several servers.
    S3(blobs::S3Config),
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Engine(#[from] engine::Error),
    #[error("{0}")]
    Config(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Shared by every request handler.
#[derive(Clone, Debug)]
pub struct AppState {
    pub engine: Engine,
    pub tokens: Arc<auth::Tokens>,
    pub hub: Arc<sync::Hub>,
    pub files: Arc<files::Files>,
    pub attempts: Arc<attempts::Attempts>,
    /// Fair turns at password checks (see `gate`).
    pub passwords: Arc<gate::PasswordGate>,
    pub mailer: Arc<mail::Mailer>,
}

/// Name of the generated secret inside the data directory.
const SECRET_FILE: &str = "jwt-secret";

/// Reads the HS256 secret from `data_dir`, creating it (owner-only) on first start.
fn load_or_create_secret(data_dir: &Path) -> Result<String, Error> {
    let path = data_dir.join(SECRET_FILE);
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim().to_string();
        if s.len() >= 32 {
            return Ok(s);
        }
        return Err(Error::Config(format!("{} is too short to be a JWT secret", path.display())));
    }
    std::fs::create_dir_all(data_dir)?;
    let bytes: [u8; 32] = rand::random();
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    std::io::Write::write_all(&mut opts.open(&path)?, secret.as_bytes())?;
    tracing::warn!(path = %path.display(), "no JWT secret configured: generated one and stored it in the data directory");
    Ok(secret)
}

/// Opens the engine and builds the application state for `config`. Sync sessions end when
/// `shutdown` turns true.
pub async fn prepare(config: &Config, shutdown: watch::Receiver<bool>) -> Result<AppState, Error> {
    let secret = match &config.jwt_secret {
        Some(s) if s.len() >= 32 => s.clone(),
        Some(_) => return Err(Error::Config("the JWT secret must be at least 32 characters".into())),
        None => load_or_create_secret(&config.data_dir)?,
    };
    let mailer = mail::Mailer::new(&config.mail).map_err(Error::Config)?;
    let tokens = auth::Tokens::new(
        secret.as_bytes(),
        config.jwt_public_key_pem.as_deref().map(str::as_bytes),
        config.jwt_issuer.clone(),
        config.jwt_audience.clone(),
        config.token_ttl,
    )
    .map_err(Error::Config)?;
    // The disk guard keeps its reserve on the file systems of the data directory (uploads
    // arriving, blobs) and of a shared file store, besides the database's.
    let mut engine_config = config.engine.clone();
    engine_config.disk_paths.push(config.data_dir.clone());
    if let FileStore::SharedDirectory(dir) = &config.file_store {
        engine_config.disk_paths.push(dir.clone());
    }
    let engine = Engine::open(&config.database_url, config.database_auth.as_ref(), engine_config).await?;
    let quotas = quotas::Quotas::new(config.quotas.clone());
    let hub = sync::Hub::new(
        engine.clone(),
        config.sync.clone(),
        config.node_timing,
        quotas,
        config.snapshots_at_once,
        shutdown,
    );
    let blobs: Arc<dyn blobs::BlobStore> = match &config.file_store {
        FileStore::Directory => Arc::new(blobs::DirBlobs::new(config.data_dir.join("blobs"))?),
        FileStore::SharedDirectory(dir) => Arc::new(blobs::DirBlobs::new(dir)?),
        FileStore::S3(s3) => Arc::new(blobs::S3Blobs::new(s3).map_err(|e| Error::Config(format!("S3 store: {e}")))?),
    };
    tracing::info!(store = %blobs.describe(), "file contents");
    let files = files::Files::new(
        blobs,
        config.data_dir.join("uploads"),
        config.image_workers,
        config.image_limits,
        config.chunk_idle_timeout,
    )?;
    Ok(AppState {
        engine,
        tokens: Arc::new(tokens),
        hub,
        files: Arc::new(files),
        attempts: Arc::new(attempts::Attempts::new(config.attempts.clone())),
        passwords: Arc::new(gate::PasswordGate::new(config.password_gate)),
        mailer: Arc::new(mailer),
    })
}

/// Serves the API on `listener` until `shutdown` completes; then sync sessions are closed
/// with "going away" (and their resume cursors) and open requests drain, for at most
/// `config.drain_timeout`.
pub async fn run(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let state = prepare(&config, stop_rx).await?;
    serve(listener, &config, state, stop_tx, shutdown).await
}

/// [`run`] with the state already prepared (see [`prepare`]; `stop` is the sender of the
/// shutdown receiver given to it), for callers that keep a handle on the engine.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: &Config,
    state: AppState,
    stop: watch::Sender<bool>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let mut sweeping = stop.subscribe();
    let (engine, files, every, expiry) =
        (state.engine.clone(), state.files.clone(), config.file_sweep_interval, config.upload_expiry);
    let sweeper = tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = sweeping.wait_for(|s| *s) => return,
            }
            if let Err(e) = files.collect(&engine, std::time::SystemTime::now(), expiry).await {
                tracing::error!(error = %e, "file storage collection failed");
            }
        }
    });
    let app = api::router(state, config.body_limit_bytes, config.import_limit_bytes);
    tracing::info!(addr = %listener.local_addr()?, "listening");
    let mut stopping = stop.subscribe();
    let serve =
        listen::serve(listener, app, config.http.clone(), config.attempts.trusted_proxies.clone(), stop.subscribe());
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let drain = config.drain_timeout;
    tokio::select! {
        r = serve => r?,
        () = async move {
            let _ = stopping.wait_for(|s| *s).await;
            tokio::time::sleep(drain).await;
        } => tracing::warn!("connections did not finish in time; stopping anyway"),
    }
    sweeper.abort();
    tracing::info!("stopped");
    Ok(())
}
