//! Routes of crew time: punches and timecards (a member their own, the event team
//! everyone's), approval, labor rules and locked periods. Punches themselves arrive from
//! phones over the sync socket.

use axum::{
    Json, Router,
    extract::{Path, State},
    response::{IntoResponse, Response},
    routing::{get, put},
};
use engine::labor::{LaborFilter, NewPeriod, RulesPatch};

use crate::{
    AppState,
    api::{Body, created, list_handler},
    auth::Caller,
    error::ApiResult,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/events/{event}/punches", get(list_punches))
        .route("/events/{event}/timecards", get(list_timecards))
        .route("/events/{event}/timecards/{person}/{day}/approval", put(approve))
        .route("/events/{event}/labor/rules", get(get_rules).patch(set_rules))
        .route("/events/{event}/labor/periods", get(list_periods).post(lock_period))
}

list_handler!(list_punches, LaborFilter, list_punches);

list_handler!(list_timecards, LaborFilter, list_timecards);

async fn approve(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path((ev, person, day)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    Ok(Json(st.engine.approve_timecard(&me, &ev, &person, &day).await?).into_response())
}

async fn get_rules(State(st): State<AppState>, Caller(me): Caller, Path(ev): Path<String>) -> ApiResult<Response> {
    Ok(Json(st.engine.get_labor_rules(&me, &ev).await?).into_response())
}

async fn set_rules(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path(ev): Path<String>,
    Body(b): Body<RulesPatch>,
) -> ApiResult<Response> {
    Ok(Json(st.engine.set_labor_rules(&me, &ev, b).await?).into_response())
}

async fn list_periods(State(st): State<AppState>, Caller(me): Caller, Path(ev): Path<String>) -> ApiResult<Response> {
    Ok(Json(st.engine.list_periods(&me, &ev).await?).into_response())
}

async fn lock_period(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path(ev): Path<String>,
    Body(b): Body<NewPeriod>,
) -> ApiResult<Response> {
    Ok(created(st.engine.lock_period(&me, &ev, b).await?))
}
