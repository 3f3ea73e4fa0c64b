//! The server's accept loop: HTTP/1.1 (and WebSocket upgrades) with time limits on what a
//! client sends, and caps on connections, so that slow or piled-up clients cannot hold the
//! node's connections or memory:
//!
//! - a request's headers must arrive within [`HttpLimits::header_timeout`] (which also
//!   closes a kept-alive connection that sends no next request for as long);
//! - a request's body within [`HttpLimits::body_timeout`] from its headers (upload chunks
//!   have their own limit: nothing arriving for `chunk_idle_timeout`), answered 408
//!   `body_timeout`;
//! - at most [`HttpLimits::connections_max`] connections, and
//!   [`HttpLimits::connections_per_address_max`] from one address (trusted proxies are
//!   not counted per address); past either, a new connection is closed at once.

use std::{
    collections::HashMap,
    convert::Infallible,
    net::IpAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use axum::{Router, body::Body, extract::ConnectInfo};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::watch;

/// Limits of plain HTTP (see the module's note).
#[derive(Clone, Debug)]
pub struct HttpLimits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub connections_max: usize,
    pub connections_per_address_max: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            connections_max: 20_000,
            // A venue's crew behind one NAT: thousands of devices, one socket each.
            connections_per_address_max: 5_000,
        }
    }
}

/// The pace a declared body is given time for, beyond the body limit itself.
const SLOW_BYTES_PER_SEC: u64 = 32 * 1024;

/// The connections open, in all and by address.
#[derive(Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// A connection's place in [`Open`], held by the connection and by each of its requests
/// (a WebSocket keeps it for as long as the socket is open); the last one dropped gives the
/// place back.
#[derive(Clone)]
pub struct Held(#[allow(dead_code)] Arc<Place>);

/// A connection's place in [`Open`]; dropping it gives the place back.
struct Place {
    open: Arc<Mutex<Open>>,
    address: Option<IpAddr>,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut o = self.open.lock().unwrap_or_else(|e| e.into_inner());
        o.total -= 1;
        if let Some(a) = self.address
            && let Some(n) = o.by_address.get_mut(&a)
        {
            *n -= 1;
            if *n == 0 {
                o.by_address.remove(&a);
            }
        }
    }
}

/// Serves `app` on `listener` until `stop` turns true, then lets open connections finish
/// their requests (graceful shutdown) and returns when none is left.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: HttpLimits,
    trusted_proxies: Vec<IpAddr>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let open = Arc::new(Mutex::new(Open::default()));
    let (closing_tx, closing) = watch::channel(false);
    let app = app.layer(axum::middleware::from_fn_with_state(limits.body_timeout, body_deadline));
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = until_true(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(place) = admit(&open, &limits, &trusted_proxies, peer.ip()) else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let mut closing = closing.clone();
        let header_timeout = limits.header_timeout;
        let held = Held(Arc::new(place));
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req.extensions_mut().insert(held.clone());
                let req = req.map(Body::new);
                let mut app = app.clone();
                async move { Ok::<_, Infallible>(tower::Service::call(&mut app, req).await.unwrap_or_else(|e| match e {})) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(header_timeout).keep_alive(true);
            let conn = builder.serve_connection(TokioIo::new(stream), service).with_upgrades();
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                () = until_true(&mut closing) => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    // Wait for the connections to finish (the caller bounds how long).
    while open.lock().unwrap_or_else(|e| e.into_inner()).total > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Completes when `w` holds true (or its sender is gone).
async fn until_true(w: &mut watch::Receiver<bool>) {
    let _ = w.wait_for(|v| *v).await;
}

/// A place for a connection from `ip`, or none when a cap is reached.
fn admit(open: &Arc<Mutex<Open>>, limits: &HttpLimits, trusted: &[IpAddr], ip: IpAddr) -> Option<Place> {
    let mut o = open.lock().unwrap_or_else(|e| e.into_inner());
    if o.total >= limits.connections_max {
        tracing::warn!(max = limits.connections_max, "connection refused: the node holds as many as it may");
        return None;
    }
    let address = (!trusted.contains(&ip)).then_some(ip);
    if let Some(a) = address {
        let n = o.by_address.entry(a).or_insert(0);
        if *n >= limits.connections_per_address_max {
            tracing::warn!(address = %a, max = limits.connections_per_address_max, "connection refused: too many from one address");
            return None;
        }
        *n += 1;
    }
    o.total += 1;
    Some(Place { open: open.clone(), address })
}

/// The body of a request must arrive by `deadline`; past it, reading fails with
/// [`BodyTimedOut`] (answered 408 by the JSON extractor). Upload chunks are left to their
/// own idle limit.
async fn body_deadline(
    axum::extract::State(limit): axum::extract::State<Duration>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if req.uri().path().starts_with("/v1/uploads/") {
        return next.run(req).await;
    }
    // A large body (a credential import) gets time for its size too, at a slow venue
    // uplink's pace.
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .unwrap_or(0);
    let deadline = tokio::time::Instant::now() + limit + Duration::from_secs(declared / SLOW_BYTES_PER_SEC);
    let req = req.map(|b| Body::new(Deadline { inner: b, sleep: Box::pin(tokio::time::sleep_until(deadline)) }));
    next.run(req).await
}

/// A request body past its time.
#[derive(Debug)]
pub struct BodyTimedOut;

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body did not arrive in time")
    }
}

impl std::error::Error for BodyTimedOut {}

/// Whether `e` (or what caused it) is a [`BodyTimedOut`].
pub fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if c.is::<BodyTimedOut>() {
            return true;
        }
        cur = c.source();
    }
    false
}

struct Deadline {
    inner: Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl http_body::Body for Deadline {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(f) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(f);
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

use std::future::Future as _;
