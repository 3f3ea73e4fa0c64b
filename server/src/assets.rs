//! Routes of gear custody: assets (registered by the event team), where each is, the
//! overdue ones, custody history, and check-out/in from a desk on the web (desk devices push
//! their moves over the sync socket).

use axum::{
    Json, Router,
    extract::{Path, State},
    response::{IntoResponse, Response},
    routing::get,
};
use engine::assets::{AssetFilter, NewAsset, NewMove};
use serde::Deserialize;

use crate::{
    AppState,
    api::{Body, created, list_handler},
    auth::Caller,
    error::ApiResult,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/events/{event}/assets", get(list_assets).post(create_asset))
        .route("/events/{event}/assets/{tag}/custody", get(history).post(record_move))
        .route("/events/{event}/custody-flags", get(flags))
}

list_handler!(list_assets, AssetFilter, list_assets);

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

list_handler!(flags, list_custody_flags);
