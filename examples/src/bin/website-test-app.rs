//! `website-test-app`: the app server of the official supertokens-website test suite
//! (`shared/spec/browser-protocol.md` §11.2, "App-server route contract"), built on tessera-axum
//! with a remote core (`tessera serve`, or any CDI 5.4 core). The suite's mocha tests open
//! `/index.html` from this server, inject the SDK bundle, and drive the routes below.
//!
//! ```text
//! tessera serve --port 3567 &
//! cargo run -p tessera-examples --bin website-test-app -- --port 8080
//! ```
//!
//! Because it also serves `POST /test/setup/app`, one process can be both the suite's app server
//! and its helper (`NODE_PORT=8080`). A second instance on 8082 serves the cross-origin tests.
//!
//! How it maps onto tessera-axum:
//! - every `POST /test/setup/st` builds a new [`Tessera`](tessera_axum::Tessera) over a [`RemoteCore`](tessera_axum::RemoteCore) for the given
//!   `coreUrl` and swaps it in atomically ([`ArcSwap`]); each request runs under the session
//!   layer of the `Tessera` that was current when it arrived, so re-initialising never blocks
//!   or breaks requests in flight;
//! - the SDK's layer answers `POST /auth/session/refresh` itself; a middleware in front of it
//!   counts attempts and successful calls and replaces the success body with the suite's text;
//! - `onUnauthorised → 401 {}` is an error handler ([`Tessera::with_error_handler`](tessera_axum::Tessera::with_error_handler)).
//!
//! Not served (they need features outside the session protocol or a legacy core):
//! `POST /login-2.18` (a CDI 2.18 session), `/auth/jwt/jwks.json` and
//! `/auth/.well-known/openid-configuration` (the JWT recipe), and `/angular/*` unless
//! `--angular-dir` points at the suite's prebuilt Angular app (`test/server/angular` in the
//! supertokens-website repository).

#[path = "../website_test_app/routes.rs"]
mod routes;
#[path = "../website_test_app/setup.rs"]
mod setup;
#[path = "../website_test_app/state.rs"]
mod state;

use arc_swap::ArcSwap;
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{any, get, post};
use axum::Router;
use clap::Parser;
use routes::{
    angular_file, check_allow_credentials, check_rid, check_rid_no_session, get_jwt,
    get_session_called_time, index, login, logout, multiple_interceptors, package_version,
    refresh_attempted_time, refresh_called_time, revoke_all, root, session_claims_error,
    test_error, test_header, testing, update_jwt, update_jwt_with_handle, vendor_script,
};
use setup::{
    before_each, cors, count_refresh, current_session_layer, feature_flags, reinitialise_backend,
    setup_app, setup_st,
};
use state::{App, Counters, Settings, Shared};
use std::path::PathBuf;
use std::sync::Arc;
use tessera_axum::TokenTransfer;

// ---------------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------------

/// Where the page's scripts are looked up by default: tests/browser's node_modules.
const DEFAULT_STATIC_DIR: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/browser/node_modules");

/// Command-line options.
#[derive(Debug, Parser)]
#[command(about = "App server for the supertokens-website test suite (binds 127.0.0.1 only)")]
struct Args {
    /// Port to listen on (127.0.0.1).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// The core used until the first `/test/setup/st`, and where `/test/setup/app` creates apps.
    #[arg(long, env = "CORE_URL", default_value = "http://127.0.0.1:3567")]
    core_url: String,
    /// Origin of the test page (CORS origin and the SDK's website domain).
    #[arg(long, default_value = "http://localhost:8080")]
    website_domain: String,
    /// Origin of this API as the browser sees it (default `http://localhost:<port>`).
    #[arg(long)]
    api_domain: Option<String>,
    /// A `node_modules` folder holding `axios/dist/axios.min.js`,
    /// `axios-mock-adapter/dist/axios-mock-adapter.min.js`, `.tessera/assert.js` and
    /// `supertokens-website/package.json` (default: tests/browser/node_modules of this checkout).
    #[arg(long, env = "WEBSITE_TEST_STATIC_DIR", default_value = DEFAULT_STATIC_DIR)]
    static_dir: PathBuf,
    /// The suite's prebuilt Angular test app (`test/server/angular` in the supertokens-website
    /// repository: `runtime.js`, `main.js`, …), served at `/angular/<file>`; without it
    /// `/angular/*` is 404.
    #[arg(long, env = "WEBSITE_TEST_ANGULAR_DIR")]
    angular_dir: Option<PathBuf>,
}

