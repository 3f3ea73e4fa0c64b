//! Routes of gear custody: assets (registered by the event team), where each is, the
//! overdue ones, custody history, and check-out/in from a desk on the web (desk devices push
//! their moves over the sync socket).

use axum::{
    Json, Router,
    extract::{OriginalUri, Path, State},
    response::{IntoResponse, Response},
    routing::get,
};
use engine::{
    assets::{NewAsset, NewMove},
    paging::PageAsk,
};
use serde::Deserialize;

use crate::{
    AppState,
    api::{Body, Q, created, paged},
    auth::Caller,
    error::ApiResult,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/events/{event}/assets", get(list_assets).post(create_asset))
        .route("/events/{event}/assets/{tag}/custody", get(history).post(record_move))
        .route("/events/{event}/custody-flags", get(flags))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AssetFilter {
    #[serde(default)]
    overdue: bool,
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

async fn list_assets(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path(ev): Path<String>,
    OriginalUri(uri): OriginalUri,
    Q(f): Q<AssetFilter>,
) -> ApiResult<Response> {
    let ask = PageAsk { after: f.after, limit: f.limit };
    Ok(paged(&uri, st.engine.list_assets(&me, &ev, f.overdue, &ask).await?))
}

async fn create_asset(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path(ev): Path<String>,
    Body(b): Body<NewAsset>,
) -> ApiResult<Response> {
    Ok(created(st.engine.create_asset(&me, &ev, b).await?))
}

async fn history(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path((ev, tag)): Path<(String, String)>,
) -> ApiResult<Response> {
    Ok(Json(st.engine.custody_history(&me, &ev, &tag).await?).into_response())
}

/// A desk's move; the path names the asset.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveIn {
    #[serde(default)]
    id: Option<String>,
    action: engine::model::CustodyAction,
    #[serde(default)]
    holder: Option<String>,
    #[serde(default)]
    due_at: Option<String>,
    #[serde(default)]
    condition: Option<engine::model::Condition>,
    #[serde(default)]
    note: Option<String>,
}

async fn record_move(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path((ev, tag)): Path<(String, String)>,
    Body(b): Body<MoveIn>,
) -> ApiResult<Response> {
    let m = NewMove {
        id: b.id,
        asset: tag,
        action: b.action,
        holder: b.holder,
        due_at: b.due_at,
        condition: b.condition,
        note: b.note,
        device_time: engine::time::now(),
    };
    Ok(created(st.engine.record_custody(&me, &ev, m).await?))
}

async fn flags(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path(ev): Path<String>,
    OriginalUri(uri): OriginalUri,
    Q(ask): Q<PageAsk>,
) -> ApiResult<Response> {
    Ok(paged(&uri, st.engine.list_custody_flags(&me, &ev, &ask).await?))
}
