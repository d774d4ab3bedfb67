//! `browser-app`: a small axum app with tessera sessions, used by the headless-Chromium tests in
//! `tests/browser` against the stock `supertokens-website` SDK. It is also a worked example of
//! wiring `tessera-axum` into an app:
//!
//! 1. open a store and build a [`tessera::SessionEngine`] (in-process, no separate core);
//! 2. describe the deployment with [`Config::builder`] (API and website origins, plus any
//!    explicit transfer/anti-CSRF/cookie choices);
//! 3. add `tessera.layer()` to the router: it serves `POST /auth/session/refresh` and
//!    `POST /auth/signout` and makes the [`Session`] and [`SignIn`] extractors work;
//! 4. add CORS for a website on another origin, allowing the SDK's request headers.
//!
//! ```text
//! cargo run -p tessera-examples --bin browser-app -- --port 8080 --bundle path/to/supertokens-website.js
//! ```
//!
//! Routes: `GET /index.html` (a page that loads the SDK from `/st/bundle.js`), `POST /login`
//! `{"userId": "…"}`, `GET /api/me`, `POST /api/mutate` and `POST /api/mutate-json` (session
//! required; the latter also needs a JSON body), `GET /api/counters` and `GET /ping` (no session).
//!
//! Test instrumentation for the browser attack tests (`tests/browser/attacks.test.mjs`), all
//! without a session: `GET /api/requests?since=<seq>` (every request the app saw, preflights
//! included, with its status, cookie names and anti-CSRF headers) and `GET /api/sessions?userId=…`
//! (the user's live session handles, straight from the store).

use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::{Parser, ValueEnum};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tessera_axum::{
    AntiCsrfMode, Config, SameSite, Session, SessionRejection, SignIn, Tessera, TokenTransfer,
};

/// Command-line options.
#[derive(Debug, Parser)]
#[command(about = "tessera-axum example app for browser tests (binds 127.0.0.1 only)")]
struct Args {
    /// Port to listen on (127.0.0.1).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Origin of the API, as the browser sees it (default `http://localhost:<port>`).
    #[arg(long)]
    api_domain: Option<String>,
    /// Origin of the website whose pages call the API (default `http://localhost:<port>`).
    #[arg(long)]
    website_domain: Option<String>,
    /// Access-token lifetime in seconds (tests use 2–3 to exercise refresh).
    #[arg(long, default_value_t = 3600)]
    access_token_validity_secs: u64,
    /// Token transfer methods accepted; `any` follows the SDK's `st-auth-mode` at sign-in.
    #[arg(long, value_enum, default_value_t = Transfer::Any)]
    transfer: Transfer,
    /// Anti-CSRF mode; `auto` chooses from the SameSite attribute.
    #[arg(long, value_enum, default_value_t = AntiCsrf::Auto)]
    anti_csrf: AntiCsrf,
    /// SameSite attribute of the session cookies; `auto` chooses from the two origins.
    #[arg(long, value_enum, default_value_t = SameSiteArg::Auto)]
    same_site: SameSiteArg,
    /// Secure attribute of the session cookies; `auto` means "the API is https".
    #[arg(long, value_enum, default_value_t = SecureArg::Auto)]
    secure: SecureArg,
    /// The supertokens-website browser bundle to serve at `/st/bundle.js`.
    #[arg(long, env = "ST_BUNDLE_PATH")]
    bundle: Option<PathBuf>,
    /// SQLite database file (default: a file in a temporary directory removed at exit).
    #[arg(long)]
    sqlite_path: Option<PathBuf>,
    /// `Domain` attribute of the session cookies (default: host-only cookies).
    #[arg(long)]
    cookie_domain: Option<String>,
    /// A previous cookie domain whose duplicate session cookies the refresh route clears.
    #[arg(long)]
    older_cookie_domain: Option<String>,
}

/// `--transfer`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Transfer {
    Any,
    Cookie,
    Header,
}

