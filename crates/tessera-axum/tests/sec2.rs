//! Security round 2 (issue 11), the SDK and anonymous side: one regression test per finding,
//! named by the finding's id (SEC2-H2, SEC2-M3, SEC2-L4 … L7) and by the catalogue id where a
//! row fits (security-tests.md). Each attack is judged by what the server hands out. The
//! anonymous scenarios run on the engine in-process and on a real `tessera serve` over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use axum::routing::{get, post};
use axum::{Json, Router};
use http::{Method, StatusCode};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use tessera::{ManualClock, NewSession, SqliteStore};
use tessera_axum::{AnySession, Config, ConfigBuilder, RemoteCore, Session, SessionCore, SignIn};
use tessera_axum::{SessionRejection, Tessera};
use tessera_testkit::sdk::{
    core, decode_front_token, send, App, Mode, Resp, ACCESS_TOKEN_VALIDITY_MS,
};

const COOKIE_MODE: (&str, &str) = ("st-auth-mode", "cookie");
const HEADER_MODE: (&str, &str) = ("st-auth-mode", "header");
/// The anonymous cookie of a Secure, host-only configuration.
const ANT: &str = "__Host-sAnonymousToken";

/// http://localhost with Secure cookies (browsers accept them there): the `__Host-` AnT.
fn secure_local() -> ConfigBuilder {
    Config::builder("http://localhost:8080", "http://localhost:8080").secure(true)
}

fn routes(tessera: &Tessera) -> Router {
    async fn whoami(session: AnySession) -> Json<Value> {
        Json(json!({"anonymousId": session.anonymous_id(), "userId": session.user_id()}))
    }
    async fn login(sign_in: SignIn) -> Result<String, SessionRejection> {
        let s = sign_in.create("victim", Map::new(), json!({})).await?;
        Ok(s.handle().to_owned())
    }
    async fn account(session: Session) -> String {
        session.user_id().to_owned()
    }
    Router::new()
        .route("/whoami", get(whoami))
        .route("/login", post(login))
        .route("/account", get(account))
        .layer(tessera.layer())
}

async fn app(mode: Mode, builder: ConfigBuilder) -> App {
    let clock = Arc::new(ManualClock::starting_now());
    let (core, server) = core(mode, clock.clone()).await;
    let tessera = Tessera::new(builder.build().expect("config"), core.clone());
    App {
        router: routes(&tessera),
        clock,
        core,
        _server: server,
    }
}

/// The anonymousId a response hands out: the anonymous front-token's `up.anonymousId`.
fn handed_out_id(r: &Resp) -> Option<String> {
    let ft = decode_front_token(r.header("front-token")?);
    (ft["up"]["tokenType"] == "anonymous")
        .then(|| ft["up"]["anonymousId"].as_str().map(str::to_owned))
        .flatten()
}

