//! The admin page's JSON endpoints under `/dashboard/api/`. Reads need a signed-in operator;
//! writes also need the CSRF token and a same-origin request (see [`super::auth`]). Answers
//! carry ids, times, labels and `kid`s — never a token, a key or a hash.

use super::auth::Dashboard;
use super::auth::{self, AdminSession};
use crate::apps::AppEntry;
use crate::audit::{AuditKind, Record, RecordSource};
use crate::client_ip;
use crate::state::ServerState;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use tessera::{AuditQuery, DevicePage, KeyKind, RevokeCause, PUBLIC};

type Params = Query<HashMap<String, String>>;

/// Most handles one revoke request names.
const MAX_REVOKE: usize = 1_000;

/// A JSON answer with the page's headers.
fn reply(status: StatusCode, body: &Value) -> Answer {
    Ok(respond(status, body))
}

fn respond(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    super::security_headers(h);
    r
}

fn refuse(status: StatusCode, message: &str) -> Response {
    respond(status, &json!({ "error": message }))
}

/// A refused request: its status and the message the page shows.
#[derive(Debug, Clone, Copy)]
pub(super) struct Refusal(StatusCode, &'static str);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        refuse(self.0, self.1)
    }
}

type Answer = Result<Response, Refusal>;

fn deny(status: StatusCode, message: &'static str) -> Answer {
    Err(Refusal(status, message))
}

fn dashboard(state: &ServerState) -> Result<&Dashboard, Refusal> {
    state
        .dashboard
        .as_ref()
        .ok_or(Refusal(StatusCode::NOT_FOUND, "The admin page is off."))
}

/// Rule 3: a live session.
fn reader(state: &ServerState, headers: &HeaderMap) -> Result<AdminSession, Refusal> {
    dashboard(state)?
        .sessions
        .get(headers)
        .ok_or(Refusal(StatusCode::UNAUTHORIZED, "Sign in first."))
}

/// Rule 4: a live session, its CSRF token, the page's own origin, a JSON body.
fn writer(state: &ServerState, headers: &HeaderMap) -> Result<AdminSession, Refusal> {
    if !auth::same_origin(headers) {
        return Err(Refusal(
            StatusCode::FORBIDDEN,
            "Refused: this request did not come from the admin page.",
        ));
    }
    let session = reader(state, headers)?;
    if !auth::csrf_ok(headers, &session) || !crate::callers::is_json(headers) {
        return Err(Refusal(
            StatusCode::FORBIDDEN,
            "Refused: missing or wrong CSRF token.",
        ));
    }
    Ok(session)
}

async fn app(
    state: &ServerState,
    params: &HashMap<String, String>,
) -> Result<Arc<AppEntry>, Refusal> {
    let id = params
        .get("app")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty());
    match state.registry.get(id.unwrap_or(PUBLIC)).await {
        Ok(Some(entry)) => Ok(entry),
        Ok(None) => Err(Refusal(StatusCode::NOT_FOUND, "No such app.")),
        Err(_) => Err(Refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Cannot load the app.",
        )),
    }
}

/// `POST /dashboard/api/sign-in {"key": …}` → `{"csrf": …}` and the session cookie; `401` for
/// a wrong key (after a delay), `429` after too many.
pub(super) async fn sign_in(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let d = dashboard(&state)?;
    if !auth::same_origin(&headers) || !crate::callers::is_json(&headers) {
        return deny(
            StatusCode::FORBIDDEN,
            "Refused: sign in from the admin page itself.",
        );
    }
    let ip = client_ip::current();
    if let Some(wait) = d.limiter.blocked(ip) {
        state.audit.record(
            Record::new(AuditKind::AdminSignInRefused).detail(json!({"reason": "too_many_tries"})),
        );
        let mut r = refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many wrong keys from this address; try again later.",
        );
        let secs = wait.as_secs().max(1).to_string();
        if let Ok(v) = HeaderValue::from_str(&secs) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Ok(r);
    }
    let presented = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("key").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default();
    if !d.key.matches(&presented) {
        d.limiter.failed(ip);
        state.audit.record(
            Record::new(AuditKind::AdminSignInRefused).detail(json!({"reason": "wrong_key"})),
        );
        tokio::time::sleep(auth::WRONG_KEY_DELAY).await;
        return deny(StatusCode::UNAUTHORIZED, "Wrong admin key.");
    }
    d.limiter.succeeded(ip);
    let Some((id, csrf)) = d.sessions.start() else {
        return deny(
            StatusCode::INTERNAL_SERVER_ERROR,
            "No randomness available.",
        );
    };
    state.audit.record(Record::new(AuditKind::AdminSignIn));
    let mut r = respond(StatusCode::OK, &json!({ "csrf": csrf }));
    if let Ok(v) = HeaderValue::from_str(&auth::session_set_cookie(&id, auth::over_https(&headers)))
    {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}

