//! SurrealDB access: connecting by URL, migrations, and the small query helpers the rest of
//! the engine uses.
//!
//! Values cross the database boundary as JSON (`serde_json::Value` implements the SDK's
//! `SurrealValue`), so domain types are plain serde types and nothing else in the engine
//! touches SDK value types.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;
use surrealdb::{Surreal, engine::any::Any};

use crate::{Error, Result};

/// Namespace and database every BackOps deployment uses inside its SurrealDB.
pub const NAMESPACE: &str = "backops";
pub const DATABASE: &str = "main";

/// How often a transaction that lost a write conflict is retried before giving up.
const TX_RETRIES_MAX: u32 = 16;
/// How long opening an embedded store waits for its files to be released.
const LOCK_WAIT_MAX: Duration = Duration::from_secs(5);
/// How often a node asks a database server whether it is reachable.
const REACH_INTERVAL: Duration = Duration::from_millis(500);
/// How long that question may take before the server counts as unreachable.
const REACH_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest one request to a database server may take: past it, it counts as lost with
/// the connection (the server was killed or cut off mid-request).
const REMOTE_QUERY_MAX: Duration = Duration::from_secs(30);

/// One numbered schema migration, compiled into the binary from `schemas/surreal/`.
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// The schema this binary knows, in order. Append only: a released migration never changes.
pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "foundation", sql: include_str!("../../schemas/surreal/0001_foundation.surql") },
    Migration { version: 2, name: "change_log", sql: include_str!("../../schemas/surreal/0002_change_log.surql") },
    Migration { version: 3, name: "device_sync", sql: include_str!("../../schemas/surreal/0003_device_sync.surql") },
    Migration { version: 4, name: "front_gate", sql: include_str!("../../schemas/surreal/0004_front_gate.surql") },
    Migration { version: 5, name: "labor", sql: include_str!("../../schemas/surreal/0005_labor.surql") },
    Migration { version: 6, name: "assets", sql: include_str!("../../schemas/surreal/0006_assets.surql") },
    Migration { version: 7, name: "files", sql: include_str!("../../schemas/surreal/0007_files.surql") },
    Migration { version: 8, name: "file_upkeep", sql: include_str!("../../schemas/surreal/0008_file_upkeep.surql") },
    Migration { version: 9, name: "device_seen", sql: include_str!("../../schemas/surreal/0009_device_seen.surql") },
    Migration { version: 10, name: "judged", sql: include_str!("../../schemas/surreal/0010_judged.surql") },
    Migration { version: 11, name: "nodes", sql: include_str!("../../schemas/surreal/0011_nodes.surql") },
    Migration { version: 12, name: "throughput", sql: include_str!("../../schemas/surreal/0012_throughput.surql") },
    Migration { version: 13, name: "node_commits", sql: include_str!("../../schemas/surreal/0013_node_commits.surql") },
    Migration { version: 14, name: "identity", sql: include_str!("../../schemas/surreal/0014_identity.surql") },
    Migration { version: 15, name: "email_proof", sql: include_str!("../../schemas/surreal/0015_email_proof.surql") },
    Migration { version: 16, name: "sign_ins", sql: include_str!("../../schemas/surreal/0016_sign_ins.surql") },
    Migration { version: 17, name: "scoped_reads", sql: include_str!("../../schemas/surreal/0017_scoped_reads.surql") },
];

/// Credentials for a SurrealDB server reached over `ws://`/`wss://`.
#[derive(Clone, Debug, Default)]
pub struct RemoteAuth {
    pub username: String,
    pub password: String,
}