/// `--anti-csrf`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum AntiCsrf {
    Auto,
    #[value(name = "none")]
    Off,
    CustomHeader,
    Token,
}

/// `--same-site`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum SameSiteArg {
    Auto,
    Lax,
    Strict,
    #[value(name = "none")]
    NoneSecure,
}

/// `--secure`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum SecureArg {
    Auto,
    True,
    False,
}

/// The app's own state: counters the tests read through `GET /api/counters`.
#[derive(Default)]
struct Counters {
    mutations: AtomicU64,
    refresh_calls: AtomicU64,
    /// Mutations per user id: as whom each state change ran.
    mutations_by: Mutex<BTreeMap<String, u64>>,
}

/// How many requests `GET /api/requests` keeps (the oldest are dropped first).
const REQUEST_LOG_CAPACITY: usize = 5_000;

/// Every request the app answered (instrumentation routes excepted), for the attack tests: what
/// reached the server, with what, and how it was answered.
#[derive(Default)]
struct RequestLog {
    next_seq: AtomicU64,
    entries: Mutex<VecDeque<Value>>,
}

/// What the handlers share: the counters, the request log, the session SDK and the SDK bundle
/// bytes (if one was given).
#[derive(Clone)]
struct AppState {
    counters: Arc<Counters>,
    requests: Arc<RequestLog>,
    tessera: Tessera,
    bundle: Option<Bytes>,
}

/// Body of `POST /login`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LoginBody {
    user_id: String,
}

/// Sign-in: a real app checks credentials first. The tokens go out in the transfer method the
/// SDK asked for (`st-auth-mode`), together with the `front-token`. The `Json` extractor refuses
/// non-JSON bodies (415), so a cross-site HTML form cannot sign a visitor in (login CSRF).
async fn login(
    sign_in: SignIn,
    Json(body): Json<LoginBody>,
) -> Result<Json<Value>, SessionRejection> {
    let session = sign_in.create(&body.user_id, Map::new(), json!({})).await?;
    Ok(Json(
        json!({"status": "OK", "sessionHandle": session.handle()}),
    ))
}

/// A protected read: the `Session` extractor answers 401 itself when there is no valid session.
async fn me(session: Session) -> Json<Value> {
    Json(json!({"userId": session.user_id()}))
}

/// Counts one state change made as `user_id`.
fn record_mutation(counters: &Counters, user_id: &str) -> u64 {
    let mut by = counters
        .mutations_by
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    *by.entry(user_id.to_owned()).or_default() += 1;
    counters.mutations.fetch_add(1, Ordering::SeqCst) + 1
}

/// A protected state change (the CSRF tests' target).
async fn mutate(State(state): State<AppState>, session: Session) -> Json<Value> {
    let n = record_mutation(&state.counters, session.user_id());
    Json(json!({"mutations": n}))
}

/// A protected state change that also takes a JSON body: a cross-site form (urlencoded,
/// multipart or text/plain) gets 415 here even where it carries a valid session.
async fn mutate_json(
    State(state): State<AppState>,
    session: Session,
    Json(_body): Json<Value>,
) -> Json<Value> {
    let n = record_mutation(&state.counters, session.user_id());
    Json(json!({"mutations": n}))
}

/// Test instrumentation (no session needed): how many mutations (in all and per user) and
/// refresh calls happened.
async fn counters(State(state): State<AppState>) -> Json<Value> {
    let c = &state.counters;
    let by = c
        .mutations_by
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    Json(json!({
        "mutations": c.mutations.load(Ordering::SeqCst),
        "refreshCalls": c.refresh_calls.load(Ordering::SeqCst),
        "mutationsBy": by,
    }))
}

/// Query of `GET /api/requests`.
#[derive(Deserialize)]
struct SinceQuery {
    since: Option<u64>,
}

