#![allow(clippy::unwrap_used, clippy::expect_used)] // test code
//! Issue 14: Device Bound Session Credentials, driven by a scripted client that follows the
//! W3C draft and the web-platform-tests' server expectations: it reads the
//! `Secure-Session-Registration` offer as a structured-field list, makes an ES256 key with
//! aws-lc-rs, registers with a `dbsc+jwt` proof, keeps the session configuration, lets the
//! bound cookie expire, and refreshes through the 403 challenge or a challenge sent ahead.
//! The attack: the bound session's cookies copied to a client without the key.
//! Runs on SQLite and on PostgreSQL.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use axum::body::Body;
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::{HeaderMap, Method, Request, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use tessera::{Clock, ManualClock, SessionConfig, SessionEngine, SqliteStore};
use tessera_axum::{AnySession, Config, DbscConfig, Session, SessionRejection, SignIn, Tessera};
use tessera_testkit::{fresh_store, in_process, on_both_stores, sdk, Backend};
use tower::ServiceExt;

const AT_VALIDITY_MS: u64 = 60_000;
/// What supertokens-website sends to get cookies.
const COOKIE_MODE: &[(&str, &str)] = &[("st-auth-mode", "cookie")];

struct App {
    router: Router,
    clock: Arc<ManualClock>,
    engine: SessionEngine,
    _server: Option<tokio::sync::oneshot::Sender<()>>,
}

async fn app(db: Backend, anonymous: bool) -> App {
    let clock = Arc::new(ManualClock::new(tessera::SystemClock.now_ms() - 600_000));
    let store: Arc<dyn tessera::Store> = match db {
        Backend::Sqlite => Arc::new(SqliteStore::in_memory().await.unwrap()),
        Backend::Postgres => fresh_store(Backend::Postgres).await,
    };
    let engine = SessionEngine::builder(store)
        .config(SessionConfig {
            access_token_validity_ms: AT_VALIDITY_MS,
            ..SessionConfig::default()
        })
        .clock(Arc::clone(&clock) as Arc<dyn Clock>)
        .build()
        .await
        .unwrap();
    let config = Config::builder("http://localhost:8080", "http://localhost:8080")
        .secure(true)
        .anonymous_sessions(anonymous)
        .dbsc(DbscConfig::default())
        .build()
        .unwrap();
    let tessera = Tessera::new(config, Arc::new(engine.clone()));
    App {
        router: routes(tessera),
        clock,
        engine,
        _server: None,
    }
}

/// The SDK on a remote core: `tessera serve` over HTTP on the same kind of store (the
/// binding is stored by the core through the DBSC extension endpoints). The server keeps
/// real time, so these tests do not move the clock.
async fn remote_app() -> App {
    let clock = Arc::new(ManualClock::new(tessera::SystemClock.now_ms()));
    let store: Arc<dyn tessera::Store> = Arc::new(SqliteStore::in_memory().await.unwrap());
    let engine = SessionEngine::builder(Arc::clone(&store))
        .build()
        .await
        .unwrap();
    let mut server_config = tessera_server::config::ServerConfig::default();
    server_config.app.session.access_token_validity_ms = AT_VALIDITY_MS;
    let (addr, tx, _task) = in_process::listen(&server_config, store).await;
    let remote = tessera_axum::RemoteCore::new(&format!("http://{addr}"), None)
        .unwrap()
        .with_clock(Arc::clone(&clock) as Arc<dyn Clock>);
    let config = Config::builder("http://localhost:8080", "http://localhost:8080")
        .secure(true)
        .anonymous_sessions(false)
        .dbsc(DbscConfig::default())
        .build()
        .unwrap();
    App {
        router: routes(Tessera::new(config, Arc::new(remote))),
        clock,
        engine,
        _server: Some(tx),
    }
}

fn routes(tessera: Tessera) -> Router {
    async fn login(sign_in: SignIn) -> Result<String, SessionRejection> {
        let s = sign_in
            .create("alice", Default::default(), json!({}))
            .await?;
        Ok(s.handle().to_owned())
    }
    async fn me(session: Session) -> String {
        session.user_id().to_owned()
    }
    async fn page(session: AnySession) -> String {
        format!("{}", session.is_anonymous())
    }
    Router::new()
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/", get(page))
        .layer(tessera.layer())
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A cookie as the client keeps it.
#[derive(Clone, Debug)]
struct Cookie {
    value: String,
    path: String,
    expires_ms: Option<u64>,
}

/// What the client knows about its bound session (the session configuration).
#[derive(Clone, Debug)]
struct BoundSession {
    id: String,
    refresh_url: String,
    cookie: String,
}

/// A browser: a cookie jar, and optionally the DBSC machinery with its device key.
#[derive(Clone)]
struct Client {
    jar: BTreeMap<String, Cookie>,
    key: Option<Arc<EcdsaKeyPair>>,
    session: Option<BoundSession>,
    /// A challenge received ahead of need, per session id.
    ahead: BTreeMap<String, String>,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

fn new_key() -> EcdsaKeyPair {
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .unwrap();
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap()
}

fn jwk(key: &EcdsaKeyPair) -> Value {
    let p = key.public_key().as_ref();
    json!({"kty": "EC", "crv": "P-256", "x": b64(&p[1..33]), "y": b64(&p[33..65])})
}

fn sign_jwt(key: &EcdsaKeyPair, header: &Value, payload: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes())
    );
    let sig = key.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
    format!("{input}.{}", b64(sig.as_ref()))
}

/// The registration offer, parsed as the RFC 9651 list it is.
struct Offer {
    algorithms: Vec<String>,
    path: String,
    challenge: String,
    authorization: Option<String>,
}

fn parse_offer(value: &str) -> Offer {
    let list: sfv::List = sfv::Parser::new(value).parse().unwrap();
    let sfv::ListEntry::InnerList(inner) = &list[0] else {
        panic!("the offer starts with the algorithm list")
    };
    let algorithms = inner
        .items
        .iter()
        .map(|i| i.bare_item.as_token().unwrap().as_str().to_owned())
        .collect();
    let param = |name: &str| {
        inner
            .params
            .iter()
            .find(|(k, _)| k.as_str() == name)
            .map(|(_, v)| v.as_string().unwrap().as_str().to_owned())
    };
    Offer {
        algorithms,
        path: param("path").unwrap(),
        challenge: param("challenge").unwrap(),
        authorization: param("authorization"),
    }
}

/// `Secure-Session-Challenge: "<challenge>";id="<id>"`.
fn parse_challenge(value: &str) -> (String, String) {
    let item: sfv::Item = sfv::Parser::new(value).parse().unwrap();
    let challenge = item.bare_item.as_string().unwrap().as_str().to_owned();
    let id = item
        .params
        .iter()
        .find(|(k, _)| k.as_str() == "id")
        .map(|(_, v)| v.as_string().unwrap().as_str().to_owned())
        .unwrap();
    (challenge, id)
}

impl Client {
    fn new() -> Self {
        Self {
            jar: BTreeMap::new(),
            key: None,
            session: None,
            ahead: BTreeMap::new(),
        }
    }

    /// The cookies a request to `path` carries at `now`.
    fn cookie_header(&self, path: &str, now: u64) -> String {
        self.jar
            .iter()
            .filter(|(_, c)| c.expires_ms.is_none_or(|e| e > now))
            .filter(|(_, c)| {
                path == c.path
                    || (path.starts_with(&c.path)
                        && (c.path.ends_with('/') || path[c.path.len()..].starts_with('/')))
            })
            .map(|(n, c)| format!("{n}={}", c.value))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn has_cookie(&self, name: &str, now: u64) -> bool {
        self.jar
            .get(name)
            .is_some_and(|c| c.expires_ms.is_none_or(|e| e > now))
    }

    fn store_cookies(&mut self, headers: &HeaderMap) {
        for v in headers.get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let mut parts = v.split(';').map(str::trim);
            let (name, value) = parts.next().unwrap().split_once('=').unwrap();
            let mut cookie = Cookie {
                value: value.to_owned(),
                path: "/".into(),
                expires_ms: None,
            };
            for attr in parts {
                if let Some(p) = attr.strip_prefix("Path=") {
                    cookie.path = p.to_owned();
                }
                if let Some(e) = attr.strip_prefix("Expires=") {
                    let t = httpdate::parse_http_date(e).unwrap();
                    cookie.expires_ms =
                        Some(t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64);
                }
            }
            if value.is_empty() || cookie.expires_ms == Some(0) {
                self.jar.remove(name);
            } else {
                self.jar.insert(name.to_owned(), cookie);
            }
        }
    }

    async fn send(
        &mut self,
        app: &App,
        method: Method,
        path: &str,
        extra: &[(&str, &str)],
    ) -> Reply {
        let now = app.clock.now_ms();
        let mut req = Request::builder().method(method).uri(path);
        let cookies = self.cookie_header(path, now);
        if !cookies.is_empty() {
            req = req.header("cookie", cookies);
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let resp = app
            .router
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let resp = sdk::Resp::read(resp).await;
        self.store_cookies(&resp.headers);
        if let Some(c) = resp
            .headers
            .get("secure-session-challenge")
            .and_then(|v| v.to_str().ok())
        {
            let (challenge, id) = parse_challenge(c);
            self.ahead.insert(id, challenge);
        }
        Reply {
            status: resp.status,
            headers: resp.headers,
            body: resp.body.into_bytes(),
        }
    }

    /// Follows a registration offer: a new ES256 key, a proof over the challenge, the POST.
    async fn register(&mut self, app: &App, offer: &str) -> Reply {
        let offer = parse_offer(offer);
        assert!(
            offer.algorithms.iter().any(|a| a == "ES256"),
            "{:?}",
            offer.algorithms
        );
        let key = new_key();
        let mut payload = json!({"jti": offer.challenge});
        if let Some(a) = offer.authorization {
            payload["authorization"] = json!(a);
        }
        let proof = sign_jwt(
            &key,
            &json!({"alg": "ES256", "typ": "dbsc+jwt", "jwk": jwk(&key)}),
            &payload,
        );
        // Chrome sends the JWT as a bare token.
        let reply = self
            .send(
                app,
                Method::POST,
                &offer.path,
                &[("secure-session-response", &proof)],
            )
            .await;
        if reply.status == StatusCode::OK {
            self.key = Some(Arc::new(key));
            self.adopt(&reply);
        }
        reply
    }

    fn adopt(&mut self, reply: &Reply) {
        let config = reply.json();
        if config.get("continue") == Some(&json!(false)) {
            self.session = None;
            return;
        }
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        let cred = &config["credentials"][0];
        assert_eq!(cred["type"], "cookie");
        self.session = Some(BoundSession {
            id: config["session_identifier"].as_str().unwrap().to_owned(),
            refresh_url: config["refresh_url"].as_str().unwrap().to_owned(),
            cookie: cred["name"].as_str().unwrap().to_owned(),
        });
    }

    /// The DBSC refresh: the session id, then a proof over the challenge (one sent ahead, or
    /// the 403's). Returns the final reply.
    async fn dbsc_refresh(&mut self, app: &App, use_ahead: bool) -> Reply {
        let session = self.session.clone().unwrap();
        let id_header = format!("\"{}\"", session.id);
        let ahead = if use_ahead {
            self.ahead.remove(&session.id)
        } else {
            self.ahead.clear();
            None
        };
        let challenge = match ahead {
            Some(c) => c,
            None => {
                let first = self
                    .send(
                        app,
                        Method::POST,
                        &session.refresh_url,
                        &[("sec-secure-session-id", &id_header)],
                    )
                    .await;
                if first.status != StatusCode::FORBIDDEN {
                    if first.status == StatusCode::OK {
                        self.adopt(&first);
                    }
                    return first;
                }
                let (challenge, id) =
                    parse_challenge(first.header("secure-session-challenge").unwrap());
                assert_eq!(id, session.id);
                self.ahead.remove(&id);
                challenge
            }
        };
        let key = self.key.clone().unwrap();
        let proof = sign_jwt(
            &key,
            &json!({"alg": "ES256", "typ": "dbsc+jwt"}),
            &json!({"jti": challenge}),
        );
        let reply = self
            .send(
                app,
                Method::POST,
                &session.refresh_url,
                &[
                    ("sec-secure-session-id", &id_header),
                    ("secure-session-response", &proof),
                ],
            )
            .await;
        if reply.status == StatusCode::OK {
            self.adopt(&reply);
        }
        reply
    }
}

async fn signed_in_and_bound(app: &App) -> Client {
    let mut device = Client::new();
    let login = device.send(app, Method::POST, "/login", COOKIE_MODE).await;
    assert_eq!(login.status, StatusCode::OK);
    let offer = login
        .header("secure-session-registration")
        .unwrap()
        .to_owned();
    let reg = device.register(app, &offer).await;
    assert_eq!(
        reg.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reg.body)
    );
    device
}

async fn registration_and_refresh_with_a_challenge(db: Backend) {
    let app = app(db, false).await;
    let mut device = Client::new();
    let login = device.send(&app, Method::POST, "/login", COOKIE_MODE).await;
    let offer = parse_offer(login.header("secure-session-registration").unwrap());
    assert_eq!(offer.algorithms, ["ES256", "RS256"]);
    assert_eq!(offer.path, "/auth/session/dbsc/register");
    let reg = device
        .register(&app, login.header("secure-session-registration").unwrap())
        .await;
    assert_eq!(reg.status, StatusCode::OK);
    let config = reg.json();
    assert_eq!(config["refresh_url"], "/auth/session/refresh/dbsc");
    assert_eq!(config["scope"]["origin"], "http://localhost:8080");
    assert_eq!(config["scope"]["include_site"], false);
    assert!(config["scope"]["scope_specification"].is_array());
    assert_eq!(config["credentials"][0]["name"], "sAccessToken");
    assert_eq!(
        config["credentials"][0]["attributes"],
        "Path=/; HttpOnly; Secure; SameSite=Lax"
    );
    // The bound cookie expires with its token.
    let now = app.clock.now_ms();
    let exp = device.jar["sAccessToken"].expires_ms.unwrap();
    assert!(
        exp > now && exp <= now + AT_VALIDITY_MS + 1000,
        "{exp} {now}"
    );
    assert_eq!(
        device.send(&app, Method::GET, "/me", &[]).await.status,
        StatusCode::OK
    );

    // The cookie expires; the browser refreshes before the next request in scope.
    app.clock.advance_ms(AT_VALIDITY_MS + 1000);
    assert!(!device.has_cookie("sAccessToken", app.clock.now_ms()));
    let r = device.dbsc_refresh(&app, false).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(device.has_cookie("sAccessToken", app.clock.now_ms()));
    assert_eq!(
        device.send(&app, Method::GET, "/me", &[]).await.status,
        StatusCode::OK
    );
    // A challenge rides ahead on the refresh answer.
    assert!(device
        .ahead
        .contains_key(&device.session.clone().unwrap().id));
}

async fn refresh_ahead_of_expiry(db: Backend) {
    let app = app(db, false).await;
    let mut device = signed_in_and_bound(&app).await;
    let id = device.session.clone().unwrap().id;
    assert!(
        device.ahead.contains_key(&id),
        "registration sends a challenge ahead"
    );
    for _ in 0..3 {
        app.clock.advance_ms(AT_VALIDITY_MS / 2);
        // Still valid: the browser refreshes early with the challenge it holds, no 403.
        assert!(device.has_cookie("sAccessToken", app.clock.now_ms()));
        let r = device.dbsc_refresh(&app, true).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(
            device.send(&app, Method::GET, "/me", &[]).await.status,
            StatusCode::OK
        );
    }
}

async fn continue_false_after_sign_out(db: Backend) {
    let app = app(db, false).await;
    let mut device = signed_in_and_bound(&app).await;
    let out = device
        .send(&app, Method::POST, "/auth/signout", &[("rid", "session")])
        .await;
    assert_eq!(out.status, StatusCode::OK);
    let r = device.dbsc_refresh(&app, false).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({"continue": false}));
    assert!(device.session.is_none());

    // Revoked on the server while the browser still holds its cookies: the same answer.
    let mut device = signed_in_and_bound(&app).await;
    let handle = device.send(&app, Method::POST, "/login", COOKIE_MODE).await;
    assert_eq!(handle.status, StatusCode::OK);
    let mut device2 = signed_in_and_bound(&app).await;
    let sessions = app
        .engine
        .session_handles_for_user("alice", None)
        .await
        .unwrap();
    app.engine.revoke_sessions(&sessions).await.unwrap();
    for d in [&mut device, &mut device2] {
        let r = d.dbsc_refresh(&app, false).await;
        assert_eq!(r.json(), json!({"continue": false}));
    }
}

