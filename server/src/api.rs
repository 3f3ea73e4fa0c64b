//! Routes of the HTTP API under `/v1`: each handler is one engine call.

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, FromRequest, OriginalUri, Path, Query, Request, State, rejection::JsonRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, patch, post, put},
};
use engine::{
    ActivityPatch, AdvancePatch, InviteInput, ListFilter, NewAccount, NewActivity, NewAdvance, NewEvent, NewFile,
    NewTask, PurchaseInput, RoleInput, TaskPatch,
    model::{BillingAddress, PaymentMethod},
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::json;
use tower_http::{
    LatencyUnit,
    trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer},
};

use crate::{
    AppState,
    attempts::ClientAddr,
    auth::Caller,
    error::{ApiError, ApiResult},
};

/// A JSON request body whose every rejection is a JSON error: 400 for malformed or
/// mistyped JSON, 413 past the body limit, 415 without a JSON content type.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(rejection) => Err(match rejection {
                JsonRejection::JsonSyntaxError(_) => {
                    ApiError::bad_request("malformed_json", "the request body is not valid JSON")
                }
                JsonRejection::JsonDataError(e) => {
                    // serde's description of what is wrong with the caller's own input.
                    let detail = e.body_text();
                    let detail = detail.rsplit(": ").next().unwrap_or("invalid body").to_string();
                    ApiError::bad_request("invalid_body", format!("the request body does not fit: {detail}"))
                }
                JsonRejection::MissingJsonContentType(_) => ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "send the body as JSON with `Content-Type: application/json`",
                ),
                other if crate::listen::timed_out(&other) => body_timeout(),
                other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    "the request body is larger than this server accepts",
                ),
                other => ApiError::bad_request(
                    "invalid_body",
                    format!("the request body could not be read ({})", other.status()),
                ),
            }),
        }
    }
}

/// 408: the request body did not arrive within the server's time for it.
pub(crate) fn body_timeout() -> ApiError {
    ApiError::new(StatusCode::REQUEST_TIMEOUT, "body_timeout", "the request body did not arrive in time; send it again")
}

/// Query string parsing with JSON errors.
pub struct Q<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| Q(v))
            .map_err(|_| ApiError::bad_request("invalid_query", "the query string does not fit this endpoint"))
    }
}

/// A list's request, read from its query string: the list's own filter `F` and which page
/// (`after`, `limit`: the same two parameters on every list). Answered by [`paged`] with the
/// request's URI, so the next page's link keeps the filter.
pub(crate) struct Listed<F> {
    pub filter: F,
    pub page: engine::paging::PageAsk,
    pub uri: axum::http::Uri,
}

/// The filter of a list that has none: any parameter other than the page's is refused.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoFilter {}

impl<S: Send + Sync, F: DeserializeOwned> axum::extract::FromRequestParts<S> for Listed<F> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        let uri = parts.extensions.get::<OriginalUri>().map_or_else(|| parts.uri.clone(), |o| o.0.clone());
        let (page, filter): (Vec<&str>, Vec<&str>) = uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .partition(|p| matches!(p.split('=').next(), Some("after" | "limit")));
        fn parse<T: DeserializeOwned>(params: &[&str]) -> Result<T, ApiError> {
            format!("/?{}", params.join("&"))
                .parse::<axum::http::Uri>()
                .ok()
                .and_then(|u| Query::<T>::try_from_uri(&u).ok())
                .map(|Query(v)| v)
                .ok_or_else(|| ApiError::bad_request("invalid_query", "the query string does not fit this endpoint"))
        }
        Ok(Listed { filter: parse(&filter)?, page: parse(&page)?, uri })
    }
}

/// The handler of a list: one engine call with the caller, the event, the list's filter (if
/// it has one) and the page asked, answered a page at a time by [`paged`].
macro_rules! list_handler {
    ($name:ident, $filter:ty, $engine:ident) => {
        async fn $name(
            axum::extract::State(st): axum::extract::State<$crate::AppState>,
            $crate::auth::Caller(me): $crate::auth::Caller,
            axum::extract::Path(ev): axum::extract::Path<String>,
            list: $crate::api::Listed<$filter>,
        ) -> $crate::error::ApiResult<axum::response::Response> {
            let page = st.engine.$engine(&me, &ev, list.filter, &list.page).await?;
            Ok($crate::api::paged(&list.uri, page))
        }
    };
    ($name:ident, $engine:ident) => {
        async fn $name(
            axum::extract::State(st): axum::extract::State<$crate::AppState>,
            $crate::auth::Caller(me): $crate::auth::Caller,
            axum::extract::Path(ev): axum::extract::Path<String>,
            list: $crate::api::Listed<$crate::api::NoFilter>,
        ) -> $crate::error::ApiResult<axum::response::Response> {
            let page = st.engine.$engine(&me, &ev, &list.page).await?;
            Ok($crate::api::paged(&list.uri, page))
        }
    };
}
pub(crate) use list_handler;

