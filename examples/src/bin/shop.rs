//! `shop`: anonymous sessions end to end. A guest fills a cart with no sign-in and no database
//! row; signing in moves the cart into the user's; signing out leaves a guest with the same
//! anonymousId. The page uses the stock `supertokens-website` SDK.
//!
//! ```text
//! ./scripts/install-browser-deps.sh      # once: Chromium, npm packages, the SDK bundle
//! cargo run -p tessera-examples --bin shop -- --port 8080
//! # open http://localhost:8080/ (Chromium or Firefox; Safari needs --insecure-cookies)
//! ```
//!
//! Routes (JSON):
//! - `GET /api/whoami` — no explicit verification, every visitor has a session:
//!   `{"anonymousId", "userId": null|"…", "isAnonymous"}`
//! - `GET /api/cart`, `POST /api/cart {"item"}` — the cart of the guest or of the user
//! - `POST /api/login {"userId"}` — demo sign-in (no password); the sign-in hook moves the
//!   guest's cart into the user's and empties the guest's
//! - `GET /api/account` — sign-in required: `{"userId"}`, 401 for a guest
//! - `GET /api/sessions` — sign-in required: the user's devices, most recently active first,
//!   `[{"handle", "label", "userAgent", "ip", "created", "lastActive", "current"}]` (epoch ms)
//! - `POST /api/sessions/revoke-others` — sign out everywhere else: `{"revoked": n}`
//! - `POST /api/sessions/{handle}/revoke` — sign out one device of this user; 404 otherwise
//! - `POST /auth/signout`, `POST /auth/session/refresh` — served by the tessera layer
//!
//! Carts live in this process's memory (it is a demo of sessions, not of a shop's database);
//! sessions live in an embedded SQLite file, and anonymous sessions live nowhere but in the
//! visitor's token.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use clap::Parser;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use tessera_axum::{
    AnySession, Config, Session, SessionRejection, SignIn, SigningIn, Tessera, TokenTransfer,
};

/// Command-line options.
#[derive(Debug, Parser)]
#[command(about = "Anonymous-sessions demo shop (binds 127.0.0.1 only)")]
struct Args {
    /// Port to listen on (127.0.0.1).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// SQLite file for signed-in sessions (default: a temporary file removed at exit).
    #[arg(long)]
    sqlite_path: Option<PathBuf>,
    /// The supertokens-website browser bundle served at `/st/bundle.js` (default: the one
    /// `scripts/install-browser-deps.sh` builds).
    #[arg(long, env = "ST_BUNDLE_PATH")]
    bundle: Option<PathBuf>,
    /// Anonymous sessions on (default) or off.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    anonymous: bool,
    /// Access-token lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    access_token_validity_secs: u64,
    /// Anonymous-token lifetime in seconds (default 365 days; tests use a few seconds).
    #[arg(long, default_value_t = 365 * 86_400)]
    anonymous_validity_secs: u64,
    /// Paths (prefixes) where no anonymous session is minted (B2), e.g. `/health`.
    #[arg(long)]
    anonymous_exclude: Vec<String>,
    /// Cookies without `Secure` (for browsers that refuse Secure cookies on
    /// http://localhost, such as Safari). The anonymous cookie then cannot be `__Host-` and
    /// can be planted by other pages of the host (SEC2-H2): development only.
    #[arg(long)]
    insecure_cookies: bool,
    /// How tokens travel: `any` (default: what the page's SDK asks for), `cookie` or `header`.
    #[arg(long, value_enum, default_value_t = Transfer::Any)]
    transfer: Transfer,
    /// Device Bound Session Credentials (issue 14, docs/dbsc.md): sign-in (and a new guest)
    /// is offered `Secure-Session-Registration`; a browser that registers a device key can
    /// refresh its session only with a proof from that key. Cookie mode only.
    #[arg(long)]
    dbsc: bool,
    /// The origin the browser uses, when it is not `http://localhost:<port>` (e.g. an https
    /// proxy in front, which DBSC needs: Chromium registers only over https).
    #[arg(long)]
    public_origin: Option<String>,
}

/// `--transfer`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Transfer {
    Any,
    Cookie,
    Header,
}

