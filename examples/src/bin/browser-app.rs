//! `browser-app`: a small axum app with tessera sessions, used by the headless-Chromium tests in
//! `tests/browser` against the stock `supertokens-website` SDK. It is also a worked example of
//! wiring `tessera-axum` into an app:
//!
//! 1. open a store and build a [`tessera::SessionEngine`] (in-process, no separate core);
//! 2. describe the deployment with [`Config::builder`] (API and website origins, plus any
//!    explicit transfer/anti-CSRF/cookie choices);
//! 3. add `tessera.layer()` to the router: it serves `POST /auth/session/refresh` and
//!    `POST /auth/signout` and makes the [`Session`] and [`Sessions`] extractors work;
//! 4. add CORS for a website on another origin, allowing the SDK's request headers.
//!
//! ```text
//! cargo run -p tessera-examples --bin browser-app -- --port 8080 --bundle path/to/supertokens-website.js
//! ```
//!
//! Routes: `GET /index.html` (a page that loads the SDK from `/st/bundle.js`), `POST /login`
//! `{"userId": "…"}`, `GET /api/me` and `POST /api/mutate` (session required), `GET /api/counters`
//! and `GET /ping` (no session).

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::{Parser, ValueEnum};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tessera_axum::{
    AntiCsrfMode, Config, SameSite, Session, SessionRejection, Sessions, Tessera, TokenTransfer,
};
use tower_http::cors::{AllowOrigin, CorsLayer};

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

/// The app's own state: two counters the tests read through `GET /api/counters`.
#[derive(Default)]
struct Counters {
    mutations: AtomicU64,
    refresh_calls: AtomicU64,
}

/// What the handlers share: the counters and the SDK bundle bytes (if one was given).
#[derive(Clone)]
struct AppState {
    counters: Arc<Counters>,
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
    sessions: Sessions,
    Json(body): Json<LoginBody>,
) -> Result<Json<Value>, SessionRejection> {
    let session = sessions
        .create(&body.user_id, Map::new(), json!({}))
        .await?;
    Ok(Json(
        json!({"status": "OK", "sessionHandle": session.handle()}),
    ))
}

/// A protected read: the `Session` extractor answers 401 itself when there is no valid session.
async fn me(session: Session) -> Json<Value> {
    Json(json!({"userId": session.user_id()}))
}

/// A protected state change (the CSRF tests' target).
async fn mutate(State(state): State<AppState>, _session: Session) -> Json<Value> {
    let n = state.counters.mutations.fetch_add(1, Ordering::SeqCst) + 1;
    Json(json!({"mutations": n}))
}

/// Test instrumentation (no session needed): how many mutations and refresh calls happened.
async fn counters(State(state): State<AppState>) -> Json<Value> {
    let c = &state.counters;
    Json(json!({
        "mutations": c.mutations.load(Ordering::SeqCst),
        "refreshCalls": c.refresh_calls.load(Ordering::SeqCst),
    }))
}

/// The test page: loads the SDK from `/st/bundle.js` and nothing else.
async fn index() -> Html<&'static str> {
    Html(include_str!("../../static/index.html"))
}

/// The supertokens-website bundle given with `--bundle`.
async fn sdk_bundle(State(state): State<AppState>) -> Response {
    match state.bundle {
        Some(bytes) => (
            [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
            bytes,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "no SDK bundle: start with --bundle <path> or ST_BUNDLE_PATH",
        )
            .into_response(),
    }
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
    let mut builder = Config::builder(api, website).token_transfer(match args.transfer {
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
    builder.build()
}

/// CORS for a website on another origin: only that origin, with credentials, and the request
/// headers the SDK sends (`rid`, `fdi-version`, `anti-csrf`, `authorization`, `st-auth-mode`).
/// The tessera layer adds `Access-Control-Expose-Headers` itself for the headers it sets.
fn cors(website: &str) -> Result<CorsLayer, Box<dyn std::error::Error>> {
    let mut headers = vec![header::CONTENT_TYPE];
    for name in tessera_axum::cors::ALLOWED_REQUEST_HEADERS {
        headers.push(HeaderName::from_static(name));
    }
    Ok(CorsLayer::new()
        .allow_origin(AllowOrigin::exact(HeaderValue::from_str(website)?))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers(headers))
}

/// Resolves on SIGTERM or Ctrl-C; the server then stops accepting and drains its connections.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
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
        .route("/api/counters", get(counters))
        .layer(tessera.layer())
        .layer(middleware::from_fn_with_state(
            state.counters.clone(),
            count_refresh,
        ))
        .layer(cors(website)?)
        .with_state(state);

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}
