//! Issue 15 in the SDK: the device recorded at sign-in (user agent, IP from the connection or
//! from a trusted proxy's `X-Forwarded-For` only), `Session::devices`, `revoke_device`,
//! `revoke_other_devices`, the freshness check and renewing the sign-in time.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use axum::body::Body;
use axum::extract::{ConnectInfo, Path};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::{Method, Request, StatusCode};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use tessera::{Clock, DeviceConfig, ManualClock, SessionConfig, SessionEngine, SqliteStore};
use tessera_axum::{Config, Session, SessionRejection, SignIn, Tessera};
use tower::ServiceExt;

const CHROME_LINUX: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like \
                            Gecko) Chrome/120.0.0.0 Safari/537.36";
const FIREFOX_WINDOWS: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0";
const PROXY: &str = "10.0.0.1";

struct App {
    router: Router,
    clock: Arc<ManualClock>,
}

async fn app() -> App {
    let clock = Arc::new(ManualClock::new(tessera::SystemClock.now_ms() - 600_000));
    let store = Arc::new(SqliteStore::in_memory().await.unwrap());
    let engine = SessionEngine::builder(store)
        .config(SessionConfig {
            access_token_validity_ms: 3_600_000,
            ..SessionConfig::default()
        })
        .devices(DeviceConfig {
            sign_in_time_claim: true,
            ..Default::default()
        })
        .clock(Arc::clone(&clock) as Arc<dyn Clock>)
        .build()
        .await
        .unwrap();
    let config = Config::builder("http://localhost:8080", "http://localhost:8080")
        .allow_plantable_anonymous_cookie(true)
        .anonymous_sessions(false)
        .build()
        .unwrap();
    let tessera =
        Tessera::new(config, Arc::new(engine)).with_trusted_proxies(vec![PROXY.parse().unwrap()]);
    async fn login(sign_in: SignIn, Path(user): Path<String>) -> Result<String, SessionRejection> {
        let s = sign_in.create(&user, Default::default(), json!({})).await?;
        Ok(s.handle().to_owned())
    }
    async fn devices(session: Session) -> Result<Json<Value>, SessionRejection> {
        Ok(Json(json!(session.devices().await?)))
    }
    async fn revoke(session: Session, Path(h): Path<String>) -> Result<String, SessionRejection> {
        Ok(session.revoke_device(&h).await?.to_string())
    }
    async fn revoke_others(session: Session) -> Result<Json<Value>, SessionRejection> {
        Ok(Json(json!(session.revoke_other_devices().await?)))
    }
    async fn sensitive(session: Session) -> Result<&'static str, SessionRejection> {
        session.require_signed_in_within(std::time::Duration::from_secs(300))?;
        Ok("done")
    }
    async fn reauth(session: Session) -> Result<&'static str, SessionRejection> {
        session.renew_sign_in_time().await?;
        Ok("renewed")
    }
    let router = Router::new()
        .route("/login/{user}", post(login))
        .route("/devices", get(devices))
        .route("/devices/{handle}/revoke", post(revoke))
        .route("/devices/revoke-others", post(revoke_others))
        .route("/sensitive", post(sensitive))
        .route("/reauth", post(reauth))
        .layer(tessera.layer());
    App { router, clock }
}

struct Resp {
    status: StatusCode,
    token: Option<String>,
    body: String,
}

async fn send(
    app: &App,
    method: Method,
    uri: &str,
    token: Option<&str>,
    peer: &str,
    headers: &[(&str, &str)],
) -> Resp {
    let mut req = Request::builder().method(method).uri(uri);
    req = req.header("st-auth-mode", "header");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut req = req.body(Body::empty()).unwrap();
    let peer: SocketAddr = format!("{peer}:40000").parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(peer));
    let response = app.router.clone().oneshot(req).await.unwrap();
    let r = tessera_testkit::sdk::Resp::read(response).await;
    Resp {
        status: r.status,
        token: r.header("st-access-token").map(str::to_owned),
        body: r.body,
    }
}

