//! Who may use the admin page. The rules, in the order a request meets them:
//!
//! 1. **Sign-in.** `POST /dashboard/api/sign-in {"key": …}` from the page's own origin. The key
//!    is compared in constant time (SHA-256 of both, like the API keys). A wrong key is
//!    answered after [`WRONG_KEY_DELAY`]; after [`MAX_FAILURES`] wrong keys from one client IP
//!    within [`FAILURE_WINDOW`] that IP gets `429` with `Retry-After` until the window ends.
//! 2. **Session.** A right key gets a random 256-bit session id in the `tessera_admin` cookie:
//!    `HttpOnly`, `SameSite=Strict`, `Path=/dashboard`, `Secure` when the page was reached over
//!    https (an `Origin` or `X-Forwarded-Proto` that says so). The server keeps only the id's
//!    SHA-256, with an idle limit ([`IDLE`]) and an absolute one ([`LIFETIME`]); the key itself
//!    is never stored in the browser.
//! 3. **Reads** (`GET /dashboard/api/…`) need a live session.
//! 4. **Writes** (every other `POST`) need a live session AND its CSRF token in the
//!    `x-tessera-csrf` header (only the page's own script can read it, from `/api/me`) AND a
//!    same-origin request: `Sec-Fetch-Site`, when sent, must be `same-origin`, and `Origin`,
//!    when sent, must be this server's. A form posted from another origin — even another port
//!    of the same host, which `SameSite` counts as the same site — changes nothing.

use axum::http::{header, HeaderMap};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tessera::fuzzing::{b64url_encode, constant_time_eq, sha256_hex};

/// The session cookie's name.
pub const COOKIE: &str = "tessera_admin";
/// The header carrying the CSRF token on writes.
pub const CSRF_HEADER: &str = "x-tessera-csrf";
/// A session unused this long ends.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after sign-in whatever its use.
pub const LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// Most sessions at once; the oldest goes first.
const MAX_SESSIONS: usize = 256;
/// How long a wrong key waits before it is answered.
pub const WRONG_KEY_DELAY: Duration = Duration::from_millis(750);
/// Wrong keys from one IP before it must wait.
pub const MAX_FAILURES: u32 = 5;
/// The window those failures are counted in.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(5 * 60);
/// Most IPs tracked; past it the oldest windows are forgotten.
const MAX_TRACKED_IPS: usize = 10_000;

/// The admin page's state: the key (as a hash), the signed-in operators, the sign-in limit.
pub struct Dashboard {
    pub(super) key: AdminKey,
    pub(super) sessions: AdminSessions,
    pub(super) limiter: SignInLimiter,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard").finish_non_exhaustive()
    }
}

impl Dashboard {
    /// The admin page for `admin_key`.
    pub fn new(admin_key: String) -> Self {
        Self {
            key: AdminKey::new(&admin_key),
            sessions: AdminSessions::default(),
            limiter: SignInLimiter::default(),
        }
    }
}

/// The admin key, kept as its SHA-256 only.
pub(crate) struct AdminKey(String);

impl AdminKey {
    pub(crate) fn new(key: &str) -> Self {
        Self(sha256_hex(key.trim()))
    }

    /// Constant-time: the SHA-256 of `presented` against the key's.
    pub(crate) fn matches(&self, presented: &str) -> bool {
        constant_time_eq(sha256_hex(presented.trim()).as_bytes(), self.0.as_bytes())
    }
}

/// One signed-in operator.
#[derive(Clone)]
pub(crate) struct AdminSession {
    pub(crate) csrf: String,
    created: Instant,
    last_seen: Instant,
}

/// Live admin sessions, by SHA-256 of the session id.
#[derive(Default)]
pub(crate) struct AdminSessions(Mutex<HashMap<String, AdminSession>>);

impl AdminSessions {
    /// Starts a session; returns `(session id, csrf token)`.
    pub(crate) fn start(&self) -> Option<(String, String)> {
        let id = b64url_encode(&tessera::fuzzing::random_bytes::<32>().ok()?);
        let csrf = b64url_encode(&tessera::fuzzing::random_bytes::<32>().ok()?);
        let now = Instant::now();
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| live(s, now));
        while map.len() >= MAX_SESSIONS {
            let oldest = map
                .iter()
                .min_by_key(|(_, s)| s.created)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => map.remove(&k),
                None => break,
            };
        }
        map.insert(
            sha256_hex(&id),
            AdminSession {
                csrf: csrf.clone(),
                created: now,
                last_seen: now,
            },
        );
        Some((id, csrf))
    }

    /// The live session named by the request's cookie, marked as used now.
    pub(crate) fn get(&self, headers: &HeaderMap) -> Option<AdminSession> {
        let id = session_cookie(headers)?;
        let now = Instant::now();
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let key = sha256_hex(&id);
        let session = map.get_mut(&key)?;
        if !live(session, now) {
            map.remove(&key);
            return None;
        }
        session.last_seen = now;
        Some(session.clone())
    }

    /// Ends the session named by the request's cookie.
    pub(crate) fn end(&self, headers: &HeaderMap) {
        if let Some(id) = session_cookie(headers) {
            let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            map.remove(&sha256_hex(&id));
        }
    }
}

fn live(s: &AdminSession, now: Instant) -> bool {
    now.duration_since(s.created) < LIFETIME && now.duration_since(s.last_seen) < IDLE
}

