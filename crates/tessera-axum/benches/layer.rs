//! What the session layer adds to one request, in-process (no network): the same `GET /hello`
//! with a valid session cookie sent to a bare axum router and to the router behind
//! [`tessera_axum::SessionLayer`] (extractor `Session`, verified-token cache on and off).
//!
//! A returning guest is measured too: `GET /hello` with an anonymous-token cookie (and
//! `st-auth-mode: cookie`, as `scripts/bench-anonymous.sh` sends) to an [`AnySession`] handler
//! with anonymous sessions on, beside bare axum receiving the same bytes.
//!
//! `cargo bench -p tessera-axum --bench layer`. With `LAYER_BENCH_ITERS=N` the bench skips
//! criterion and sends N requests, for instruction counts of the request loop alone. Modes
//! (`LAYER_BENCH_MODE`): `bare`, `noop` (bare axum behind a layer that does nothing),
//! `session` (the default: cache on, `Router::layer`), `outer` (the same app as
//! `tessera.wrap(router)`), `nocache`, `anonymous`, `bare-anonymous`:
//! `valgrind --tool=callgrind --toggle-collect='layer::drive' <bench binary>`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use axum::body::Body;
use axum::routing::{get, post};
use axum::Router;
use criterion::{criterion_group, Criterion};
use http::{Method, Request};
use std::sync::Arc;
use tessera::{SessionConfig, SessionEngine, SqliteStore};
use tessera_axum::{
    AnySession, Config, Session, SessionRejection, SessionService, SignIn, Tessera,
};
use tower::ServiceExt;

async fn hello() -> &'static str {
    "hello"
}

async fn hello_session(_session: Session) -> &'static str {
    "hello"
}

async fn hello_any(_session: AnySession) -> &'static str {
    "hello"
}

async fn login(sign_in: SignIn) -> Result<&'static str, SessionRejection> {
    sign_in
        .create("bench-user", Default::default(), serde_json::json!({}))
        .await?;
    Ok("ok")
}

/// A `Tessera` on an in-memory store with a verified-token cache of `cache` tokens, Secure
/// cookies (the __Host- anonymous cookie; browsers accept Secure on localhost) and anonymous
/// sessions on (the default).
async fn tessera(cache: usize) -> Tessera {
    let store = Arc::new(SqliteStore::in_memory().await.expect("store"));
    let engine = SessionEngine::builder(store)
        .config(SessionConfig {
            verified_token_cache: cache,
            ..Default::default()
        })
        .build()
        .await
        .expect("engine");
    let origin = "http://localhost:8090";
    let config = Config::builder(origin, origin)
        .secure(true)
        .build()
        .expect("config");
    Tessera::new(config, Arc::new(engine))
}

/// The session router (cache of `cache` tokens) and a `Cookie` header value holding a valid
/// access token.
async fn session_app(cache: usize) -> (Router, String) {
    let tessera = tessera(cache).await;
    let router = Router::new()
        .route("/hello", get(hello_session))
        .route("/login", post(login))
        .layer(tessera.layer())
        // As `axum::serve` does per connection: handlers become routes once, not per request.
        .with_state(());
    let cookie = login_cookie(&router).await;
    (router, cookie)
}

/// The same app with the layer once around the whole router (`tessera.wrap(router)`) instead
/// of on each route (`Router::layer`).
async fn session_service(cache: usize) -> (SessionService<Router>, String) {
    let tessera = tessera(cache).await;
    let router = Router::new()
        .route("/hello", get(hello_session))
        .route("/login", post(login));
    let service = tessera.wrap(router);
    let cookie = login_cookie(&service).await;
    (service, cookie)
}

