//! Request dispatch: one fallback handler refuses browsers, resolves the app/tenant prefixes,
//! finds the API, applies the core's checks in its order (method, `cdi-version`, app, API key,
//! then JSON content type and body size, public-tenant rule) and calls the endpoint module,
//! all within the request deadline. Each answer is counted by its route template and status
//! (when metrics are on) and logged at debug level as one line without the raw path, query or
//! headers.

mod apps;
mod dbsc;
mod devices;
mod jwt;
mod misc;
mod session;

pub use session::MAX_LISTED_SESSIONS;

use crate::apps::AppEntry;
use crate::cdi::CdiVersion;
use crate::error::ApiError;
use crate::input::{JsonInput, QueryInput};
use crate::limit::too_many_requests;
use crate::metrics::Operation;
use crate::paths::{resolve, PathError, MAX_TENANT_ID_LEN};
use crate::state::ServerState;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera::PUBLIC;

/// Largest request body accepted (1 MiB); larger gets 413.
pub const MAX_BODY: usize = 1024 * 1024;

/// The HTTP service of `tessera serve`.
pub fn router(state: Arc<ServerState>) -> Router {
    // `/metrics` is always this route: 404 when metrics are off or served apart.
    Router::new()
        .merge(crate::dashboard::routes(&state))
        .route("/metrics", axum::routing::get(metrics_behind_api_key))
        .fallback(dispatch)
        .with_state(state)
}

/// The router of the separate metrics listener (`--metrics-addr`): `GET /metrics` only, no
/// API key.
pub fn metrics_router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(metrics_open))
        .with_state(state)
}

/// `GET /metrics` on the main port: the public app's API keys apply.
async fn metrics_behind_api_key(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
) -> Response {
    if !state.metrics_route {
        return ApiError::NotFound.into_response();
    }
    let keys = match state.registry.get(PUBLIC).await {
        Ok(Some(app)) => app.settings.api_keys.clone(),
        Ok(None) => None,
        Err(e) => return e.into_response(),
    };
    if !crate::api_key::api_key_ok(&headers, keys.as_deref()) {
        return ApiError::InvalidApiKey.into_response();
    }
    metrics_open(State(state)).await
}

