//! Shared harness of the SDK tests: a real axum app with the layer over a real core, either
//! the engine in-process (SQLite) or `tessera serve` over HTTP, and a request helper.
#![allow(dead_code)]

use axum::body::Body;
use axum::Router;
use base64::Engine as _;
use http::{HeaderMap, Method, Request, StatusCode};
use serde_json::Value;
use std::sync::Arc;
use tessera::{ManualClock, SessionConfig, SessionEngine, SqliteStore};
use tessera_axum::{RemoteCore, SessionCore};
use tower::ServiceExt;

/// Which core the SDK runs on: the engine in-process, or `tessera serve` over HTTP.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    Embedded,
    Remote,
}

pub struct App {
    pub router: Router,
    pub clock: Arc<ManualClock>,
    pub core: Arc<dyn SessionCore>,
    pub _server: Option<tokio::sync::oneshot::Sender<()>>,
}

pub const ACCESS_TOKEN_VALIDITY_MS: u64 = 60_000;

/// A core of the given mode. Expiry is always judged on the manual clock: in-process by the
/// engine, remotely by the SDK's local JWKS verification.
pub async fn core(
    mode: Mode,
    clock: Arc<ManualClock>,
) -> (
    Arc<dyn SessionCore>,
    Option<tokio::sync::oneshot::Sender<()>>,
) {
    let store: Arc<dyn tessera::Store> = Arc::new(SqliteStore::in_memory().await.unwrap());
    core_on(mode, clock, store).await
}

/// [`core`] on a given store (the embedded engine's, or the remote server's).
pub async fn core_on(
    mode: Mode,
    clock: Arc<ManualClock>,
    store: Arc<dyn tessera::Store>,
) -> (
    Arc<dyn SessionCore>,
    Option<tokio::sync::oneshot::Sender<()>>,
) {
    match mode {
        Mode::Embedded => {
            let engine = SessionEngine::builder(store)
                .config(SessionConfig {
                    access_token_validity_ms: ACCESS_TOKEN_VALIDITY_MS,
                    sibling_grace_ms: 0, // strict: a replay right after promotion is theft
                    ..SessionConfig::default()
                })
                .clock(clock)
                .build()
                .await
                .unwrap();
            (Arc::new(engine), None)
        }
        Mode::Remote => {
            let mut config = tessera_server::config::ServerConfig::default();
            config.app.session.access_token_validity_ms = ACCESS_TOKEN_VALIDITY_MS;
            config.app.session.sibling_grace_ms = 0;
            let state = tessera_server::server::build_state(&config, store)
                .await
                .unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            tokio::spawn(tessera_server::server::serve(listener, state, async move {
                let _ = rx.await;
            }));
            let remote = RemoteCore::new(&format!("http://{addr}"), None)
                .unwrap()
                .with_clock(clock);
            (Arc::new(remote), Some(tx))
        }
    }
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookies()
            .into_iter()
            .find(|c| c.starts_with(&format!("{name}=")))
    }
    pub fn cookie_value(&self, name: &str) -> Option<String> {
        let c = self.cookie(name)?;
        let v = c.split(';').next()?.split_once('=')?.1.to_owned();
        Some(v)
    }
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {} {:?}", self.status, self.body))
    }
}

pub async fn send(app: &App, method: Method, uri: &str, headers: &[(&str, &str)]) -> Resp {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = app
        .router
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    Resp {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

pub fn decode_front_token(ft: &str) -> Value {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(ft)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}