/// Carts by owner: `guest:<anonymousId>` or `user:<userId>`.
#[derive(Default)]
struct Carts(Mutex<HashMap<String, Vec<String>>>);

impl Carts {
    fn get(&self, owner: &str) -> Vec<String> {
        let carts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        carts.get(owner).cloned().unwrap_or_default()
    }

    fn add(&self, owner: &str, item: String) -> Vec<String> {
        let mut carts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let cart = carts.entry(owner.to_owned()).or_default();
        cart.push(item);
        cart.clone()
    }

    /// Moves the guest's items into the user's cart and empties the guest's: what was moved is
    /// reachable only through the signed-in session from now on (ANON-06).
    fn merge(&self, guest: &str, user: &str) {
        let mut carts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let items = carts.remove(guest).unwrap_or_default();
        carts.entry(user.to_owned()).or_default().extend(items);
    }
}

#[derive(Clone)]
struct AppState {
    carts: Arc<Carts>,
    bundle: Option<Bytes>,
}

fn owner(session: &AnySession) -> String {
    match (session.user_id(), session.anonymous_id()) {
        (Some(user), _) => format!("user:{user}"),
        (None, Some(id)) => format!("guest:{id}"),
        (None, None) => "guest:".to_owned(),
    }
}

async fn whoami(session: AnySession) -> Json<Value> {
    Json(json!({
        "anonymousId": session.anonymous_id(),
        "userId": session.user_id(),
        "isAnonymous": session.is_anonymous(),
    }))
}

async fn cart(State(state): State<AppState>, session: AnySession) -> Json<Value> {
    let owner = owner(&session);
    Json(json!({"owner": owner, "items": state.carts.get(&owner)}))
}

#[derive(Deserialize)]
struct AddItem {
    item: String,
}

async fn add_to_cart(
    State(state): State<AppState>,
    session: AnySession,
    Json(body): Json<AddItem>,
) -> Response {
    let item = body.item.trim();
    if item.is_empty() || item.len() > 100 {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"message": "item must be 1–100 characters"})),
        )
            .into_response();
    }
    let owner = owner(&session);
    let items = state.carts.add(&owner, item.to_owned());
    Json(json!({"owner": owner, "items": items})).into_response()
}

#[derive(Deserialize)]
struct Login {
    #[serde(rename = "userId")]
    user_id: String,
}

async fn login(sign_in: SignIn, Json(body): Json<Login>) -> Result<Response, SessionRejection> {
    let user_id = body.user_id.trim();
    if user_id.is_empty() || user_id.len() > 64 {
        return Ok((
            StatusCode::BAD_REQUEST,
            Json(json!({"message": "userId must be 1–64 characters"})),
        )
            .into_response());
    }
    // The sign-in hook (registered in main) moves the guest's cart before the session exists.
    let session = sign_in
        .create(user_id, Default::default(), json!({}))
        .await?;
    Ok(Json(json!({
        "userId": session.user_id(),
        "anonymousId": session.anonymous_id(),
    }))
    .into_response())
}

async fn account(session: Session) -> Json<Value> {
    Json(json!({"userId": session.user_id()}))
}

/// `GET /api/sessions`: exactly the keys the devices panel reads.
async fn sessions_list(session: Session) -> Result<Json<Value>, SessionRejection> {
    let devices = session.devices().await?;
    let rows: Vec<Value> = devices
        .into_iter()
        .map(|d| {
            json!({
                "handle": d.handle,
                "label": d.label,
                "userAgent": d.user_agent,
                "ip": d.ip,
                "created": d.created_at,
                "lastActive": d.last_active_at,
                "current": d.current,
            })
        })
        .collect();
    Ok(Json(Value::Array(rows)))
}

/// `POST /api/sessions/revoke-others`.
async fn sessions_revoke_others(session: Session) -> Result<Json<Value>, SessionRejection> {
    let revoked = session.revoke_other_devices().await?;
    Ok(Json(json!({"revoked": revoked.len()})))
}

/// `POST /api/sessions/{handle}/revoke`: only a session of the same user (404 otherwise).
async fn sessions_revoke(
    session: Session,
    axum::extract::Path(handle): axum::extract::Path<String>,
) -> Result<Response, SessionRejection> {
    Ok(if session.revoke_device(&handle).await? {
        Json(json!({"revoked": true})).into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            Json(json!({"message": "no such session"})),
        )
            .into_response()
    })
}