/// The exposition text, with the scrape-time gauges set.
async fn metrics_open(State(state): State<Arc<ServerState>>) -> Response {
    let Some(metrics) = &state.metrics else {
        return ApiError::NotFound.into_response();
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let key_ages: Vec<(String, Duration)> = state
        .registry
        .loaded()
        .iter()
        .filter_map(|app| {
            let created = app.engine.key_ring().newest_dynamic_created()?;
            Some((
                app.engine.app_id().to_owned(),
                Duration::from_millis(now_ms.saturating_sub(created)),
            ))
        })
        .collect();
    let pool = state.registry.store().pool_stats();
    let mut r = metrics.render(&key_ages, pool).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

/// One API: where it is and which checks apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Root,
    Hello,
    Versions,
    Jwks,
    AnonymousJwks,
    Session,
    Verify,
    Refresh,
    Regenerate,
    Remove,
    SessionUser,
    SessionData,
    JwtData,
    Jwt,
    JwtJwks,
    CreateApp,
    RemoveApp,
    UserById,
    Anonymous,
    Devices,
    DevicesRevoke,
    DevicesRevokeOthers,
    DbscChallenge,
    DbscBind,
    DbscBindGuest,
    DbscCarryGuest,
    DbscGet,
    DbscRefresh,
}

/// Each API's path after the app/tenant prefixes: also its route template in metrics and logs.
const API_PATHS: &[(&str, Api)] = &[
    ("", Api::Root),
    ("/hello", Api::Hello),
    ("/apiversion", Api::Versions),
    ("/.well-known/jwks.json", Api::Jwks),
    ("/.well-known/anonymous-jwks.json", Api::AnonymousJwks),
    ("/recipe/session", Api::Session),
    ("/recipe/session/verify", Api::Verify),
    ("/recipe/session/refresh", Api::Refresh),
    ("/recipe/session/regenerate", Api::Regenerate),
    ("/recipe/session/remove", Api::Remove),
    ("/recipe/session/user", Api::SessionUser),
    ("/recipe/session/data", Api::SessionData),
    ("/recipe/jwt/data", Api::JwtData),
    ("/recipe/jwt", Api::Jwt),
    ("/recipe/jwt/jwks", Api::JwtJwks),
    ("/recipe/multitenancy/app/v2", Api::CreateApp),
    ("/recipe/multitenancy/app/remove", Api::RemoveApp),
    ("/user/id", Api::UserById),
    ("/recipe/session/anonymous", Api::Anonymous),
    ("/recipe/session/devices", Api::Devices),
    ("/recipe/session/devices/revoke", Api::DevicesRevoke),
    (
        "/recipe/session/devices/revoke-others",
        Api::DevicesRevokeOthers,
    ),
    ("/recipe/session/dbsc/challenge", Api::DbscChallenge),
    ("/recipe/session/dbsc/bind", Api::DbscBind),
    ("/recipe/session/dbsc/bind-guest", Api::DbscBindGuest),
    ("/recipe/session/dbsc/carry-guest", Api::DbscCarryGuest),
    ("/recipe/session/dbsc/get", Api::DbscGet),
    ("/recipe/session/dbsc/refresh", Api::DbscRefresh),
];

impl Api {
    fn from_path(p: &str) -> Option<Self> {
        API_PATHS
            .iter()
            .find(|(path, _)| *path == p)
            .map(|(_, api)| *api)
    }

    /// The route template (`/` for the root).
    fn template(self) -> &'static str {
        match API_PATHS.iter().find(|(_, api)| *api == self) {
            Some(("", _)) | None => "/",
            Some((path, _)) => path,
        }
    }

    /// The operation timed in `tessera_session_operation_seconds`, if any.
    fn operation(self, method: &Method) -> Option<Operation> {
        match self {
            Api::Session if *method == Method::POST => Some(Operation::Create),
            Api::Verify => Some(Operation::Verify),
            Api::Refresh => Some(Operation::Refresh),
            _ => None,
        }
    }

    fn methods(self) -> &'static [Method] {
        match self {
            Api::Root | Api::Hello => &[Method::GET, Method::POST, Method::PUT, Method::DELETE],
            Api::Versions
            | Api::Jwks
            | Api::AnonymousJwks
            | Api::SessionUser
            | Api::JwtJwks
            | Api::UserById
            | Api::Devices
            | Api::DbscGet => &[Method::GET],
            Api::Session => &[Method::GET, Method::POST],
            Api::Verify
            | Api::Refresh
            | Api::Regenerate
            | Api::Remove
            | Api::Jwt
            | Api::Anonymous
            | Api::RemoveApp
            | Api::DevicesRevoke
            | Api::DevicesRevokeOthers
            | Api::DbscChallenge
            | Api::DbscBind
            | Api::DbscBindGuest
            | Api::DbscCarryGuest
            | Api::DbscRefresh => &[Method::POST],
            Api::SessionData | Api::JwtData => &[Method::GET, Method::PUT],
            Api::CreateApp => &[Method::PUT],
        }
    }

    /// Needs the version in the supported set (when a header is sent).
    fn strict_cdi(self) -> bool {
        !matches!(
            self,
            Api::Hello | Api::Versions | Api::Jwks | Api::AnonymousJwks
        )
    }

    fn needs_api_key(self) -> bool {
        !matches!(
            self,
            Api::Root | Api::Hello | Api::Jwks | Api::AnonymousJwks
        )
    }

    /// Reads a JSON body when called with `method` (every body-carrying API but the hello
    /// ones, which read none).
    fn reads_json(self, method: &Method) -> bool {
        *method != Method::GET && !matches!(self, Api::Root | Api::Hello)
    }

    /// Public-tenant-only from CDI 5.0.
    fn public_tenant_only(self) -> bool {
        matches!(
            self,
            Api::Versions | Api::Jwt | Api::JwtJwks | Api::CreateApp | Api::RemoveApp
        )
    }
}