/// A page of a list as its answer: the rows as a JSON array and, when more follow, a
/// `Link: </v1/…?…&after=CURSOR>; rel="next"` header — the same request with the next page's
/// cursor (see `engine::paging`). No list stops silently.
pub(crate) fn paged<T: Serialize>(uri: &axum::http::Uri, page: engine::paging::Page<T>) -> Response {
    let mut resp = Json(page.items).into_response();
    if let Some(next) = page.next {
        let after = format!("after={next}");
        let query: Vec<&str> = uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty() && !p.starts_with("after="))
            .chain([after.as_str()])
            .collect();
        let link = format!("<{}?{}>; rel=\"next\"", uri.path(), query.join("&"));
        if let Ok(v) = axum::http::HeaderValue::from_str(&link) {
            resp.headers_mut().insert(axum::http::header::LINK, v);
        }
    }
    resp
}

pub(crate) fn created<T: Serialize>(v: T) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

pub fn router(state: AppState, body_limit_bytes: usize, import_limit_bytes: usize) -> Router {
    let v1 = Router::new()
        .route("/health", get(health))
        .route("/sync", get(crate::sync::handler))
        .route("/accounts", post(sign_up))
        .route("/me", get(me))
        .route("/me/email/code", post(send_email_code))
        .route("/me/email/proof", post(prove_email))
        .route("/orgs", get(list_orgs).post(create_org))
        .route("/orgs/{org}", get(get_org).patch(rename_org))
        .route("/orgs/{org}/members", get(list_org_members).post(add_org_member))
        .route("/orgs/{org}/members/{person}", patch(set_org_role).delete(remove_org_member))
        .route("/orgs/{org}/billing", get(billing))
        .route("/orgs/{org}/billing/payment-method", put(set_payment_method))
        .route("/orgs/{org}/billing/address", put(set_billing_address))
        .route("/orgs/{org}/licenses", get(list_licenses).post(purchase_license))
        .route("/orgs/{org}/events", get(list_org_events).post(create_event))
        .route("/events", get(list_events))
        .route("/events/{event}", get(get_event).patch(update_event))
        .route("/events/{event}/seats", get(seats).post(assign_seat))
        .route("/events/{event}/seats/{person}", axum::routing::delete(release_seat))
        .route("/events/{event}/collaborators", get(list_collaborators).post(create_collaborator))
        .route("/events/{event}/collaborators/{collab}", patch(update_collaborator))
        .route("/events/{event}/collaborators/{collab}/members", get(list_members).post(invite))
        .route("/events/{event}/collaborators/{collab}/members/{person}", patch(set_member).delete(remove_member))
        .route("/events/{event}/dashboard", get(dashboard))
        .route("/events/{event}/tasks", get(list_tasks).post(create_task))
        .route("/events/{event}/tasks/{id}", patch(update_task).delete(delete_task))
        .route("/events/{event}/activities", get(list_activities).post(create_activity))
        .route("/events/{event}/activities/{id}", patch(update_activity).delete(delete_activity))
        .route("/events/{event}/files", get(list_files).post(add_file))
        .route("/events/{event}/files/{id}", axum::routing::delete(delete_file))
        .route("/events/{event}/advances", get(list_advances).post(create_advance))
        .route("/events/{event}/advances/{id}", patch(update_advance).delete(delete_advance))
        .merge(crate::signins::routes())
        .merge(crate::frontgate::routes(import_limit_bytes))
        .merge(crate::labor::routes())
        .merge(crate::assets::routes())
        .merge(crate::files::routes())
        .merge(crate::dashboard::routes());
    Router::new()
        .nest("/v1", v1)
        .merge(crate::dashboard::pages())
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this method is not allowed here")
        })
        .layer(DefaultBodyLimit::max(body_limit_bytes))
        .layer(axum::middleware::from_fn_with_state(state.clone(), writes_need_room))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &axum::http::Request<_>| {
                    tracing::info_span!(
                        "request",
                        method = %req.method(),
                        path = %req.uri().path(),
                        caller = tracing::field::Empty
                    )
                })
                .on_request(())
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO).latency_unit(LatencyUnit::Millis))
                .on_failure(DefaultOnFailure::new().level(tracing::Level::ERROR)),
        )
        .with_state(state)
}

