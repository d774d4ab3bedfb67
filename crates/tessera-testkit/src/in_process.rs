//! `tessera serve` in this process: the library's router on a real listener (127.0.0.1:0) over
//! a real store, called over HTTP.

use crate::store::{Backend, Place};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use tessera::Store;
use tessera_server::config::ServerConfig;
use tessera_server::server::{build_state, serve};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Default test settings, with the strict CDI 5.4 rule (no grace window): a refresh token
/// replayed right after its successor was promoted is theft.
pub fn config() -> ServerConfig {
    let mut config = ServerConfig::default();
    config.app.session.sibling_grace_ms = 0;
    config
}

/// Serves `config` over `store` on 127.0.0.1 with a free port until the sender is used or
/// dropped; returns the address, the stop sender and the serving task.
pub async fn listen(
    config: &ServerConfig,
    store: Arc<dyn Store>,
) -> (SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let state = build_state(config, store).await.expect("state");
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
    (addr, tx, task)
}

/// A running server; dropping it stops it.
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

/// A server with [`config`] on a fresh place of `backend`.
pub async fn start(backend: Backend) -> TestServer {
    start_with(Place::fresh(backend), config()).await
}

/// A server with `config` on `place`.
pub async fn start_with(place: Place, config: ServerConfig) -> TestServer {
    let store = place.open().await;
    let (addr, stop, task) = listen(&config, store).await;
    TestServer {
        base: format!("http://{addr}{}", config.base_path),
        client: reqwest::Client::new(),
        place,
        stop: Some(stop),
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
    /// The CDI `status` field ("" when absent).
    pub fn status_field(&self) -> &str {
        crate::cdi::status(&self.json)
    }
}

impl TestServer {
    /// Stops the server and waits for its task.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
    }

    /// A request with the given body bytes (sent as JSON) and headers.
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
