//! Anonymous sessions through the SDK: the implicit middleware, the extractors, sign-in and
//! sign-out, the unauthorised/theft hand-over, transport in cookies and headers, and the
//! switch. Every scenario runs on the engine in-process and on `tessera serve` over HTTP
//! (B5). Test names carry the requirement ids (anonymous-sessions.md, security-tests.md).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use http::{Method, StatusCode};
use serde_json::{json, Map, Value};
use std::sync::{Arc, Mutex};
use tessera::{ManualClock, Store};
use tessera_axum::{
    AntiCsrfMode, AnySession, Config, ConfigBuilder, Session, SessionRejection, SignIn, SigningIn,
    Tessera,
};
use tessera_testkit::sdk::{
    core, core_on, decode_front_token, send, App, Mode, Resp, ACCESS_TOKEN_VALIDITY_MS,
};
use tessera_testkit::{postgres_url, skip_postgres, Backend, Place};

const DAY_MS: u64 = 86_400_000;

/// What the sign-in hook saw: (user id, anonymousId of the guest, guest payload).
type Seen = Arc<Mutex<Vec<(String, Option<String>, Option<Map<String, Value>>)>>>;

struct Shop {
    app: App,
    seen: Seen,
}

/// Plain-http development: the anonymous cookie is not `__Host-`, so the app opts in by name
/// (SEC2-H2; the `__Host-` configuration is covered in `sec2.rs` and the csrf17 test).
fn local() -> ConfigBuilder {
    Config::builder("http://localhost:8080", "http://localhost:8080")
        .allow_plantable_anonymous_cookie(true)
}

fn routes(tessera: &Tessera) -> Router {
    async fn whoami(session: AnySession) -> Json<Value> {
        Json(json!({
            "anonymousId": session.anonymous_id(),
            "userId": session.user_id(),
            "isAnonymous": session.is_anonymous(),
        }))
    }
    async fn cart(session: AnySession) -> Json<Value> {
        Json(json!({"owner": session.anonymous_id()}))
    }
    async fn set_payload(session: AnySession) -> Result<String, SessionRejection> {
        match session {
            AnySession::Anonymous(mut guest) => {
                let mut payload = Map::new();
                payload.insert("visits".into(), json!(3));
                guest.set_payload(payload).await?;
                Ok("ok".into())
            }
            AnySession::Authenticated(_) => Ok("signed in".into()),
        }
    }
    async fn login(sign_in: SignIn) -> Result<String, SessionRejection> {
        let s = sign_in.create("alice", Map::new(), json!({})).await?;
        Ok(s.handle().to_owned())
    }
    async fn account(session: Session) -> String {
        session.user_id().to_owned()
    }
    async fn maybe(session: Option<Session>) -> String {
        session.map_or_else(|| "none".into(), |s| s.user_id().to_owned())
    }
    Router::new()
        .route("/whoami", get(whoami))
        .route("/cart", post(cart))
        .route("/payload", post(set_payload))
        .route("/login", post(login))
        .route("/account", get(account))
        .route("/maybe", get(maybe))
        .route("/health", get(|| async { "ok" }))
        .layer(tessera.layer())
}

async fn shop_on(mode: Mode, builder: ConfigBuilder, store: Option<Arc<dyn Store>>) -> Shop {
    let clock = Arc::new(ManualClock::starting_now());
    let (core, server) = match store {
        Some(store) => core_on(mode, clock.clone(), store).await,
        None => core(mode, clock.clone()).await,
    };
    let seen: Seen = Arc::default();
    let hook_seen = Arc::clone(&seen);
    let tessera = Tessera::new(builder.build().unwrap(), core.clone())
        .with_sign_in_hook(Arc::new(move |sign_in: SigningIn| {
            let seen = Arc::clone(&hook_seen);
            Box::pin(async move {
                let guest = sign_in.anonymous.as_ref();
                seen.lock().unwrap().push((
                    sign_in.user_id.clone(),
                    guest.map(|g| g.anonymous_id().to_owned()),
                    guest.map(|g| g.payload().clone()),
                ));
                Ok(())
            })
        }))
        .with_error_handler(Arc::new(|rejection: &SessionRejection| {
            // An app handler: the anonymous hand-over must already be in the response.
            let body = json!({"handled": rejection.to_string()});
            Some((StatusCode::UNAUTHORIZED, axum::Json(body)).into_response())
        }));
    let router = routes(&tessera);
    Shop {
        app: App {
            router,
            clock,
            core,
            _server: server,
        },
        seen,
    }
}

async fn shop(mode: Mode) -> Shop {
    shop_on(mode, local(), None).await
}

const COOKIE_MODE: (&str, &str) = ("st-auth-mode", "cookie");
const HEADER_MODE: (&str, &str) = ("st-auth-mode", "header");