async fn page() -> Html<&'static str> {
    Html(include_str!("../../static/shop.html"))
}

async fn sdk_bundle(State(state): State<AppState>) -> Response {
    tessera_examples::sdk_bundle_response(
        state.bundle,
        "no SDK bundle: run scripts/install-browser-deps.sh or pass --bundle",
    )
}

/// The bundle `scripts/install-browser-deps.sh` builds, relative to the workspace.
fn default_bundle() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/browser/node_modules/.tessera/supertokens-website.js")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let origin = args
        .public_origin
        .clone()
        .unwrap_or_else(|| format!("http://localhost:{}", args.port));
    let temp_dir = tempfile::tempdir()?;
    let db_path = args
        .sqlite_path
        .clone()
        .unwrap_or_else(|| temp_dir.path().join("shop-sessions.db"));
    let store = Arc::new(tessera::SqliteStore::open(&db_path).await?);
    let engine = tessera::SessionEngine::builder(store)
        .config(tessera::SessionConfig {
            access_token_validity_ms: args.access_token_validity_secs.saturating_mul(1000),
            ..tessera::SessionConfig::default()
        })
        .anonymous_config(tessera::AnonymousConfig {
            lifetime_ms: args.anonymous_validity_secs.saturating_mul(1000),
            ..Default::default()
        })
        .build()
        .await?;
    // Secure cookies even on http://localhost (Chromium and Firefox accept them there): the
    // anonymous cookie is `__Host-sAnonymousToken`, which no other page can plant (SEC2-H2).
    let mut builder = Config::builder(&origin, &origin)
        .anonymous_sessions(args.anonymous)
        .secure(!args.insecure_cookies)
        .allow_plantable_anonymous_cookie(args.insecure_cookies)
        .token_transfer(match args.transfer {
            Transfer::Any => TokenTransfer::Any,
            Transfer::Cookie => TokenTransfer::Cookie,
            Transfer::Header => TokenTransfer::Header,
        });
    for prefix in &args.anonymous_exclude {
        builder = builder.anonymous_exclude_path_prefix(prefix);
    }
    if args.dbsc {
        builder = builder.dbsc(tessera_axum::DbscConfig::default());
    }
    let config = builder.build()?;

    let carts = Arc::new(Carts::default());
    let hook_carts = Arc::clone(&carts);
    let tessera = Tessera::new(config, Arc::new(engine)).with_sign_in_hook(Arc::new(
        move |sign_in: SigningIn| {
            let carts = Arc::clone(&hook_carts);
            Box::pin(async move {
                if let Some(guest) = &sign_in.anonymous {
                    carts.merge(
                        &format!("guest:{}", guest.anonymous_id()),
                        &format!("user:{}", sign_in.user_id),
                    );
                }
                Ok(())
            })
        },
    ));

    let bundle_path = args.bundle.clone().unwrap_or_else(default_bundle);
    let bundle = std::fs::read(&bundle_path).ok().map(Bytes::from);
    if bundle.is_none() {
        eprintln!(
            "shop: no SDK bundle at {} (run scripts/install-browser-deps.sh); the page will not work",
            bundle_path.display()
        );
    }
    let state = AppState { carts, bundle };
    let app = Router::new()
        .route("/", get(page))
        .route("/index.html", get(page))
        .route("/st/bundle.js", get(sdk_bundle))
        .route("/health", get(|| async { "ok" }))
        .route("/api/whoami", get(whoami))
        .route("/api/cart", get(cart).post(add_to_cart))
        .route("/api/login", axum::routing::post(login))
        .route("/api/account", get(account))
        .route("/api/sessions", get(sessions_list))
        .route(
            "/api/sessions/revoke-others",
            axum::routing::post(sessions_revoke_others),
        )
        .route(
            "/api/sessions/{handle}/revoke",
            axum::routing::post(sessions_revoke),
        )
        .with_state(state)
        .layer(tessera.layer());

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    println!("shop listening on {origin}");
    // The peer address reaches the session layer (ConnectInfo): sign-ins record the device IP.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    drop(temp_dir);
    Ok(())
}
