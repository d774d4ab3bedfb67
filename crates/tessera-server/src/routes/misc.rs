//! `/hello`, `/apiversion` and the JWKS endpoints (access-token and anonymous keys).

use super::Ctx;
use crate::error::{json_ok, text, ApiError, JSON_TYPE};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// `GET|POST|PUT|DELETE /hello` (and `/`): `Hello` once the store answers.
pub(super) async fn hello(ctx: &Ctx) -> Result<Response, ApiError> {
    ctx.state.registry.store().ping().await?;
    Ok(text(StatusCode::OK, "Hello"))
}

/// `GET /apiversion`: `{"versions":[…]}`, no `status`.
pub(super) fn api_version(ctx: &Ctx) -> Response {
    json_ok(&json!({ "versions": ctx.state.cdi.listed() }))
}

/// `GET /.well-known/jwks.json` (`{keys}`) and `GET /recipe/jwt/jwks` (`{keys, status}`).
pub(super) async fn jwks(ctx: &Ctx, with_status: bool) -> Result<Response, ApiError> {
    let engine = &ctx.app.engine;
    if engine.jwks_max_age_s() <= 1 {
        // A new key is due: publish it (ours or another instance's) before clients cache.
        engine.reload_keys().await?;
    }
    let keys = engine.jwks();
    let body = if with_status {
        json!({ "keys": keys.keys, "status": "OK" })
    } else {
        json!({ "keys": keys.keys })
    };
    let mut r = (StatusCode::OK, body.to_string()).into_response();
    let headers = r.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_TYPE));
    let cache = format!("max-age={}, must-revalidate", engine.jwks_max_age_s());
    if let Ok(v) = HeaderValue::from_str(&cache) {
        headers.insert(header::CACHE_CONTROL, v);
    }
    Ok(r)
}

/// `GET /.well-known/anonymous-jwks.json` (Tessera extension, SEC2-L3): `{keys}` with the
/// anonymous-token keys only (`kid` `a-…`, current first), kept out of the access-token JWKS so
/// that a gateway checking signatures against that set is never handed an anonymous token.
/// Public like the JWKS. The keys change only when the operator replaces them, so clients may
/// cache for an hour and refetch on an unknown `kid`.
pub(super) fn anonymous_jwks(ctx: &Ctx) -> Response {
    let body = json!({ "keys": ctx.app.engine.anonymous_jwks().keys });
    let mut r = (StatusCode::OK, body.to_string()).into_response();
    let headers = r.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_TYPE));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=3600, must-revalidate"),
    );
    r
}

/// `GET /user/id?userId=`: this core keeps no user records, so every id is unknown. The SDKs
/// call it before creating a session (account linking) and then use the recipe user id.
pub(super) fn user_by_id(ctx: &Ctx) -> Result<Response, ApiError> {
    ctx.query.required("userId")?;
    Ok(json_ok(&json!({"status": "UNKNOWN_USER_ID_ERROR"})))
}
