//! website-test-app: the middleware (current SDK instance, refresh counters, CORS) and the
//! suite's set-up routes.

use super::state::{bool_field, JsonObject, Shared};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use tessera_axum::SessionLayer;
use tower::{Layer, ServiceExt};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Runs the request under the session layer of the current SDK instance, and hands that
/// instance to the handlers (so `/login` and `/revokeAll` use the same core as the layer).
pub(crate) async fn current_session_layer(
    State(app): State<Shared>,
    mut request: Request,
    next: Next,
) -> Response {
    let live = app.live.load_full();
    let layer = SessionLayer::new(live.tessera.clone());
    request.extensions_mut().insert(live);
    match layer.layer(next).oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// The suite's refresh instrumentation: every `POST /auth/session/refresh` is an attempt; a
/// successful one is a call if it carried `rid`. Success bodies become the suite's text
/// (`refresh success` / `refresh failed`); the SDK's headers and cookies are kept.
pub(crate) async fn count_refresh(
    State(app): State<Shared>,
    request: Request,
    next: Next,
) -> Response {
    let refresh_path = app.live.load().tessera.config().refresh_path().to_owned();
    if request.method() != Method::POST || request.uri().path() != refresh_path {
        return next.run(request).await;
    }
    app.counters
        .refresh_attempted
        .fetch_add(1, Ordering::SeqCst);
    let had_rid = request.headers().contains_key("rid");
    let response = next.run(request).await;
    if response.status() != StatusCode::OK {
        return response;
    }
    let text = if had_rid {
        app.counters.refresh_called.fetch_add(1, Ordering::SeqCst);
        "refresh success"
    } else {
        "refresh failed"
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    Response::from_parts(parts, Body::from(text))
}

/// CORS as the suite's servers set it: the website origin, credentials, `content-type` plus the
/// SDK's headers, and GET/PUT/POST/DELETE.
pub(crate) fn cors(website: &str) -> Result<CorsLayer, Box<dyn std::error::Error>> {
    let mut headers = vec![header::CONTENT_TYPE];
    for name in tessera_axum::cors::ALLOWED_REQUEST_HEADERS {
        headers.push(HeaderName::from_static(name));
    }
    Ok(CorsLayer::new()
        .allow_origin(AllowOrigin::exact(HeaderValue::from_str(website)?))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::PUT, Method::POST, Method::DELETE])
        .allow_headers(headers))
}

// ---------------------------------------------------------------------------------------------
// Set-up routes
// ---------------------------------------------------------------------------------------------

/// `POST /test/setup/st {coreUrl, enableAntiCsrf, enableJWT, jwtPropertyName}`. A missing
/// `coreUrl` means `--core-url`. (`jwtPropertyName` belonged to the old JWT feature; unused.)
pub(crate) async fn setup_st(State(app): State<Shared>, JsonObject(body): JsonObject) -> Response {
    let core_url = body
        .get("coreUrl")
        .and_then(Value::as_str)
        .unwrap_or(&app.default_core_url)
        .to_owned();
    app.reinitialise(
        &core_url,
        bool_field(&body, "enableAntiCsrf"),
        bool_field(&body, "enableJWT"),
    )
}

/// `POST /reinitialiseBackendConfig {coreUrl}`: a new instance with the last flags.
pub(crate) async fn reinitialise_backend(
    State(app): State<Shared>,
    JsonObject(body): JsonObject,
) -> Response {
    let last = app.live.load_full();
    let core_url = body
        .get("coreUrl")
        .and_then(Value::as_str)
        .unwrap_or(&last.core_url)
        .to_owned();
    app.reinitialise(&core_url, last.anti_csrf, last.jwt)
}

/// `POST /test/setup/app {appId?, coreConfig?}`: creates the app on the core at `--core-url`
/// and answers its connection URI (`<core>/appid-<appId>`) as text.
pub(crate) async fn setup_app(State(app): State<Shared>, JsonObject(body): JsonObject) -> Response {
    let app_id = match body.get("appId").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => uuid::Uuid::new_v4().to_string(),
    };
    let core_config = body.get("coreConfig").cloned().unwrap_or_else(|| json!({}));
    let core = app.default_core_url.trim_end_matches('/');
    let sent = app
        .http
        .put(format!("{core}/recipe/multitenancy/app/v2"))
        .json(&json!({"appId": app_id, "coreConfig": core_config}))
        .send()
        .await;
    let reply: Result<Value, String> = match sent {
        Ok(r) if r.status().is_success() => r.json().await.map_err(|e| e.to_string()),
        Ok(r) => Err(format!(
            "core answered {}: {}",
            r.status(),
            r.text().await.unwrap_or_default()
        )),
        Err(e) => Err(e.to_string()),
    };
    match reply {
        // The core stores app ids trimmed and lower-cased; the URI names it that way.
        Ok(v) if v.get("status").and_then(Value::as_str) == Some("OK") => {
            let id = app_id.trim().to_ascii_lowercase();
            format!("{core}/appid-{id}").into_response()
        }
        Ok(v) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("core answered {v}"),
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

/// `GET /featureFlags`: which test groups apply.
/// - `sessionJwt: false` — tessera-axum has no JWT recipe (`/auth/jwt/jwks.json`, the
///   `jwtVerify` flow), so the JWT-plugin tests are skipped.
/// - `sessionClaims: true` — claims live in the payload, and failed validators give the
///   403 `claimValidationErrors` body (`/session-claims-error`).
/// - `v3AccessToken: true` — the core issues v5 tokens whose payload has the exact key set the
///   suite asserts (`parentRefreshTokenHash1`/`antiCsrfToken` present as `null`, plus `iss`).
/// - `duplicateCookieHandling: false` — duplicate `sAccessToken`/`sRefreshToken` cookies are
///   refused with 401 and a full clear, not the 500 the suite expects from supertokens-node.
pub(crate) async fn feature_flags() -> Json<Value> {
    Json(json!({
        "sessionJwt": false,
        "sessionClaims": true,
        "v3AccessToken": true,
        "duplicateCookieHandling": false,
    }))
}

pub(crate) async fn before_each(State(app): State<Shared>) -> StatusCode {
    let c = &app.counters;
    for counter in [
        &c.refresh_called,
        &c.refresh_attempted,
        &c.get_session_called,
    ] {
        counter.store(0, Ordering::SeqCst);
    }
    StatusCode::OK
}