/// The attack DBSC exists for: the bound session's cookies copied to another client (cookie
/// theft by malware that then leaves the device) cannot refresh — neither through the DBSC
/// route nor through `/auth/session/refresh` — and the real device still can afterwards.
async fn stolen_cookies_cannot_refresh(db: Backend) {
    let app = app(db, false).await;
    let mut device = signed_in_and_bound(&app).await;
    let mut thief = Client::new();
    thief.jar = device.jar.clone();
    let session = device.session.clone().unwrap();
    thief.session = Some(session.clone());
    // Until the access token expires the thief can use it (DBSC shortens this window).
    app.clock.advance_ms(AT_VALIDITY_MS + 1000);
    let now = app.clock.now_ms();
    assert!(!thief.has_cookie("sAccessToken", now));
    assert_eq!(
        thief.send(&app, Method::GET, "/me", &[]).await.status,
        StatusCode::UNAUTHORIZED
    );

    // 1. The plain refresh: 401, and nothing cleared on the server.
    let plain = thief
        .send(
            &app,
            Method::POST,
            "/auth/session/refresh",
            &[("rid", "session")],
        )
        .await;
    assert_eq!(plain.status, StatusCode::UNAUTHORIZED);
    assert!(
        thief.has_cookie("sRefreshToken", now),
        "no clearing: the device keeps its session"
    );
    assert!(
        plain
            .headers
            .get_all("set-cookie")
            .iter()
            .all(|c| !c.to_str().unwrap().starts_with("sRefreshToken")),
        "the refusal never clears the refresh token"
    );

    // 2. The DBSC refresh without a key: only challenges.
    let id_header = format!("\"{}\"", session.id);
    let r = thief
        .send(
            &app,
            Method::POST,
            &session.refresh_url,
            &[("sec-secure-session-id", &id_header)],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let (challenge, _) = parse_challenge(r.header("secure-session-challenge").unwrap());
    // With its own key, naming it or naming the device's key (forged).
    let own = new_key();
    let device_jwk = jwk(&device.key.clone().unwrap());
    for header in [
        json!({"alg": "ES256", "typ": "dbsc+jwt"}),
        json!({"alg": "ES256", "typ": "dbsc+jwt", "jwk": jwk(&own)}),
        json!({"alg": "ES256", "typ": "dbsc+jwt", "jwk": device_jwk}),
    ] {
        let proof = sign_jwt(&own, &header, &json!({"jti": challenge}));
        let r = thief
            .send(
                &app,
                Method::POST,
                &session.refresh_url,
                &[
                    ("sec-secure-session-id", &id_header),
                    ("secure-session-response", &proof),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{header}");
        assert!(r.header("set-cookie").is_none());
    }
    // Registering its own key on the bound session is refused too.
    let own_challenge = app
        .engine
        .dbsc_challenge(
            "public",
            &app.engine
                .session_handles_for_user("alice", None)
                .await
                .unwrap()[0],
        )
        .unwrap();
    let proof = sign_jwt(
        &own,
        &json!({"alg": "ES256", "typ": "dbsc+jwt", "jwk": jwk(&own)}),
        &json!({"jti": own_challenge}),
    );
    let r = thief
        .send(
            &app,
            Method::POST,
            "/auth/session/dbsc/register",
            &[("secure-session-response", &proof)],
        )
        .await;
    assert_ne!(r.status, StatusCode::OK);
    assert!(!thief.has_cookie("sAccessToken", app.clock.now_ms()));

    // The real device refreshes, and the thief's copy of the old refresh token is still
    // refused without revoking anything (no theft answer that would end the device's session).
    let r = device.dbsc_refresh(&app, false).await;
    assert_eq!(r.status, StatusCode::OK);
    let plain = thief
        .send(
            &app,
            Method::POST,
            "/auth/session/refresh",
            &[("rid", "session")],
        )
        .await;
    assert_eq!(plain.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        device.send(&app, Method::GET, "/me", &[]).await.status,
        StatusCode::OK
    );
    app.clock.advance_ms(AT_VALIDITY_MS + 1000);
    assert_eq!(
        device.dbsc_refresh(&app, false).await.status,
        StatusCode::OK
    );
    assert_eq!(
        device.send(&app, Method::GET, "/me", &[]).await.status,
        StatusCode::OK
    );
}

async fn never_registered_works_as_before(db: Backend) {
    let app = app(db, false).await;
    let mut browser = Client::new();
    let login = browser
        .send(&app, Method::POST, "/login", COOKIE_MODE)
        .await;
    assert!(login.header("secure-session-registration").is_some());
    // No DBSC in this browser: the offer is ignored. With DBSC on, every access-token cookie
    // ends a little before its token (whichever response wrote it, a bound session's browser
    // must find it gone), so an unbound browser meets the usual 401 and refresh at expiry.
    let exp = browser.jar["sAccessToken"].expires_ms.unwrap();
    let now = app.clock.now_ms();
    assert!(
        exp > now && exp <= now + AT_VALIDITY_MS,
        "the access cookie ends with its token: {exp} vs now {now}"
    );
    app.clock.advance_ms(AT_VALIDITY_MS + 1000);
    assert!(
        !browser.jar.contains_key("sAccessToken")
            || browser.jar["sAccessToken"]
                .expires_ms
                .is_some_and(|e| e <= app.clock.now_ms())
    );
    assert_eq!(
        browser.send(&app, Method::GET, "/me", &[]).await.status,
        StatusCode::UNAUTHORIZED,
        "without its access cookie the request is unauthorised, and the SDK refreshes"
    );
    let r = browser
        .send(
            &app,
            Method::POST,
            "/auth/session/refresh",
            &[("rid", "session")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        browser.send(&app, Method::GET, "/me", &[]).await.status,
        StatusCode::OK
    );
    // The DBSC refresh of an unbound session ends that (nonexistent) bound session.
    browser.session = Some(BoundSession {
        id: "nope".into(),
        refresh_url: "/auth/session/refresh/dbsc".into(),
        cookie: "sAccessToken".into(),
    });
    let r = browser
        .send(
            &app,
            Method::POST,
            "/auth/session/refresh/dbsc",
            &[("sec-secure-session-id", "nope")],
        )
        .await;
    assert_eq!(r.json(), json!({"continue": false}));

    // Header mode: no DBSC.
    let mut header_client = Client::new();
    let login = header_client
        .send(&app, Method::POST, "/login", &[("st-auth-mode", "header")])
        .await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.header("secure-session-registration").is_none());
}

async fn bad_inputs_get_protocol_answers(db: Backend) {
    let app = app(db, false).await;
    let mut device = signed_in_and_bound(&app).await;
    let session = device.session.clone().unwrap();
    let huge = "a".repeat(20_000);
    for headers in [
        vec![("secure-session-response", huge.as_str())],
        vec![("secure-session-response", "(a b)")],
        vec![("secure-session-response", "?1")],
    ] {
        let r = device
            .send(&app, Method::POST, "/auth/session/dbsc/register", &headers)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let r = device
            .send(&app, Method::POST, &session.refresh_url, &headers)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
    // A garbage proof at refresh: a fresh challenge, nothing else.
    let r = device
        .send(
            &app,
            Method::POST,
            &session.refresh_url,
            &[("secure-session-response", "a.b.c")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Registration without any session.
    let mut stranger = Client::new();
    let r = stranger
        .send(
            &app,
            Method::POST,
            "/auth/session/dbsc/register",
            &[("secure-session-response", "a.b.c")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Quoted (sf-string) values are read as well as Chrome's bare tokens, even a bare value
    // that is not an sf-token (starts with a digit), as Chrome echoes identifiers.
    let r = device.dbsc_refresh(&app, false).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = device
        .send(
            &app,
            Method::POST,
            &session.refresh_url,
            &[("sec-secure-session-id", "03eb62")],
        )
        .await;
    assert_eq!(
        r.json(),
        json!({"continue": false}),
        "another session's id ends that one"
    );
    let bare = session.id.clone();
    let r = device
        .send(
            &app,
            Method::POST,
            &session.refresh_url,
            &[("sec-secure-session-id", &bare)],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(session.id.starts_with('s'));
}

/// A guest may be bound too, and stays bound across sign-in.
async fn guest_bound_then_signing_in_stays_bound(db: Backend) {
    let app = app(db, true).await;
    let mut device = Client::new();
    let page = device.send(&app, Method::GET, "/", COOKIE_MODE).await;
    assert_eq!(page.status, StatusCode::OK);
    let offer = page
        .header("secure-session-registration")
        .unwrap()
        .to_owned();
    let reg = device.register(&app, &offer).await;
    assert_eq!(
        reg.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reg.body)
    );
    let guest_id = device.session.clone().unwrap().id;
    assert_eq!(
        device.session.clone().unwrap().cookie,
        "__Host-sAnonymousToken"
    );
    // Later pages offer nothing new.
    let again = device.send(&app, Method::GET, "/", COOKIE_MODE).await;
    assert!(again.header("secure-session-registration").is_none());

    let login = device.send(&app, Method::POST, "/login", COOKIE_MODE).await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(
        login.header("secure-session-registration").is_none(),
        "already bound"
    );
    assert!(!device.has_cookie("__Host-sAnonymousToken", app.clock.now_ms()));
    // The bound cookie (the guest's) is gone: the browser refreshes its bound session, which
    // is now the signed-in one, with the same key and identifier.
    let r = device.dbsc_refresh(&app, false).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let s = device.session.clone().unwrap();
    assert_eq!(s.id, guest_id);
    assert_eq!(s.cookie, "sAccessToken");
    assert_eq!(
        device.send(&app, Method::GET, "/me", &[]).await.status,
        StatusCode::OK
    );
    // And the signed-in session refuses the plain refresh.
    let plain = device
        .send(
            &app,
            Method::POST,
            "/auth/session/refresh",
            &[("rid", "session")],
        )
        .await;
    assert_eq!(plain.status, StatusCode::UNAUTHORIZED);
}

/// The same protocol through `tessera serve`: registration, a challenged refresh, the
/// refused plain refresh, the thief's refusals, and `continue: false` after sign-out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_core_binds_and_refreshes() {
    let app = remote_app().await;
    let mut device = signed_in_and_bound(&app).await;
    assert_eq!(
        device.send(&app, Method::GET, "/me", &[]).await.status,
        StatusCode::OK
    );
    let r = device.dbsc_refresh(&app, false).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let r = device.dbsc_refresh(&app, true).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let mut thief = Client::new();
    thief.jar = device.jar.clone();
    let plain = thief
        .send(
            &app,
            Method::POST,
            "/auth/session/refresh",
            &[("rid", "session")],
        )
        .await;
    assert_eq!(plain.status, StatusCode::UNAUTHORIZED);
    assert!(
        thief.has_cookie("sRefreshToken", app.clock.now_ms()),
        "nothing cleared"
    );
    let session = device.session.clone().unwrap();
    let own = new_key();
    let r = thief
        .send(&app, Method::POST, &session.refresh_url, &[])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let (challenge, _) = parse_challenge(r.header("secure-session-challenge").unwrap());
    let proof = sign_jwt(
        &own,
        &json!({"alg": "ES256", "typ": "dbsc+jwt"}),
        &json!({"jti": challenge}),
    );
    let r = thief
        .send(
            &app,
            Method::POST,
            &session.refresh_url,
            &[("secure-session-response", &proof)],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = device.dbsc_refresh(&app, false).await;
    assert_eq!(r.status, StatusCode::OK);
    let out = device
        .send(&app, Method::POST, "/auth/signout", &[("rid", "session")])
        .await;
    assert_eq!(out.status, StatusCode::OK);
    device.session = Some(session);
    let r = device.dbsc_refresh(&app, false).await;
    assert_eq!(r.json(), json!({"continue": false}));
}

on_both_stores!(
    registration_and_refresh_with_a_challenge,
    refresh_ahead_of_expiry,
    continue_false_after_sign_out,
    stolen_cookies_cannot_refresh,
    never_registered_works_as_before,
    bad_inputs_get_protocol_answers,
    guest_bound_then_signing_in_stays_bound,
);