/// Test instrumentation: the logged requests with `seq` greater than `since` (default: all),
/// and `next`, the `since` to pass to see only later ones.
async fn requests(State(state): State<AppState>, Query(q): Query<SinceQuery>) -> Json<Value> {
    let since = q.since.unwrap_or(0);
    let entries = state
        .requests
        .entries
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let list: Vec<&Value> = entries
        .iter()
        .filter(|e| e["seq"].as_u64().is_some_and(|s| s > since))
        .collect();
    Json(json!({
        "next": state.requests.next_seq.load(Ordering::SeqCst),
        "requests": list,
    }))
}

/// Query of `GET /api/sessions`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserQuery {
    user_id: String,
}

/// Test instrumentation: the live session handles of a user, from the store (so a revoked
/// session is gone here even while its access token still verifies).
async fn sessions_of(
    State(state): State<AppState>,
    Query(q): Query<UserQuery>,
) -> Result<Json<Value>, (StatusCode, String)> {
    let handles = state
        .tessera
        .core()
        .session_handles_for_user(&q.user_id, None)
        .await
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(json!({"handles": handles})))
}

/// The first value of a request or response header, if it is text.
fn header_text(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Records every request (outermost layer, so CORS preflights too) in the request log: method,
/// path, query, status, `Origin`, `Sec-Fetch-Site`, `Content-Type`, the cookie names in the order the
/// browser sent them, whether `rid` / `anti-csrf` / `Authorization` were present, the answer's
/// `Access-Control-Allow-Origin`, and the `message` of a JSON 4xx body.
async fn log_requests(
    State(log): State<Arc<RequestLog>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    if path == "/api/requests" || path == "/api/counters" || path == "/api/sessions" {
        return next.run(request).await;
    }
    let headers = request.headers();
    let cookies: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.split_once('=').map(|(n, _)| n.trim().to_owned()))
        .collect();
    let mut entry = json!({
        "method": request.method().as_str(),
        "path": path,
        "query": request.uri().query(),
        "origin": header_text(headers, "origin"),
        "secFetchSite": header_text(headers, "sec-fetch-site"),
        "contentType": header_text(headers, "content-type"),
        "cookies": cookies,
        "rid": headers.contains_key("rid"),
        "antiCsrf": headers.contains_key("anti-csrf"),
        "authorization": headers.contains_key(header::AUTHORIZATION),
    });
    let response = next.run(request).await;
    let status = response.status();
    entry["status"] = json!(status.as_u16());
    entry["acao"] = json!(header_text(
        response.headers(),
        "access-control-allow-origin"
    ));
    let response = if status.is_client_error() {
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 64 * 1024)
            .await
            .unwrap_or_default();
        if let Ok(body) = serde_json::from_slice::<Value>(&bytes) {
            entry["message"] = body["message"].clone();
        }
        Response::from_parts(parts, axum::body::Body::from(bytes))
    } else {
        response
    };
    entry["seq"] = json!(log.next_seq.fetch_add(1, Ordering::SeqCst) + 1);
    let mut entries = log.entries.lock().unwrap_or_else(|e| e.into_inner());
    if entries.len() >= REQUEST_LOG_CAPACITY {
        entries.pop_front();
    }
    entries.push_back(entry);
    drop(entries);
    response
}

/// The test page: loads the SDK from `/st/bundle.js` and nothing else.
async fn index() -> Html<&'static str> {
    Html(include_str!("../../static/index.html"))
}

/// The supertokens-website bundle given with `--bundle`.
async fn sdk_bundle(State(state): State<AppState>) -> Response {
    tessera_examples::sdk_bundle_response(
        state.bundle,
        "no SDK bundle: start with --bundle <path> or ST_BUNDLE_PATH",
    )
}

/// Counts `POST /auth/session/refresh` before the tessera layer answers it.
async fn count_refresh(
    State(counters): State<Arc<Counters>>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() == Method::POST && request.uri().path() == "/auth/session/refresh" {
        counters.refresh_calls.fetch_add(1, Ordering::SeqCst);
    }
    next.run(request).await
}