/// The database, shared by every handle of the engine. One SDK session behind an `Arc`:
/// cloning `Surreal` itself opens a new session that must replay its sign-in, and on a
/// SurrealDB server those clones were refused every query ("Method not allowed").
#[derive(Clone)]
pub struct Store {
    db: std::sync::Arc<Surreal<Any>>,
    /// The free space under an embedded store's files (and whatever else the node writes).
    guard: crate::disk::DiskGuard,
    /// SurrealKV in this process (not a SurrealDB server reached over the network).
    embedded: bool,
    /// A SurrealDB server reached over the network, and whether it answers now (see
    /// [`Store::watch_reach`]); none for a store in this process.
    reach: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// Connects to `mem://`, `surrealkv://PATH` or `ws://HOST:PORT` and selects the BackOps
    /// namespace and database. Does not migrate; see [`Store::migrate`].
    pub async fn connect(url: &str, auth: Option<&RemoteAuth>) -> Result<Store> {
        let remote = url.starts_with("ws://") || url.starts_with("wss://");
        let guard = crate::disk::DiskGuard::default();
        if !(remote || url == "mem://" || url.starts_with("surrealkv://")) {
            return Err(Error::Config(format!(
                "unsupported database URL {url:?}: use mem://, surrealkv://PATH or ws://HOST:PORT"
            )));
        }
        if let Some(path) = url.strip_prefix("surrealkv://") {
            if path.is_empty() {
                return Err(Error::Config("surrealkv:// needs a path, e.g. surrealkv://./data/db".into()));
            }
            guard.watch(std::path::Path::new(path));
            if let Some(parent) = std::path::Path::new(path).parent()
                && !parent.as_os_str().is_empty()
            {
                std::fs::create_dir_all(parent).map_err(|e| {
                    Error::Config(format!("cannot create the data directory {}: {e}", parent.display()))
                })?;
            }
        }
        let db = Self::open_any(url).await?;
        if remote {
            if let Some(auth) = auth {
                db.signin(surrealdb::opt::auth::Root {
                    username: auth.username.clone(),
                    password: auth.password.clone(),
                })
                .await
                .map_err(|e| Error::Config(format!("cannot sign in to the database at {url}: {e}")))?;
            }
            db.query(format!(
                "DEFINE NAMESPACE IF NOT EXISTS {NAMESPACE}; USE NS {NAMESPACE}; DEFINE DATABASE IF NOT EXISTS {DATABASE};"
            ))
            .await?
            .check()?;
        }
        db.use_ns(NAMESPACE).use_db(DATABASE).await?;
        let db = std::sync::Arc::new(db);
        let reach = remote.then(|| Self::watch_reach(&db, url));
        Ok(Store { db, guard, embedded: url.starts_with("surrealkv://"), reach })
    }

