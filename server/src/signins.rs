//! Signing in and out: sign-ins (one per device, renewed by a rotating refresh token),
//! the caller's list of them, ending one, all, or a device's in an event, and changing the
//! password. Ending a sign-in closes its sync sockets on every node (see `sync::Hub`).

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{delete, get, post, put},
};
use serde::{Deserialize, Serialize};

use crate::{
    AppState,
    api::Body,
    attempts::ClientAddr,
    auth::{Caller, SignedIn, TokenError},
    error::{ApiError, ApiResult},
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sessions", post(sign_in))
        .route("/sessions/refresh", post(renew))
        .route("/me/sessions", get(list).delete(end_everywhere))
        .route("/me/sessions/current", delete(sign_out))
        .route("/me/sessions/{id}", delete(end_one))
        .route("/me/password", put(change_password))
        .route("/events/{event}/people/{person}/sessions", get(list_in_event))
        .route("/events/{event}/people/{person}/sessions/{id}", delete(end_in_event))
}

/// A sign-in opened or renewed: the access token, and the refresh token that renews it
/// (shown once; the next renewal replaces it).
#[derive(Serialize)]
pub struct SessionOut {
    pub token: String,
    pub expires_at: u64,
    pub refresh_token: String,
    /// The sign-in's id (the device's entry in `GET /v1/me/sessions`).
    pub session: String,
    pub account: engine::model::Account,
}

/// Opens a sign-in for `account` on the device called `device_name`, with its first tokens.
pub async fn open(st: &AppState, account: engine::model::Account, device_name: Option<&str>) -> ApiResult<SessionOut> {
    let opened = st.engine.open_sign_in(&account.id, device_name).await?;
    let (token, expires_at) = st.tokens.issue(&account.id, &opened.sign_in)?;
    Ok(SessionOut { token, expires_at, refresh_token: opened.refresh_token, session: opened.sign_in, account })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    password: Option<String>,
    /// An identity provider's token (instead of an email and password).
    #[serde(default)]
    identity_token: Option<String>,
    /// How the device calls itself in the list of sign-ins (`gate-b-lane-3`).
    #[serde(default)]
    device_name: Option<String>,
}

