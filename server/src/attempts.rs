//! How often sign-ins and sign-ups may be tried: from one address (each attempt costs the
//! server a password hash, a CPU cost an attacker could spend at will), and against one
//! account (failed sign-ins only, so guessing a password stays slow). Token buckets kept in
//! memory, per node; past the limit the answer is 429 `too_many_attempts` with `Retry-After`.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::http::{HeaderValue, StatusCode, header::RETRY_AFTER};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Attempts allowed: `burst` at once, then `per_minute`.
#[derive(Clone, Copy, Debug)]
pub struct Rate {
    pub burst: u32,
    pub per_minute: u32,
}

/// The limits of sign-ins and sign-ups.
#[derive(Clone, Debug)]
pub struct AttemptLimits {
    /// Sign-ins from one address, whatever their outcome. A crew on a venue's Wi-Fi shares one
    /// address: generous.
    pub sign_ins_per_address: Rate,
    /// Failed sign-ins to one account, from anywhere.
    pub failures_per_account: Rate,
    /// Sign-ups from one address.
    pub sign_ups_per_address: Rate,
    /// Reverse proxies in front of the server: a request from one of them is counted against
    /// the client its `X-Forwarded-For` names (the last address there that is not itself a
    /// trusted proxy). From anyone else the header is ignored: it is the caller's to forge.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for AttemptLimits {
    fn default() -> Self {
        AttemptLimits {
            // 2,000 crew behind one venue NAT sign in within a minute; each account's
            // failures are limited on their own, and password hashing is bounded anyway.
            sign_ins_per_address: Rate { burst: 2400, per_minute: 2400 },
            failures_per_account: Rate { burst: 10, per_minute: 5 },
            sign_ups_per_address: Rate { burst: 30, per_minute: 20 },
            trusted_proxies: Vec::new(),
        }
    }
}

/// Buckets kept before full ones (nothing spent lately) are dropped.
const BUCKETS_MAX: usize = 100_000;

struct Bucket {
    tokens: f64,
    at: Instant,
    /// Its rate: attempts at most, and attempts regained a second.
    burst: f64,
    per_sec: f64,
}

impl Bucket {
    /// Its attempts at `now`.
    fn at(&self, now: Instant) -> f64 {
        (self.tokens + now.duration_since(self.at).as_secs_f64() * self.per_sec).min(self.burst)
    }
}

/// Token buckets by key, kept in memory (at most [`BUCKETS_MAX`]; full ones are dropped
/// first when there are more).
#[derive(Default)]
pub struct Buckets {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Buckets {
    /// Spends `cost` (0 to only look) of `key`'s allowance at `rate`, or says when enough is
    /// back. A cost above the burst is let through when the bucket is full (and leaves it
    /// owing), so nothing is refused for ever.
    pub fn spend(&self, key: &str, rate: Rate, cost: f64) -> Result<(), TooMany> {
        self.take(key, rate, cost, true)
    }

    /// Gives `amount` back to `key`'s allowance (up to its burst).
    pub fn refund(&self, key: &str, amount: f64) {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = buckets.get_mut(key) {
            b.tokens = (b.at(now) + amount).min(b.burst);
            b.at = now;
        }
    }

    /// Whether `cost` could be spent now, spending nothing.
    pub fn check(&self, key: &str, rate: Rate, cost: f64) -> Result<(), TooMany> {
        self.take(key, rate, cost, false)
    }

    fn take(&self, key: &str, rate: Rate, cost: f64, spend: bool) -> Result<(), TooMany> {
        let now = Instant::now();
        let per_sec = f64::from(rate.per_minute.max(1)) / 60.0;
        let burst = f64::from(rate.burst.max(1));
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= BUCKETS_MAX && !buckets.contains_key(key) {
            buckets.retain(|_, b| b.at(now) < b.burst);
            if buckets.len() >= BUCKETS_MAX {
                buckets.clear();
            }
        }
        let b = buckets.entry(key.to_string()).or_insert(Bucket { tokens: burst, at: now, burst, per_sec });
        b.tokens = b.at(now);
        b.at = now;
        let need = cost.clamp(1.0, burst);
        if b.tokens >= need {
            if spend {
                b.tokens -= cost;
            }
            return Ok(());
        }
        Err(TooMany(Duration::from_secs_f64(((need - b.tokens) / per_sec).ceil().max(1.0))))
    }
}

/// The buckets, by key (`"in:" + address`, `"fail:" + email`, `"up:" + address`).
#[derive(Default)]
pub struct Attempts {
    pub limits: AttemptLimits,
    buckets: Buckets,
}

impl std::fmt::Debug for Attempts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attempts").field("limits", &self.limits).finish()
    }
}

/// Too many attempts: try again after this long.
#[derive(Debug)]
pub struct TooMany(pub Duration);

impl IntoResponse for TooMany {
    fn into_response(self) -> Response {
        let secs = self.0.as_secs().max(1);
        let mut r = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!("too many attempts; try again in {secs} s"),
        )
        .into_response();
        r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
        r
    }
}

impl Attempts {
    pub fn new(limits: AttemptLimits) -> Attempts {
        Attempts { limits, buckets: Buckets::default() }
    }

    /// A sign-up from `from`.
    pub fn sign_up(&self, from: IpAddr) -> Result<(), TooMany> {
        self.buckets.spend(&format!("up:{from}"), self.limits.sign_ups_per_address, 1.0)
    }

    /// A sign-in from `from` to the account of `email`: counted against the address, and
    /// one failure of the account is reserved before the password is checked (so that
    /// guesses checked at the same moment cannot pass the account's limit together); a
    /// sign-in that succeeds gives it back ([`Attempts::sign_in_succeeded`]).
    pub fn sign_in(&self, from: IpAddr, email: &str) -> Result<(), TooMany> {
        self.buckets.check(&Self::account_key(email), self.limits.failures_per_account, 1.0)?;
        self.buckets.spend(&format!("in:{from}"), self.limits.sign_ins_per_address, 1.0)?;
        self.buckets.spend(&Self::account_key(email), self.limits.failures_per_account, 1.0)
    }

    /// The sign-in to `email`'s account succeeded: its reserved failure is given back.
    pub fn sign_in_succeeded(&self, email: &str) {
        self.buckets.refund(&Self::account_key(email), 1.0);
    }

    fn account_key(email: &str) -> String {
        format!("fail:{}", email.trim().to_lowercase())
    }

    /// The address a request is counted against: its peer's, or behind a trusted proxy the
    /// client's that `X-Forwarded-For` names.
    fn client(&self, peer: SocketAddr, headers: &axum::http::HeaderMap) -> IpAddr {
        let trusted = &self.limits.trusted_proxies;
        if !trusted.contains(&peer.ip()) {
            return peer.ip();
        }
        let hops: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse().ok())
            .collect();
        hops.into_iter().rev().find(|a| !trusted.contains(a)).unwrap_or(peer.ip())
    }
}

/// The address a request counts against for the limits above (see [`Attempts`]): the TCP
/// peer's, or behind a trusted proxy the client's it forwards.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub IpAddr);

impl axum::extract::FromRequestParts<crate::AppState> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &crate::AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<axum::extract::ConnectInfo<SocketAddr>>().map(|c| c.0).ok_or_else(|| {
            tracing::error!("a request without its peer address: serve with connect info");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the request could not be handled")
        })?;
        Ok(ClientAddr(state.attempts.client(peer, &parts.headers)))
    }
}
