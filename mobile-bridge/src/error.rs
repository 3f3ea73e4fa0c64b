//! The bridge's one public error type.
//!
//! Few variants, each with a stable `code` an app can branch on and a sentence it can show.
//! Nothing internal crosses: storage failures are logged on the device and reach the app as
//! [`BackOpsError::Storage`] with a fixed message.

/// What went wrong with a call.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum BackOpsError {
    /// The input is not valid, or a business rule refuses it (`invalid_input`, a rule's code).
    #[error("{message}")]
    Invalid { code: String, message: String },
    /// The person may not do this (`read_only`, `not_permitted`, `not_signed_in`, …).
    #[error("{message}")]
    Forbidden { code: String, message: String },
    /// Not held on this device: not followed, not synced yet, or not visible to the person.
    #[error("{message}")]
    NotFound { message: String },
    /// The device's state stands in the way (`changes_pending`, `other_account`, …).
    #[error("{message}")]
    Conflict { code: String, message: String },
    /// The call needs something done first (`sign_in`, `shut_down`, `wrong_thread`).
    #[error("{message}")]
    NotReady { code: String, message: String },
    /// The device's storage failed or cannot be used (`storage`, `storage_unavailable` when
    /// the device is out of space, `schema_too_new`, `config`).
    #[error("{message}")]
    Storage { code: String, message: String },
}

impl BackOpsError {
    /// The stable code of the error.
    pub fn code(&self) -> &str {
        match self {
            BackOpsError::NotFound { .. } => "not_found",
            BackOpsError::Invalid { code, .. }
            | BackOpsError::Forbidden { code, .. }
            | BackOpsError::Conflict { code, .. }
            | BackOpsError::NotReady { code, .. }
            | BackOpsError::Storage { code, .. } => code,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        BackOpsError::Invalid { code: "invalid_input".into(), message: message.into() }
    }

    pub(crate) fn not_ready(code: &str, message: impl Into<String>) -> Self {
        BackOpsError::NotReady { code: code.into(), message: message.into() }
    }

    pub(crate) fn storage(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "device storage failed");
        BackOpsError::Storage { code: "storage".into(), message: "the device's storage failed; try again".into() }
    }
}

/// A listener the app implements failed (threw): the bridge logs it and carries on.
impl From<uniffi::UnexpectedUniFFICallbackError> for BackOpsError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        tracing::warn!(reason = %e.reason, "the app's sync listener failed");
        BackOpsError::Invalid { code: "listener_failed".into(), message: "the app's listener failed".into() }
    }
}

impl From<engine::Error> for BackOpsError {
    fn from(e: engine::Error) -> Self {
        use engine::Error as E;
        let code = e.code().to_string();
        match e {
            E::Rule { message, .. } => BackOpsError::Invalid { code, message },
            E::Forbidden { message, .. } => BackOpsError::Forbidden { code, message },
            E::NotFound { .. } => BackOpsError::NotFound { message: e.to_string() },
            E::Conflict { message, .. } => BackOpsError::Conflict { code, message },
            E::BadCredentials => BackOpsError::Forbidden { code, message: e.to_string() },
            E::SchemaTooNew { .. } => BackOpsError::Storage { code, message: e.to_string() },
            E::Config(detail) => {
                tracing::error!(error = %detail, "device storage cannot be opened");
                let message = if detail.contains("in use by another process") {
                    "the data directory is in use by another BackOps client; shut that one down first"
                } else {
                    "the device's storage cannot be opened"
                };
                BackOpsError::Storage { code, message: message.into() }
            }
            E::StaleAccess => {
                BackOpsError::Conflict { code, message: "access changed while the call ran; try again".into() }
            }
            E::Unavailable(detail) => {
                tracing::error!(error = %detail, "device storage is full");
                BackOpsError::Storage {
                    code,
                    message: "this device is out of storage: nothing was saved; free some space and try again".into(),
                }
            }
            E::Busy | E::DatabaseUnavailable => BackOpsError::Conflict { code, message: e.to_string() },
            E::Internal(detail) => BackOpsError::storage(detail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internals_never_reach_the_app() {
        let e: BackOpsError = engine::Error::Internal("surrealdb: table rec at /home/ann/x".into()).into();
        assert_eq!(e.code(), "storage");
        assert!(!e.to_string().contains("surrealdb") && !e.to_string().contains("/home"));
        let e: BackOpsError = engine::Error::forbidden("read_only", "this collaborator is read-only").into();
        assert_eq!((e.code(), e.to_string().as_str()), ("read_only", "this collaborator is read-only"));
        let e: BackOpsError =
            engine::Error::Config("cannot open the database at surrealkv:///home/ann/x: io error".into()).into();
        assert_eq!(e.code(), "config");
        assert!(!e.to_string().contains("/home") && !e.to_string().contains("io error"), "{e}");
        let e: BackOpsError = engine::Error::not_found("task").into();
        assert_eq!((e.code(), e.to_string().as_str()), ("not_found", "task not found"));
    }
}