/// The session configuration from the flags; unset choices stay automatic.
fn session_config(
    args: &Args,
    api: &str,
    website: &str,
) -> Result<Config, tessera_axum::ConfigError> {
    // These tests exercise the SuperTokens protocol as it is; the `shop` example and its tests
    // cover anonymous sessions.
    let mut builder = Config::builder(api, website)
        .anonymous_sessions(false)
        .token_transfer(match args.transfer {
            Transfer::Any => TokenTransfer::Any,
            Transfer::Cookie => TokenTransfer::Cookie,
            Transfer::Header => TokenTransfer::Header,
        });
    builder = match args.anti_csrf {
        AntiCsrf::Auto => builder,
        AntiCsrf::Off => builder.anti_csrf(AntiCsrfMode::None),
        AntiCsrf::CustomHeader => builder.anti_csrf(AntiCsrfMode::ViaCustomHeader),
        AntiCsrf::Token => builder.anti_csrf(AntiCsrfMode::ViaToken),
    };
    builder = match args.same_site {
        SameSiteArg::Auto => builder,
        SameSiteArg::Lax => builder.same_site(SameSite::Lax),
        SameSiteArg::Strict => builder.same_site(SameSite::Strict),
        SameSiteArg::NoneSecure => builder.same_site(SameSite::None),
    };
    builder = match args.secure {
        SecureArg::Auto => builder,
        SecureArg::True => builder.secure(true),
        SecureArg::False => builder.secure(false),
    };
    if let Some(domain) = &args.cookie_domain {
        builder = builder.cookie_domain(domain);
    }
    if let Some(domain) = &args.older_cookie_domain {
        builder = builder.older_cookie_domain(domain);
    }
    builder.build()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let local = format!("http://localhost:{}", args.port);
    let api = args.api_domain.clone().unwrap_or_else(|| local.clone());
    let website = args.website_domain.clone().unwrap_or(local);
    let website = website.trim_end_matches('/');

    // Declared first so it is dropped last, after the store has closed its files.
    let temp_dir = tempfile::tempdir()?;
    let db_path = args
        .sqlite_path
        .clone()
        .unwrap_or_else(|| temp_dir.path().join("sessions.db"));
    let store = Arc::new(tessera::SqliteStore::open(&db_path).await?);
    let engine = tessera::SessionEngine::builder(store)
        .config(tessera::SessionConfig {
            access_token_validity_ms: args.access_token_validity_secs.saturating_mul(1000),
            ..tessera::SessionConfig::default()
        })
        .build()
        .await?;

    let config = session_config(&args, &api, website)?;
    println!("{config:?}");
    let tessera = Tessera::new(config, Arc::new(engine));

    let bundle = match &args.bundle {
        Some(path) => Some(Bytes::from(std::fs::read(path).map_err(|e| {
            format!("cannot read the SDK bundle {}: {e}", path.display())
        })?)),
        None => None,
    };
    let state = AppState {
        counters: Arc::default(),
        requests: Arc::default(),
        tessera: tessera.clone(),
        bundle,
    };

    let app = Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/st/bundle.js", get(sdk_bundle))
        .route("/ping", get(|| async { "pong" }))
        .route("/login", post(login))
        .route("/api/me", get(me))
        .route("/api/mutate", post(mutate))
        .route("/api/mutate-json", post(mutate_json))
        .route("/api/counters", get(counters))
        .route("/api/requests", get(requests))
        .route("/api/sessions", get(sessions_of))
        .layer(tessera.layer())
        .layer(middleware::from_fn_with_state(
            state.counters.clone(),
            count_refresh,
        ))
        // CORS for a website on another origin: the SDK's helper (that origin only, with
        // credentials, the protocol's request headers).
        .layer(tessera_axum::cors::layer(tessera.config())?)
        .layer(middleware::from_fn_with_state(
            state.requests.clone(),
            log_requests,
        ))
        .with_state(state);

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(tessera_examples::shutdown_signal())
        .await?;
    Ok(())
}
