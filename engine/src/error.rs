//! The engine's one error type.
//!
//! Every variant carries a stable machine-readable `code` and a sentence meant for people.
//! Messages name what is wrong with the caller's own input and never include internals
//! (queries, storage errors) or data the caller may not see: storage failures are logged
//! by the engine and reach callers only as [`Error::Internal`].

/// Convenience alias used across the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    /// A business rule refused the request (maps to HTTP 422).
    #[error("{message}")]
    Rule { code: &'static str, message: String },
    /// The request collides with existing state, e.g. every seat is taken (HTTP 409).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The caller can see the target but may not do this to it (HTTP 403).
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// The target does not exist *or the caller may not see it* (HTTP 404). The two cases are
    /// deliberately indistinguishable so that nobody can probe another tenant's records.
    #[error("{what} not found")]
    NotFound { what: &'static str },
    /// Wrong email or password (HTTP 401).
    #[error("email or password is incorrect")]
    BadCredentials,
    /// The database was written by a newer BackOps than this binary.
    #[error(
        "the database is at schema version {database}, but this binary knows only up to version {binary}; upgrade BackOps before opening this database"
    )]
    SchemaTooNew { database: u32, binary: u32 },
    /// The database URL cannot be used.
    #[error("{0}")]
    Config(String),
    /// The access facts a write was decided on changed before it committed; the engine
    /// retries or turns this into a [`Error::Conflict`], so callers outside it never see it.
    #[error("access changed while the request ran")]
    StaleAccess,
    /// The storage cannot take writes now: its disk is full (or within the reserve the node
    /// keeps free), or failing. Nothing of the request was written, and the same request may
    /// succeed later (HTTP 507). The detail is for logs only.
    #[error("storage is full: nothing was saved; try again later")]
    Unavailable(String),
    /// The server is at its bound for this kind of work (password hashing): nothing was
    /// done; try again after a moment (HTTP 503 with `Retry-After`).
    #[error("the server is busy; try again in a moment")]
    Busy,
    /// The database server cannot be reached (restarting, or the network to it is down):
    /// the request was not done, or its outcome is unknown; the same request may succeed
    /// in a moment (HTTP 503 with `Retry-After`). The node reconnects by itself.
    #[error("the database cannot be reached right now; try again in a moment")]
    DatabaseUnavailable,
    /// A storage failure or broken invariant. The detail is for logs only.
    #[error("internal error")]
    Internal(String),
}

impl Error {
    pub fn rule(code: &'static str, message: impl Into<String>) -> Self {
        Error::Rule { code, message: message.into() }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Error::Conflict { code, message: message.into() }
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Error::Forbidden { code, message: message.into() }
    }

    /// Invalid field content: the message names the field and what it must be.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::Rule { code: "invalid_input", message: message.into() }
    }

    pub fn not_found(what: &'static str) -> Self {
        Error::NotFound { what }
    }

    /// The stable code a client can branch on.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Rule { code, .. } | Error::Conflict { code, .. } | Error::Forbidden { code, .. } => code,
            Error::NotFound { .. } => "not_found",
            Error::BadCredentials => "bad_credentials",
            Error::SchemaTooNew { .. } => "schema_too_new",
            Error::Config(_) => "config",
            Error::StaleAccess => "access_changed",
            Error::Unavailable(_) => "storage_unavailable",
            Error::Busy => "busy",
            Error::DatabaseUnavailable => "database_unavailable",
            Error::Internal(_) => "internal",
        }
    }

    /// Whether this is the server's own failure rather than an answer to the request: the
    /// request was not judged, and may be made again.
    pub fn is_server_side(&self) -> bool {
        matches!(self, Error::Internal(_) | Error::Unavailable(_) | Error::Busy | Error::DatabaseUnavailable)
    }
}

/// Whether a storage error's text says the disk is full (ENOSPC, EDQUOT) or a file reached
/// the size the system allows (EFBIG).
pub(crate) fn says_disk_full(message: &str) -> bool {
    const MARKS: [&str; 6] = [
        "No space left on device",
        "os error 28)",
        "Disk quota exceeded",
        "os error 122)",
        "File too large",
        "os error 27)",
    ];
    MARKS.iter().any(|m| message.contains(m))
}

/// A storage error: [`Error::Unavailable`] when it says the disk is full, otherwise
/// [`Error::Internal`].
pub(crate) fn storage(detail: String) -> Error {
    match says_disk_full(&detail) {
        true => Error::Unavailable(detail),
        false => Error::Internal(detail),
    }
}

impl From<surrealdb::Error> for Error {
    fn from(e: surrealdb::Error) -> Self {
        storage(format!("surrealdb: {e}"))
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Internal(format!("decode: {e}"))
    }
}