/// Signs in through `service` and returns the access-token cookie pair it set.
async fn login_cookie<S>(service: &S) -> String
where
    S: tower::Service<Request<Body>, Response = axum::response::Response> + Clone,
    S::Error: std::fmt::Debug,
{
    let response = service
        .clone()
        .oneshot(
            Request::post("/login")
                .header("st-auth-mode", "cookie")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("login");
    set_cookie_pair(&response, |c| c.starts_with("sAccessToken=")).expect("access-token cookie")
}

/// The `name=value` pair of the first `Set-Cookie` of `response` that `wanted` picks.
fn set_cookie_pair(
    response: &http::Response<Body>,
    wanted: impl Fn(&str) -> bool,
) -> Option<String> {
    response
        .headers()
        .get_all(http::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.split(';').next().filter(|c| wanted(c)))
        .map(str::to_owned)
}

/// The guest router (anonymous sessions on, an [`AnySession`] handler) and a `Cookie` header
/// value holding an anonymous token it minted.
async fn anonymous_app() -> (Router, String) {
    let tessera = tessera(10_000).await;
    let router = Router::new()
        .route("/hello", get(hello_any))
        .layer(tessera.layer())
        .with_state(());
    let response = router
        .clone()
        .oneshot(
            Request::get("/hello")
                .header("st-auth-mode", "cookie")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("mint");
    let cookie = set_cookie_pair(&response, |c| c.contains("AnonymousToken="))
        .expect("anonymous-token cookie");
    // The measured request is a returning guest's: answered without a new token.
    let again = router
        .clone()
        .oneshot(request(&cookie, true))
        .await
        .expect("infallible");
    assert!(again.status().is_success(), "{}", again.status());
    assert!(
        again.headers().get(http::header::SET_COOKIE).is_none(),
        "a returning guest got a new token"
    );
    (router, cookie)
}

fn request(cookie: &str, auth_mode: bool) -> Request<Body> {
    let mut request = Request::builder()
        .method(Method::GET)
        .uri("/hello")
        .header("host", "127.0.0.1:8090")
        .header("cookie", cookie);
    if auth_mode {
        request = request.header("st-auth-mode", "cookie");
    }
    request.body(Body::empty()).expect("request")
}

async fn one<S>(service: &S, cookie: &str, auth_mode: bool)
where
    S: tower::Service<Request<Body>, Response = axum::response::Response> + Clone,
    S::Error: std::fmt::Debug,
{
    let response = service
        .clone()
        .oneshot(request(cookie, auth_mode))
        .await
        .expect("infallible");
    assert!(response.status().is_success(), "{}", response.status());
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let (session, cookie) = rt.block_on(session_app(10_000));
    let (nocache, nocache_cookie) = rt.block_on(session_app(0));
    let (guest, guest_cookie) = rt.block_on(anonymous_app());
    let bare = Router::new().route("/hello", get(hello)).with_state(());
    let mut group = c.benchmark_group("layer");
    group.bench_function("bare", |b| {
        b.to_async(&rt).iter(|| one(&bare, &cookie, false))
    });
    group.bench_function("session_cached", |b| {
        b.to_async(&rt).iter(|| one(&session, &cookie, false))
    });
    group.bench_function("session_uncached", |b| {
        b.to_async(&rt)
            .iter(|| one(&nocache, &nocache_cookie, false))
    });
    group.bench_function("bare_anonymous", |b| {
        b.to_async(&rt).iter(|| one(&bare, &guest_cookie, true))
    });
    group.bench_function("returning_guest", |b| {
        b.to_async(&rt).iter(|| one(&guest, &guest_cookie, true))
    });
    group.finish();
}

criterion_group!(benches, bench);

/// The measured loop, a function of its own so that callgrind can count only it:
/// `valgrind --tool=callgrind --toggle-collect='layer::drive' <bench binary>`.
#[inline(never)]
fn drive<S>(rt: &tokio::runtime::Runtime, service: &S, cookie: &str, auth_mode: bool, iters: u64)
where
    S: tower::Service<Request<Body>, Response = axum::response::Response> + Clone,
    S::Error: std::fmt::Debug,
{
    rt.block_on(async {
        for _ in 0..iters {
            one(service, cookie, auth_mode).await;
        }
    });
}

fn main() {
    if let Some(iters) = std::env::var("LAYER_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        let rt = runtime();
        let mode = std::env::var("LAYER_BENCH_MODE").unwrap_or_default();
        let bare = || Router::new().route("/hello", get(hello)).with_state(());
        let (router, cookie, auth_mode) = match mode.as_str() {
            "bare" => (bare(), rt.block_on(session_app(0)).1, false),
            "nocache" => {
                let (router, cookie) = rt.block_on(session_app(0));
                (router, cookie, false)
            }
            "anonymous" => {
                let (router, cookie) = rt.block_on(anonymous_app());
                (router, cookie, true)
            }
            "bare-anonymous" => (bare(), rt.block_on(anonymous_app()).1, true),
            // Bare axum behind a layer that does nothing: what `Router::layer` itself costs
            // per request (the floor under any layer's own work).
            "noop" => (
                Router::new()
                    .route("/hello", get(hello))
                    .layer(tower::layer::layer_fn(|inner| inner))
                    .with_state(()),
                rt.block_on(session_app(0)).1,
                false,
            ),
            // The session layer around the whole router rather than on each route.
            "outer" => {
                let (service, cookie) = rt.block_on(session_service(10_000));
                drive(&rt, &service, &cookie, false, iters);
                return;
            }
            _ => {
                let (router, cookie) = rt.block_on(session_app(10_000));
                (router, cookie, false)
            }
        };
        drive(&rt, &router, &cookie, auth_mode, iters);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