/// `POST /dashboard/api/sign-out` ends the session.
pub(super) async fn sign_out(State(state): State<Arc<ServerState>>, headers: HeaderMap) -> Answer {
    writer(&state, &headers)?;
    if let Ok(d) = dashboard(&state) {
        d.sessions.end(&headers);
    }
    state.audit.record(Record::new(AuditKind::AdminSignOut));
    let mut r = respond(StatusCode::OK, &json!({}));
    if let Ok(v) = HeaderValue::from_str(&auth::session_clear_cookie(auth::over_https(&headers))) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}

/// `GET /dashboard/api/me` → the CSRF token and the audit settings.
pub(super) async fn me(State(state): State<Arc<ServerState>>, headers: HeaderMap) -> Answer {
    let session = reader(&state, &headers)?;
    reply(
        StatusCode::OK,
        &json!({
            "csrf": session.csrf,
            "audit_stored": state.audit.stored(),
            "audit_retention_days": state.audit.retention_days(),
        }),
    )
}

/// `GET /dashboard/api/apps` → the apps this instance has loaded.
pub(super) async fn apps(State(state): State<Arc<ServerState>>, headers: HeaderMap) -> Answer {
    reader(&state, &headers)?;
    reply(
        StatusCode::OK,
        &json!({ "apps": state.registry.loaded_app_ids() }),
    )
}

/// `GET /dashboard/api/sessions?app=&user=` → the user's live sessions with device data.
pub(super) async fn sessions(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    Query(params): Params,
) -> Answer {
    reader(&state, &headers)?;
    let entry = app(&state, &params).await?;
    let user = params.get("user").map(|s| s.trim()).unwrap_or_default();
    if user.is_empty() {
        return deny(StatusCode::BAD_REQUEST, "Give a user id.");
    }
    let page = DevicePage {
        limit: 100,
        offset: 0,
    };
    match entry.engine.list_devices(user, None, page).await {
        Ok(devices) => reply(StatusCode::OK, &json!({ "sessions": devices })),
        Err(e) => {
            tracing::error!(error = %e, "admin page: cannot list sessions");
            deny(StatusCode::INTERNAL_SERVER_ERROR, "Cannot list sessions.")
        }
    }
}

/// `POST /dashboard/api/revoke {"app", "handles": [..]}` or `{"app", "user", "all": true}` →
/// `{"revoked": [..]}`, reported with [`RevokeCause::Admin`].
pub(super) async fn revoke(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    writer(&state, &headers)?;
    let Ok(input) = serde_json::from_slice::<Value>(&body) else {
        return deny(StatusCode::BAD_REQUEST, "The body must be JSON.");
    };
    let mut params = HashMap::new();
    if let Some(a) = input.get("app").and_then(Value::as_str) {
        params.insert("app".to_owned(), a.to_owned());
    }
    let entry = app(&state, &params).await?;
    let user = input.get("user").and_then(Value::as_str);
    let all = input.get("all").and_then(Value::as_bool).unwrap_or(false);
    let handles: Vec<String> = if all {
        let Some(user) = user else {
            return deny(
                StatusCode::BAD_REQUEST,
                "Give the user whose sessions to revoke.",
            );
        };
        match entry.engine.session_handles_for_user(user, None).await {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %e, "admin page: cannot list sessions");
                return deny(StatusCode::INTERNAL_SERVER_ERROR, "Cannot list sessions.");
            }
        }
    } else {
        input
            .get("handles")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    if (handles.is_empty() && !all) || handles.len() > MAX_REVOKE {
        return deny(
            StatusCode::BAD_REQUEST,
            "Name 1 to 1000 sessions, or a user with all=true.",
        );
    }
    match entry
        .engine
        .revoke_sessions_because(&handles, RevokeCause::Admin)
        .await
    {
        Ok(revoked) => {
            state.audit.record(
                Record::new(AuditKind::AdminRevoke)
                    .app(entry.engine.app_id())
                    .user(user)
                    .detail(json!({"handles": revoked, "all": all})),
            );
            reply(StatusCode::OK, &json!({ "revoked": revoked }))
        }
        Err(e) => {
            tracing::error!(error = %e, "admin page: cannot revoke");
            deny(StatusCode::INTERNAL_SERVER_ERROR, "Cannot revoke.")
        }
    }
}

