//! The SDK's tests: an axum app with the layer over a real core — the engine in-process
//! (SQLite) or `tessera serve` over HTTP — and a request helper that reads the whole response.

use axum::body::Body;
use axum::Router;
use base64::Engine as _;
use http::{HeaderMap, Method, Request, StatusCode};
use serde_json::Value;
use std::sync::Arc;
use tessera::{ManualClock, SessionConfig, SessionEngine, SqliteStore, Store};
use tessera_axum::{RemoteCore, SessionCore};
use tokio::sync::oneshot;
use tower::ServiceExt;

/// Which core the SDK runs on: the engine in-process, or `tessera serve` over HTTP.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    Embedded,
    Remote,
}

/// An app under test: its router, the manual clock and the core behind it. A remote core's
/// server stops when `_server` is dropped.
pub struct App {
    pub router: Router,
    pub clock: Arc<ManualClock>,
    pub core: Arc<dyn SessionCore>,
    pub _server: Option<oneshot::Sender<()>>,
}

pub const ACCESS_TOKEN_VALIDITY_MS: u64 = 60_000;

/// A core of the given mode on a new in-memory store. Expiry is always judged on the manual
/// clock: in-process by the engine, remotely by the SDK's local JWKS verification.
pub async fn core(
    mode: Mode,
    clock: Arc<ManualClock>,
) -> (Arc<dyn SessionCore>, Option<oneshot::Sender<()>>) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().await.expect("sqlite"));
    core_on(mode, clock, store).await
}

/// [`core()`] on a given store (the embedded engine's, or the remote server's).
pub async fn core_on(
    mode: Mode,
    clock: Arc<ManualClock>,
    store: Arc<dyn Store>,
) -> (Arc<dyn SessionCore>, Option<oneshot::Sender<()>>) {
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
                .expect("engine");
            (Arc::new(engine), None)
        }
        Mode::Remote => {
            let mut config = tessera_server::config::ServerConfig::default();
            config.app.session.access_token_validity_ms = ACCESS_TOKEN_VALIDITY_MS;
            config.app.session.sibling_grace_ms = 0;
            let (addr, stop, _task) = crate::in_process::listen(&config, store).await;
            let remote = RemoteCore::new(&format!("http://{addr}"), None)
                .expect("remote core")
                .with_clock(clock);
            (Arc::new(remote), Some(stop))
        }
    }
}

/// A whole response of the app.
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Resp {
    /// Reads `response` to the end (at most 1 MiB).
    pub async fn read(response: axum::response::Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        Resp {
            status,
            headers,
            body: String::from_utf8(bytes.to_vec()).expect("UTF-8 body"),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every `Set-Cookie` header, whole.
    pub fn set_cookies(&self) -> Vec<String> {
        set_cookies(&self.headers)
    }

    /// The `Set-Cookie` header of cookie `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookies()
            .into_iter()
            .find(|c| c.starts_with(&format!("{name}=")))
    }

    /// The value `Set-Cookie` gives cookie `name`.
    pub fn cookie_value(&self, name: &str) -> Option<String> {
        let c = self.cookie(name)?;
        let v = c.split(';').next()?.split_once('=')?.1.to_owned();
        Some(v)
    }

    /// The body as JSON (panics with the status and body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {} {:?}", self.status, self.body))
    }
}

/// Every `Set-Cookie` header of `headers`, whole.
pub fn set_cookies(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ASCII Set-Cookie").to_owned())
        .collect()
}

/// Sends a bodiless request to the app's router.
pub async fn send(app: &App, method: Method, uri: &str, headers: &[(&str, &str)]) -> Resp {
    send_to(&app.router, method, uri, headers).await
}

/// Sends a bodiless request to `router`.
pub async fn send_to(router: &Router, method: Method, uri: &str, headers: &[(&str, &str)]) -> Resp {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = router
        .clone()
        .oneshot(req.body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    Resp::read(response).await
}

/// The JSON inside a `front-token` header.
pub fn decode_front_token(ft: &str) -> Value {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(ft)
        .expect("base64 front-token");
    serde_json::from_slice(&bytes).expect("JSON front-token")
}
