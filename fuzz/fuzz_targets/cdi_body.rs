//! ROB-01 (7): the request bodies of every CDI endpoint of `tessera serve`, through the real
//! router (`tessera_server::routes::router`) on an in-memory SQLite store, so the fuzzer runs
//! exactly the JSON input rules (`input.rs`) and the handlers behind them.
//!
//! Byte 0 picks the endpoint (and for GET endpoints the rest is the query string), byte 1 the
//! app/tenant prefix and the `cdi-version` header; the rest is the body. Properties: no panic
//! and never a 5xx: bad input is always a 4xx or a documented status body.
//! `PUT /recipe/multitenancy/app/v2` is left out (each new app generates an RSA key, which
//! starves the fuzzer); its `coreConfig` parsing is fuzzed by `config_toml`.
#![no_main]

use axum::body::Body;
use http::{Method, Request};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};
use tessera_server::config::ServerConfig;
use tessera_server::routes::router;
use tessera_server::state::ServerState;
use tokio::runtime::Runtime;
use tower::ServiceExt;

const ROUTES: &[(&str, &str)] = &[
    ("POST", "/recipe/session"),
    ("POST", "/recipe/session/verify"),
    ("POST", "/recipe/session/refresh"),
    ("POST", "/recipe/session/regenerate"),
    ("POST", "/recipe/session/remove"),
    ("PUT", "/recipe/session/data"),
    ("PUT", "/recipe/jwt/data"),
    ("POST", "/recipe/jwt"),
    ("POST", "/recipe/multitenancy/app/remove"),
    ("GET", "/recipe/session"),
    ("GET", "/recipe/session/user"),
    ("GET", "/recipe/session/data"),
    ("GET", "/recipe/jwt/data"),
    ("GET", "/user/id"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/recipe/jwt/jwks"),
    ("GET", "/apiversion"),
    ("POST", "/hello"),
];
const PREFIXES: &[&str] = &[
    "",
    "/public",
    "/tenant-1",
    "/appid-public",
    "/appid-public/t2",
];
const CDI: &[Option<&str>] = &[None, Some("5.4"), Some("4.0"), Some("2.21"), Some("x")];

fn runtime() -> &'static (Runtime, Arc<ServerState>) {
    static RT: OnceLock<(Runtime, Arc<ServerState>)> = OnceLock::new();
    RT.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let state = rt.block_on(async {
            let store = Arc::new(tessera::SqliteStore::in_memory().await.expect("sqlite"));
            tessera_server::server::build_state(&ServerConfig::default(), store)
                .await
                .expect("state")
        });
        (rt, state)
    })
}

fuzz_target!(|data: &[u8]| {
    let [route, variant, body @ ..] = data else {
        return;
    };
    let (method, path) = ROUTES[usize::from(*route) % ROUTES.len()];
    let prefix = PREFIXES[usize::from(*variant) % PREFIXES.len()];
    let cdi = CDI[usize::from(*variant / 8) % CDI.len()];
    let uri = if method == "GET" {
        let Ok(query) = std::str::from_utf8(body) else {
            return;
        };
        format!("{prefix}{path}?{query}")
    } else {
        format!("{prefix}{path}")
    };
    let Ok(method) = method.parse::<Method>() else {
        return;
    };
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json; charset=utf-8");
    if let Some(v) = cdi {
        request = request.header("cdi-version", v);
    }
    let Ok(request) = request.body(Body::from(body.to_vec())) else {
        return; // not a valid URI: the HTTP layer would have refused it
    };
    let (rt, state) = runtime();
    let response = rt
        .block_on(router(Arc::clone(state)).oneshot(request))
        .expect("infallible");
    let status = response.status();
    assert!(!status.is_server_error(), "{status} for {data:?}");
});