/// Signs in with an email and password (every attempt counts against the caller's address;
/// a failed one also against the account, so a password is never guessed faster than a few
/// tries a minute from anywhere), or with an identity provider's token.
async fn sign_in(
    State(st): State<AppState>,
    ClientAddr(from): ClientAddr,
    Body(b): Body<SignIn>,
) -> ApiResult<Response> {
    let account = match (b.email, b.password, b.identity_token) {
        (Some(email), Some(password), None) => {
            let _turn = st.passwords.turn(from).await.map_err(|_| ApiError::from(engine::Error::Busy))?;
            if let Err(wait) = st.attempts.sign_in(from, &email) {
                return Ok(wait.into_response());
            }
            match st.engine.log_in(&email, &password).await {
                Err(e @ engine::Error::BadCredentials) => return Err(e.into()),
                // Signed in, or not a wrong guess: the reserved failure goes back.
                other => {
                    st.attempts.sign_in_succeeded(&email);
                    other?
                }
            }
        }
        (None, None, Some(token)) => {
            let v = st.tokens.verify(&st, &token).await?;
            if v.sign_in.is_some() {
                return Err(ApiError::bad_request(
                    "invalid_body",
                    "identity_token takes an identity provider's token; renew a BackOps token with /v1/sessions/refresh",
                ));
            }
            st.engine.account(&v.account).await?.ok_or_else(ApiError::not_found)?
        }
        _ => {
            return Err(ApiError::bad_request(
                "invalid_body",
                "send either `email` and `password`, or `identity_token`",
            ));
        }
    };
    Ok(Json(open(&st, account, b.device_name.as_deref()).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Refresh {
    refresh_token: String,
}

/// Renews a sign-in: a new access token and a new refresh token (the one sent is spent).
/// Not counted against the sign-in limits. An ended, expired or unknown sign-in, or a
/// refresh token already spent: 401 `sign_in_ended` (and a spent one replayed ends it).
async fn renew(State(st): State<AppState>, Body(b): Body<Refresh>) -> ApiResult<Response> {
    let renewed = st.engine.renew_sign_in(&b.refresh_token).await.map_err(|e| match e {
        engine::Error::Forbidden { code: "sign_in_ended", .. } => ApiError::from(TokenError::Ended),
        e => e.into(),
    })?;
    let ended = || ApiError::from(TokenError::Ended);
    let account = st.engine.account(&renewed.account).await?.ok_or_else(ended)?;
    let (token, expires_at) = st.tokens.issue(&account.id, &renewed.sign_in)?;
    Ok(Json(SessionOut { token, expires_at, refresh_token: renewed.refresh_token, session: renewed.sign_in, account })
        .into_response())
}

#[derive(Serialize)]
struct Listed {
    #[serde(flatten)]
    sign_in: engine::signins::SignIn,
    /// Whether it is the sign-in of the token that asked.
    current: bool,
}

/// The caller's sign-ins that have not ended, the most recently used first.
async fn list(State(st): State<AppState>, SignedIn(me): SignedIn) -> ApiResult<Response> {
    let listed: Vec<Listed> = st
        .engine
        .sign_ins(&me.account)
        .await?
        .into_iter()
        .map(|s| Listed { current: me.sign_in.as_deref() == Some(s.id.as_str()), sign_in: s })
        .collect();
    Ok(Json(listed).into_response())
}

/// Signs this device out.
async fn sign_out(State(st): State<AppState>, SignedIn(me): SignedIn) -> ApiResult<Response> {
    let Some(id) = me.sign_in else {
        return Err(ApiError::bad_request("no_sign_in", "an identity provider's token has no sign-in to end"));
    };
    st.engine.end_sign_in(&me.account, &id).await?;
    st.hub.sign_ins_ended(&[id]);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Ends one of the caller's sign-ins (another device of theirs, or this one).
async fn end_one(State(st): State<AppState>, Caller(me): Caller, Path(id): Path<String>) -> ApiResult<Response> {
    st.engine.end_sign_in(&me, &id).await?;
    st.hub.sign_ins_ended(&[id]);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Signs out everywhere, this device included.
async fn end_everywhere(State(st): State<AppState>, Caller(me): Caller) -> ApiResult<Response> {
    let ids = st.engine.end_sign_ins(&me, None, "signed_out_everywhere").await?;
    st.hub.sign_ins_ended(&ids);
    Ok(Json(serde_json::json!({ "ended": ids.len() })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordIn {
    current_password: String,
    new_password: String,
}

/// Changes the caller's password; every other sign-in of theirs ends (this one stays).
/// Costs a password check like a sign-in, and is limited like one.
async fn change_password(
    State(st): State<AppState>,
    SignedIn(me): SignedIn,
    ClientAddr(from): ClientAddr,
    Body(b): Body<PasswordIn>,
) -> ApiResult<Response> {
    let account = st.engine.account(&me.account).await?.ok_or_else(ApiError::not_found)?;
    let _turn = st.passwords.turn(from).await.map_err(|_| ApiError::from(engine::Error::Busy))?;
    if let Err(wait) = st.attempts.sign_in(from, &account.email) {
        return Ok(wait.into_response());
    }
    let ids = match st
        .engine
        .change_password(&me.account, &b.current_password, &b.new_password, me.sign_in.as_deref())
        .await
    {
        Err(engine::Error::BadCredentials) => {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "wrong_password", "the current password is not right"));
        }
        // Not a wrong guess: the reserved failure goes back.
        other => {
            st.attempts.sign_in_succeeded(&account.email);
            other?
        }
    };
    st.hub.sign_ins_ended(&ids);
    Ok(Json(serde_json::json!({ "ended": ids.len() })).into_response())
}

/// A person's sign-ins on the devices that synced the event: for its seat holders and its
/// organization's owners.
async fn list_in_event(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path((event, person)): Path<(String, String)>,
) -> ApiResult<Response> {
    Ok(Json(st.engine.event_sign_ins(&me, &event, &person).await?).into_response())
}

/// Ends a person's sign-in on a device that synced the event (a lost tablet).
async fn end_in_event(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path((event, person, id)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    st.engine.end_event_sign_in(&me, &event, &person, &id).await?;
    st.hub.sign_ins_ended(&[id]);
    Ok(StatusCode::NO_CONTENT.into_response())
}
