//! Test harness: a real `tessera serve` (the library's router on a real listener, 127.0.0.1:0)
//! on a real SQLite file or PostgreSQL schema, called over HTTP.
//!
//! PostgreSQL is `TESSERA_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`).
//! Each test gets its own schema. If PostgreSQL is unreachable the test fails; set
//! `TESSERA_SKIP_POSTGRES=1` to skip on a machine without it (ignored when `CI=true`).
#![allow(dead_code)]

use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::sync::Arc;
use tessera::{PostgresStore, SqliteStore, Store};
use tessera_server::config::ServerConfig;
use tessera_server::server::{build_state, serve};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Which store a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn postgres_url() -> String {
    std::env::var("TESSERA_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// True when PostgreSQL tests should be skipped (only when explicitly asked, never in CI).
pub fn skip_postgres() -> bool {
    let asked = std::env::var("TESSERA_SKIP_POSTGRES").is_ok_and(|v| v == "1");
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    asked && !ci
}

/// Where a test's data lives; `open` gives a new connection to the same data.
#[derive(Debug, Clone)]
pub enum Place {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl Place {
    pub fn fresh(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => Place::Sqlite(
                std::env::temp_dir()
                    .join(format!("tessera-server-test-{}.db", uuid::Uuid::new_v4())),
            ),
            Backend::Postgres => {
                Place::Postgres(format!("tessera_srv_{}", uuid::Uuid::new_v4().simple()))
            }
        }
    }

    pub async fn open(&self) -> Arc<dyn Store> {
        match self {
            Place::Sqlite(path) => Arc::new(SqliteStore::open(path).await.expect("open sqlite")),
            Place::Postgres(schema) => Arc::new(
                PostgresStore::connect(&postgres_url(), Some(schema))
                    .await
                    .expect(
                    "PostgreSQL must be reachable (set TESSERA_SKIP_POSTGRES=1 to skip locally)",
                ),
            ),
        }
    }
}

/// A running server.
pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    pub place: Place,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Default test settings, with the strict CDI 5.4 rule (no grace window): a refresh token
/// replayed right after its successor was promoted is theft.
pub fn config() -> ServerConfig {
    let mut config = ServerConfig::default();
    config.app.session.sibling_grace_ms = 0;
    config
}

pub async fn start(backend: Backend) -> TestServer {
    start_with(Place::fresh(backend), config()).await
}

pub async fn start_with(place: Place, config: ServerConfig) -> TestServer {
    let store = place.open().await;
    let state = build_state(&config, store).await.expect("state");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        serve(listener, state, async move {
            let _ = rx.await;
        })
        .await
        .expect("serve");
    });
    TestServer {
        base: format!("http://{addr}{}", config.base_path),
        client: reqwest::Client::new(),
        place,
        stop: Some(tx),
        task: Some(task),
    }
}

/// A response: status, body text, parsed JSON (Null if not JSON) and headers.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub text: String,
    pub json: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Reply {
    pub fn status_field(&self) -> &str {
        self.json["status"].as_str().unwrap_or("")
    }
}

impl TestServer {
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json; charset=utf-8")
                .body(body);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            text,
            json,
            headers,
        }
    }

    /// A request as supertokens-node 24 sends it (`cdi-version: 5.4`).
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let body = body.map(|b| b.to_string().into_bytes());
        self.raw(
            method,
            path,
            body,
            &[("cdi-version", "5.4"), ("rid", "session")],
        )
        .await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    /// Creates a session for `user` in the public tenant.
    pub async fn create(&self, user: &str) -> Reply {
        let r = self
            .post(
                "/public/recipe/session",
                serde_json::json!({
                    "userId": user,
                    "userDataInJWT": {"role": "admin"},
                    "userDataInDatabase": {"n": 1},
                    "enableAntiCsrf": false,
                    "useDynamicSigningKey": true,
                }),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.status_field(), "OK", "{}", r.text);
        r
    }
}

/// Runs an async scenario on both stores: `<name>_sqlite` and `<name>_postgres`.
#[macro_export]
macro_rules! both_stores {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                ($body)(common::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if common::skip_postgres() {
                    eprintln!("skipping: TESSERA_SKIP_POSTGRES=1");
                    return;
                }
                ($body)(common::Backend::Postgres).await;
            }
        }
    };
}
