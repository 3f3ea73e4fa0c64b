//! The web dashboard: its page and assets, built from `server/dashboard/` (TypeScript, see
//! its README section) and embedded in the binary, so `backops serve` is all a browser
//! needs; and the two reads only the dashboard makes (the event's devices, people's names).
//!
//! The page is served with a strict Content-Security-Policy: scripts and styles from this
//! origin only, no inline code, connections to this origin only (the API and the socket).

use std::sync::OnceLock;

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use sha2::{Digest, Sha256};

use crate::{AppState, auth::Caller, error::ApiResult};

/// The embedded assets: path, media type, bytes. `app.js` is esbuild's bundle of
/// `dashboard/src`; `.ci/run` rebuilds it and fails when the committed copy is stale.
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("/", "text/html; charset=utf-8", include_bytes!("../dashboard/index.html")),
    ("/app.js", "text/javascript; charset=utf-8", include_bytes!("../dashboard/dist/app.js")),
    ("/app.css", "text/css; charset=utf-8", include_bytes!("../dashboard/src/app.css")),
    ("/icon.svg", "image/svg+xml", include_bytes!("../dashboard/icon.svg")),
];

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; \
                   connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; \
                   frame-ancestors 'none'";

/// The page and its assets, at the root of the server.
pub fn pages() -> Router<AppState> {
    let mut r = Router::new();
    for (i, (path, _, _)) in ASSETS.iter().enumerate() {
        r = r.route(path, get(move |headers: HeaderMap| async move { asset(i, &headers) }));
    }
    r
}

/// The reads under `/v1` that only the dashboard makes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/events/{event}/devices", get(devices)).route("/events/{event}/people", get(people))
}

fn etags() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS.iter().map(|(_, _, bytes)| format!("\"{}\"", hex(&Sha256::digest(bytes)[..12]))).collect()
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn asset(i: usize, headers: &HeaderMap) -> Response {
    let (_, media_type, bytes) = ASSETS[i];
    let etag = &etags()[i];
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut resp = if fresh { StatusCode::NOT_MODIFIED.into_response() } else { bytes.into_response() };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    // Revalidated on every load (cheap with the ETag), so a new server version's page is
    // never mixed with an old script.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

/// The devices that synced the event (through any server), with their last sync and
/// whether they are connected now, a page at a time, the most recent first: for seat
/// holders (the event's whole picture).
async fn devices(
    State(st): State<AppState>,
    Caller(me): Caller,
    Path(ev): Path<String>,
    list: crate::api::Listed<crate::api::NoFilter>,
) -> ApiResult<Response> {
    let stored = st.engine.devices_seen(&me, &ev, &list.page).await?;
    let sessions = st.engine.device_sessions(&me, &ev, st.hub.nodes_alive_since()).await?;
    let next = stored.next.clone();
    let items = st.hub.devices.merge(&ev, stored.items, sessions);
    Ok(crate::api::paged(&list.uri, engine::paging::Page { items, next }))
}

async fn people(State(st): State<AppState>, Caller(me): Caller, Path(ev): Path<String>) -> ApiResult<Response> {
    Ok(Json(st.engine.event_people(&me, &ev).await?).into_response())
}
