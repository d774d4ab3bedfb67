//! website-test-app: the session routes, the plain routes and the test page with its scripts.

use super::state::{header_str, JsonObject, Live, Shared, SUITE_PROTECTED};
use axum::extract::{Extension, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tessera_axum::{ClaimError, ClaimValidator, Session, SessionRejection, SignIn};

// ---------------------------------------------------------------------------------------------
// Session routes
// ---------------------------------------------------------------------------------------------

/// `POST /login {userId}`: a session in the public tenant; the body is the user id.
pub(crate) async fn login(
    Extension(live): Extension<Arc<Live>>,
    sign_in: SignIn,
    JsonObject(body): JsonObject,
) -> Response {
    let Some(user_id) = body.get("userId").and_then(Value::as_str) else {
        return (StatusCode::BAD_REQUEST, "userId missing").into_response();
    };
    let mut payload = Map::new();
    if live.jwt {
        payload.insert("customClaim".into(), json!("customValue"));
    }
    match sign_in.create(user_id, payload, json!({})).await {
        Ok(session) => session.user_id().to_owned().into_response(),
        Err(rejection) => rejection.into_response(),
    }
}

/// `GET /`: the user id; counts as a getSession call.
pub(crate) async fn root(State(app): State<Shared>, session: Session) -> String {
    app.counters
        .get_session_called
        .fetch_add(1, Ordering::SeqCst);
    session.user_id().to_owned()
}

fn rid_check(headers: &HeaderMap) -> &'static str {
    match header_str(headers, "rid") {
        Some(rid) if rid.starts_with("anti-csrf") => "success",
        _ => "fail",
    }
}

pub(crate) async fn check_rid(_session: Session, headers: HeaderMap) -> &'static str {
    rid_check(&headers)
}

pub(crate) async fn check_rid_no_session(headers: HeaderMap) -> &'static str {
    rid_check(&headers)
}

pub(crate) async fn get_jwt(session: Session) -> Json<Value> {
    Json(Value::Object(session.access_token_payload()))
}

/// `POST /update-jwt`: every key the suite does not protect is set to null, then the body is
/// merged; answers the new payload.
pub(crate) async fn update_jwt(session: Session, JsonObject(body): JsonObject) -> Response {
    let mut update: Map<String, Value> = session
        .access_token_payload()
        .keys()
        .filter(|k| !SUITE_PROTECTED.contains(&k.as_str()))
        .map(|k| (k.clone(), Value::Null))
        .collect();
    update.extend(body);
    match session.merge_into_access_token_payload(update).await {
        Ok(()) => Json(Value::Object(session.access_token_payload())).into_response(),
        Err(rejection) => rejection.into_response(),
    }
}

/// `POST /update-jwt-with-handle`: the same through the core by session handle (the browser
/// sees it at the next refresh); answers the request's (now stale) payload.
pub(crate) async fn update_jwt_with_handle(
    Extension(live): Extension<Arc<Live>>,
    session: Session,
    JsonObject(body): JsonObject,
) -> Response {
    // Clearing every stored custom claim and merging the body leaves the body's non-null keys.
    let payload: Map<String, Value> = body
        .into_iter()
        .filter(|(k, v)| !v.is_null() && !tessera::protocol::PROTECTED_CLAIMS.contains(&k.as_str()))
        .collect();
    let core = live.tessera.core();
    if let Err(e) = core
        .update_access_token_payload(session.handle(), &payload)
        .await
    {
        return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
    }
    Json(Value::Object(session.access_token_payload())).into_response()
}

/// A validator that always fails, as the suite's `/session-claims-error` route installs.
struct FailingClaim;

impl ClaimValidator for FailingClaim {
    fn id(&self) -> &str {
        "test-claim-failing"
    }
    fn validate(&self, _payload: &Map<String, Value>) -> Result<(), Option<Value>> {
        Err(Some(json!({"message": "testReason"})))
    }
}

/// `POST /session-claims-error`: a session, then a route-specific validator → 403.
pub(crate) async fn session_claims_error(
    Extension(live): Extension<Arc<Live>>,
    session: Session,
) -> Result<Json<Value>, SessionRejection> {
    let validator = FailingClaim;
    match validator.validate(&session.access_token_payload()) {
        Ok(()) => Ok(Json(json!({}))),
        Err(reason) => {
            let errors = vec![ClaimError {
                id: validator.id().to_owned(),
                reason,
            }];
            Err(SessionRejection::invalid_claims(&live.tessera, errors))
        }
    }
}