async fn login(app: &App, user: &str, ua: &str, peer: &str, xff: Option<&str>) -> (String, String) {
    let mut headers = vec![("user-agent", ua)];
    if let Some(xff) = xff {
        headers.push(("x-forwarded-for", xff));
    }
    let r = send(
        app,
        Method::POST,
        &format!("/login/{user}"),
        None,
        peer,
        &headers,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    (r.body, r.token.expect("access token"))
}

#[tokio::test]
async fn req_07_sign_in_records_the_device_and_the_session_lists_revokes_and_signs_out_others() {
    let app = app().await;
    // A forwarded header from a client that is not a trusted proxy is ignored.
    let (h1, t1) = login(&app, "alice", CHROME_LINUX, "203.0.113.5", Some("1.2.3.4")).await;
    // Through the trusted proxy: the nearest untrusted hop.
    let (h2, t2) = login(
        &app,
        "alice",
        FIREFOX_WINDOWS,
        PROXY,
        Some("6.6.6.6, 198.51.100.7"),
    )
    .await;
    let (h3, _t3) = login(&app, "bob", CHROME_LINUX, "203.0.113.9", None).await;

    let r = send(&app, Method::GET, "/devices", Some(&t1), "203.0.113.5", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let list: Vec<Value> = serde_json::from_str(&r.body).unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    let of = |h: &str| list.iter().find(|d| d["handle"] == h).unwrap().clone();
    assert_eq!(of(&h1)["ip"], "203.0.113.5");
    assert_eq!(of(&h1)["label"], "Chrome on Linux");
    assert_eq!(of(&h1)["userAgent"], CHROME_LINUX);
    assert_eq!(of(&h1)["current"], true);
    assert_eq!(of(&h2)["ip"], "198.51.100.7");
    assert_eq!(of(&h2)["label"], "Firefox on Windows 10");
    assert_eq!(of(&h2)["current"], false);

    // Bob's handle is "not found" for alice.
    let r = send(
        &app,
        Method::POST,
        &format!("/devices/{h3}/revoke"),
        Some(&t1),
        "203.0.113.5",
        &[],
    )
    .await;
    assert_eq!(r.body, "false");

    // Sign out everywhere else.
    let r = send(
        &app,
        Method::POST,
        "/devices/revoke-others",
        Some(&t1),
        "203.0.113.5",
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(serde_json::from_str::<Value>(&r.body).unwrap(), json!([h2]));
    let r = send(&app, Method::GET, "/devices", Some(&t1), "203.0.113.5", &[]).await;
    assert_eq!(
        serde_json::from_str::<Vec<Value>>(&r.body).unwrap().len(),
        1
    );
    // The revoked device: its next database-checked call fails (listing reads the store;
    // the plain access-token check is stateless until it expires, as in SuperTokens).
    let r = send(
        &app,
        Method::POST,
        &format!("/devices/{h2}/revoke"),
        Some(&t2),
        PROXY,
        &[],
    )
    .await;
    assert_eq!(r.body, "false", "already gone");
}

#[tokio::test]
async fn freshness_check_answers_403_with_the_claim_id_until_renewed() {
    let app = app().await;
    // Signed in (engine clock) ten minutes before the wall clock the check uses.
    let (_h, t) = login(&app, "alice", CHROME_LINUX, "203.0.113.5", None).await;
    let r = send(
        &app,
        Method::POST,
        "/sensitive",
        Some(&t),
        "203.0.113.5",
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let body: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["message"], "invalid claim");
    assert_eq!(body["claimValidationErrors"][0]["id"], "tessera-auth-time");
    assert_eq!(
        body["claimValidationErrors"][0]["reason"]["maxAgeInSeconds"],
        300
    );

    // Re-authentication renews the sign-in time on the same session.
    app.clock.set_ms(tessera::SystemClock.now_ms());
    let r = send(&app, Method::POST, "/reauth", Some(&t), "203.0.113.5", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let renewed = r.token.expect("a re-issued access token");
    let r = send(
        &app,
        Method::POST,
        "/sensitive",
        Some(&renewed),
        "203.0.113.5",
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // The old token still carries the old time.
    let r = send(
        &app,
        Method::POST,
        "/sensitive",
        Some(&t),
        "203.0.113.5",
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[test]
fn forwarded_header_rules() {
    use std::net::IpAddr;
    use tessera_axum::devices::client_ip;
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let trusted = [ip("10.0.0.1"), ip("10.0.0.2")];
    let mut h = http::HeaderMap::new();
    h.insert("x-forwarded-for", "203.0.113.1, 10.0.0.2".parse().unwrap());
    assert_eq!(
        client_ip(Some(ip("10.0.0.1")), &h, &trusted),
        Some(ip("203.0.113.1"))
    );
    // Untrusted peer: the header is ignored.
    assert_eq!(
        client_ip(Some(ip("192.0.2.1")), &h, &trusted),
        Some(ip("192.0.2.1"))
    );
    // A client-chosen left part cannot win over an untrusted hop on its right.
    h.insert("x-forwarded-for", "1.1.1.1, 203.0.113.1".parse().unwrap());
    assert_eq!(
        client_ip(Some(ip("10.0.0.1")), &h, &trusted),
        Some(ip("203.0.113.1"))
    );
    // Garbage: believe nothing in it.
    h.insert("x-forwarded-for", "<script>, 203.0.113.1".parse().unwrap());
    assert_eq!(
        client_ip(Some(ip("10.0.0.1")), &h, &trusted),
        Some(ip("10.0.0.1"))
    );
    // IPv4-mapped peers are recognised as the proxy.
    h.insert("x-forwarded-for", "203.0.113.1".parse().unwrap());
    assert_eq!(
        client_ip(Some(ip("::ffff:10.0.0.1")), &h, &trusted),
        Some(ip("203.0.113.1"))
    );
    // No connection info: nothing (a header alone is never believed).
    assert_eq!(client_ip(None, &h, &trusted), None);
}