    /// Asks the database server every [`REACH_INTERVAL`] whether it answers. The SDK
    /// reconnects by itself after the server restarts (every second, replaying the sign-in
    /// and the namespace), but requests meanwhile would wait for it: while the server does
    /// not answer, requests fail at once with [`Error::DatabaseUnavailable`] instead.
    fn watch_reach(db: &std::sync::Arc<Surreal<Any>>, url: &str) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
        use std::sync::atomic::Ordering;
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (weak, flag, url) = (std::sync::Arc::downgrade(db), up.clone(), url.to_string());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REACH_INTERVAL).await;
                let Some(db) = weak.upgrade() else { return };
                let answered = tokio::time::timeout(REACH_TIMEOUT, db.query("RETURN 1")).await.is_ok_and(|r| r.is_ok());
                drop(db);
                let was = flag.swap(answered, Ordering::Relaxed);
                match (was, answered) {
                    (true, false) => {
                        tracing::error!(%url, "the database server does not answer; requests get 503 until it does")
                    }
                    (false, true) => tracing::warn!(%url, "the database server answers again"),
                    _ => {}
                }
            }
        });
        up
    }

    /// Whether requests may go to the store now (a database server that does not answer:
    /// no).
    fn reachable(&self) -> bool {
        self.reach.as_ref().is_none_or(|r| r.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// A database server's request failed or took too long: take the server for
    /// unreachable until it answers the watch again.
    fn lost(&self) -> Error {
        if let Some(r) = &self.reach {
            r.store(false, std::sync::atomic::Ordering::Relaxed);
        }
        Error::DatabaseUnavailable
    }

    /// The disk guard of this store (see [`crate::disk`]): its reserve is 0, never refusing,
    /// until set.
    pub fn guard(&self) -> &crate::disk::DiskGuard {
        &self.guard
    }

    /// Opens the datastore. An embedded store's files are locked while open; a process
    /// that just released them (a restart in the same process) finishes asynchronously, so a
    /// held lock is retried for a bounded time before it is reported.
    async fn open_any(url: &str) -> Result<Surreal<Any>> {
        let deadline = std::time::Instant::now() + LOCK_WAIT_MAX;
        loop {
            match surrealdb::engine::any::connect(url).await {
                Ok(db) => return Ok(db),
                Err(e) if e.message().contains("already locked") && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                Err(e) if e.message().contains("already locked") => {
                    return Err(Error::Config(format!(
                        "the database at {url} is in use by another process; stop it or choose another data directory"
                    )));
                }
                Err(e) => return Err(Error::Config(format!("cannot open the database at {url}: {e}"))),
            }
        }
    }

    /// Applies every migration the database has not reached yet, each in its own
    /// transaction together with the record of the version it reaches. Returns the version
    /// the database is at afterwards. Refuses a database written by a newer binary.
    pub async fn migrate(&self) -> Result<u32> {
        self.migrate_with(MIGRATIONS).await
    }

    /// [`Store::migrate`] with another list of migrations (the device replica has its own).
    pub async fn migrate_with(&self, migrations: &[Migration]) -> Result<u32> {
        self.db.query("DEFINE TABLE IF NOT EXISTS schema_migration SCHEMALESS;").await?.check()?;
        let binary = migrations.last().map_or(0, |m| m.version);
        let current = self.schema_version().await?;
        if current > binary {
            return Err(Error::SchemaTooNew { database: current, binary });
        }
        for m in migrations.iter().filter(|m| m.version > current) {
            let sql = format!(
                "BEGIN TRANSACTION;\n{}\n;CREATE type::record('schema_migration', $version) CONTENT {{ version: $version, name: $name, applied_at: $now }};\nCOMMIT TRANSACTION;",
                m.sql
            );
            self.run(&sql, serde_json::json!({ "version": m.version, "name": m.name, "now": crate::time::now() }))
                .await
                .map_err(|e| match e {
                    Error::Internal(detail) => {
                        Error::Internal(format!("migration {} ({}) failed: {detail}", m.version, m.name))
                    }
                    other => other,
                })?;
            tracing::info!(version = m.version, name = m.name, "applied schema migration");
        }
        Ok(current.max(binary))
    }

    /// The highest migration version recorded in the database (0 for a new database).
    pub async fn schema_version(&self) -> Result<u32> {
        let mut rows =
            self.run("SELECT VALUE version FROM schema_migration ORDER BY version DESC LIMIT 1;", Value::Null).await?;
        let v: Option<i64> = rows.0.take(0)?;
        Ok(v.unwrap_or(0).try_into().unwrap_or(0))
    }

    /// Runs SurrealQL with the fields of `vars` (a JSON object, or null) bound as
    /// parameters. Every statement's result is checked. A transaction that lost a write
    /// conflict is retried; any other failure is returned.
    pub async fn run(&self, sql: &str, vars: Value) -> Result<Rows> {
        if self.guard.broken() && crate::disk::may_write(sql) {
            return Err(crate::disk::broken());
        }
        if !self.reachable() {
            return Err(Error::DatabaseUnavailable);
        }
        let mut attempt = 0;
        loop {
            let mut q = self.db.query(sql);
            if let Value::Object(map) = &vars {
                for (k, v) in map {
                    q = q.bind((k.clone(), v.clone()));
                }
            }
            let mut response = match &self.reach {
                None => q.await.map_err(|e| self.failed(e.into()))?,
                // A request to a server lost mid-way fails (or never comes back): its outcome
                // is unknown, and it is the caller's to try again.
                Some(_) => match tokio::time::timeout(REMOTE_QUERY_MAX, q).await {
                    Ok(Ok(r)) => r,
                    Ok(Err(e)) if e.is_connection() => {
                        tracing::warn!(error = %e, "a request to the database server was lost with its connection");
                        return Err(self.lost());
                    }
                    Ok(Err(e)) => return Err(self.failed(e.into())),
                    Err(_) => return Err(self.lost()),
                },
            };
            let errors = response.take_errors();
            if errors.is_empty() {
                return Ok(Rows(response));
            }
            let mut errors: Vec<(usize, surrealdb::Error)> = errors.into_iter().collect();
            errors.sort_by_key(|(i, _)| *i);
            // Inside a failed transaction every statement reports the failure; the one that
            // caused it carries the real message.
            let cause = errors
                .iter()
                .map(|(_, e)| e)
                .find(|e| !is_failed_transaction(e))
                .or_else(|| errors.first().map(|(_, e)| e));
            let Some(cause) = cause else { return Ok(Rows(response)) };
            if (is_failed_transaction(cause) || is_conflict(cause)) && attempt < TX_RETRIES_MAX {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(u64::from(attempt) * 2)).await;
                continue;
            }
            return Err(self.failed(classify(cause)));
        }
    }

    /// Passes `e` on; a write an embedded store failed for lack of space breaks the guard
    /// (see [`crate::disk`]): nothing more is written to it until the process restarts. (A
    /// SurrealDB server that ran out of space is the database operator's to restart; this
    /// node refuses the request and goes on.)
    fn failed(&self, e: Error) -> Error {
        if let Error::Unavailable(detail) = &e {
            tracing::error!(%detail, "the store is out of space");
            match self.embedded {
                true => self.guard.break_down(),
                false => self.guard.failed(),
            }
        }
        e
    }
}

