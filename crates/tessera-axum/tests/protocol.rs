//! The front-end protocol, row by row (browser-protocol.md §1–§7, §12): cookies and headers
//! written, statuses and bodies, clearing, anti-CSRF, transfer-method tables. Each test drives
//! a real axum app with the layer over a real engine (SQLite).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use axum::body::Body;
use axum::routing::{get, post};
use axum::Router;
use http::{Method, Request, StatusCode};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use tessera::ManualClock;
use tessera_axum::{
    AntiCsrfMode, ClaimValidator, Config, ConfigBuilder, Session, SessionRejection, SignIn,
    Tessera, TokenTransfer,
};
use tower::ServiceExt;

use tessera_testkit::sdk::{core, decode_front_token, send, App, Mode, Resp};

async fn app_with(
    mode: Mode,
    builder: ConfigBuilder,
    validators: Vec<Arc<dyn ClaimValidator>>,
) -> App {
    let clock = Arc::new(ManualClock::starting_now());
    let (core, server) = core(mode, clock.clone()).await;
    // The SuperTokens protocol as it is, without anonymous sessions (tests/anonymous.rs has
    // those): a visitor with no session gets no token here.
    let config = builder.anonymous_sessions(false).build().unwrap();
    let mut tessera = Tessera::new(config, core.clone());
    for v in validators {
        tessera = tessera.with_claim_validator(v);
    }
    async fn login(sign_in: SignIn) -> Result<String, SessionRejection> {
        let mut payload = Map::new();
        payload.insert("custom".into(), json!("v"));
        let s = sign_in.create("user-1", payload, json!({"d": 1})).await?;
        Ok(s.handle().to_owned())
    }
    async fn me(session: Session) -> String {
        session.user_id().to_owned()
    }
    async fn maybe(session: Option<Session>) -> String {
        session
            .map(|s| s.user_id().to_owned())
            .unwrap_or_else(|| "none".into())
    }
    /// Answers with the payload a clone of the session sees after the merge, and in
    /// `x-other-kept` whether a second session extracted from the same request kept its token.
    async fn merge(
        session: Session,
        other: Option<Session>,
    ) -> Result<([(&'static str, String); 1], String), SessionRejection> {
        let copy = session.clone();
        let before = session.access_token();
        let mut update = Map::new();
        update.insert("role".into(), json!("admin"));
        update.insert("custom".into(), Value::Null);
        session.merge_into_access_token_payload(update).await?;
        let other_kept = other.is_some_and(|o| o.access_token() == before);
        let replaced = copy.access_token() != before;
        Ok((
            [("x-other-kept", (other_kept && replaced).to_string())],
            Value::Object(copy.access_token_payload()).to_string(),
        ))
    }
    let routes = Router::new()
        .route("/login", post(login))
        .route("/me", get(me).post(me))
        .route("/maybe", get(maybe))
        .route("/merge", post(merge));
    // The layer on each route, or (the `wrapped` runs) once around the whole router; the
    // outer router only hands every request to the wrapped one.
    let router = if WRAPPED.try_with(|w| *w).unwrap_or(false) {
        Router::new().fallback_service(tessera.wrap(routes))
    } else {
        routes.layer(tessera.layer())
    };
    App {
        router,
        clock,
        core,
        _server: server,
    }
}

async fn app(mode: Mode, builder: ConfigBuilder) -> App {
    app_with(mode, builder, vec![]).await
}

fn local() -> ConfigBuilder {
    Config::builder("http://localhost:8080", "http://localhost:8080")
        .allow_plantable_anonymous_cookie(true)
}

fn assert_fully_cleared(r: &Resp) {
    let at = r.cookie("sAccessToken").expect("sAccessToken cleared");
    assert!(
        at.starts_with("sAccessToken=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly"),
        "{at}"
    );
    let rt = r.cookie("sRefreshToken").expect("sRefreshToken cleared");
    assert!(
        rt.starts_with(
            "sRefreshToken=; Path=/auth/session/refresh; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
        ),
        "{rt}"
    );
    assert_eq!(r.header("front-token"), Some("remove"));
    assert_eq!(r.header("st-access-token"), Some(""));
    assert_eq!(r.header("st-refresh-token"), Some(""));
    let aceh = r.header("access-control-expose-headers").unwrap();
    for h in ["front-token", "st-access-token", "st-refresh-token"] {
        assert!(aceh.contains(h), "{aceh}");
    }
}

fn assert_nothing_cleared(r: &Resp) {
    assert!(r.set_cookies().is_empty(), "{:?}", r.set_cookies());
    assert!(r.header("front-token").is_none());
}

/// Signs in with cookies; returns (access token, refresh token).
async fn login_cookie(app: &App) -> (String, String, Resp) {
    let r = send(app, Method::POST, "/login", &[("st-auth-mode", "cookie")]).await;
    assert_eq!(r.status, StatusCode::OK);
    let at = r.cookie_value("sAccessToken").unwrap();
    let rt = tessera_axum::transfer::percent_decode(&r.cookie_value("sRefreshToken").unwrap());
    (at, rt, r)
}

async fn login_header(app: &App) -> (String, String, Resp) {
    let r = send(app, Method::POST, "/login", &[("st-auth-mode", "header")]).await;
    let at = r.header("st-access-token").unwrap().to_owned();
    let rt = r.header("st-refresh-token").unwrap().to_owned();
    (at, rt, r)
}

async fn cookie_mode_sign_in_sets_the_protocol_cookies_and_front_token(mode: Mode) {
    let app = app(mode, local()).await;
    let (_at, rt, r) = login_cookie(&app).await;
    let at_cookie = r.cookie("sAccessToken").unwrap();
    assert!(at_cookie.contains("; Path=/; Expires="), "{at_cookie}");
    assert!(
        at_cookie.ends_with("; HttpOnly; SameSite=Lax"),
        "{at_cookie}"
    );
    assert!(!at_cookie.contains("Secure"), "http API: not Secure");
    let rt_cookie = r.cookie("sRefreshToken").unwrap();
    assert!(
        rt_cookie.contains("; Path=/auth/session/refresh; "),
        "{rt_cookie}"
    );
    let raw_value = r.cookie_value("sRefreshToken").unwrap();
    assert!(
        !raw_value.contains(['+', '/', '=']),
        "refresh token is percent-encoded in the cookie: {raw_value}"
    );
    assert!(rt.ends_with(".V2"), "percent-decoded refresh token");
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some("front-token")
    );
    assert!(
        r.header("st-access-token").is_none(),
        "not exposed in cookie mode"
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let ft = decode_front_token(r.header("front-token").unwrap());
    assert_eq!(ft["uid"], "user-1");
    assert_eq!(ft["up"]["sub"], "user-1");
    assert_eq!(ft["up"]["custom"], "v");
    assert_eq!(ft["up"]["iss"], "http://localhost:8080/auth");
    assert_eq!(ft["up"]["parentRefreshTokenHash1"], Value::Null);
    assert_eq!(
        ft["ate"].as_u64().unwrap(),
        ft["up"]["exp"].as_u64().unwrap() * 1000
    );
}

async fn header_mode_is_the_default_without_st_auth_mode(mode: Mode) {
    let app = app(mode, local()).await;
    for mode in [None, Some("header"), Some("bogus")] {
        let headers: Vec<(&str, &str)> =
            mode.map(|m| vec![("st-auth-mode", m)]).unwrap_or_default();
        let r = send(&app, Method::POST, "/login", &headers).await;
        assert!(r.set_cookies().is_empty(), "{mode:?}");
        assert!(r.header("st-access-token").is_some());
        assert!(r.header("st-refresh-token").is_some());
        assert_eq!(
            r.header("access-control-expose-headers"),
            Some("front-token, st-access-token, st-refresh-token")
        );
    }
}

async fn verify_outcomes_and_no_clearing_without_token(mode: Mode) {
    let app = app(mode, local()).await;
    let (at, _rt, _) = login_cookie(&app).await;
    let ok = send(
        &app,
        Method::GET,
        "/me",
        &[("cookie", &format!("sAccessToken={at}"))],
    )
    .await;
    assert_eq!((ok.status, ok.body.as_str()), (StatusCode::OK, "user-1"));
    assert!(
        ok.set_cookies().is_empty(),
        "valid token: no session headers"
    );

    let none = send(&app, Method::GET, "/me", &[]).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.json(), json!({"message": "unauthorised"}));
    assert_nothing_cleared(&none);

    let junk = send(
        &app,
        Method::GET,
        "/me",
        &[("cookie", "sAccessToken=abc.def.ghi")],
    )
    .await;
    assert_eq!(junk.json(), json!({"message": "unauthorised"}));
    assert_nothing_cleared(&junk);

    let mut tampered: Vec<&str> = at.split('.').collect();
    // Always a change: the first signature character swapped for another (a signature
    // without any 'A' made the old `replace('A', "B")` a no-op, about 1 run in 200).
    let first = if tampered[2].starts_with('A') {
        "B"
    } else {
        "A"
    };
    let sig = format!("{first}{}", &tampered[2][1..]);
    tampered[2] = &sig;
    let bad = send(
        &app,
        Method::GET,
        "/me",
        &[("cookie", &format!("sAccessToken={}", tampered.join(".")))],
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert_eq!(bad.json(), json!({"message": "try refresh token"}));
    assert_nothing_cleared(&bad);

    // The genuine token is in the verified-token cache now (the layer looks the cookie up
    // there while it reads it): the same signature under another payload (the cache slot
    // comes from the signature's tail) must still be refused.
    let parts: Vec<&str> = at.split('.').collect();
    let payload = parts[1];
    let swapped = if payload.ends_with('A') { "B" } else { "A" };
    let forged = format!(
        "{}.{}{swapped}.{}",
        parts[0],
        &payload[..payload.len() - 1],
        parts[2]
    );
    let again = send(
        &app,
        Method::GET,
        "/me",
        &[("cookie", &format!("sAccessToken={at}"))],
    )
    .await;
    assert_eq!(again.status, StatusCode::OK, "the genuine token, cached");
    let bad = send(
        &app,
        Method::GET,
        "/me",
        &[("cookie", &format!("sAccessToken={forged}"))],
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert_eq!(bad.json(), json!({"message": "try refresh token"}));

    // A minute of margin: a remote core mints on the real clock, the SDK judges on this one.
    app.clock.advance_ms(120_000);
    let expired = send(
        &app,
        Method::GET,
        "/me",
        &[("cookie", &format!("sAccessToken={at}"))],
    )
    .await;
    assert_eq!(expired.json(), json!({"message": "try refresh token"}));
    assert_nothing_cleared(&expired);

    let legacy = send(
        &app,
        Method::GET,
        "/me",
        &[("cookie", &format!("sAccessToken={at}; sIdRefreshToken=x"))],
    )
    .await;
    assert_eq!(legacy.json(), json!({"message": "try refresh token"}));
}

async fn optional_session_and_preflight(mode: Mode) {
    let app = app(mode, local()).await;
    let r = send(&app, Method::GET, "/maybe", &[]).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "none"));
    let (at, _, _) = login_cookie(&app).await;
    let r = send(
        &app,
        Method::GET,
        "/maybe",
        &[("cookie", &format!("sAccessToken={at}"))],
    )
    .await;
    assert_eq!(r.body, "user-1");
    // A minute of margin: a remote core mints on the real clock, the SDK judges on this one.
    app.clock.advance_ms(120_000);
    let r = send(
        &app,
        Method::GET,
        "/maybe",
        &[("cookie", &format!("sAccessToken={at}"))],
    )
    .await;
    assert_eq!(
        r.json(),
        json!({"message": "try refresh token"}),
        "expired is not 'no session'"
    );
}

async fn cook_08_duplicate_access_cookies_are_try_refresh(mode: Mode) {
    let app = app(mode, local()).await;
    let (at, _, _) = login_cookie(&app).await;
    let r = send(
        &app,
        Method::GET,
        "/me",
        &[("cookie", &format!("sAccessToken={at}; sAccessToken={at}"))],
    )
    .await;
    assert_eq!(r.json(), json!({"message": "try refresh token"}));
}

async fn refresh_without_tokens_clears_everything(mode: Mode) {
    let app = app(mode, local()).await;
    // The browser SDK's refresh (it always sends `rid`): 401 and everything cleared.
    let r = send(
        &app,
        Method::POST,
        "/auth/session/refresh",
        &[("rid", "session")],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json(), json!({"message": "unauthorised"}));
    assert_fully_cleared(&r);
    // CSRF-11/RT-13: a cross-site form POST carries no Lax cookie and no `rid`; clearing in
    // its response would sign the victim out, so nothing is cleared.
    let forged = send(&app, Method::POST, "/auth/session/refresh", &[]).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    assert_nothing_cleared(&forged);
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
}

async fn refresh_in_cookie_mode_then_promotion_writes_back_a_new_access_token(mode: Mode) {
    let app = app(mode, local()).await;
    let (_at, rt, _) = login_cookie(&app).await;
    let cookie = format!(
        "sRefreshToken={}",
        tessera_axum::transfer::percent_encode(&rt)
    );
    let r = send(
        &app,
        Method::POST,
        "/auth/session/refresh",
        &[("cookie", &cookie), ("rid", "session")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({}));
    assert!(r.header("front-token").is_some());
    let new_at = r.cookie_value("sAccessToken").unwrap();
    assert!(r.cookie("sRefreshToken").is_some());
    let ft = decode_front_token(r.header("front-token").unwrap());
    assert!(
        ft["up"]["parentRefreshTokenHash1"].is_string(),
        "first token after refresh"
    );
    // First use promotes: the response carries a replacement token and front-token.
    let used = send(
        &app,
        Method::GET,
        "/me",
        &[("cookie", &format!("sAccessToken={new_at}"))],
    )
    .await;
    assert_eq!(used.status, StatusCode::OK);
    assert!(
        used.cookie("sAccessToken").is_some(),
        "promoted token written back"
    );
    let ft = decode_front_token(used.header("front-token").unwrap());
    assert_eq!(ft["up"]["parentRefreshTokenHash1"], Value::Null);
    // The old refresh token is now rotated out: theft, full clear.
    let theft = send(
        &app,
        Method::POST,
        "/auth/session/refresh",
        &[("cookie", &cookie), ("rid", "session")],
    )
    .await;
    assert_eq!(theft.status, StatusCode::UNAUTHORIZED);
    assert_eq!(theft.json(), json!({"message": "token theft detected"}));
    assert_fully_cleared(&theft);
}

async fn refresh_in_header_mode(mode: Mode) {
    let app = app(mode, local()).await;
    let (_at, rt, _) = login_header(&app).await;
    let r = send(
        &app,
        Method::POST,
        "/auth/session/refresh",
        &[("authorization", &format!("Bearer {rt}"))],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.set_cookies().is_empty());
    assert!(r.header("st-access-token").is_some_and(|v| !v.is_empty()));
    assert!(r.header("st-refresh-token").is_some_and(|v| !v.is_empty()));
}

async fn rt_12_access_token_at_refresh_is_unauthorised_with_clear(mode: Mode) {
    let app = app(mode, local()).await;
    let (at, _, _) = login_cookie(&app).await;
    let r = send(
        &app,
        Method::POST,
        "/auth/session/refresh",
        &[("cookie", &format!("sAccessToken={at}"))],
    )
    .await;
    assert_eq!(r.json(), json!({"message": "unauthorised"}));
    assert_fully_cleared(&r);
}

// §3 tables: which method wins when both carry tokens.
async fn transfer_method_tables(mode: Mode) {
    let app = app(mode, local()).await;
    let (cat, crt, _) = login_cookie(&app).await;
    let (hat, hrt, _) = login_header(&app).await;
    let both = format!("sAccessToken={cat}");
    let r = send(
        &app,
        Method::GET,
        "/me",
        &[
            ("cookie", &both),
            ("authorization", &format!("Bearer {hat}")),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    // A non-JWT bearer falls through to the cookie.
    let r = send(
        &app,
        Method::GET,
        "/me",
        &[("cookie", &both), ("authorization", "Bearer not-a-jwt")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    // Refresh with both: header wins, cookies are cleared.
    let rt_cookie = format!(
        "sRefreshToken={}",
        tessera_axum::transfer::percent_encode(&crt)
    );
    let r = send(
        &app,
        Method::POST,
        "/auth/session/refresh",
        &[
            ("cookie", &rt_cookie),
            ("authorization", &format!("Bearer {hrt}")),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("st-access-token").is_some_and(|v| !v.is_empty()));
    assert_eq!(
        r.cookie_value("sAccessToken").as_deref(),
        Some(""),
        "cookies cleared"
    );

    // Header-only config ignores cookies entirely.
    let app = self::app(mode, local().token_transfer(TokenTransfer::Header)).await;
    let (cat, _, _) = login_header(&app).await;
    let r = send(
        &app,
        Method::GET,
        "/me",
        &[("cookie", &format!("sAccessToken={cat}"))],
    )
    .await;
    assert_eq!(r.json(), json!({"message": "unauthorised"}));
    // Cookie-only config ignores Authorization.
    let app = self::app(mode, local().token_transfer(TokenTransfer::Cookie)).await;
    let (hat, _, _) = login_cookie(&app).await;
    let r = send(
        &app,
        Method::GET,
        "/me",
        &[("authorization", &format!("Bearer {hat}"))],
    )
    .await;
    assert_eq!(r.json(), json!({"message": "unauthorised"}));
}

async fn csrf_via_custom_header(mode: Mode) {
    let app = app(
        mode,
        Config::builder("https://api.example.com", "https://app.other.com"),
    )
    .await;
    let (at, rt, login) = login_cookie(&app).await;
    let c = login.cookie("sAccessToken").unwrap();
    assert!(c.ends_with("; HttpOnly; Secure; SameSite=None"), "{c}");
    let cookie = format!("sAccessToken={at}");
    let r = send(&app, Method::POST, "/me", &[("cookie", &cookie)]).await;
    assert_eq!(
        r.json(),
        json!({"message": "try refresh token"}),
        "POST without rid"
    );
    let r = send(
        &app,
        Method::POST,
        "/me",
        &[("cookie", &cookie), ("rid", "anti-csrf")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send(&app, Method::GET, "/me", &[("cookie", &cookie)]).await;
    assert_eq!(r.status, StatusCode::OK, "GET is not checked");
    let (hat, _, _) = login_header(&app).await;
    let r = send(
        &app,
        Method::POST,
        "/me",
        &[("authorization", &format!("Bearer {hat}"))],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "header mode needs no rid");
    // RT-13: refresh without rid is refused and clears nothing (no sign-out CSRF).
    let rt_cookie = format!(
        "sRefreshToken={}",
        tessera_axum::transfer::percent_encode(&rt)
    );
    let r = send(
        &app,
        Method::POST,
        "/auth/session/refresh",
        &[("cookie", &rt_cookie)],
    )
    .await;
    assert_eq!(r.json(), json!({"message": "unauthorised"}));
    assert_nothing_cleared(&r);
    let r = send(
        &app,
        Method::POST,
        "/auth/session/refresh",
        &[("cookie", &rt_cookie), ("rid", "session")],
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the refresh token was not consumed"
    );
}

async fn csrf_via_token(mode: Mode) {
    let app = app(mode, local().anti_csrf(AntiCsrfMode::ViaToken)).await;
    let (at, rt, login) = login_cookie(&app).await;
    let csrf = login
        .header("anti-csrf")
        .expect("anti-csrf header")
        .to_owned();
    assert_eq!(
        login.header("access-control-expose-headers"),
        Some("front-token, anti-csrf")
    );
    let cookie = format!("sAccessToken={at}");
    let r = send(&app, Method::POST, "/me", &[("cookie", &cookie)]).await;
    assert_eq!(r.json(), json!({"message": "try refresh token"}));
    let r = send(
        &app,
        Method::POST,
        "/me",
        &[("cookie", &cookie), ("anti-csrf", "wrong")],
    )
    .await;
    assert_eq!(r.json(), json!({"message": "try refresh token"}));
    let r = send(
        &app,
        Method::POST,
        "/me",
        &[("cookie", &cookie), ("anti-csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let rt_cookie = format!(
        "sRefreshToken={}",
        tessera_axum::transfer::percent_encode(&rt)
    );
    let r = send(
        &app,
        Method::POST,
        "/auth/session/refresh",
        &[("cookie", &rt_cookie), ("anti-csrf", "wrong")],
    )
    .await;
    assert_eq!(r.json(), json!({"message": "unauthorised"}));
    assert_nothing_cleared(&r);
    let r = send(
        &app,
        Method::POST,
        "/auth/session/refresh",
        &[("cookie", &rt_cookie), ("anti-csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let new_csrf = r.header("anti-csrf").unwrap();
    assert_ne!(new_csrf, csrf, "rotated at refresh");
    let (_, _, header_login) = login_header(&app).await;
    assert!(
        header_login.header("anti-csrf").is_none(),
        "no anti-CSRF token in header mode"
    );
}

async fn signout_in_each_mode(mode: Mode) {
    let app = app(mode, local()).await;
    let (at, _, _) = login_cookie(&app).await;
    let r = send(
        &app,
        Method::POST,
        "/auth/signout",
        &[
            ("cookie", &format!("sAccessToken={at}")),
            ("rid", "session"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({"status": "OK"}));
    assert_eq!(r.cookie_value("sAccessToken").as_deref(), Some(""));
    assert_eq!(r.cookie_value("sRefreshToken").as_deref(), Some(""));
    assert_eq!(r.header("front-token"), Some("remove"));
    assert!(
        r.header("st-access-token").is_none(),
        "only the request's method is cleared"
    );
    let r = send(
        &app,
        Method::GET,
        "/me",
        &[("cookie", &format!("sAccessToken={at}"))],
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "stateless verify until exp (REQ-05 window)"
    );

    let (hat, _, _) = login_header(&app).await;
    let r = send(
        &app,
        Method::POST,
        "/auth/signout",
        &[("authorization", &format!("Bearer {hat}"))],
    )
    .await;
    assert_eq!(r.json(), json!({"status": "OK"}));
    assert_eq!(r.header("st-access-token"), Some(""));
    assert_eq!(r.header("st-refresh-token"), Some(""));
    assert!(r.set_cookies().is_empty());

    let r = send(&app, Method::POST, "/auth/signout", &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json(), json!({"message": "unauthorised"}));
}

async fn revoked_session_with_database_check_is_unauthorised_and_cleared(mode: Mode) {
    let app = app(mode, local().check_database(true)).await;
    let (at, _, login) = login_cookie(&app).await;
    let handle = login.body.clone();
    assert!(app.core.revoke_session(&handle).await.unwrap());
    let r = send(
        &app,
        Method::GET,
        "/me",
        &[("cookie", &format!("sAccessToken={at}"))],
    )
    .await;
    assert_eq!(r.json(), json!({"message": "unauthorised"}));
    assert_fully_cleared(&r);
}

async fn invalid_claims_answer_403_with_the_errors(mode: Mode) {
    struct NeedsAdmin;
    impl ClaimValidator for NeedsAdmin {
        fn id(&self) -> &str {
            "needs-admin"
        }
        fn validate(&self, payload: &Map<String, Value>) -> Result<(), Option<Value>> {
            if payload.get("role") == Some(&json!("admin")) {
                Ok(())
            } else {
                Err(Some(json!({"message": "wrong value"})))
            }
        }
    }
    let app = app_with(mode, local(), vec![Arc::new(NeedsAdmin)]).await;
    let (at, _, _) = login_cookie(&app).await;
    let r = send(
        &app,
        Method::GET,
        "/me",
        &[("cookie", &format!("sAccessToken={at}"))],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.json(),
        json!({"message": "invalid claim", "claimValidationErrors": [{"id": "needs-admin", "reason": {"message": "wrong value"}}]})
    );
    assert_nothing_cleared(&r);
    // Sign-out does not check claims.
    let r = send(
        &app,
        Method::POST,
        "/auth/signout",
        &[("cookie", &format!("sAccessToken={at}"))],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
}

async fn merge_into_payload_reissues_the_token(mode: Mode) {
    let app = app(mode, local()).await;
    let (at, _, _) = login_cookie(&app).await;
    let r = send(
        &app,
        Method::POST,
        "/merge",
        &[("cookie", &format!("sAccessToken={at}"))],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let payload: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(payload["role"], "admin", "a clone sees the re-issued token");
    assert_eq!(
        r.header("x-other-kept"),
        Some("true"),
        "another session of the same request keeps its own token"
    );
    assert!(payload.get("custom").is_none(), "null deletes");
    assert_eq!(payload["sub"], "user-1", "protected claims kept");
    let ft = decode_front_token(r.header("front-token").unwrap());
    assert_eq!(ft["up"]["role"], "admin");
    assert!(r.cookie("sAccessToken").is_some());
}

async fn switching_the_key_type_answers_try_refresh(mode: Mode) {
    let app = app(mode, local()).await;
    let (at, _, _) = login_cookie(&app).await;
    // Same engine, an SDK configured for static keys: the dynamic-key token must be refreshed.
    let config = local()
        .use_dynamic_signing_key(false)
        .anonymous_sessions(false)
        .build()
        .unwrap();
    let tessera = Tessera::new(config, app.core.clone());
    let router = Router::new()
        .route(
            "/me",
            get(|s: Session| async move { s.user_id().to_owned() }),
        )
        .layer(tessera.layer());
    let static_app = App {
        router,
        clock: app.clock.clone(),
        core: app.core.clone(),
        _server: None,
    };
    let r = send(
        &static_app,
        Method::GET,
        "/me",
        &[("cookie", &format!("sAccessToken={at}"))],
    )
    .await;
    assert_eq!(r.json(), json!({"message": "try refresh token"}));
}

#[tokio::test]
async fn extractor_without_layer_is_a_500_not_a_panic() {
    let router: Router = Router::new().route(
        "/me",
        get(|s: Session| async move { s.user_id().to_owned() }),
    );
    let r = router
        .oneshot(Request::builder().uri("/me").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

tokio::task_local! {
    /// Set for the `wrapped` runs: the app is served as `tessera.wrap(router)`.
    static WRAPPED: bool;
}

/// `axum::serve(listener, tessera.wrap(router))` over real TCP: the wrapped service serves
/// the app's routes with sessions, the SDK's refresh route, and the app's 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrap_serves_the_app_and_the_sdk_routes_over_tcp() {
    let (core, _server) = core(Mode::Embedded, Arc::new(ManualClock::starting_now())).await;
    let config = local().anonymous_sessions(false).build().unwrap();
    let tessera = Tessera::new(config, core);
    async fn login(sign_in: SignIn) -> Result<&'static str, SessionRejection> {
        sign_in.create("user-1", Map::new(), json!({})).await?;
        Ok("ok")
    }
    let router = Router::new().route("/login", post(login)).route(
        "/me",
        get(|s: Session| async move { s.user_id().to_owned() }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let served = tokio::spawn(async move { axum::serve(listener, tessera.wrap(router)).await });
    let client = reqwest::Client::new();
    let pair = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.split(';').next().filter(|p| p.starts_with(name)))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no {name} cookie"))
    };
    let signed_in = client
        .post(format!("{base}/login"))
        .header("st-auth-mode", "cookie")
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::OK);
    let (access, refresh) = (
        pair(&signed_in, "sAccessToken="),
        pair(&signed_in, "sRefreshToken="),
    );
    let me = client
        .get(format!("{base}/me"))
        .header("cookie", &access)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(me.text().await.unwrap(), "user-1");
    let anonymous = client.get(format!("{base}/me")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let refreshed = client
        .post(format!("{base}/auth/session/refresh"))
        .header("cookie", &refresh)
        .header("st-auth-mode", "cookie")
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), StatusCode::OK);
    let renewed = pair(&refreshed, "sAccessToken=");
    assert_ne!(renewed, access);
    let missing = client.get(format!("{base}/nowhere")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    served.abort();
}

/// Runs each scenario three times: on the engine in-process and on `tessera serve` over HTTP
/// with the layer on each route (`Router::layer`), and on the engine in-process with the layer
/// once around the router (`Tessera::wrap`).
macro_rules! on_both_cores {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn embedded() {
                    super::$name(super::Mode::Embedded).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn remote() {
                    super::$name(super::Mode::Remote).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn wrapped() {
                    super::WRAPPED
                        .scope(true, super::$name(super::Mode::Embedded))
                        .await;
                }
            }
        )*
    };
}

on_both_cores!(
    cookie_mode_sign_in_sets_the_protocol_cookies_and_front_token,
    header_mode_is_the_default_without_st_auth_mode,
    verify_outcomes_and_no_clearing_without_token,
    optional_session_and_preflight,
    cook_08_duplicate_access_cookies_are_try_refresh,
    refresh_without_tokens_clears_everything,
    refresh_in_cookie_mode_then_promotion_writes_back_a_new_access_token,
    refresh_in_header_mode,
    rt_12_access_token_at_refresh_is_unauthorised_with_clear,
    transfer_method_tables,
    csrf_via_custom_header,
    csrf_via_token,
    signout_in_each_mode,
    revoked_session_with_database_check_is_unauthorised_and_cleared,
    invalid_claims_answer_403_with_the_errors,
    merge_into_payload_reissues_the_token,
    switching_the_key_type_answers_try_refresh,
);