// ---------------------------------------------------------------------------------------------
// Router and start-up
// ---------------------------------------------------------------------------------------------

fn router(app: Shared) -> Result<Router, Box<dyn std::error::Error>> {
    let cors = cors(&app.settings.website_domain)?;
    let not_found = || async { StatusCode::NOT_FOUND };
    Ok(Router::new()
        .route("/test/setup/st", post(setup_st))
        .route("/test/setup/app", post(setup_app))
        .route("/reinitialiseBackendConfig", post(reinitialise_backend))
        .route("/featureFlags", get(feature_flags))
        .route("/beforeeach", post(before_each))
        .route("/after", post(|| async { StatusCode::OK }))
        .route("/testUserConfig", post(|| async { StatusCode::OK }))
        .route("/stopst", post(|| async { StatusCode::OK }))
        .route("/login", post(login))
        .route("/", get(root))
        .route("/check-rid", get(check_rid))
        .route("/check-rid-no-session", get(check_rid_no_session))
        .route("/update-jwt", get(get_jwt).post(update_jwt))
        .route("/update-jwt-with-handle", post(update_jwt_with_handle))
        .route("/session-claims-error", post(session_claims_error))
        .route(
            "/403-without-body",
            post(|| async { StatusCode::FORBIDDEN }),
        )
        .route("/testing", any(testing))
        .route("/logout", post(logout))
        .route("/revokeAll", post(revoke_all))
        .route("/refreshCalledTime", get(refresh_called_time))
        .route("/refreshAttemptedTime", get(refresh_attempted_time))
        .route("/getSessionCalledTime", get(get_session_called_time))
        .route("/getPackageVersion", get(package_version))
        .route("/ping", get(|| async { "success" }))
        .route("/testHeader", get(test_header))
        .route("/checkAllowCredentials", post(check_allow_credentials))
        .route("/multipleInterceptors", post(multiple_interceptors))
        .route("/testError", get(test_error))
        .route("/index.html", get(index))
        .route("/vendor/{name}", get(vendor_script))
        .route("/angular/{name}", get(angular_file))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(middleware::from_fn_with_state(
            app.clone(),
            current_session_layer,
        ))
        .layer(middleware::from_fn_with_state(app.clone(), count_refresh))
        .layer(cors)
        .with_state(app))
}

/// `TRANSFER_METHOD=cookie|header` forces the transfer method, as in the suite's servers.
fn forced_transfer() -> Result<Option<TokenTransfer>, String> {
    match std::env::var("TRANSFER_METHOD")
        .ok()
        .as_deref()
        .map(str::trim)
    {
        None | Some("") => Ok(None),
        Some("cookie") => Ok(Some(TokenTransfer::Cookie)),
        Some("header") => Ok(Some(TokenTransfer::Header)),
        Some(other) => Err(format!(
            "TRANSFER_METHOD must be cookie or header, not {other:?}"
        )),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let api_domain = args
        .api_domain
        .clone()
        .unwrap_or_else(|| format!("http://localhost:{}", args.port));
    let website_domain = args.website_domain.trim_end_matches('/').to_owned();
    let core_url = args.core_url.trim_end_matches('/').to_owned();

    let settings = Settings {
        api_domain,
        website_domain,
        forced_transfer: forced_transfer()?,
    };
    // Start like the suite's server: anti-CSRF VIA_TOKEN, no JWT, the default core.
    let first = settings.build(&core_url, true, false)?;
    let app = Arc::new(App {
        settings,
        default_core_url: core_url,
        static_dir: args.static_dir.clone(),
        angular_dir: args.angular_dir.clone(),
        live: ArcSwap::from_pointee(first),
        counters: Counters::default(),
        http: reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()?,
    });

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router(app)?)
        .with_graceful_shutdown(tessera_examples::shutdown_signal())
        .await?;
    Ok(())
}
