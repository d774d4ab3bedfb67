//! The admin page at `/dashboard`, on only when an admin key is configured (`--admin-key`,
//! `TESSERA_ADMIN_KEY`, config key `admin_key`). Plain HTML, one stylesheet and one script,
//! all compiled into the binary (no CDN); the script talks to the JSON endpoints under
//! `/dashboard/api/` with `fetch`. Who may do what: `auth`; the endpoints: `api`.
//!
//! The page is served on the server's own paths, outside the core API's base path, and is
//! the only part of `tessera serve` a browser may call.

mod api;
pub(crate) mod auth;

use crate::state::ServerState;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

pub use auth::{
    Dashboard, COOKIE, CSRF_HEADER, FAILURE_WINDOW, IDLE, LIFETIME, MAX_FAILURES, WRONG_KEY_DELAY,
};

const INDEX_HTML: &str = include_str!("../../static/dashboard/index.html");
const APP_JS: &str = include_str!("../../static/dashboard/app.js");
const APP_CSS: &str = include_str!("../../static/dashboard/app.css");

/// The page's routes (none when no admin key is configured).
pub(crate) fn routes(state: &ServerState) -> Router<Arc<ServerState>> {
    if state.dashboard.is_none() {
        return Router::new();
    }
    Router::new()
        .route(
            "/dashboard",
            get(|| async { page(INDEX_HTML, "text/html") }),
        )
        .route(
            "/dashboard/",
            get(|| async { page(INDEX_HTML, "text/html") }),
        )
        .route(
            "/dashboard/app.js",
            get(|| async { page(APP_JS, "text/javascript") }),
        )
        .route(
            "/dashboard/app.css",
            get(|| async { page(APP_CSS, "text/css") }),
        )
        .route("/dashboard/api/sign-in", post(api::sign_in))
        .route("/dashboard/api/sign-out", post(api::sign_out))
        .route("/dashboard/api/me", get(api::me))
        .route("/dashboard/api/apps", get(api::apps))
        .route("/dashboard/api/sessions", get(api::sessions))
        .route("/dashboard/api/revoke", post(api::revoke))
        .route("/dashboard/api/keys", get(api::keys))
        .route("/dashboard/api/events", get(api::events))
        .route("/dashboard/api/counters", get(api::counters))
}

/// A static asset with the page's security headers.
fn page(body: &'static str, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&format!("{content_type}; charset=utf-8"))
            .unwrap_or(HeaderValue::from_static("text/plain")),
    );
    security_headers(h);
    r
}

/// Headers on every dashboard answer: no caching, no framing, no sniffing, scripts and
/// styles from this server only.
pub(crate) fn security_headers(h: &mut axum::http::HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
             img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}