/// Results of one [`Store::run`], taken by statement index.
pub struct Rows(surrealdb::IndexedResults);

impl Rows {
    /// All rows of statement `index`, decoded.
    pub fn all<T: DeserializeOwned>(&mut self, index: usize) -> Result<Vec<T>> {
        let values: Vec<Value> = self.0.take(index)?;
        values.into_iter().map(|v| serde_json::from_value(v).map_err(Error::from)).collect()
    }

    /// The first row of statement `index`, decoded, if there is one.
    pub fn first<T: DeserializeOwned>(&mut self, index: usize) -> Result<Option<T>> {
        Ok(self.all(index)?.into_iter().next())
    }

    /// The first row of a write statement. A write that returns nothing was refused by the
    /// database without an error (that is how SurrealDB reports a denied write), so an empty
    /// result is an error here, never a silent success.
    pub fn written<T: DeserializeOwned>(&mut self, index: usize) -> Result<T> {
        self.first(index)?.ok_or_else(|| Error::Internal(format!("write statement {index} returned no record")))
    }

    /// The value of the last statement that produced one (a transaction's closing
    /// `RETURN`), skipping the empty results of `COMMIT` and friends.
    pub fn last_value<T: DeserializeOwned>(&mut self) -> Result<Option<T>> {
        for i in (0..self.0.num_statements()).rev() {
            if let Some(v) = self.value::<T>(i)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// A single scalar value (e.g. from `RETURN` or `SELECT VALUE`).
    pub fn value<T: DeserializeOwned>(&mut self, index: usize) -> Result<Option<T>> {
        let v: Option<Value> = self.0.take(index)?;
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(a)) if a.is_empty() => Ok(None),
            Some(Value::Array(mut a)) if a.len() == 1 => Ok(Some(serde_json::from_value(a.remove(0))?)),
            Some(v) => Ok(Some(serde_json::from_value(v)?)),
        }
    }
}

fn is_failed_transaction(e: &surrealdb::Error) -> bool {
    e.message().contains("failed transaction")
}

fn is_conflict(e: &surrealdb::Error) -> bool {
    let m = e.message();
    m.contains("conflict") || m.contains("Resource busy") || m.contains("can be retried")
}

/// A uniqueness violation (existing record key or unique index entry) is a conflict the
/// caller can act on; everything else is internal.
fn classify(e: &surrealdb::Error) -> Error {
    let m = e.message();
    // A client mutation's record of being applied (see `changes::applied_key`).
    if m.contains("`applied:") && m.contains("already exists") {
        return Error::Conflict { code: "already_applied", message: "this mutation was applied already".into() };
    }
    if e.is_already_exists() || m.contains("already exists") || m.contains("already contains") {
        Error::Conflict { code: "already_exists", message: "that already exists".into() }
    } else {
        crate::error::storage(format!("surrealdb: {m}"))
    }
}

/// Maps a storage conflict on a uniqueness rule to a specific, human error.
pub(crate) fn on_duplicate(e: Error, code: &'static str, message: &str) -> Error {
    match e {
        Error::Conflict { code: "already_exists", .. } => Error::conflict(code, message),
        other => other,
    }
}