/// First visit in cookie mode: returns the AnT and the anonymousId.
async fn first_visit(app: &App) -> (String, String, Resp) {
    first_visit_named(app, "sAnonymousToken").await
}

async fn first_visit_named(app: &App, cookie: &str) -> (String, String, Resp) {
    let r = send(app, Method::GET, "/whoami", &[COOKIE_MODE]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let ant = r.cookie_value(cookie).expect("an AnT cookie");
    let id = r.json()["anonymousId"].as_str().unwrap().to_owned();
    (ant, id, r)
}

fn ant_cookie(ant: &str) -> String {
    format!("sAnonymousToken={ant}")
}

async fn whoami(app: &App, headers: &[(&str, &str)]) -> Resp {
    send(app, Method::GET, "/whoami", headers).await
}

async fn a2_a11_a12_a17_anon15_first_request_gets_an_anonymous_session(mode: Mode) {
    let s = shop(mode).await;
    let (ant, id, r) = first_visit(&s.app).await;
    assert_eq!(r.json()["isAnonymous"], true);
    assert_eq!(r.json()["userId"], Value::Null);
    assert_eq!(id.len(), 22, "128 random bits, base64url");
    // ANON-15: HttpOnly, Path=/, explicit SameSite, an expiry within 400 days.
    let cookie = r.cookie("sAnonymousToken").unwrap();
    assert!(cookie.contains("; Path=/;"), "{cookie}");
    assert!(cookie.contains("; HttpOnly"), "{cookie}");
    assert!(cookie.ends_with("; SameSite=Lax"), "{cookie}");
    let expires = cookie
        .split("Expires=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    let expires = httpdate::parse_http_date(expires).unwrap();
    let days = expires
        .duration_since(std::time::SystemTime::now())
        .unwrap()
        .as_secs()
        / 86_400;
    assert!((360..=400).contains(&days), "{days} days");
    // A17: the front-token makes the browser SDK see a session, with anonymousId and no user.
    let ft = decode_front_token(r.header("front-token").unwrap());
    assert!(ft.get("uid").is_none(), "{ft}");
    assert_eq!(ft["up"]["anonymousId"], id.as_str());
    assert_eq!(ft["up"]["tokenType"], "anonymous");
    assert!(ft["up"].get("sub").is_none());
    assert!(ft["ate"].as_u64().unwrap() > ft["up"]["iat"].as_u64().unwrap() * 1000);
    assert!(r
        .header("access-control-expose-headers")
        .unwrap()
        .contains("front-token"));
    assert!(ant.len() < 4096);
    // The AnT is never the access-token cookie.
    assert!(r.cookie("sAccessToken").is_none());
}

async fn a7_a13_an_existing_anonymous_session_is_verified_and_left_alone(mode: Mode) {
    let s = shop(mode).await;
    let (ant, id, _) = first_visit(&s.app).await;
    for _ in 0..3 {
        let r = whoami(&s.app, &[COOKIE_MODE, ("cookie", &ant_cookie(&ant))]).await;
        assert_eq!(r.json()["anonymousId"], id.as_str());
        assert!(r.set_cookies().is_empty(), "{:?}", r.set_cookies());
        assert!(r.header("front-token").is_none());
    }
    // A route with no extractor still passes through the middleware.
    let r = send(
        &s.app,
        Method::GET,
        "/health",
        &[("cookie", &ant_cookie(&ant))],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.set_cookies().is_empty());
}

async fn a10_a16_anon01_03_bad_or_foreign_tokens_are_replaced_never_authenticated(mode: Mode) {
    let s = shop(mode).await;
    let (ant, id, _) = first_visit(&s.app).await;
    // Tampered (one payload character), garbage, truncated: a fresh identity each time (A10).
    let dot = ant.find('.').unwrap();
    let mut tampered = ant.clone().into_bytes();
    tampered[dot + 5] = if tampered[dot + 5] == b'A' {
        b'B'
    } else {
        b'A'
    };
    let tampered = String::from_utf8(tampered).unwrap();
    for bad in [tampered.as_str(), "garbage", &ant[..ant.len() - 3], ""] {
        let r = whoami(&s.app, &[COOKIE_MODE, ("cookie", &ant_cookie(bad))]).await;
        assert_eq!(r.status, StatusCode::OK, "never an error response (A10)");
        let new_id = r.json()["anonymousId"].as_str().unwrap().to_owned();
        assert_ne!(new_id, id, "{bad:?} must not keep an unverifiable identity");
        assert!(r.cookie_value("sAnonymousToken").is_some());
    }
    // ANON-03: a genuine access token in the anonymous cookie is not an anonymous session.
    let login = send(&s.app, Method::POST, "/login", &[COOKIE_MODE]).await;
    let at = login.cookie_value("sAccessToken").unwrap();
    let r = whoami(&s.app, &[COOKIE_MODE, ("cookie", &ant_cookie(&at))]).await;
    assert_eq!(r.json()["isAnonymous"], true);
    assert_eq!(r.json()["userId"], Value::Null);
    // ANON-01: the AnT as an access token, in the cookie and as a bearer: never signed in.
    let as_at = format!("sAccessToken={ant}");
    let r = send(
        &s.app,
        Method::GET,
        "/account",
        &[COOKIE_MODE, ("cookie", &as_at)],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let bearer = format!("Bearer {ant}");
    let r = send(
        &s.app,
        Method::GET,
        "/account",
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = send(&s.app, Method::GET, "/maybe", &[("authorization", &bearer)]).await;
    assert_eq!(r.body, "none");
    // ... and at refresh, as a refresh token: nothing is refreshed.
    let as_rt = format!("sRefreshToken={ant}");
    let r = send(
        &s.app,
        Method::POST,
        "/auth/session/refresh",
        &[COOKIE_MODE, ("cookie", &as_rt)],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.cookie_value("sAccessToken").is_none_or(|v| v.is_empty()));
}

async fn anon04_with_both_tokens_identity_comes_from_the_access_token(mode: Mode) {
    let s = shop(mode).await;
    let (_, guest_id, _) = first_visit(&s.app).await;
    let (other_ant, other_id, _) = first_visit(&s.app).await;
    let login = send(
        &s.app,
        Method::POST,
        "/login",
        &[
            COOKIE_MODE,
            ("cookie", &ant_cookie(&first_visit(&s.app).await.0)),
        ],
    )
    .await;
    let at = login.cookie_value("sAccessToken").unwrap();
    let both = format!("sAccessToken={at}; sAnonymousToken={other_ant}");
    let r = whoami(&s.app, &[COOKIE_MODE, ("cookie", &both)]).await;
    assert_eq!(r.json()["userId"], "alice");
    assert_eq!(r.json()["isAnonymous"], false);
    assert_ne!(
        r.json()["anonymousId"],
        other_id.as_str(),
        "the AnT never overrides"
    );
    assert_ne!(r.json()["anonymousId"], guest_id.as_str());
}

async fn a14_anon05_required_routes_refuse_guests_optional_ones_see_them(mode: Mode) {
    let s = shop(mode).await;
    let (ant, id, _) = first_visit(&s.app).await;
    let c = ant_cookie(&ant);
    let r = send(
        &s.app,
        Method::GET,
        "/account",
        &[COOKIE_MODE, ("cookie", &c)],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // No clearing: the guest keeps the anonymous session.
    assert!(r.set_cookies().is_empty(), "{:?}", r.set_cookies());
    assert_ne!(r.header("front-token"), Some("remove"));
    let r = send(
        &s.app,
        Method::GET,
        "/maybe",
        &[COOKIE_MODE, ("cookie", &c)],
    )
    .await;
    assert_eq!(r.body, "none", "Option<Session> is signed-in only");
    let r = whoami(&s.app, &[COOKIE_MODE, ("cookie", &c)]).await;
    assert_eq!(
        r.json()["anonymousId"],
        id.as_str(),
        "AnySession sees the guest"
    );
    // The browser SDK then calls refresh: 401 with the same anonymous front-token, so it
    // hands the app the 401 after one refresh call and keeps the session (no loop).
    let r = send(
        &s.app,
        Method::POST,
        "/auth/session/refresh",
        &[COOKIE_MODE, ("cookie", &c)],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let ft = decode_front_token(r.header("front-token").unwrap());
    assert_eq!(ft["up"]["anonymousId"], id.as_str());
    assert!(
        r.cookie("sAnonymousToken").is_none(),
        "the cookie is kept as it is"
    );
}

async fn a2_refresh_without_any_token_starts_an_anonymous_session(mode: Mode) {
    let s = shop(mode).await;
    let r = send(
        &s.app,
        Method::POST,
        "/auth/session/refresh",
        &[COOKIE_MODE, ("rid", "session")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.cookie_value("sAnonymousToken").is_some());
    let ft = decode_front_token(r.header("front-token").unwrap());
    assert_eq!(ft["up"]["tokenType"], "anonymous");
}

async fn a3_a6_a8_a15_b3_sign_in_carries_the_anonymous_id_and_clears_the_ant(mode: Mode) {
    let s = shop(mode).await;
    let (ant, id, _) = first_visit(&s.app).await;
    let r = send(
        &s.app,
        Method::POST,
        "/payload",
        &[COOKIE_MODE, ("cookie", &ant_cookie(&ant))],
    )
    .await;
    assert_eq!(r.body, "ok");
    let ant = r.cookie_value("sAnonymousToken").unwrap();
    let r = send(
        &s.app,
        Method::POST,
        "/login",
        &[COOKIE_MODE, ("cookie", &ant_cookie(&ant))],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // A15: the AnT is cleared in the same response …
    let cleared = r.cookie("sAnonymousToken").unwrap();
    assert!(
        cleared.starts_with("sAnonymousToken=; Path=/; Expires=Thu, 01 Jan 1970"),
        "{cleared}"
    );
    // … and the access token carries the anonymousId as a protected claim (A8).
    let ft = decode_front_token(r.header("front-token").unwrap());
    assert_eq!(ft["uid"], "alice");
    assert_eq!(ft["up"]["anonymousId"], id.as_str());
    let at = r.cookie_value("sAccessToken").unwrap();
    let me = whoami(
        &s.app,
        &[COOKIE_MODE, ("cookie", &format!("sAccessToken={at}"))],
    )
    .await;
    assert_eq!(me.json()["anonymousId"], id.as_str());
    assert_eq!(me.json()["userId"], "alice");
    // B3, A3: the hook saw the guest with its payload, before the session existed.
    let seen = s.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, "alice");
    assert_eq!(seen[0].1.as_deref(), Some(id.as_str()));
    assert_eq!(seen[0].2.as_ref().unwrap()["visits"], 3);
}

async fn sign_in_then_sign_out(s: &Shop, ant: &str) -> (String, Resp) {
    let login = send(
        &s.app,
        Method::POST,
        "/login",
        &[COOKIE_MODE, ("cookie", &ant_cookie(ant))],
    )
    .await;
    let at = login.cookie_value("sAccessToken").unwrap();
    let rt = login.cookie_value("sRefreshToken").unwrap();
    let cookies = format!("sAccessToken={at}; sRefreshToken={rt}");
    let out = send(
        &s.app,
        Method::POST,
        "/auth/signout",
        &[COOKIE_MODE, ("cookie", &cookies)],
    )
    .await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.body);
    (at, out)
}

async fn a5_a6_sign_out_leaves_a_guest_with_the_same_anonymous_id(mode: Mode) {
    let s = shop(mode).await;
    let (mut ant, id, _) = first_visit(&s.app).await;
    for round in 0..2 {
        let (at, out) = sign_in_then_sign_out(&s, &ant).await;
        assert!(out
            .cookie("sAccessToken")
            .unwrap()
            .contains("Expires=Thu, 01 Jan 1970"));
        let ft = decode_front_token(out.header("front-token").unwrap());
        assert_eq!(ft["up"]["anonymousId"], id.as_str(), "round {round}");
        ant = out.cookie_value("sAnonymousToken").unwrap();
        let me = whoami(&s.app, &[COOKIE_MODE, ("cookie", &ant_cookie(&ant))]).await;
        assert_eq!(me.json()["anonymousId"], id.as_str());
        assert_eq!(me.json()["isAnonymous"], true);
        // The signed-out access token no longer signs anyone in once the DB is checked;
        // locally it may still verify until it expires (documented window).
        let _ = at;
    }
}

async fn b1_rotating_on_sign_out_starts_a_new_anonymous_id(mode: Mode) {
    let s = shop_on(mode, local().rotate_anonymous_id_on_sign_out(true), None).await;
    let (ant, id, _) = first_visit(&s.app).await;
    let (_, out) = sign_in_then_sign_out(&s, &ant).await;
    let ft = decode_front_token(out.header("front-token").unwrap());
    assert_ne!(ft["up"]["anonymousId"], id.as_str());
    assert_eq!(ft["up"]["tokenType"], "anonymous");
}

async fn a20_a21_unauthorised_leaves_an_anonymous_session_before_the_handler(mode: Mode) {
    let s = shop_on(mode, local().check_database(true), None).await;
    let (ant, id, _) = first_visit(&s.app).await;
    let login = send(
        &s.app,
        Method::POST,
        "/login",
        &[COOKIE_MODE, ("cookie", &ant_cookie(&ant))],
    )
    .await;
    let handle = login.body.clone();
    let at = login.cookie_value("sAccessToken").unwrap();
    assert!(s.app.core.revoke_session(&handle).await.unwrap());
    let r = send(
        &s.app,
        Method::GET,
        "/account",
        &[COOKIE_MODE, ("cookie", &format!("sAccessToken={at}"))],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json()["handled"],
        "unauthorised",
        "the app's handler answered"
    );
    assert!(r
        .cookie("sAccessToken")
        .unwrap()
        .contains("Expires=Thu, 01 Jan 1970"));
    let new_ant = r
        .cookie_value("sAnonymousToken")
        .expect("A21: an AnT in the same response");
    let ft = decode_front_token(r.header("front-token").unwrap());
    let new_id = ft["up"]["anonymousId"].as_str().unwrap().to_owned();
    assert_ne!(
        new_id, id,
        "SEC2-H2: a revoked access token alone proves no anonymousId (the refresh token does: \
         sec2_h2_a20_a21_the_refresh_token_proves_the_anonymous_id)"
    );
    let me = whoami(&s.app, &[COOKIE_MODE, ("cookie", &ant_cookie(&new_ant))]).await;
    assert_eq!(me.json()["anonymousId"], new_id.as_str());
}

async fn a21_a23_refresh_failure_and_theft_leave_an_anonymous_session(mode: Mode) {
    let s = shop(mode).await;
    let (ant, id, _) = first_visit(&s.app).await;
    let login = send(
        &s.app,
        Method::POST,
        "/login",
        &[COOKIE_MODE, ("cookie", &ant_cookie(&ant))],
    )
    .await;
    let at1 = login.cookie_value("sAccessToken").unwrap();
    let rt1 = login.cookie_value("sRefreshToken").unwrap();
    let refresh = |at: String, rt: String| {
        let app = &s.app;
        async move {
            let cookies = format!("sAccessToken={at}; sRefreshToken={rt}");
            send(
                app,
                Method::POST,
                "/auth/session/refresh",
                &[COOKIE_MODE, ("cookie", &cookies)],
            )
            .await
        }
    };
    let r2 = refresh(at1.clone(), rt1.clone()).await;
    assert_eq!(r2.status, StatusCode::OK);
    let (at2, rt2) = (
        r2.cookie_value("sAccessToken").unwrap(),
        r2.cookie_value("sRefreshToken").unwrap(),
    );
    let r3 = refresh(at2.clone(), rt2).await;
    assert_eq!(
        r3.status,
        StatusCode::OK,
        "the child is used: promoted and rotated"
    );
    // Replaying the first refresh token now is theft (strict, grace 0 in this harness).
    let theft = refresh(at2, rt1).await;
    assert_eq!(theft.status, StatusCode::UNAUTHORIZED);
    assert_eq!(theft.json()["handled"], "token theft detected");
    assert!(theft
        .cookie("sRefreshToken")
        .unwrap()
        .contains("Expires=Thu, 01 Jan 1970"));
    let ft = decode_front_token(theft.header("front-token").unwrap());
    assert_eq!(ft["up"]["anonymousId"], id.as_str(), "A23");
    assert!(theft.cookie_value("sAnonymousToken").is_some());
    // A refresh token that is simply invalid, beside the access token of the session theft
    // just revoked: unauthorised and a new anonymous session (A21), but neither token proves
    // the id any more (SEC2-H2).
    let bad = refresh(at1, "junk".into()).await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    let ft = decode_front_token(bad.header("front-token").unwrap());
    assert_eq!(ft["up"]["tokenType"], "anonymous", "A21");
    assert_ne!(ft["up"]["anonymousId"], id.as_str(), "SEC2-H2");
}

async fn a22_an_expired_access_token_refreshes_as_usual(mode: Mode) {
    if let Mode::Remote = mode {
        // The remote core judges expiry by its own clock, which this test cannot move.
        return;
    }
    let s = shop(mode).await;
    let login = send(&s.app, Method::POST, "/login", &[COOKIE_MODE]).await;
    let at = login.cookie_value("sAccessToken").unwrap();
    s.app.clock.advance_ms(ACCESS_TOKEN_VALIDITY_MS + 1_000);
    let r = whoami(
        &s.app,
        &[COOKIE_MODE, ("cookie", &format!("sAccessToken={at}"))],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["handled"], "try refresh token");
    assert!(
        r.set_cookies().is_empty(),
        "nothing anonymous happens: {:?}",
        r.set_cookies()
    );
    assert!(r.header("front-token").is_none());
}

async fn a4_a18_switched_off_an_incoming_ant_is_cleared(mode: Mode) {
    let on = shop(mode).await;
    let (ant, _, _) = first_visit(&on.app).await;
    let off = shop_on(mode, local().anonymous_sessions(false), None).await;
    let r = whoami(&off.app, &[COOKIE_MODE]).await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "off: no session for a visitor"
    );
    assert!(r.set_cookies().is_empty(), "nothing minted");
    let r = whoami(&off.app, &[COOKIE_MODE, ("cookie", &ant_cookie(&ant))]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let cleared = r.cookie("sAnonymousToken").expect("A18: cleared");
    assert!(cleared.contains("Expires=Thu, 01 Jan 1970"), "{cleared}");
    assert!(
        Config::builder("http://localhost:1", "http://localhost:1")
            .secure(true)
            .build()
            .unwrap()
            .anonymous_sessions(),
        "A4: on by default"
    );
}

async fn b2_excluded_paths_mint_nothing(mode: Mode) {
    let s = shop_on(mode, local().anonymous_exclude_path_prefix("/health"), None).await;
    let r = send(&s.app, Method::GET, "/health", &[COOKIE_MODE]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.set_cookies().is_empty(), "cacheable: no Set-Cookie");
    assert!(r.header("front-token").is_none());
    let (ant, _, _) = first_visit(&s.app).await;
    let r = send(
        &s.app,
        Method::GET,
        "/health",
        &[("cookie", &ant_cookie(&ant))],
    )
    .await;
    assert!(r.set_cookies().is_empty());
}

async fn b4_a16_header_mode_carries_the_ant_in_both_slots(mode: Mode) {
    let s = shop(mode).await;
    let r = whoami(&s.app, &[HEADER_MODE]).await;
    let id = r.json()["anonymousId"].as_str().unwrap().to_owned();
    let ant = r.header("st-access-token").unwrap().to_owned();
    assert_eq!(r.header("st-refresh-token"), Some(ant.as_str()));
    assert!(
        r.cookie("sAnonymousToken").is_none(),
        "no cookie in header mode"
    );
    let expose = r.header("access-control-expose-headers").unwrap();
    assert!(expose.contains("st-access-token") && expose.contains("st-refresh-token"));
    let bearer = format!("Bearer {ant}");
    let me = whoami(&s.app, &[HEADER_MODE, ("authorization", &bearer)]).await;
    assert_eq!(me.json()["anonymousId"], id.as_str());
    assert!(me.header("st-access-token").is_none());
    // Refresh with the AnT in the refresh slot: 401, the same session kept.
    let r = send(
        &s.app,
        Method::POST,
        "/auth/session/refresh",
        &[HEADER_MODE, ("authorization", &bearer)],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let ft = decode_front_token(r.header("front-token").unwrap());
    assert_eq!(ft["up"]["anonymousId"], id.as_str());
    // Sign-in replaces both slots with the signed-in tokens, carrying the anonymousId.
    let login = send(
        &s.app,
        Method::POST,
        "/login",
        &[HEADER_MODE, ("authorization", &bearer)],
    )
    .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let at = login.header("st-access-token").unwrap().to_owned();
    assert_ne!(at, ant);
    let ft = decode_front_token(login.header("front-token").unwrap());
    assert_eq!(ft["up"]["anonymousId"], id.as_str());
    let rt = login.header("st-refresh-token").unwrap().to_owned();
    // Sign-out: both slots hold a new AnT with the same id.
    let out = send(
        &s.app,
        Method::POST,
        "/auth/signout",
        &[HEADER_MODE, ("authorization", &format!("Bearer {at}"))],
    )
    .await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.body);
    let new_ant = out.header("st-access-token").unwrap();
    assert_eq!(out.header("st-refresh-token"), Some(new_ant));
    let ft = decode_front_token(out.header("front-token").unwrap());
    assert_eq!(ft["up"]["anonymousId"], id.as_str());
    let _ = rt;
}

async fn csrf17_state_changing_anonymous_routes_need_the_anti_csrf_proof(mode: Mode) {
    // Cross-site API: SameSite=None, VIA_CUSTOM_HEADER.
    let s = shop_on(
        mode,
        Config::builder("https://api.example.com", "https://app.other.com"),
        None,
    )
    .await;
    let (ant, id, r) = first_visit_named(&s.app, "__Host-sAnonymousToken").await;
    let cookie = r.cookie("__Host-sAnonymousToken").unwrap();
    assert!(
        cookie.contains("; Secure; SameSite=None"),
        "Secure + host-only → __Host-: {cookie}"
    );
    let c = format!("__Host-sAnonymousToken={ant}");
    let r = send(
        &s.app,
        Method::POST,
        "/cart",
        &[COOKIE_MODE, ("cookie", &c)],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "no rid: refused");
    assert!(
        r.set_cookies().is_empty(),
        "and the visitor's identity is not reset"
    );
    let r = send(
        &s.app,
        Method::POST,
        "/cart",
        &[COOKIE_MODE, ("cookie", &c), ("rid", "anti-csrf")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["owner"], id.as_str());
    let r = send(&s.app, Method::GET, "/whoami", &[("cookie", &c)]).await;
    assert_eq!(r.status, StatusCode::OK, "GET is exempt");

    // VIA_TOKEN: the AnT carries an anti-CSRF token the request must echo.
    let s = shop_on(mode, local().anti_csrf(AntiCsrfMode::ViaToken), None).await;
    let (ant, _, r) = first_visit(&s.app).await;
    let csrf = r.header("anti-csrf").expect("anti-csrf header").to_owned();
    let c = ant_cookie(&ant);
    for (given, ok) in [
        (None, false),
        (Some("wrong"), false),
        (Some(csrf.as_str()), true),
    ] {
        let mut headers = vec![COOKIE_MODE, ("cookie", c.as_str())];
        if let Some(g) = given {
            headers.push(("anti-csrf", g));
        }
        let r = send(&s.app, Method::POST, "/cart", &headers).await;
        assert_eq!(r.status == StatusCode::OK, ok, "{given:?}: {}", r.body);
    }
}

async fn csrf11_csrf17_cross_site_posts_never_replace_the_visitors_session(mode: Mode) {
    let s = shop(mode).await;
    // A cross-site form POST: no Lax cookie, no `rid`, `Sec-Fetch-Site: cross-site`. Minting
    // here would overwrite the victim's anonymous cookie with a fresh identity.
    let forged = [
        COOKIE_MODE,
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-mode", "navigate"),
    ];
    let r = send(&s.app, Method::POST, "/cart", &forged).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.set_cookies().is_empty(), "{:?}", r.set_cookies());
    let r = send(&s.app, Method::POST, "/auth/session/refresh", &forged).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.set_cookies().is_empty(), "{:?}", r.set_cookies());
    assert!(r.header("front-token").is_none());
    // The front end's own POST (the SDK adds `rid`) and a same-origin one do get a session.
    let r = send(
        &s.app,
        Method::POST,
        "/cart",
        &[COOKIE_MODE, ("rid", "anti-csrf")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.cookie_value("sAnonymousToken").is_some());
    let r = send(
        &s.app,
        Method::POST,
        "/cart",
        &[COOKIE_MODE, ("sec-fetch-site", "same-origin")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    // A page navigation without `st-auth-mode` (transfer `Any`): where the page keeps tokens
    // is unknown, so nothing is minted; the page's first API call does it.
    let r = send(
        &s.app,
        Method::GET,
        "/health",
        &[("sec-fetch-mode", "navigate")],
    )
    .await;
    assert!(r.set_cookies().is_empty() && r.header("st-access-token").is_none());
    // A native client (no Sec-Fetch-*) gets headers (B4).
    let r = send(&s.app, Method::GET, "/whoami", &[]).await;
    assert!(r.header("st-access-token").is_some());
}

async fn renewal_and_payload_updates_keep_the_anonymous_id(mode: Mode) {
    let s = shop(mode).await;
    let (ant, id, _) = first_visit(&s.app).await;
    let r = send(
        &s.app,
        Method::POST,
        "/payload",
        &[COOKIE_MODE, ("cookie", &ant_cookie(&ant))],
    )
    .await;
    let with_payload = r.cookie_value("sAnonymousToken").unwrap();
    let ft = decode_front_token(r.header("front-token").unwrap());
    assert_eq!(ft["up"]["visits"], 3);
    assert_eq!(ft["up"]["anonymousId"], id.as_str());
    if let Mode::Embedded = mode {
        // Past half its lifetime the token is re-signed with the same id and payload.
        s.app.clock.advance_ms(200 * DAY_MS);
        let r = whoami(
            &s.app,
            &[COOKIE_MODE, ("cookie", &ant_cookie(&with_payload))],
        )
        .await;
        let renewed = r.cookie_value("sAnonymousToken").expect("renewed");
        assert_ne!(renewed, with_payload);
        assert_eq!(r.json()["anonymousId"], id.as_str());
        let ft = decode_front_token(r.header("front-token").unwrap());
        assert_eq!(ft["up"]["visits"], 3);
        // Past its expiry: a new session, but the genuine token's id is kept (A20).
        s.app.clock.advance_ms(200 * DAY_MS);
        let r = whoami(
            &s.app,
            &[COOKIE_MODE, ("cookie", &ant_cookie(&with_payload))],
        )
        .await;
        assert!(r.cookie_value("sAnonymousToken").is_some());
        assert_eq!(r.json()["anonymousId"], id.as_str());
        let ft = decode_front_token(r.header("front-token").unwrap());
        assert!(
            ft["up"].get("visits").is_none(),
            "A20: the old payload is dropped"
        );
    }
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
    a2_a11_a12_a17_anon15_first_request_gets_an_anonymous_session,
    a7_a13_an_existing_anonymous_session_is_verified_and_left_alone,
    a10_a16_anon01_03_bad_or_foreign_tokens_are_replaced_never_authenticated,
    anon04_with_both_tokens_identity_comes_from_the_access_token,
    a14_anon05_required_routes_refuse_guests_optional_ones_see_them,
    a2_refresh_without_any_token_starts_an_anonymous_session,
    a3_a6_a8_a15_b3_sign_in_carries_the_anonymous_id_and_clears_the_ant,
    a5_a6_sign_out_leaves_a_guest_with_the_same_anonymous_id,
    b1_rotating_on_sign_out_starts_a_new_anonymous_id,
    a20_a21_unauthorised_leaves_an_anonymous_session_before_the_handler,
    a21_a23_refresh_failure_and_theft_leave_an_anonymous_session,
    a22_an_expired_access_token_refreshes_as_usual,
    a4_a18_switched_off_an_incoming_ant_is_cleared,
    b2_excluded_paths_mint_nothing,
    b4_a16_header_mode_carries_the_ant_in_both_slots,
    csrf17_state_changing_anonymous_routes_need_the_anti_csrf_proof,
    renewal_and_payload_updates_keep_the_anonymous_id,
    csrf11_csrf17_cross_site_posts_never_replace_the_visitors_session,
);

// ---- A1: no row, no write ----

/// Every table's row count plus, for SQLite, the bytes of the database files.
async fn store_fingerprint(kind: &Place) -> String {
    match kind {
        Place::Sqlite(path) => {
            let mut out = String::new();
            for suffix in ["", "-wal"] {
                let file = format!("{}{suffix}", path.display());
                let bytes = std::fs::read(&file).unwrap_or_default();
                out.push_str(&format!(
                    "{file}:{}:{};",
                    bytes.len(),
                    tessera::fuzzing::sha256_hex(&String::from_utf8_lossy(&bytes))
                ));
            }
            out
        }
        Place::Postgres { schema } => {
            let pool = sqlx::PgPool::connect(&postgres_url()).await.unwrap();
            let mut out = String::new();
            for table in [
                "session_info",
                "key_value",
                "session_access_token_signing_keys",
                "jwt_signing_keys",
                "tessera_app_config",
            ] {
                // Row count and a digest of every row version: `xmin` changes on any write to a
                // row, even one that stores the same values.
                let (n, digest): (i64, Option<String>) = sqlx::query_as(&format!(
                    "SELECT count(*), md5(string_agg(t.xmin::text || ':' || t::text, ',' \
                     ORDER BY t::text)) FROM \"{schema}\".{table} t"
                ))
                .fetch_one(&pool)
                .await
                .unwrap();
                out.push_str(&format!("{table}:{n}:{};", digest.unwrap_or_default()));
            }
            out
        }
    }
}

async fn a1_ten_thousand_anonymous_requests_write_nothing(kind: Place, mode: Mode) {
    let store: Arc<dyn Store> = kind.open().await;
    let s = shop_on(mode, local(), Some(Arc::clone(&store))).await;
    // Warm up: the keys exist (created at start-up, once per app, not per visitor).
    let (ant, _, _) = first_visit(&s.app).await;
    let before = store_fingerprint(&kind).await;
    let sessions_before = store.count_sessions("public").await.unwrap();
    let c = ant_cookie(&ant);
    let mut minted = 0;
    for i in 0..10_000u32 {
        let r = match i % 4 {
            0 => whoami(&s.app, &[COOKIE_MODE]).await, // first visit
            1 => whoami(&s.app, &[COOKIE_MODE, ("cookie", &c)]).await, // returning guest
            2 => whoami(&s.app, &[COOKIE_MODE, ("cookie", "sAnonymousToken=x.y.z")]).await,
            _ => {
                send(
                    &s.app,
                    Method::POST,
                    "/cart",
                    &[COOKIE_MODE, ("cookie", &c)],
                )
                .await
            }
        };
        assert_eq!(r.status, StatusCode::OK, "request {i}: {}", r.body);
        minted += usize::from(r.cookie_value("sAnonymousToken").is_some());
    }
    assert_eq!(
        minted, 5_000,
        "first visits and garbage tokens got new sessions"
    );
    assert_eq!(
        store.count_sessions("public").await.unwrap(),
        sessions_before
    );
    assert_eq!(sessions_before, 0);
    assert_eq!(
        store_fingerprint(&kind).await,
        before,
        "not one byte or tuple written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a1_zero_rows_zero_writes_sqlite_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a1.db");
    a1_ten_thousand_anonymous_requests_write_nothing(Place::Sqlite(path), Mode::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a1_b5_zero_rows_zero_writes_sqlite_remote_core() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a1-remote.db");
    a1_ten_thousand_anonymous_requests_write_nothing(Place::Sqlite(path), Mode::Remote).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a1_zero_rows_zero_writes_postgres_embedded() {
    if skip_postgres() {
        eprintln!("skipping PostgreSQL (TESSERA_SKIP_POSTGRES=1)");
        return;
    }
    a1_ten_thousand_anonymous_requests_write_nothing(
        Place::fresh(Backend::Postgres),
        Mode::Embedded,
    )
    .await;
}
