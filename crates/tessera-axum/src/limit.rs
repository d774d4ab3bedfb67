//! Per-client-IP rate limits for anonymous mints and for the refresh route (off by default).
//! The rules:
//!
//! 1. **A token bucket per client IP** (governor's keyed GCRA): at most `count` at once,
//!    refilled at `count` per `per`. Mints and refreshes have buckets of their own.
//! 2. **The client IP** is [`crate::devices::client_ip`]: the connection's peer, unless the peer
//!    is one of [`crate::Tessera::with_trusted_proxies`], then the right-most `X-Forwarded-For`
//!    hop that is not a trusted proxy. A header from an untrusted peer is ignored, so a client
//!    cannot pick its bucket. Without a peer address (serve the app with
//!    `into_make_service_with_connect_info::<SocketAddr>()`) nothing is limited.
//! 3. **Past the limit**: `429 Too Many Requests`, `Retry-After` in whole seconds (at least 1)
//!    and `{"message": "...", "retryAfterSeconds": n}`. A request that would mint is refused
//!    whole (the app does not run); the refresh route answers 429 and changes no token.
//! 4. **Bounded memory**: buckets of idle clients are dropped every few thousand checks.
//!
//! ```
//! use std::time::Duration;
//! use tessera_axum::limit::{ClientLimits, RateLimit};
//! let limits = ClientLimits::default()
//!     .anonymous_mints(RateLimit::new(10, Duration::from_secs(60)).unwrap())
//!     .refresh(RateLimit::new(30, Duration::from_secs(60)).unwrap());
//! // tessera.with_client_limits(limits)
//! # let _ = limits;
//! ```

use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Checks between two sweeps of idle buckets.
const SWEEP_EVERY: u64 = 4096;

/// `count` requests per `per`, `count` at once at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    count: NonZeroU32,
    per: Duration,
}

impl RateLimit {
    /// `count` per `per`; `None` if either is zero.
    pub fn new(count: u32, per: Duration) -> Option<Self> {
        let count = NonZeroU32::new(count)?;
        (per > Duration::ZERO).then_some(Self { count, per })
    }

    fn quota(self) -> Quota {
        Quota::with_period(self.per / self.count.get())
            .unwrap_or_else(|| Quota::per_second(self.count))
            .allow_burst(self.count)
    }
}

/// Which limits apply (both off by default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientLimits {
    mint: Option<RateLimit>,
    refresh: Option<RateLimit>,
}

impl ClientLimits {
    /// Limits anonymous sessions minted per client IP.
    pub fn anonymous_mints(mut self, limit: RateLimit) -> Self {
        self.mint = Some(limit);
        self
    }

    /// Limits calls of the refresh route per client IP.
    pub fn refresh(mut self, limit: RateLimit) -> Self {
        self.refresh = Some(limit);
        self
    }
}

/// One keyed bucket set.
struct Buckets {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    checks: AtomicU64,
}

impl Buckets {
    fn new(limit: RateLimit) -> Self {
        Self {
            limiter: RateLimiter::keyed(limit.quota()),
            checks: AtomicU64::new(0),
        }
    }

    fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter
            .check_key(&ip)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// The limiters of a [`crate::Tessera`].
pub(crate) struct ClientLimiter {
    mint: Option<Buckets>,
    refresh: Option<Buckets>,
}

impl ClientLimiter {
    pub(crate) fn new(limits: ClientLimits) -> Option<Self> {
        if limits.mint.is_none() && limits.refresh.is_none() {
            return None;
        }
        Some(Self {
            mint: limits.mint.map(Buckets::new),
            refresh: limits.refresh.map(Buckets::new),
        })
    }

    pub(crate) fn limits_mints(&self) -> bool {
        self.mint.is_some()
    }

    pub(crate) fn limits_refresh(&self) -> bool {
        self.refresh.is_some()
    }

    /// `Some(429 answer)` when the client is over the mint limit.
    pub(crate) fn check_mint(
        &self,
        peer: Option<IpAddr>,
        headers: &HeaderMap,
        trusted: &[IpAddr],
    ) -> Option<Response> {
        check(
            self.mint.as_ref()?,
            peer,
            headers,
            trusted,
            "anonymous_mint",
        )
    }

    /// `Some(429 answer)` when the client is over the refresh limit.
    pub(crate) fn check_refresh(
        &self,
        peer: Option<IpAddr>,
        headers: &HeaderMap,
        trusted: &[IpAddr],
    ) -> Option<Response> {
        check(self.refresh.as_ref()?, peer, headers, trusted, "refresh")
    }
}

fn check(
    buckets: &Buckets,
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted: &[IpAddr],
    route: &'static str,
) -> Option<Response> {
    let ip = crate::devices::client_ip(peer, headers, trusted)?;
    let wait = buckets.check(ip).err()?;
    crate::metrics::rate_limited(route);
    Some(too_many_requests(wait))
}

/// The 429 answer: `Retry-After` in whole seconds (rounded up, at least 1) and a JSON body.
pub(crate) fn too_many_requests(wait: Duration) -> Response {
    let seconds = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
    let body = serde_json::json!({
        "message": "Too many requests; retry later",
        "retryAfterSeconds": seconds,
    });
    let mut r = (StatusCode::TOO_MANY_REQUESTS, body.to_string()).into_response();
    let headers = r.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    r
}