/// What a handler gets.
pub(crate) struct Ctx {
    pub(crate) state: Arc<ServerState>,
    pub(crate) app: Arc<AppEntry>,
    pub(crate) app_id: String,
    pub(crate) tenant_id: String,
    pub(crate) cdi: CdiVersion,
    pub(crate) method: Method,
    pub(crate) query: QueryInput,
    pub(crate) body: Bytes,
}

impl Ctx {
    pub(crate) fn json(&self) -> Result<JsonInput, ApiError> {
        JsonInput::parse(&self.body)
    }

    /// The 403 of public-tenant-only APIs (CDI ≥ 5.0).
    pub(crate) fn require_public_tenant(&self) -> Result<(), ApiError> {
        if self.tenant_id != PUBLIC && self.cdi.at_least(5, 0) {
            return Err(ApiError::Forbidden(
                "Only public tenantId can call this app specific API".into(),
            ));
        }
        Ok(())
    }
}

/// What `handle` found out about a request, for metrics and the request log line.
#[derive(Default)]
struct Seen {
    api: Option<Api>,
    app_id: Option<String>,
}

async fn dispatch(
    State(state): State<Arc<ServerState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let mut seen = Seen::default();
    let response = answer(&state, &mut seen, method.clone(), uri, headers, body).await;
    let elapsed = started.elapsed();
    let route = seen.api.map_or("unmatched", Api::template);
    let status = response.status().as_u16();
    if let Some(metrics) = &state.metrics {
        metrics.request(route, status);
        // Answered operations only: a refused request (401, 400) is not a create.
        let operation = seen
            .api
            .and_then(|api| api.operation(&method))
            .filter(|_| status == 200);
        if let (Some(operation), Some(app_id)) = (operation, &seen.app_id) {
            metrics.operation(operation, app_id, elapsed);
        }
    }
    tracing::debug!(
        target: "tessera::request",
        method = %method,
        route,
        status,
        latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    response
}

/// The answer to one request, within the request deadline.
async fn answer(
    state: &Arc<ServerState>,
    seen: &mut Seen,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let deadline = state.limits.request_timeout;
    let state = Arc::clone(state);
    match tokio::time::timeout(deadline, handle(state, seen, method, uri, headers, body)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => e.into_response(),
        // The body may be half read: the connection is not reused (SEC2-M4).
        Err(_) => {
            let mut r = ApiError::RequestTimeout.into_response();
            r.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            r
        }
    }
}

/// The wait before the request's (accepted) API key may send again, if it is over the
/// per-key limit; `None` when under it, or with no limit or no keys configured.
fn over_key_limit(state: &ServerState, headers: &HeaderMap, keys_set: bool) -> Option<Duration> {
    let limiter = state.api_key_limiter.as_ref().filter(|_| keys_set)?;
    let key_hash = crate::api_key::presented_key_hash(headers)?;
    let wait = limiter.check(&key_hash).err()?;
    if let Some(metrics) = &state.metrics {
        metrics.rate_limited();
    }
    Some(wait)
}

fn not_found_app(app_id: &str, tenant_id: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "AppId or tenantId not found => Tenant with the following connectionURIDomain, appId and \
         tenantId combination not found: (, {app_id}, {tenant_id})"
    ))
}

