//! The one error type of the HTTP API. Every failure leaves as JSON `{code, message}` with
//! the status it deserves; internal details go to the log, never to the caller.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds a client is told to wait before trying again (`Retry-After`).
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), retry_after: None }
    }

    pub fn unauthenticated(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found() -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    }
}

/// How long a client is told to wait before writing again to a server whose storage is full.
pub const STORAGE_RETRY_AFTER_SECS: u64 = 30;
/// How long a client is told to wait when the server is at its bound of password hashing.
pub const BUSY_RETRY_AFTER_SECS: u64 = 1;

impl ApiError {
    /// 507: the server's storage cannot take the request now; nothing of it was kept.
    pub fn storage_unavailable() -> Self {
        ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "storage_unavailable",
            "the server's storage is full: nothing of this request was saved; try again later",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(Body { code: self.code, message: &self.message })).into_response();
        let wait = match self.status {
            StatusCode::INSUFFICIENT_STORAGE => Some(STORAGE_RETRY_AFTER_SECS),
            _ => self.retry_after,
        };
        if let Some(secs) = wait {
            r.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        r
    }
}

impl From<engine::Error> for ApiError {
    fn from(e: engine::Error) -> Self {
        use engine::Error as E;
        if let E::Unavailable(detail) = &e {
            tracing::error!(%detail, "a write was refused: storage full");
            return ApiError::storage_unavailable();
        }
        if matches!(e, E::Busy | E::DatabaseUnavailable) {
            let mut err = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.code(), e.to_string());
            err.retry_after = Some(BUSY_RETRY_AFTER_SECS);
            return err;
        }
        let status = match &e {
            E::Rule { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            E::Conflict { .. } | E::StaleAccess => StatusCode::CONFLICT,
            E::Forbidden { .. } => StatusCode::FORBIDDEN,
            E::NotFound { .. } => StatusCode::NOT_FOUND,
            E::BadCredentials => StatusCode::UNAUTHORIZED,
            E::SchemaTooNew { .. }
            | E::Config(_)
            | E::Internal(_)
            | E::Unavailable(_)
            | E::Busy
            | E::DatabaseUnavailable => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = ?e, "request failed");
            return ApiError::new(status, "internal", "something went wrong on the server; try again");
        }
        ApiError::new(status, e.code(), e.to_string())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