/// While the disk guard holds the storage full (see `engine::disk`), a request that would
/// write (every method but GET, HEAD and OPTIONS; signing in is let through) is refused with
/// 507 `storage_unavailable` before its body is read. Reads go on.
async fn writes_need_room(State(st): State<AppState>, req: Request, next: axum::middleware::Next) -> Response {
    use axum::http::Method;
    let reads = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let signing_in = matches!(req.uri().path(), "/v1/sessions" | "/v1/sessions/refresh");
    if !reads && !signing_in && st.engine.store().guard().check().is_err() {
        return ApiError::storage_unavailable().into_response();
    }
    next.run(req).await
}

/// 200 while the node serves; 503 `storage_failed` once its store failed a write for want of
/// space (see `engine::disk`): it serves reads, and writes again only after a restart.
async fn health(State(st): State<AppState>) -> ApiResult<Response> {
    if st.engine.store().guard().broken() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_failed",
            "the database failed a write for want of space: this node serves reads only; free space and restart it",
        ));
    }
    let version = st.engine.store().schema_version().await?;
    Ok(Json(json!({ "status": "ok", "schema_version": version })).into_response())
}

/// A new account's details, and the name of the device it signs in on.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignUp {
    email: String,
    name: String,
    password: String,
    #[serde(default)]
    device_name: Option<String>,
}

async fn sign_up(
    State(st): State<AppState>,
    ClientAddr(from): ClientAddr,
    Body(input): Body<SignUp>,
) -> ApiResult<Response> {
    if let Err(wait) = st.attempts.sign_up(from) {
        return Ok(wait.into_response());
    }
    let _turn = st.passwords.turn(from).await.map_err(|_| ApiError::from(engine::Error::Busy))?;
    let SignUp { email, name, password, device_name } = input;
    let account = st.engine.sign_up(NewAccount { email, name, password }).await?;
    let opened = crate::signins::open(&st, account, device_name.as_deref()).await?;
    // The code that proves the email goes out at once, without holding the answer up.
    let (engine, mailer, id) = (st.engine.clone(), st.mailer.clone(), opened.account.id.clone());
    tokio::spawn(async move {
        if let Err(e) = mail_code(&engine, &mailer, &id).await {
            tracing::warn!(account = %id, error = %e.message, "the code that proves the email was not sent");
        }
    });
    Ok(created(opened))
}

/// Makes a code for `account` and mails it.
async fn mail_code(
    engine: &engine::Engine,
    mailer: &crate::mail::Mailer,
    account: &str,
) -> ApiResult<serde_json::Value> {
    let code = engine.new_email_code(account).await?;
    if let Err(e) = mailer.send_code(&code).await {
        tracing::error!(account, error = %e, "sending mail failed");
        return Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "mail_unavailable",
            "the code could not be sent just now; try again in a minute",
        ));
    }
    Ok(serde_json::json!({ "sent_to": code.email, "expires_at": code.expires_at }))
}