/// `GET /dashboard/api/keys?app=` → the app's signing keys: kid, kind, created, signs until,
/// verifies until, and which one signs now.
pub(super) async fn keys(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    Query(params): Params,
) -> Answer {
    reader(&state, &headers)?;
    let entry = app(&state, &params).await?;
    let engine = &entry.engine;
    // The store is the truth (another instance may have rotated); this is what the next
    // signing request would do anyway.
    if let Err(e) = engine.reload_keys().await {
        tracing::warn!(error = %e, "admin page: cannot reload keys");
    }
    let ring = engine.key_ring();
    let timing = engine.config().rotation();
    let now = crate::audit::now_ms();
    let signing: Vec<&str> = [KeyKind::Dynamic, KeyKind::Static]
        .iter()
        .filter_map(|kind| ring.signing_key(*kind, &timing, now))
        .map(|k| k.kid())
        .collect();
    let mut keys: Vec<(u64, Value)> = ring
        .kids()
        .filter_map(|kid| ring.key(kid))
        .map(|k| {
            let dynamic = k.kind() == KeyKind::Dynamic;
            let verify_until = k.verifying().verify_until_ms();
            let signs_now = signing.contains(&k.kid());
            let signs_until = if dynamic {
                Some(k.created_at_ms().saturating_add(timing.update_interval_ms))
            } else {
                None
            };
            (
                k.created_at_ms(),
                json!({
                    "kid": k.kid(),
                    "kind": if dynamic { "dynamic" } else { "static" },
                    "created_ms": k.created_at_ms(),
                    "signs_until_ms": signs_until,
                    "verifies_until_ms": (verify_until != u64::MAX).then_some(verify_until),
                    "signing": signs_now,
                }),
            )
        })
        .collect();
    keys.sort_by_key(|k| std::cmp::Reverse(k.0));
    let keys: Vec<Value> = keys.into_iter().map(|(_, v)| v).collect();
    reply(
        StatusCode::OK,
        &json!({ "app": engine.app_id(), "now_ms": now, "keys": keys }),
    )
}

/// `GET /dashboard/api/events?kind=&user=&app=&limit=` → the newest audit records.
pub(super) async fn events(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    Query(params): Params,
) -> Answer {
    reader(&state, &headers)?;
    let text = |k: &str| {
        params
            .get(k)
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    let query = AuditQuery {
        limit: text("limit").and_then(|l| l.parse().ok()).unwrap_or(100),
        kind: text("kind"),
        user_id: text("user"),
        app_id: text("app"),
        since_ms: None,
        until_ms: None,
    };
    match state.audit.latest(&query).await {
        Ok((rows, source)) => {
            let records: Vec<Value> = rows
                .into_iter()
                .map(|r| {
                    json!({
                        "id": r.id,
                        "at_ms": r.at_ms,
                        "app_id": r.app_id,
                        "kind": r.kind,
                        "user_id": r.user_id,
                        "session_handle": r.session_handle,
                        "client_ip": r.client_ip,
                        "detail": serde_json::from_str::<Value>(&r.detail).unwrap_or(Value::Null),
                    })
                })
                .collect();
            let source = match source {
                RecordSource::Store => "store",
                RecordSource::Memory => "memory",
            };
            reply(
                StatusCode::OK,
                &json!({ "source": source, "records": records }),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "admin page: cannot read audit records");
            deny(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Cannot read audit records.",
            )
        }
    }
}

/// `GET /dashboard/api/counters` → event counts since this process started.
pub(super) async fn counters(State(state): State<Arc<ServerState>>, headers: HeaderMap) -> Answer {
    reader(&state, &headers)?;
    let counts: serde_json::Map<String, Value> = state
        .audit
        .counters()
        .snapshot()
        .into_iter()
        .map(|(name, n)| (name.to_owned(), json!(n)))
        .collect();
    reply(
        StatusCode::OK,
        &json!({ "since_ms": state.audit.started_ms(), "counters": counts }),
    )
}