/// A visitor's first request: its AnT (cookie value, or header token) and anonymousId.
async fn first_visit(app: &App, header_mode: bool) -> (String, String) {
    let mode = if header_mode {
        HEADER_MODE
    } else {
        COOKIE_MODE
    };
    let r = send(app, Method::GET, "/whoami", &[mode]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let ant = if header_mode {
        r.header("st-access-token").expect("AnT header").to_owned()
    } else {
        r.cookie_value(ANT).expect("AnT cookie")
    };
    let id = r.json()["anonymousId"].as_str().unwrap().to_owned();
    (ant, id)
}

/// The victim signs in with their AnT: (handle, access token, refresh token).
async fn sign_in(app: &App, ant: &str, header_mode: bool) -> (String, String, String) {
    let r = if header_mode {
        let bearer = format!("Bearer {ant}");
        send(
            app,
            Method::POST,
            "/login",
            &[HEADER_MODE, ("authorization", &bearer)],
        )
        .await
    } else {
        let cookie = format!("{ANT}={ant}");
        send(
            app,
            Method::POST,
            "/login",
            &[COOKIE_MODE, ("cookie", &cookie)],
        )
        .await
    };
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let (at, rt) = if header_mode {
        (
            r.header("st-access-token").unwrap().to_owned(),
            r.header("st-refresh-token").unwrap().to_owned(),
        )
    } else {
        (
            r.cookie_value("sAccessToken").unwrap(),
            r.cookie_value("sRefreshToken").unwrap(),
        )
    };
    (r.body.clone(), at, rt)
}

// ---- SEC2-H2.1: the anonymousId is handed over only with proof ----

/// The attacker holds only the victim's access token, expired or of a revoked session, and
/// sends it alone (with `rid`, as the browser SDK would) to the refresh route and to sign-out:
/// no response may carry the victim's anonymousId.
async fn sec2_h2_stolen_expired_or_revoked_access_token_alone_gets_a_fresh_anonymous_id(
    mode: Mode,
) {
    let app = app(mode, secure_local()).await;
    let (ant, victim) = first_visit(&app, false).await;

    // A revoked session's access token, still within its lifetime.
    let (handle, at, _) = sign_in(&app, &ant, false).await;
    assert!(app.core.revoke_session(&handle).await.unwrap());
    let stolen = format!("sAccessToken={at}");
    let r = send(
        &app,
        Method::POST,
        "/auth/session/refresh",
        &[COOKIE_MODE, ("rid", "session"), ("cookie", &stolen)],
    )
    .await;
    let got = handed_out_id(&r);
    assert!(got.is_some(), "a new anonymous session is still set (A5)");
    assert_ne!(got.as_deref(), Some(victim.as_str()), "refresh, revoked AT");
    let bearer = format!("Bearer {at}");
    let r = send(
        &app,
        Method::POST,
        "/auth/signout",
        &[COOKIE_MODE, ("rid", "session"), ("cookie", &stolen)],
    )
    .await;
    assert_ne!(
        handed_out_id(&r).as_deref(),
        Some(victim.as_str()),
        "sign-out, cookie"
    );
    let r = send(
        &app,
        Method::POST,
        "/auth/signout",
        &[HEADER_MODE, ("rid", "session"), ("authorization", &bearer)],
    )
    .await;
    assert_ne!(
        handed_out_id(&r).as_deref(),
        Some(victim.as_str()),
        "sign-out, bearer"
    );
    let r = send(
        &app,
        Method::POST,
        "/auth/session/refresh",
        &[HEADER_MODE, ("rid", "session"), ("authorization", &bearer)],
    )
    .await;
    assert_ne!(
        handed_out_id(&r).as_deref(),
        Some(victim.as_str()),
        "refresh, AT as bearer"
    );

    // An expired access token of a live session (a minute of margin: a remote core mints
    // on the real clock, the SDK judges on the test's).
    let (_, at, _) = sign_in(&app, &ant, false).await;
    app.clock.advance_ms(ACCESS_TOKEN_VALIDITY_MS + 60_000);
    let r = send(
        &app,
        Method::POST,
        "/auth/session/refresh",
        &[
            COOKIE_MODE,
            ("rid", "session"),
            ("cookie", &format!("sAccessToken={at}")),
        ],
    )
    .await;
    let got = handed_out_id(&r);
    assert!(got.is_some(), "a new anonymous session is still set");
    assert_ne!(got.as_deref(), Some(victim.as_str()), "refresh, expired AT");
}

/// "Unauthorised" on a route that checks the database: the revoked access token is all the
/// request has, so it proves nothing; the new anonymous session (A21) has a new id.
async fn sec2_h2_unauthorised_on_a_database_checked_route_needs_proof_too(mode: Mode) {
    let app = app(mode, secure_local().check_database(true)).await;
    let (ant, victim) = first_visit(&app, false).await;
    let (handle, at, _) = sign_in(&app, &ant, false).await;
    assert!(app.core.revoke_session(&handle).await.unwrap());
    let r = send(
        &app,
        Method::GET,
        "/account",
        &[COOKIE_MODE, ("cookie", &format!("sAccessToken={at}"))],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let got = handed_out_id(&r);
    assert!(
        got.is_some(),
        "A21: an anonymous session in the same response"
    );
    assert_ne!(got.as_deref(), Some(victim.as_str()));
}

/// The legitimate visitor keeps the id (A20, A21, A23) because they hold the refresh token:
/// the id travels in its encrypted payload, through rotations, in cookie and header mode.
async fn sec2_h2_a20_a21_the_refresh_token_proves_the_anonymous_id(mode: Mode) {
    for header_mode in [false, true] {
        let app = app(mode, secure_local()).await;
        let (ant, victim) = first_visit(&app, header_mode).await;
        let (handle, at, rt) = sign_in(&app, &ant, header_mode).await;
        let refresh = |at: String, rt: String| {
            let app = &app;
            async move {
                if header_mode {
                    let bearer = format!("Bearer {rt}");
                    send(
                        app,
                        Method::POST,
                        "/auth/session/refresh",
                        &[HEADER_MODE, ("rid", "session"), ("authorization", &bearer)],
                    )
                    .await
                } else {
                    let cookie = format!("sAccessToken={at}; sRefreshToken={rt}");
                    send(
                        app,
                        Method::POST,
                        "/auth/session/refresh",
                        &[COOKIE_MODE, ("rid", "session"), ("cookie", &cookie)],
                    )
                    .await
                }
            }
        };
        // One rotation first: the child refresh token carries the id too.
        let r = refresh(at, rt).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let (at2, rt2) = if header_mode {
            (
                r.header("st-access-token").unwrap().to_owned(),
                r.header("st-refresh-token").unwrap().to_owned(),
            )
        } else {
            (
                r.cookie_value("sAccessToken").unwrap(),
                r.cookie_value("sRefreshToken").unwrap(),
            )
        };
        assert!(app.core.revoke_session(&handle).await.unwrap());
        let r = refresh(at2, rt2).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
        assert_eq!(
            handed_out_id(&r).as_deref(),
            Some(victim.as_str()),
            "header mode: {header_mode}"
        );
    }
}

/// The other proof: a refresh token that is not genuine, beside an access token that fully
/// verifies (live session, in time): the visitor keeps the id.
async fn sec2_h2_a_live_access_token_proves_the_id_when_the_refresh_token_does_not(mode: Mode) {
    let app = app(mode, secure_local()).await;
    let (ant, victim) = first_visit(&app, false).await;
    let (_, at, _) = sign_in(&app, &ant, false).await;
    let cookie = format!("sAccessToken={at}; sRefreshToken=junk");
    let r = send(
        &app,
        Method::POST,
        "/auth/session/refresh",
        &[COOKIE_MODE, ("rid", "session"), ("cookie", &cookie)],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(handed_out_id(&r).as_deref(), Some(victim.as_str()));
}

// ---- SEC2-H2.2: a plantable anonymous cookie is refused at start-up ----

#[test]
fn sec2_h2_anon06_a_plantable_anonymous_cookie_is_refused_at_start_up() {
    let plain = Config::builder("http://localhost:8080", "http://localhost:8080").build();
    let e = plain.expect_err("no Secure: the cookie is not __Host-");
    assert!(e.0.contains("__Host-"), "{e}");
    let domain = Config::builder("https://api.example.com", "https://www.example.com")
        .cookie_domain(".example.com")
        .build();
    assert!(domain.is_err(), "a cookie domain: not __Host-");
    // What stays allowed: the __Host- cookie, header transfer, or the feature off.
    assert!(secure_local().build().is_ok());
    assert!(
        Config::builder("https://api.example.com", "https://www.example.com")
            .build()
            .is_ok()
    );
    assert!(
        Config::builder("http://localhost:8080", "http://localhost:8080")
            .token_transfer(tessera_axum::TokenTransfer::Header)
            .build()
            .is_ok()
    );
    assert!(
        Config::builder("http://localhost:8080", "http://localhost:8080")
            .anonymous_sessions(false)
            .build()
            .is_ok()
    );
    // Or the app opts in by name, accepting the documented risk.
    let c = Config::builder("http://localhost:8080", "http://localhost:8080")
        .allow_plantable_anonymous_cookie(true)
        .build()
        .unwrap();
    assert_eq!(c.anonymous_cookie_name(), "sAnonymousToken");
    assert_eq!(secure_local().build().unwrap().anonymous_cookie_name(), ANT);
}

// ---- SEC2-L4: sign-out from a cross-site form ----

async fn sec2_l4_csrf11_a_cross_site_sign_out_mints_no_anonymous_token(mode: Mode) {
    // A cross-site form POST: no Lax cookie, no `rid`; with cookie transfer (or a client that
    // asks for cookies) the answer's new AnT would replace the visitor's.
    let forged = [
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-mode", "navigate"),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let cookie_only = secure_local().token_transfer(tessera_axum::TokenTransfer::Cookie);
    for (builder, auth_mode) in [(cookie_only, None), (secure_local(), Some(COOKIE_MODE))] {
        let app = app(mode, builder).await;
        let headers: Vec<_> = auth_mode.into_iter().chain(forged).collect();
        let r = send(&app, Method::POST, "/auth/signout", &headers).await;
        assert!(r.set_cookies().is_empty(), "{:?}", r.set_cookies());
        assert!(r.header("front-token").is_none());
        assert!(r.header("st-access-token").is_none());
    }
    let app = app(mode, secure_local()).await;
    // The front end's own sign-out without a session still leaves a guest session (A5).
    let r = send(
        &app,
        Method::POST,
        "/auth/signout",
        &[COOKIE_MODE, ("rid", "session")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.cookie_value(ANT).is_some());
}

// ---- SEC2-L5: duplicated anonymous cookies ----

async fn sec2_l5_cook08_a_duplicated_anonymous_cookie_never_churns_the_identity(mode: Mode) {
    let app = app(mode, secure_local()).await;
    let (ant, id) = first_visit(&app, false).await;
    let (other, _) = first_visit(&app, false).await;
    let whoami = |cookie: String| {
        let app = &app;
        async move {
            send(
                app,
                Method::GET,
                "/whoami",
                &[COOKIE_MODE, ("cookie", &cookie)],
            )
            .await
        }
    };
    // A genuine copy beside junk (tossed garbage, a foreign token, itself twice): the genuine
    // one is used, whichever comes first, and nothing is minted.
    let junk = ["garbage", "x.y.z", ant.as_str()];
    for j in junk {
        for cookie in [
            format!("{ANT}={j}; {ANT}={ant}"),
            format!("{ANT}={ant}; {ANT}={j}"),
        ] {
            for _ in 0..2 {
                let r = whoami(cookie.clone()).await;
                assert_eq!(r.status, StatusCode::OK, "{cookie}: {}", r.body);
                assert_eq!(r.json()["anonymousId"], id.as_str(), "{cookie}");
                assert!(r.cookie(ANT).is_none(), "{cookie}: nothing minted");
            }
        }
    }
    // Two genuine tokens of different visitors: which one is the visitor's cannot be told.
    // Refused (no identity, COOK-08), and never a new id on every request.
    let ambiguous = format!("{ANT}={ant}; {ANT}={other}");
    for _ in 0..2 {
        let r = whoami(ambiguous.clone()).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
        assert!(r.set_cookies().is_empty(), "{:?}", r.set_cookies());
        let r = send(
            &app,
            Method::POST,
            "/auth/session/refresh",
            &[COOKIE_MODE, ("rid", "session"), ("cookie", &ambiguous)],
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(r.set_cookies().is_empty(), "{:?}", r.set_cookies());
        assert!(handed_out_id(&r).is_none());
    }
    // The refresh route with a genuine copy beside junk: the guest keeps the session (A14).
    let r = send(
        &app,
        Method::POST,
        "/auth/session/refresh",
        &[
            COOKIE_MODE,
            ("rid", "session"),
            ("cookie", &format!("{ANT}=junk; {ANT}={ant}")),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(handed_out_id(&r).as_deref(), Some(id.as_str()));
    assert!(r.cookie(ANT).is_none());
}

macro_rules! both_modes {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                super::$name(super::Mode::Embedded).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn remote() {
                super::$name(super::Mode::Remote).await;
            }
        }
    )*};
}

both_modes!(
    sec2_h2_stolen_expired_or_revoked_access_token_alone_gets_a_fresh_anonymous_id,
    sec2_h2_unauthorised_on_a_database_checked_route_needs_proof_too,
    sec2_h2_a20_a21_the_refresh_token_proves_the_anonymous_id,
    sec2_h2_a_live_access_token_proves_the_id_when_the_refresh_token_does_not,
    sec2_l4_csrf11_a_cross_site_sign_out_mints_no_anonymous_token,
    sec2_l5_cook08_a_duplicated_anonymous_cookie_never_churns_the_identity,
);

// ---- Remote-core client: a real `tessera serve` on loopback ----

/// `tessera serve` on an ephemeral loopback port; dropping the sender stops it.
async fn serve(
    config: tessera_server::config::ServerConfig,
) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let store: Arc<dyn tessera::Store> = Arc::new(SqliteStore::in_memory().await.unwrap());
    let (addr, stop, _task) = tessera_testkit::in_process::listen(&config, store).await;
    (addr, stop)
}

// ---- SEC2-L6: tenant ids in the remote client's URL paths ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec2_l6_tenant_ids_never_address_another_app() {
    let (addr, _stop) = serve(tessera_server::config::ServerConfig::default()).await;
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let created = http
        .put(format!("{base}/recipe/multitenancy/app/v2"))
        .json(&json!({"appId": "y"}))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success());
    let core = RemoteCore::new(&base, None).unwrap();
    for tenant in [
        "appid-y",
        "recipe",
        "Public",
        "a/b",
        "../x",
        "",
        &"t".repeat(65),
    ] {
        let mut new = NewSession::for_user("u");
        new.tenant_id = tenant.to_owned();
        let r = core.create_session(new).await;
        assert!(
            matches!(r, Err(tessera::SessionError::InvalidInput(_))),
            "{tenant:?}: {r:?}"
        );
        assert!(core
            .revoke_all_sessions_for_user("u", Some(tenant))
            .await
            .is_err());
        assert!(core
            .session_handles_for_user("u", Some(tenant))
            .await
            .is_err());
        let mint = tessera::MintAnonymous {
            tenant_id: Some(tenant.to_owned()),
            ..Default::default()
        };
        assert!(core.mint_anonymous(mint).await.is_err(), "{tenant:?}");
    }
    // App y holds nothing.
    let listed: Value = http
        .get(format!("{base}/appid-y/recipe/session/user?userId=u"))
        .header("cdi-version", "5.4")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["sessionHandles"], json!([]), "{listed}");
    // A well-formed tenant still works.
    let mut new = NewSession::for_user("u");
    new.tenant_id = "tenant-1".into();
    assert!(core.create_session(new).await.is_ok());
}

// ---- SEC2-M3: TLS and plain http ----

#[test]
fn sec2_m3_plain_http_to_a_non_loopback_core_is_refused() {
    for url in [
        "http://core.example.com:3567",
        "http://10.0.0.5:3567",
        "http://192.168.1.2",
        "HTTP://core.example.com",
    ] {
        let e = RemoteCore::new(url, None).expect_err(url);
        assert!(e.to_string().contains("https"), "{url}: {e}");
    }
    for url in [
        "http://127.0.0.1:3567",
        "http://localhost:3567",
        "http://[::1]:3567",
        "https://core.example.com",
    ] {
        assert!(RemoteCore::new(url, None).is_ok(), "{url}");
    }
    for url in ["ftp://core.example.com", "core.example.com:3567", ""] {
        assert!(RemoteCore::new(url, None).is_err(), "{url}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec2_m3_the_remote_client_speaks_tls_to_a_core_behind_a_private_ca() {
    use tokio_rustls::rustls;
    // A test CA and a certificate for localhost, made now.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "tessera test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca, &ca_key)
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![server_cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    // `tessera serve` behind a TLS terminator on loopback.
    let (backend, _stop) = serve(tessera_server::config::ServerConfig::default()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut upstream = tokio::net::TcpStream::connect(backend).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
            });
        }
    });
    let url = format!("https://localhost:{port}");
    let core = RemoteCore::builder(&url)
        .add_root_certificate_pem(ca.pem())
        .build()
        .unwrap();
    let created = core
        .create_session(NewSession::for_user("u"))
        .await
        .unwrap();
    let verified = core
        .verify_session(
            &created.access_token.token,
            tessera::VerifyOptions::default(),
        )
        .await
        .expect("verified with the JWKS fetched over TLS");
    assert_eq!(verified.session.user_id, "u");
    // Without the CA the core's certificate is not trusted: nothing is sent.
    let untrusting = RemoteCore::new(&url, None).unwrap();
    let r = untrusting.create_session(NewSession::for_user("u")).await;
    assert!(matches!(r, Err(tessera::SessionError::Engine(_))), "{r:?}");
    // Plain http to the TLS port gets nowhere either.
    let plain = RemoteCore::new(&format!("http://localhost:{port}"), None).unwrap();
    assert!(plain
        .create_session(NewSession::for_user("u"))
        .await
        .is_err());
    // The opt-in by name for plain http to a non-loopback host, and a bad CA file.
    assert!(RemoteCore::builder("http://core.example.com:3567")
        .allow_insecure_http(true)
        .build()
        .is_ok());
    assert!(RemoteCore::builder(&url)
        .add_root_certificate_pem(b"not a certificate".to_vec())
        .build()
        .is_err());
}