/// Sends a new code that proves the caller's email (at most one every 30 seconds).
async fn send_email_code(State(st): State<AppState>, Caller(me): Caller) -> ApiResult<Response> {
    let sent = mail_code(&st.engine, &st.mailer, &me).await?;
    Ok((axum::http::StatusCode::ACCEPTED, Json(sent)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeIn {
    code: String,
}

/// Proves the caller's email with the code sent to it; what waited for the address is
/// theirs from now on.
async fn prove_email(State(st): State<AppState>, Caller(me): Caller, Body(b): Body<CodeIn>) -> ApiResult<Response> {
    Ok(Json(st.engine.prove_email(&me, &b.code).await?).into_response())
}

async fn me(State(st): State<AppState>, Caller(me): Caller) -> ApiResult<Json<engine::model::Account>> {
    st.engine.account(&me).await?.map(Json).ok_or_else(ApiError::not_found)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NameIn {
    name: String,
}

async fn list_orgs(State(st): State<AppState>, Caller(me): Caller) -> ApiResult<Response> {
    Ok(Json(st.engine.list_orgs(&me).await?).into_response())
}

async fn create_org(State(st): State<AppState>, Caller(me): Caller, Body(b): Body<NameIn>) -> ApiResult<Response> {
    Ok(created(st.engine.create_team_org(&me, &b.name).await?))
}

async fn get_org(State(st): State<AppState>, Caller(me): Caller, Path(org): Path<String>) -> ApiResult<Response> {
    Ok(Json(st.engine.get_org(&me, &org).await?).into_response())
}

async fn rename_org(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path(org): Path<String>,
    Body(b): Body<NameIn>,
) -> ApiResult<Response> {
    Ok(Json(st.engine.rename_org(&me, &org, &b.name).await?).into_response())
}

async fn list_org_members(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path(org): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(st.engine.list_org_members(&me, &org).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddMember {
    email: String,
    role: engine::model::OrgRole,
}

async fn add_org_member(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path(org): Path<String>,
    Body(b): Body<AddMember>,
) -> ApiResult<Response> {
    let member = st.engine.add_org_member(&me, &org, &b.email, b.role).await?;
    if member.pending {
        return Ok((axum::http::StatusCode::ACCEPTED, Json(member)).into_response());
    }
    Ok(created(member))
}

async fn set_org_role(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path((org, person)): Path<(String, String)>,
    Body(b): Body<RoleInput>,
) -> ApiResult<Response> {
    st.engine.set_org_role(&me, &org, &person, b.role).await?;
    Ok(no_content())
}

async fn remove_org_member(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path((org, person)): Path<(String, String)>,
) -> ApiResult<Response> {
    st.engine.remove_org_member(&me, &org, &person).await?;
    Ok(no_content())
}

async fn billing(State(st): State<AppState>, Caller(me): Caller, Path(org): Path<String>) -> ApiResult<Response> {
    Ok(Json(st.engine.billing(&me, &org).await?).into_response())
}

async fn set_payment_method(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path(org): Path<String>,
    Body(b): Body<PaymentMethod>,
) -> ApiResult<Response> {
    Ok(Json(st.engine.set_payment_method(&me, &org, b).await?).into_response())
}

async fn set_billing_address(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path(org): Path<String>,
    Body(b): Body<BillingAddress>,
) -> ApiResult<Response> {
    Ok(Json(st.engine.set_billing_address(&me, &org, b).await?).into_response())
}

async fn list_licenses(State(st): State<AppState>, Caller(me): Caller, Path(org): Path<String>) -> ApiResult<Response> {
    Ok(Json(st.engine.list_licenses(&me, &org).await?).into_response())
}

async fn purchase_license(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path(org): Path<String>,
    Body(b): Body<PurchaseInput>,
) -> ApiResult<Response> {
    Ok(created(st.engine.purchase_license(&me, &org, b).await?))
}

async fn list_org_events(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path(org): Path<String>,
) -> ApiResult<Response> {
    st.engine.get_org(&me, &org).await?;
    Ok(Json(st.engine.list_events(&me, Some(&org)).await?).into_response())
}

async fn create_event(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path(org): Path<String>,
    Body(b): Body<NewEvent>,
) -> ApiResult<Response> {
    Ok(created(st.engine.create_event(&me, &org, b).await?))
}

async fn list_events(State(st): State<AppState>, Caller(me): Caller) -> ApiResult<Response> {
    Ok(Json(st.engine.list_events(&me, None).await?).into_response())
}

async fn get_event(State(st): State<AppState>, Caller(me): Caller, Path(ev): Path<String>) -> ApiResult<Response> {
    Ok(Json(st.engine.get_event(&me, &ev).await?).into_response())
}

async fn update_event(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path(ev): Path<String>,
    Body(patch): Body<engine::EventPatch>,
) -> ApiResult<Response> {
    Ok(Json(st.engine.update_event(&me, &ev, patch).await?).into_response())
}

async fn seats(State(st): State<AppState>, Caller(me): Caller, Path(ev): Path<String>) -> ApiResult<Response> {
    Ok(Json(st.engine.seats(&me, &ev).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailIn {
    email: String,
}

async fn assign_seat(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path(ev): Path<String>,
    Body(b): Body<EmailIn>,
) -> ApiResult<Response> {
    match st.engine.assign_seat(&me, &ev, &b.email).await? {
        a @ engine::model::Assigned::Pending(_) => Ok((axum::http::StatusCode::ACCEPTED, Json(a)).into_response()),
        a => Ok(created(a)),
    }
}

async fn release_seat(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path((ev, person)): Path<(String, String)>,
) -> ApiResult<Response> {
    st.engine.release_seat(&me, &ev, &person).await?;
    Ok(no_content())
}

async fn list_collaborators(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path(ev): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(st.engine.list_collaborators(&me, &ev).await?).into_response())
}

async fn create_collaborator(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path(ev): Path<String>,
    Body(b): Body<NameIn>,
) -> ApiResult<Response> {
    Ok(created(st.engine.create_collaborator(&me, &ev, &b.name).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CollabPatch {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    read_only: Option<bool>,
}

async fn update_collaborator(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path((ev, c)): Path<(String, String)>,
    Body(b): Body<CollabPatch>,
) -> ApiResult<Response> {
    Ok(Json(st.engine.update_collaborator(&me, &ev, &c, b.name.as_deref(), b.read_only).await?).into_response())
}

async fn list_members(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path((ev, c)): Path<(String, String)>,
) -> ApiResult<Response> {
    Ok(Json(st.engine.list_collab_members(&me, &ev, &c).await?).into_response())
}

async fn invite(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path((ev, c)): Path<(String, String)>,
    Body(b): Body<InviteInput>,
) -> ApiResult<Response> {
    Ok(created(st.engine.invite(&me, &ev, &c, b).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberPatch {
    read_only: bool,
}

async fn set_member(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path((ev, c, person)): Path<(String, String, String)>,
    Body(b): Body<MemberPatch>,
) -> ApiResult<Response> {
    st.engine.set_member_read_only(&me, &ev, &c, &person, b.read_only).await?;
    Ok(no_content())
}

async fn remove_member(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path((ev, c, person)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    st.engine.remove_collab_member(&me, &ev, &c, &person).await?;
    Ok(no_content())
}

async fn dashboard(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path(ev): Path<String>,
    Q(f): Q<ListFilter>,
) -> ApiResult<Response> {
    Ok(Json(st.engine.dashboard(&me, &ev, f.collaborator).await?).into_response())
}

/// List, create, update and delete handlers of one tab, each a single engine call.
macro_rules! tab_handlers {
    ($list:ident, $create:ident, $new:ty, $engine_list:ident, $engine_create:ident) => {
        list_handler!($list, ListFilter, $engine_list);

        async fn $create(
            State(st): State<AppState>,
            Caller(me): Caller,
            Path(ev): Path<String>,
            Body(b): Body<$new>,
        ) -> ApiResult<Response> {
            Ok(created(st.engine.$engine_create(&me, &ev, b).await?))
        }
    };
}

macro_rules! update_handler {
    ($name:ident, $patch:ty, $engine:ident) => {
        async fn $name(
            State(st): State<AppState>,
            Caller(me): Caller,
            Path((ev, id)): Path<(String, String)>,
            Body(b): Body<$patch>,
        ) -> ApiResult<Response> {
            Ok(Json(st.engine.$engine(&me, &ev, &id, b).await?).into_response())
        }
    };
}

macro_rules! delete_handler {
    ($name:ident, $engine:ident) => {
        async fn $name(
            State(st): State<AppState>,
            Caller(me): Caller,
            Path((ev, id)): Path<(String, String)>,
        ) -> ApiResult<Response> {
            st.engine.$engine(&me, &ev, &id).await?;
            Ok(no_content())
        }
    };
}

tab_handlers!(list_tasks, create_task, NewTask, list_tasks, create_task);
update_handler!(update_task, TaskPatch, update_task);
delete_handler!(delete_task, delete_task);
tab_handlers!(list_activities, create_activity, NewActivity, list_activities, create_activity);
update_handler!(update_activity, ActivityPatch, update_activity);
delete_handler!(delete_activity, delete_activity);
tab_handlers!(list_files, add_file, NewFile, list_files, add_file);
delete_handler!(delete_file, delete_file);
tab_handlers!(list_advances, create_advance, NewAdvance, list_advances, create_advance);
update_handler!(update_advance, AdvancePatch, update_advance);
delete_handler!(delete_advance, delete_advance);