pub(crate) async fn logout(session: Session) -> Result<&'static str, SessionRejection> {
    session.revoke().await?;
    Ok("success")
}

/// `POST /revokeAll`: every session of the user, in all tenants; no tokens are cleared here.
pub(crate) async fn revoke_all(
    Extension(live): Extension<Arc<Live>>,
    session: Session,
) -> Response {
    match live
        .tessera
        .core()
        .revoke_all_sessions_for_user(session.user_id(), None)
        .await
    {
        Ok(_) => "success".into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// Plain routes
// ---------------------------------------------------------------------------------------------

fn counter(value: &AtomicU64) -> String {
    value.load(Ordering::SeqCst).to_string()
}

pub(crate) async fn refresh_called_time(State(app): State<Shared>) -> String {
    counter(&app.counters.refresh_called)
}

pub(crate) async fn refresh_attempted_time(State(app): State<Shared>) -> String {
    counter(&app.counters.refresh_attempted)
}

pub(crate) async fn get_session_called_time(State(app): State<Shared>) -> String {
    counter(&app.counters.get_session_called)
}

/// `ALL /testing`: echoes the `testing` request header.
pub(crate) async fn testing(headers: HeaderMap) -> Response {
    let mut response = "success".into_response();
    if let Some(value) = headers.get("testing") {
        response.headers_mut().insert("testing", value.clone());
    }
    response
}

pub(crate) async fn test_header(headers: HeaderMap) -> Json<Value> {
    Json(json!({"success": headers.contains_key("st-custom-header")}))
}

pub(crate) async fn check_allow_credentials(headers: HeaderMap) -> &'static str {
    if headers.contains_key("allow-credentials") {
        "true"
    } else {
        "false"
    }
}

pub(crate) async fn multiple_interceptors(headers: HeaderMap) -> &'static str {
    if headers.contains_key("interceptorheader1") && headers.contains_key("interceptorheader2") {
        "success"
    } else {
        "failure"
    }
}

/// `GET /testError?code=N`: status N (default 500), body `test error message`.
pub(crate) async fn test_error(Query(query): Query<HashMap<String, String>>) -> Response {
    let status = match query.get("code") {
        None => StatusCode::INTERNAL_SERVER_ERROR,
        Some(code) => match code
            .trim()
            .parse::<u16>()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
        {
            Some(status) => status,
            None => {
                return (StatusCode::INTERNAL_SERVER_ERROR, "invalid status code").into_response()
            }
        },
    };
    (status, "test error message").into_response()
}

/// The supertokens-website version of the installed npm package.
pub(crate) async fn package_version(State(app): State<Shared>) -> Response {
    let path = app.static_dir.join("supertokens-website/package.json");
    let version = tokio::fs::read(&path)
        .await
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|v| v.get("version").and_then(Value::as_str).map(str::to_owned));
    match version {
        Some(v) => v.into_response(),
        None => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read {}", path.display()),
        )
            .into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// The test page and its scripts
// ---------------------------------------------------------------------------------------------

pub(crate) async fn index() -> Html<&'static str> {
    Html(include_str!("../../static/website-test-page.html"))
}

/// `/vendor/<name>`: the local stand-ins for the CDN scripts of the suite's page.
const VENDOR_SCRIPTS: &[(&str, &str)] = &[
    ("axios.min.js", "axios/dist/axios.min.js"),
    (
        "axios-mock-adapter.min.js",
        "axios-mock-adapter/dist/axios-mock-adapter.min.js",
    ),
    ("assert.js", ".tessera/assert.js"),
    ("supertokens-website.js", ".tessera/supertokens-website.js"),
];

async fn javascript_file(path: PathBuf) -> Response {
    match tokio::fs::read(&path).await {
        Ok(bytes) => (
            [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
            bytes,
        )
            .into_response(),
        Err(e) => (
            StatusCode::NOT_FOUND,
            format!(
                "{}: {e} (run scripts/install-browser-deps.sh, or set --static-dir)",
                path.display()
            ),
        )
            .into_response(),
    }
}

pub(crate) async fn vendor_script(State(app): State<Shared>, Path(name): Path<String>) -> Response {
    match VENDOR_SCRIPTS.iter().find(|(n, _)| *n == name) {
        Some((_, relative)) => javascript_file(app.static_dir.join(relative)).await,
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `/angular/<file>` from `--angular-dir`: plain file names only (no path traversal).
pub(crate) async fn angular_file(State(app): State<Shared>, Path(name): Path<String>) -> Response {
    let safe = !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    match (&app.angular_dir, safe) {
        (Some(dir), true) => javascript_file(dir.join(name)).await,
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}
