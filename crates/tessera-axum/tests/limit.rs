//! Per-client-IP rate limits of the SDK (issue 13): a burst past the limit gets 429 with
//! `Retry-After` and a JSON body, the bucket refills after its period, a spoofed
//! `X-Forwarded-For` from an untrusted peer does not change the bucket, a trusted proxy's
//! header does, and without limits (the default) nothing is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::Router;
use http::{Method, Request, StatusCode};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tessera::ManualClock;
use tessera_axum::limit::{ClientLimits, RateLimit};
use tessera_axum::{AnySession, Config, Tessera};
use tessera_testkit::sdk::{core, Mode};
use tower::ServiceExt;

async fn router(limits: Option<ClientLimits>, trusted: Vec<IpAddr>) -> Router {
    let (core, _) = core(Mode::Embedded, Arc::new(ManualClock::starting_now())).await;
    let config = Config::builder("http://localhost:8080", "http://localhost:8080")
        .allow_plantable_anonymous_cookie(true)
        .build()
        .unwrap();
    let mut tessera = Tessera::new(config, core).with_trusted_proxies(trusted);
    if let Some(limits) = limits {
        tessera = tessera.with_client_limits(limits);
    }
    Router::new()
        .route(
            "/whoami",
            get(|s: AnySession| async move { s.is_anonymous().to_string() }),
        )
        .layer(tessera.layer())
}

/// A request from `peer` (as `into_make_service_with_connect_info` would record it).
async fn send(
    router: &Router,
    method: Method,
    uri: &str,
    peer: Option<&str>,
    headers: &[(&str, &str)],
) -> (StatusCode, Option<String>, String) {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut req = req.body(Body::empty()).unwrap();
    if let Some(peer) = peer {
        let addr: SocketAddr = format!("{peer}:40000").parse().unwrap();
        req.extensions_mut().insert(ConnectInfo(addr));
    }
    let r = router.clone().oneshot(req).await.unwrap();
    let status = r.status();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
    (status, retry, String::from_utf8(body.to_vec()).unwrap())
}

const VISIT: &[(&str, &str)] = &[("st-auth-mode", "cookie")];

fn two_per_second() -> RateLimit {
    RateLimit::new(2, Duration::from_secs(1)).unwrap()
}

#[tokio::test]
async fn mint_burst_past_the_limit_gets_429_then_the_bucket_refills() {
    let app = router(
        Some(ClientLimits::default().anonymous_mints(two_per_second())),
        vec![],
    )
    .await;
    let peer = Some("203.0.113.5");
    for _ in 0..2 {
        let (status, _, body) = send(&app, Method::GET, "/whoami", peer, VISIT).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "true"));
    }
    let (status, retry, body) = send(&app, Method::GET, "/whoami", peer, VISIT).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry.as_deref(), Some("1"));
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["retryAfterSeconds"], 1);
    assert!(body["message"].is_string());
    // Another client has its own bucket.
    let (status, _, _) = send(&app, Method::GET, "/whoami", Some("198.51.100.7"), VISIT).await;
    assert_eq!(status, StatusCode::OK);
    // One token back every half second.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (status, _, _) = send(&app, Method::GET, "/whoami", peer, VISIT).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn refresh_burst_past_the_limit_gets_429_then_the_bucket_refills() {
    let app = router(
        Some(ClientLimits::default().refresh(two_per_second())),
        vec![],
    )
    .await;
    let peer = Some("203.0.113.5");
    let refresh = || {
        send(
            &app,
            Method::POST,
            "/auth/session/refresh",
            peer,
            &[("rid", "session")],
        )
    };
    for _ in 0..2 {
        // No refresh token: answered by the route (a guest session here), but counted.
        assert_eq!(refresh().await.0, StatusCode::OK);
    }
    let (status, retry, _) = refresh().await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry.as_deref(), Some("1"));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(refresh().await.0, StatusCode::OK);
}

#[tokio::test]
async fn spoofed_forwarded_for_from_an_untrusted_peer_keeps_the_bucket() {
    let limits = ClientLimits::default().anonymous_mints(two_per_second());
    let proxy: IpAddr = "10.0.0.1".parse().unwrap();
    let app = router(Some(limits), vec![proxy]).await;
    let peer = Some("203.0.113.5");
    let mut statuses = Vec::new();
    for spoof in ["1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"] {
        let headers = [("st-auth-mode", "cookie"), ("x-forwarded-for", spoof)];
        statuses.push(send(&app, Method::GET, "/whoami", peer, &headers).await.0);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    // Behind the trusted proxy, the right-most untrusted hop is the client: each its own
    // bucket, and a client-supplied left part does not matter.
    for client in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
        for spoof in ["9.9.9.9", "8.8.8.8"] {
            let xff = format!("{spoof}, {client}");
            let headers = [
                ("st-auth-mode", "cookie"),
                ("x-forwarded-for", xff.as_str()),
            ];
            let (status, _, _) =
                send(&app, Method::GET, "/whoami", Some("10.0.0.1"), &headers).await;
            assert_eq!(status, StatusCode::OK, "{xff}");
        }
        let xff = format!("7.7.7.7, {client}");
        let headers = [
            ("st-auth-mode", "cookie"),
            ("x-forwarded-for", xff.as_str()),
        ];
        let (status, _, _) = send(&app, Method::GET, "/whoami", Some("10.0.0.1"), &headers).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{xff}");
    }
}

#[tokio::test]
async fn without_limits_nothing_is_refused() {
    let app = router(None, vec![]).await;
    for _ in 0..10 {
        let (status, _, _) = send(&app, Method::GET, "/whoami", Some("203.0.113.5"), VISIT).await;
        assert_eq!(status, StatusCode::OK);
    }
}