async fn handle(
    state: Arc<ServerState>,
    seen: &mut Seen,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if crate::callers::from_browser(&headers) {
        return Err(ApiError::Forbidden(
            "Browsers may not call the core; call it from your backend".into(),
        ));
    }
    let resolved = resolve(uri.path(), &state.base_path, |p| {
        Api::from_path(p).is_some()
    })
    .map_err(|e| match e {
        PathError::NotFound => ApiError::NotFound,
        PathError::BadTenant => ApiError::BadRequest(format!(
            "Invalid tenantId: 1 to {MAX_TENANT_ID_LEN} characters of a-z, 0-9 and '-', not \
             starting with 'appid-'"
        )),
    })?;
    let api = Api::from_path(&resolved.api).ok_or(ApiError::NotFound)?;
    seen.api = Some(api);
    if !api.methods().contains(&method) {
        return Err(ApiError::MethodNotAllowed);
    }
    let declared = headers
        .get("cdi-version")
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    let cdi = state
        .cdi
        .check(declared, api.strict_cdi())
        .map_err(ApiError::BadRequest)?;
    let app = state
        .registry
        .get(&resolved.app_id)
        .await?
        .ok_or_else(|| not_found_app(&resolved.app_id, &resolved.tenant_id))?;
    seen.app_id = Some(resolved.app_id.clone());
    if api.needs_api_key() {
        if !crate::api_key::api_key_ok(&headers, app.settings.api_keys.as_deref()) {
            return Err(ApiError::InvalidApiKey);
        }
        if let Some(wait) = over_key_limit(&state, &headers, app.settings.api_keys.is_some()) {
            return Ok(too_many_requests(wait));
        }
    }
    if api.reads_json(&method) && !crate::callers::is_json(&headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let declared_len = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared_len.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    let body = if method == Method::GET {
        Bytes::new()
    } else {
        axum::body::to_bytes(body, MAX_BODY)
            .await
            .map_err(|_| ApiError::PayloadTooLarge)?
    };
    let ctx = Ctx {
        state: Arc::clone(&state),
        app,
        app_id: resolved.app_id,
        tenant_id: resolved.tenant_id,
        cdi,
        method,
        query: QueryInput::from_uri(&uri),
        body,
    };
    if api.public_tenant_only() {
        ctx.require_public_tenant()?;
    }
    match api {
        Api::Root | Api::Hello => misc::hello(&ctx).await,
        Api::Versions => Ok(misc::api_version(&ctx)),
        Api::Jwks => misc::jwks(&ctx, false).await,
        Api::JwtJwks => misc::jwks(&ctx, true).await,
        Api::AnonymousJwks => Ok(misc::anonymous_jwks(&ctx)),
        Api::Session if ctx.method == Method::POST => session::create(&ctx).await,
        Api::Session => session::info(&ctx).await,
        Api::Verify => session::verify(&ctx).await,
        Api::Refresh => session::refresh(&ctx).await,
        Api::Regenerate => session::regenerate(&ctx).await,
        Api::Remove => session::remove(&ctx).await,
        Api::SessionUser => session::user(&ctx).await,
        Api::SessionData if ctx.method == Method::PUT => session::put_data(&ctx).await,
        Api::SessionData => session::get_data(&ctx).await,
        Api::JwtData if ctx.method == Method::PUT => jwt::put_data(&ctx).await,
        Api::JwtData => jwt::get_data(&ctx).await,
        Api::Jwt => jwt::create(&ctx).await,
        Api::CreateApp => apps::create_or_update(&ctx).await,
        Api::RemoveApp => apps::remove(&ctx).await,
        Api::UserById => misc::user_by_id(&ctx),
        Api::Anonymous => session::mint_anonymous(&ctx),
        Api::Devices => devices::list(&ctx).await,
        Api::DevicesRevoke => devices::revoke(&ctx).await,
        Api::DevicesRevokeOthers => devices::revoke_others(&ctx).await,
        Api::DbscChallenge => dbsc::challenge(&ctx).await,
        Api::DbscBind => dbsc::bind(&ctx).await,
        Api::DbscBindGuest => dbsc::bind_guest(&ctx).await,
        Api::DbscCarryGuest => dbsc::carry_guest(&ctx).await,
        Api::DbscGet => dbsc::get(&ctx).await,
        Api::DbscRefresh => dbsc::refresh(&ctx).await,
    }
}