/// The `tessera_admin` cookie's value, if sent.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)
        .map(|c| c.value().to_owned())
}

/// True when the page was reached over https (directly or through a proxy that says so).
pub(crate) fn over_https(headers: &HeaderMap) -> bool {
    let value = |name| headers.get(name).and_then(|v| v.to_str().ok());
    value("x-forwarded-proto").is_some_and(|p| p.eq_ignore_ascii_case("https"))
        || value("origin").is_some_and(|o| o.starts_with("https://"))
}

/// The `Set-Cookie` value that starts a session.
pub(crate) fn session_set_cookie(id: &str, secure: bool) -> String {
    cookie::Cookie::build((COOKIE, id.to_owned()))
        .http_only(true)
        .secure(secure)
        .same_site(cookie::SameSite::Strict)
        .path("/dashboard")
        .max_age(cookie::time::Duration::seconds(LIFETIME.as_secs() as i64))
        .build()
        .to_string()
}

/// The `Set-Cookie` value that ends a session.
pub(crate) fn session_clear_cookie(secure: bool) -> String {
    cookie::Cookie::build((COOKIE, ""))
        .http_only(true)
        .secure(secure)
        .same_site(cookie::SameSite::Strict)
        .path("/dashboard")
        .max_age(cookie::time::Duration::ZERO)
        .build()
        .to_string()
}

/// Rule 4's origin half: `Sec-Fetch-Site`, when sent, is `same-origin`; `Origin`, when sent,
/// is this server's (`http(s)://` + the `Host` header).
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let value = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = value("sec-fetch-site") {
        if site != "same-origin" {
            return false;
        }
    }
    match value("origin") {
        None => true,
        Some(origin) => {
            let Some(host) = value("host") else {
                return false;
            };
            let scheme = if over_https(headers) { "https" } else { "http" };
            origin == format!("{scheme}://{host}")
        }
    }
}

/// Rule 4's token half: the header equals the session's token (constant time).
pub(crate) fn csrf_ok(headers: &HeaderMap, session: &AdminSession) -> bool {
    headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| constant_time_eq(t.as_bytes(), session.csrf.as_bytes()))
}

/// Wrong keys per client IP (rule 1).
#[derive(Default)]
pub(crate) struct SignInLimiter(Mutex<HashMap<Option<IpAddr>, (Instant, u32)>>);

impl SignInLimiter {
    /// `Some(wait)` when `ip` has used up its tries.
    pub(crate) fn blocked(&self, ip: Option<IpAddr>) -> Option<Duration> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (start, failures) = map.get(&ip)?;
        let elapsed = start.elapsed();
        (*failures >= MAX_FAILURES && elapsed < FAILURE_WINDOW)
            .then(|| FAILURE_WINDOW.saturating_sub(elapsed))
    }

    /// Counts a wrong key from `ip`.
    pub(crate) fn failed(&self, ip: Option<IpAddr>) {
        let now = Instant::now();
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_TRACKED_IPS {
            map.retain(|_, (start, _)| now.duration_since(*start) < FAILURE_WINDOW);
            if map.len() >= MAX_TRACKED_IPS {
                map.clear();
            }
        }
        let entry = map.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= FAILURE_WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }

    /// Forgets `ip`'s failures (a right key).
    pub(crate) fn succeeded(&self, ip: Option<IpAddr>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn origin_rules() {
        assert!(same_origin(&headers(&[("host", "127.0.0.1:3567")])));
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:3567"),
            ("origin", "http://127.0.0.1:3567"),
            ("sec-fetch-site", "same-origin"),
        ])));
        // Another port of the same host is the same site, not the same origin.
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:3567"),
            ("origin", "http://127.0.0.1:4000"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:3567"),
            ("sec-fetch-site", "same-site"),
        ])));
        assert!(!same_origin(&headers(&[(
            "origin",
            "http://127.0.0.1:3567"
        )])));
    }

    #[test]
    fn key_and_sessions() {
        let key = AdminKey::new("admin-key-admin-key-0123");
        assert!(key.matches("admin-key-admin-key-0123"));
        assert!(!key.matches("admin-key-admin-key-0124"));
        assert!(!key.matches(""));
        let sessions = AdminSessions::default();
        let (id, csrf) = sessions.start().unwrap();
        let cookie = session_set_cookie(&id, false);
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(cookie.contains("Path=/dashboard") && !cookie.contains("Secure"));
        assert!(session_set_cookie(&id, true).contains("Secure"));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            format!("a=b; {COOKIE}={id}").parse().unwrap(),
        );
        let s = sessions.get(&h).unwrap();
        assert_eq!(s.csrf, csrf);
        h.insert(CSRF_HEADER, csrf.parse().unwrap());
        assert!(csrf_ok(&h, &s));
        h.insert(CSRF_HEADER, "nope".parse().unwrap());
        assert!(!csrf_ok(&h, &s));
        sessions.end(&h);
        assert!(sessions.get(&h).is_none());
    }

    #[test]
    fn limiter() {
        let l = SignInLimiter::default();
        let ip = Some(IpAddr::from([127, 0, 0, 1]));
        for _ in 0..MAX_FAILURES {
            assert!(l.blocked(ip).is_none());
            l.failed(ip);
        }
        assert!(l.blocked(ip).is_some());
        assert!(l.blocked(None).is_none());
        l.succeeded(ip);
        assert!(l.blocked(ip).is_none());
    }
}