// ---- SEC2-L7: JWKS outages ----

/// A loopback HTTP proxy in front of the core that counts JWKS fetches and can fail or hang.
mod proxy {
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, Method, StatusCode, Uri};
    use axum::response::{IntoResponse, Response};
    use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
    use std::sync::Arc;

    pub const FORWARD: u8 = 0;
    pub const FAIL: u8 = 1;
    pub const HANG: u8 = 2;

    #[derive(Default)]
    pub struct Proxy {
        pub mode: AtomicU8,
        pub jwks_fetches: AtomicUsize,
    }

    struct Ctx {
        proxy: Arc<Proxy>,
        backend: String,
        client: reqwest::Client,
    }

    async fn handle(
        State(ctx): State<Arc<Ctx>>,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        if uri.path().contains("jwks") {
            ctx.proxy.jwks_fetches.fetch_add(1, Ordering::SeqCst);
        }
        match ctx.proxy.mode.load(Ordering::SeqCst) {
            FAIL => return (StatusCode::SERVICE_UNAVAILABLE, "down").into_response(),
            HANG => std::future::pending::<()>().await,
            _ => {}
        }
        let url = format!("{}{}", ctx.backend, uri);
        let mut rb = ctx.client.request(method, url).body(body);
        for name in ["content-type", "cdi-version", "rid", "api-key"] {
            if let Some(v) = headers.get(name) {
                rb = rb.header(name, v.as_bytes());
            }
        }
        let r = rb.send().await.unwrap();
        let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
        (status, r.bytes().await.unwrap()).into_response()
    }

    pub async fn start(backend: String) -> (String, Arc<Proxy>) {
        let proxy = Arc::new(Proxy::default());
        let ctx = Arc::new(Ctx {
            proxy: Arc::clone(&proxy),
            backend,
            client: reqwest::Client::new(),
        });
        let app = axum::Router::new().fallback(handle).with_state(ctx);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), proxy)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec2_l7_rob12_a_failing_jwks_keeps_the_last_good_keys_with_a_cool_down() {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};
    let mut config = tessera_server::config::ServerConfig::default();
    // Long-lived access tokens, so the SDK's key set goes stale (past its refresh interval) while they still verify.
    config.app.session.access_token_validity_ms = 6 * 3_600_000;
    config.app.session.refresh_token_validity_ms = 12 * 3_600_000;
    let (addr, _stop) = serve(config).await;
    let (url, proxy) = proxy::start(format!("http://{addr}")).await;
    let clock = Arc::new(ManualClock::starting_now());
    let core = RemoteCore::new(&url, None)
        .unwrap()
        .with_clock(clock.clone());
    let at = core
        .create_session(NewSession::for_user("u"))
        .await
        .unwrap()
        .access_token
        .token;
    let verify = || core.verify_session(&at, tessera::VerifyOptions::default());
    verify().await.expect("keys fetched");
    let fetched = proxy.jwks_fetches.load(Ordering::SeqCst);
    assert!(fetched >= 1);

    // The core's JWKS fails; the SDK's key set is past its refresh interval.
    proxy.mode.store(proxy::FAIL, Ordering::SeqCst);
    clock.advance_ms(4 * 3_600_000 + 60_000);
    let attempts = || proxy.jwks_fetches.load(Ordering::SeqCst) - fetched;
    let settle = || async {
        // The refetch runs in the background: give it time to reach the proxy.
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    for round in 0..2 {
        for i in 0..20 {
            let r = verify().await;
            assert!(
                r.is_ok(),
                "round {round}, request {i}: the last good keys serve: {r:?}"
            );
        }
        settle().await;
        assert_eq!(
            attempts(),
            1,
            "one attempt per cool-down, not one per request"
        );
    }
    // After the cool-down, one more attempt.
    clock.advance_ms(11_000);
    for _ in 0..20 {
        verify().await.expect("the last good keys serve");
    }
    settle().await;
    assert_eq!(attempts(), 2);

    // A core that hangs: no request waits on the fetch.
    proxy.mode.store(proxy::HANG, Ordering::SeqCst);
    clock.advance_ms(10 * 60_000);
    let started = Instant::now();
    for _ in 0..5 {
        verify().await.expect("the last good keys serve");
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "waited {:?}",
        started.elapsed()
    );

    // Back up: the next attempt after the cool-down succeeds.
    proxy.mode.store(proxy::FORWARD, Ordering::SeqCst);
    clock.advance_ms(10 * 60_000);
    verify().await.unwrap();
}

