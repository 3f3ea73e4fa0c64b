//! The BackOps engine: the business rules of organizations, licenses, events, seats,
//! collaborators and the five tabs, on top of SurrealDB.
//!
//! `engine` knows nothing about HTTP or WebSockets: the `server` crate (and, later, the
//! device bridge) drive it. Every read and write takes the acting person's id and is
//! judged by the one access function in [`access`]; the engine is the authority on access,
//! not the database's own permissions (embedded SurrealDB enforces none).

pub mod access;
mod accounts;
pub mod assets;
mod cache;
pub mod changes;
pub mod device;
pub mod disk;
mod error;
mod events;
pub mod feed;
pub mod files;
pub mod frontgate;
pub mod hlc;
pub mod kind;
pub mod labor;
pub mod model;
pub(crate) mod mutations;
pub use mutations::{MUTATION_ID_LEN_MAX, Pushed};
mod orgs;
pub mod paging;
pub mod plan;
pub mod proof;
pub mod protocol;
pub mod rules;
pub mod signins;
pub mod store;
mod tabs;
pub mod time;
mod write;

use std::{sync::Arc, time::Duration};

pub use accounts::{NewAccount, validate_email};
pub use error::{Error, Result};
pub use events::{EventPatch, InviteInput, NewEvent};
pub use kind::Kind;
pub use orgs::{PurchaseInput, RoleInput};
pub use rules::gate::{CredentialPatch, NewCredential, NewGate, NewScan, NewZone};
pub use rules::{ActivityPatch, AdvancePatch, NewActivity, NewAdvance, NewFile, NewTask, TaskPatch};
pub use store::{RemoteAuth, Store};
pub use tabs::ListFilter;

/// Tunables of the engine. Every limit has a name and a stated policy.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Time between a license purchase and its activation (the payment provider's
    /// confirmation in production; short and configurable here).
    pub license_activation_delay: Duration,
    /// Strength of password hashing. Production uses the argon2 defaults; tests may lower
    /// it to keep the suite quick.
    pub password_hashing: PasswordHashing,
    /// How long change-log entries are kept: a device offline for less resumes with the
    /// changes it missed. Older entries are trimmed (each node looks at an event's oldest
    /// pages at most every minute); a client resuming from a trimmed cursor gets `resync`
    /// and a fresh snapshot.
    pub log_retention: Duration,
    /// The most change-log entries kept per event whatever their age, the bound on the log's
    /// storage (trimmed in steps of a tenth).
    pub log_entries_max: i64,
    /// Largest file an upload may announce, in bytes.
    pub file_limit_bytes: u64,
    /// Most bytes of files one organization may hold; no limit when absent.
    pub org_storage_limit_bytes: Option<u64>,
    /// Free space the node keeps on the file systems it writes to: below it, writes are
    /// refused with `storage_unavailable` (see [`disk`]). 0: never refused.
    pub disk_reserve_bytes: u64,
    /// Paths besides an embedded store's files whose file systems the reserve is kept on
    /// (the server's file storage).
    pub disk_paths: Vec<std::path::PathBuf>,
    /// How long the refusal of a device's mutation is kept after the log entries of its
    /// time are trimmed: a retry within it hears the refusal again; after it, `expired`
    /// (never an acceptance).
    pub refusals_kept: Duration,
    /// How long a sign-in lives without being renewed (a device offline longer signs in
    /// again); every renewal starts it over.
    pub sign_in_idle: Duration,
    /// Passwords hashed or checked at once, and waiting, at most: past it a sign-in, sign-up
    /// or password change is refused with `busy` (HTTP 503, retry after a second) rather
    /// than queued, so a flood of sign-ins cannot spend the server's memory (each hash
    /// takes argon2's 19 MiB while it runs).
    pub hashing: HashingLimits,
}

/// The bounds of password hashing: `running` at once, `waiting` more queued.
#[derive(Clone, Copy, Debug)]
pub struct HashingLimits {
    pub running: usize,
    pub waiting: usize,
}

