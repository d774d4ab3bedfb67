//! Per-API-key rate limits (off by default). The rules:
//!
//! 1. A limit is `N/s`, `N/m` or `N/h`: a token bucket per API key holding at most `N`
//!    requests and refilled at `N` per period (governor's GCRA).
//! 2. Only a request whose key was accepted is counted, under the SHA-256 of the key: a caller
//!    without a valid key gets 401 first and cannot grow the table, and the key itself is not
//!    kept a second time.
//! 3. Past the limit the answer is `429 Too Many Requests` with `Retry-After` (whole seconds,
//!    at least 1) and a JSON body `{"message": "...", "retryAfterSeconds": n}`.
//!
//! ```
//! use tessera_server::limit::RateLimit;
//! let limit: RateLimit = "2/s".parse().unwrap();
//! assert_eq!(limit.count.get(), 2);
//! assert!("0/s".parse::<RateLimit>().is_err());
//! ```

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::time::Duration;

/// `N` requests per period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests per period (also the burst).
    pub count: NonZeroU32,
    /// The period.
    pub per: Duration,
}

impl std::str::FromStr for RateLimit {
    type Err = &'static str;

    /// Parses `N/s`, `N/m` or `N/h`.
    ///
    /// # Errors
    /// A text that is not a positive whole number, `/`, and `s`, `m` or `h`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        const ALLOWED: &str = "must be N/s, N/m or N/h with N a whole number from 1";
        let (count, unit) = text.trim().split_once('/').ok_or(ALLOWED)?;
        let count: NonZeroU32 = count.trim().parse().map_err(|_| ALLOWED)?;
        let per = match unit.trim() {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(ALLOWED),
        };
        Ok(Self { count, per })
    }
}

/// A keyed token bucket per API key.
pub struct ApiKeyLimiter {
    limiter: DefaultKeyedRateLimiter<String>,
}

impl std::fmt::Debug for ApiKeyLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyLimiter").finish_non_exhaustive()
    }
}

impl ApiKeyLimiter {
    /// A limiter allowing `limit` per key.
    pub fn new(limit: RateLimit) -> Self {
        let quota = Quota::with_period(limit.per / limit.count.get())
            .unwrap_or_else(|| Quota::per_second(limit.count))
            .allow_burst(limit.count);
        Self {
            limiter: RateLimiter::keyed(quota),
        }
    }

    /// `Ok` if the key (its SHA-256 hex) may send another request, else how long to wait.
    ///
    /// # Errors
    /// The wait until the key's bucket has a token again.
    pub fn check(&self, key_hash: &str) -> Result<(), Duration> {
        self.limiter
            .check_key(&key_hash.to_owned())
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// The 429 answer: `Retry-After` in whole seconds (rounded up, at least 1) and a JSON body.
pub fn too_many_requests(wait: Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    let body = serde_json::json!({
        "message": "Too many requests; retry later",
        "retryAfterSeconds": seconds,
    });
    let mut r = (StatusCode::TOO_MANY_REQUESTS, body.to_string()).into_response();
    let headers = r.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::error::JSON_TYPE),
    );
    headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_limits() {
        let l: RateLimit = " 10 / m ".parse().unwrap();
        assert_eq!((l.count.get(), l.per), (10, Duration::from_secs(60)));
        for bad in ["", "10", "10/d", "-1/s", "x/s", "0/h"] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_burst_past_the_limit_waits() {
        let limiter = ApiKeyLimiter::new("2/h".parse().unwrap());
        assert!(limiter.check("a").is_ok());
        assert!(limiter.check("a").is_ok());
        let wait = limiter.check("a").unwrap_err();
        assert!(wait > Duration::from_secs(60), "{wait:?}");
        // Another key has its own bucket.
        assert!(limiter.check("b").is_ok());
        let r = too_many_requests(wait);
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        let after: u64 = r.headers()[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1700..=1800).contains(&after), "{after}");
    }
}