// ---- SEC2-H1, the remote SDK: a key the core stops publishing stops verifying here too ----

/// `tessera serve` over `store` on `bind` (port 0: any); the handle ends when stopped.
async fn serve_store(
    config: tessera_server::config::ServerConfig,
    store: Arc<dyn tessera::Store>,
    bind: std::net::SocketAddr,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let state = tessera_server::server::build_state(&config, store)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = tessera_server::server::serve(listener, state, async move {
            let _ = rx.await;
        })
        .await;
    });
    (addr, tx, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec2_h1_a_replaced_static_key_stops_verifying_in_the_remote_sdk_within_a_minute() {
    use std::time::Duration;
    use tessera::{KeyKind, SigningKey};
    let operator_key = || {
        SigningKey::generate("s-x".into(), KeyKind::Static, 0, u64::MAX)
            .and_then(|k| k.to_stored())
            .unwrap()
    };
    let (key_a, key_b) = (operator_key(), operator_key());
    // A file, not `in_memory()`: the two servers share it, and a pooled connection that is
    // closed when the first one stops (a request cut mid-query) must reopen the same data, not
    // a new empty in-memory database.
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn tessera::Store> =
        Arc::new(SqliteStore::open(dir.path().join("core.db")).await.unwrap());
    let with_key = |key: &str| tessera_server::config::ServerConfig {
        static_signing_key: Some(key.to_owned()),
        ..Default::default()
    };
    let any_port: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let (addr, stop, task) = serve_store(with_key(&key_a), store.clone(), any_port).await;
    let clock = Arc::new(ManualClock::starting_now());
    let core = RemoteCore::new(&format!("http://{addr}"), None)
        .unwrap()
        .with_clock(clock.clone());
    let mut new = NewSession::for_user("u");
    new.use_static_key = true;
    let leaked = core.create_session(new).await.unwrap().access_token.token;
    let verify = || core.verify_session(&leaked, tessera::VerifyOptions::default());
    verify().await.expect("signed with the operator key A");

    // The operator replaces the leaked key A with B and restarts the core on the same address.
    drop(stop);
    task.await.unwrap();
    let (_, _stop, _task) = serve_store(with_key(&key_b), store.clone(), addr).await;

    // Past the SDK's key-set refresh interval (default one minute), the refetched set no longer
    // holds A: the token A signed is refused (the first request may still be served from the
    // held set while the refetch runs in the background).
    clock.advance_ms(61_000);
    let _ = verify().await;
    let mut refused = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if verify().await.is_err() {
            refused = true;
            break;
        }
    }
    assert!(
        refused,
        "a token signed with the replaced key A still verifies"
    );
}