impl Default for HashingLimits {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        HashingLimits { running: cores, waiting: cores }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordHashing {
    /// argon2id with the crate's recommended parameters.
    Standard,
    /// argon2id with minimal memory and time: for tests only.
    Fast,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            license_activation_delay: Duration::from_secs(2),
            password_hashing: PasswordHashing::Standard,
            log_retention: Duration::from_secs(72 * 3600),
            log_entries_max: 10_000_000,
            file_limit_bytes: files::FILE_LIMIT_DEFAULT,
            org_storage_limit_bytes: None,
            disk_reserve_bytes: disk::RESERVE_DEFAULT,
            disk_paths: Vec::new(),
            sign_in_idle: Duration::from_secs(30 * 24 * 3600),
            refusals_kept: Duration::from_secs(90 * 24 * 3600),
            hashing: HashingLimits::default(),
        }
    }
}

/// A handle on the engine; cheap to clone and share across tasks.
#[derive(Clone, Debug)]
pub struct Engine {
    store: Store,
    config: Arc<EngineConfig>,
    /// Announces every commit of this process (event id and its new head seq) so the feed
    /// wakes at once; commits by other processes are found by polling the log.
    commits: tokio::sync::broadcast::Sender<(String, i64)>,
    /// Process-wide state behind every handle.
    shared: Arc<Shared>,
    /// One committer task per event (group commit), by event id.
    committers:
        Arc<std::sync::Mutex<std::collections::HashMap<String, tokio::sync::mpsc::Sender<changes::CommitRequest>>>>,
}

/// What all handles of one engine share.
struct Shared {
    /// Password hashing's bound (see [`EngineConfig::hashing`]), made at first use.
    hashing: std::sync::OnceLock<accounts::Hashing>,
    /// The write path's access facts (see [`cache`]).
    access: cache::AccessCache,
    /// Each event's log floor as this process last knew it.
    floors: std::sync::Mutex<std::collections::HashMap<String, i64>>,
    /// When this process last looked at each event's log for entries past their time.
    trims_looked: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
    /// Stamps the edits made without a device's clock (the HTTP API) and follows the
    /// stamps devices send.
    clock: hlc::Clock,
    /// One lock per event for judging field records (see [`Engine::judging`]).
    field_locks: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            hashing: Default::default(),
            access: Default::default(),
            floors: Default::default(),
            trims_looked: Default::default(),
            clock: hlc::Clock::new("server"),
            field_locks: Default::default(),
        }
    }
}

/// How far ahead of the server's clock a device's stamp may be. A stamp further ahead (a
/// phone whose clock is wrong) is replaced by the server's own, so one bad clock cannot win
/// every conflict for hours.
pub const HLC_AHEAD_MAX: Duration = Duration::from_secs(60);

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared")
    }
}

/// Commit notices buffered for a slow listener before it is told it lagged.
const COMMIT_NOTICES_MAX: usize = 4096;

impl Engine {
    /// Opens the database at `url`, migrates it, and resumes activation of licenses that
    /// were still pending when the process last stopped.
    pub async fn open(url: &str, auth: Option<&RemoteAuth>, config: EngineConfig) -> Result<Engine> {
        let store = Store::connect(url, auth).await?;
        for p in &config.disk_paths {
            store.guard().watch(p);
        }
        store.guard().set_reserve(config.disk_reserve_bytes);
        let version = store.migrate().await?;
        tracing::info!(url, schema_version = version, "database ready");
        let (commits, _) = tokio::sync::broadcast::channel(COMMIT_NOTICES_MAX);
        let engine = Engine {
            store,
            config: Arc::new(config),
            commits,
            shared: Default::default(),
            committers: Default::default(),
        };
        engine.resume_pending_activations().await?;
        Ok(engine)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The stamp of an edit: the device's stamp of the mutation (`hlc`) when it is not too
    /// far ahead of the server's clock (the clock then moves past it), otherwise a stamp of
    /// the server's clock.
    pub(crate) fn stamp(&self, hlc: Option<&hlc::Hlc>) -> String {
        let clock = &self.shared.clock;
        match hlc {
            Some(h) if h.wall_ms <= clock.wall_ms().saturating_add(HLC_AHEAD_MAX.as_millis() as u64) => {
                clock.observe(h);
                h.to_string()
            }
            Some(h) => {
                tracing::warn!(stamp = %h, "a device's clock is ahead of the server's; stamping with the server's");
                clock.now().to_string()
            }
            None => clock.now().to_string(),
        }
    }

    /// Notices of this process's commits: `(event, head)`.
    pub fn commit_notices(&self) -> tokio::sync::broadcast::Receiver<(String, i64)> {
        self.commits.subscribe()
    }
}
