//! Routes of the field modules and the front gate: module grants, zones, gates,
//! credentials (one by one and imported from CSV), scans and their flags. One engine call
//! per handler, as in `api.rs`; scans themselves arrive from lanes over the sync socket.

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Path, State, rejection::BytesRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, patch, post, put},
};
use engine::{
    CredentialPatch, NewCredential, NewGate, NewZone,
    frontgate::{IMPORT_ERRORS_MAX, ScanFilter},
};
use serde_json::json;

use crate::{
    AppState,
    api::{Body, created, list_handler},
    auth::Caller,
    error::{ApiError, ApiResult},
};

pub fn routes(import_limit_bytes: usize) -> Router<AppState> {
    Router::new()
        .route("/events/{event}/modules", get(list_grants))
        .route("/events/{event}/collaborators/{collab}/modules/{module}", put(grant).delete(revoke))
        .route("/events/{event}/zones", get(list_zones).post(create_zone))
        .route("/events/{event}/gates", get(list_gates).post(create_gate))
        .route("/events/{event}/credentials", get(list_credentials).post(create_credential))
        .route(
            "/events/{event}/credentials/import",
            post(import_credentials).layer(DefaultBodyLimit::max(import_limit_bytes)),
        )
        .route("/events/{event}/credentials/{uid}", patch(update_credential).get(get_credential))
        .route("/events/{event}/scans", get(list_scans))
        .route("/events/{event}/scan-flags", get(list_flags))
}

async fn list_grants(State(st): State<AppState>, Caller(me): Caller, Path(ev): Path<String>) -> ApiResult<Response> {
    Ok(Json(st.engine.list_module_grants(&me, &ev).await?).into_response())
}

async fn grant(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path((ev, collab, module)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    Ok(Json(st.engine.grant_module(&me, &ev, &collab, &module).await?).into_response())
}

async fn revoke(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path((ev, collab, module)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    st.engine.revoke_module(&me, &ev, &collab, &module).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_zones(State(st): State<AppState>, Caller(me): Caller, Path(ev): Path<String>) -> ApiResult<Response> {
    Ok(Json(st.engine.list_zones(&me, &ev).await?).into_response())
}

async fn create_zone(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path(ev): Path<String>,
    Body(b): Body<NewZone>,
) -> ApiResult<Response> {
    Ok(created(st.engine.create_zone(&me, &ev, b).await?))
}

async fn list_gates(State(st): State<AppState>, Caller(me): Caller, Path(ev): Path<String>) -> ApiResult<Response> {
    Ok(Json(st.engine.list_gates(&me, &ev).await?).into_response())
}

async fn create_gate(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path(ev): Path<String>,
    Body(b): Body<NewGate>,
) -> ApiResult<Response> {
    Ok(created(st.engine.create_gate(&me, &ev, b).await?))
}

list_handler!(list_credentials, list_credentials);

async fn create_credential(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path(ev): Path<String>,
    Body(b): Body<NewCredential>,
) -> ApiResult<Response> {
    Ok(created(st.engine.create_credential(&me, &ev, b).await?))
}

async fn get_credential(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path((ev, uid)): Path<(String, String)>,
) -> ApiResult<Response> {
    Ok(Json(st.engine.get_credential(&me, &ev, &uid).await?).into_response())
}

async fn update_credential(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path((ev, uid)): Path<(String, String)>,
    Body(b): Body<CredentialPatch>,
) -> ApiResult<Response> {
    Ok(Json(st.engine.update_credential(&me, &ev, &uid, b).await?).into_response())
}

/// `POST …/credentials/import` with a CSV body (`uid,kind,holder_name,zones[,valid_days,
/// holder_email,holder_phone,notes]`). A file with malformed lines imports nothing: 422 with
/// every bad line (up to a limit) and what is wrong with it.
async fn import_credentials(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path(ev): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the import is larger than this server accepts",
            )
        } else {
            ApiError::bad_request("invalid_body", "the import could not be read")
        }
    })?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("invalid_body", "the import must be CSV text in UTF-8"))?;
    match st.engine.import_credentials(&me, &ev, text).await? {
        Ok(report) => Ok(Json(report).into_response()),
        Err((errors, count)) => {
            let message = if count > errors.len() {
                format!("{count} lines are malformed (the first {IMPORT_ERRORS_MAX} are listed); nothing was imported")
            } else {
                format!("{count} line(s) malformed; nothing was imported")
            };
            let body = json!({ "code": "import_rejected", "message": message, "malformed": count, "errors": errors });
            Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response())
        }
    }
}

list_handler!(list_scans, ScanFilter, list_scans);

list_handler!(list_flags, list_scan_flags);
