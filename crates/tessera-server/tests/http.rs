//! General HTTP behaviour: /hello, /apiversion, JWKS, /recipe/jwt, API keys, cdi-version and
//! bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tessera::KeyLookup;
use tessera_testkit::{both_stores, in_process, Backend, Place};

both_stores!(hello_and_apiversion, |backend: Backend| async move {
    let s = in_process::start(backend).await;
    for m in [Method::GET, Method::POST, Method::PUT, Method::DELETE] {
        let r = s.raw(m, "/hello", None, &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.text, "Hello");
        assert_eq!(r.headers["content-type"], "text/plain; charset=UTF-8");
    }
    let r = s.raw(Method::GET, "/", None, &[]).await;
    assert_eq!(r.text, "Hello");
    let r = s.raw(Method::GET, "/apiversion", None, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    let versions: Vec<String> = serde_json::from_value(r.json["versions"].clone()).unwrap();
    assert!(versions.contains(&"5.4".to_owned()), "{versions:?}");
    assert!(r.json.get("status").is_none());
    s.stop().await;
});

both_stores!(jwks_and_jwt, |backend: Backend| async move {
    let s = in_process::start(backend).await;
    let r = s
        .raw(Method::GET, "/.well-known/jwks.json", None, &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json.as_object().unwrap().len(),
        1,
        "only keys: {}",
        r.text
    );
    let keys = r.json["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{}", r.text);
    assert!(keys[0]["kid"].as_str().unwrap().starts_with("d-"));
    assert!(keys[1]["kid"].as_str().unwrap().starts_with("s-"));
    // The anonymous-token key (B5): Ed25519, its own kid namespace, at its own URL (SEC2-L3).
    let a = s
        .raw(Method::GET, "/.well-known/anonymous-jwks.json", None, &[])
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let anon = &a.json["keys"][0];
    assert_eq!(a.json["keys"].as_array().unwrap().len(), 1, "{}", a.text);
    assert!(anon["kid"].as_str().unwrap().starts_with("a-"));
    assert_eq!(anon["kty"], "OKP");
    assert_eq!(anon["crv"], "Ed25519");
    assert_eq!(anon["alg"], "EdDSA");
    assert_eq!(anon["use"], "sig");
    assert_eq!(anon["x"].as_str().unwrap().len(), 43);
    for k in &keys[..2] {
        assert_eq!(k["kty"], "RSA");
        assert_eq!(k["alg"], "RS256");
        assert_eq!(k["use"], "sig");
        assert_eq!(k["e"], "AQAB");
        assert!(k["n"].as_str().unwrap().len() > 300);
    }
    let cache = r.headers["cache-control"].to_str().unwrap().to_owned();
    let max_age: u64 = cache
        .strip_prefix("max-age=")
        .and_then(|c| c.strip_suffix(", must-revalidate"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad cache-control {cache}"));
    assert!(max_age > 600_000 && max_age <= 604_740, "{max_age}");

    let deprecated = s.get("/recipe/jwt/jwks").await;
    assert_eq!(deprecated.json["status"], "OK");
    assert_eq!(deprecated.json["keys"], r.json["keys"]);

    // A created access token's kid is published.
    let created = s.create("k").await;
    let at = created.json["accessToken"]["token"].as_str().unwrap();
    let header: Value = serde_json::from_slice(
        &tessera::fuzzing::b64url_decode(at.split('.').next().unwrap().as_bytes()).unwrap(),
    )
    .unwrap();
    assert!(keys.iter().any(|k| k["kid"] == header["kid"]));

    // POST /recipe/jwt, static key by default.
    let set = tessera::VerifyingKeySet::from_jwks_json(&r.text).unwrap();
    for (use_static, prefix) in [(None, "s-"), (Some(false), "d-")] {
        let mut body = json!({"algorithm": "rs256", "jwksDomain": "https://api.example.com",
                              "payload": {"a": 1}, "validity": 100});
        if let Some(v) = use_static {
            body["useStaticSigningKey"] = json!(v);
        }
        let r = s.post("/recipe/jwt", body).await;
        assert_eq!(r.status_field(), "OK", "{}", r.text);
        let jwt = r.json["jwt"].as_str().unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        let header: Value =
            serde_json::from_slice(&tessera::fuzzing::b64url_decode(parts[0].as_bytes()).unwrap())
                .unwrap();
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["typ"], "JWT");
        assert!(header.get("version").is_none());
        let kid = header["kid"].as_str().unwrap();
        assert!(kid.starts_with(prefix), "{kid}");
        let payload: Value =
            serde_json::from_slice(&tessera::fuzzing::b64url_decode(parts[1].as_bytes()).unwrap())
                .unwrap();
        assert_eq!(payload["a"], 1);
        assert_eq!(payload["iss"], "https://api.example.com");
        assert_eq!(
            payload["exp"].as_u64().unwrap() - payload["iat"].as_u64().unwrap(),
            100
        );
        let sig = tessera::fuzzing::b64url_decode(parts[2].as_bytes()).unwrap();
        let signed = format!("{}.{}", parts[0], parts[1]);
        let key = set.verifying_key(kid).expect("kid in JWKS");
        assert!(key.verify_rs256(signed.as_bytes(), &sig));
    }
    let r = s
        .post(
            "/recipe/jwt",
            json!({"algorithm": "RS256", "jwksDomain": "d", "payload": {"iss": "mine"},
                   "validity": 5}),
        )
        .await;
    let jwt = r.json["jwt"].as_str().unwrap();
    let payload: Value = serde_json::from_slice(
        &tessera::fuzzing::b64url_decode(jwt.split('.').nth(1).unwrap().as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(payload["iss"], "mine");
    let r = s
        .post(
            "/recipe/jwt",
            json!({"algorithm": "HS256", "jwksDomain": "d", "payload": {}, "validity": 5}),
        )
        .await;
    assert_eq!(r.json, json!({"status": "UNSUPPORTED_ALGORITHM_ERROR"}));
    let r = s
        .post(
            "/recipe/jwt",
            json!({"algorithm": "RS256", "jwksDomain": "d", "payload": {}, "validity": 0}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.text, "validity must be greater than or equal to 0");
    let r = s
        .post(
            "/acme/recipe/jwt",
            json!({"algorithm": "RS256", "jwksDomain": "d", "payload": {}, "validity": 5}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    s.stop().await;
});

#[tokio::test]
async fn api_keys() {
    let key = "abcdefghijklmnopqrstuvwxyz-0123456789";
    let mut config = in_process::config();
    config.app.api_keys = Some(vec!["another-key-of-20-chars-or-more".into(), key.into()]);
    let s = in_process::start_with(Place::fresh(Backend::Sqlite), config).await;
    let r = s.raw(Method::GET, "/hello", None, &[]).await;
    assert_eq!(r.text, "Hello");
    let r = s
        .raw(Method::GET, "/.well-known/jwks.json", None, &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = s.raw(Method::GET, "/apiversion", None, &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.text, "Invalid API key");
    let r = s
        .raw(Method::GET, "/apiversion", None, &[("api-key", "wrong")])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = s
        .raw(Method::GET, "/apiversion", None, &[("api-key", key)])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let bearer = format!("Bearer {key}");
    let r = s
        .raw(
            Method::GET,
            "/apiversion",
            None,
            &[("authorization", &bearer)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = s.post("/recipe/session/verify", json!({})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    s.stop().await;
}

#[tokio::test]
async fn bad_input_gets_the_core_answers() {
    let s = in_process::start(Backend::Sqlite).await;
    let post = |path: &'static str, body: &'static str| {
        let s = &s;
        async move {
            s.raw(
                Method::POST,
                path,
                Some(body.as_bytes().to_vec()),
                &[("cdi-version", "5.4")],
            )
            .await
        }
    };
    let cases: &[(&str, &str, &str)] = &[
        ("/public/recipe/session", "{not json", "Invalid Json Input"),
        ("/public/recipe/session", "", "Invalid Json Input"),
        ("/public/recipe/session", "[1,2]", "Invalid Json Input"),
        (
            "/public/recipe/session",
            r#"{"enableAntiCsrf":false,"userDataInJWT":{},"userDataInDatabase":{}}"#,
            "Field name 'userId' is invalid in JSON input",
        ),
        (
            "/public/recipe/session",
            r#"{"userId":"u","enableAntiCsrf":"false","userDataInJWT":{},"userDataInDatabase":{}}"#,
            "Field name 'enableAntiCsrf' is invalid in JSON input",
        ),
        (
            "/public/recipe/session",
            r#"{"userId":"u","enableAntiCsrf":false,"userDataInJWT":{},"userDataInDatabase":{},"useDynamicSigningKey":null}"#,
            "Field name 'useDynamicSigningKey' is invalid in JSON input",
        ),
        (
            "/public/recipe/session",
            r#"{"userId":"u","enableAntiCsrf":false,"userDataInJWT":{"exp":1},"userDataInDatabase":{}}"#,
            "The user payload contains protected field",
        ),
        (
            "/recipe/session/verify",
            r#"{"accessToken":"x","doAntiCsrfCheck":false,"enableAntiCsrf":false,"antiCsrfToken":null,"checkDatabase":false}"#,
            "Field name 'antiCsrfToken' is invalid in JSON input",
        ),
        (
            "/recipe/session/verify",
            r#"{"accessToken":"x","doAntiCsrfCheck":false,"enableAntiCsrf":false}"#,
            "Field name 'checkDatabase' is invalid in JSON input",
        ),
        (
            "/recipe/session/refresh",
            r#"{"refreshToken":"x","enableAntiCsrf":false}"#,
            "Field name 'useDynamicSigningKey' is invalid in JSON input",
        ),
        (
            "/recipe/session/regenerate",
            r#"{"accessToken":"x","userDataInJWT":null}"#,
            "Field name 'userDataInJWT' is invalid in JSON input",
        ),
        (
            "/recipe/session/remove",
            r#"{"sessionHandles":[1]}"#,
            "Field name 'sessionHandles' is invalid in JSON input",
        ),
    ];
    for (path, body, message) in cases {
        let r = post(path, body).await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{path} {body}: {}",
            r.text
        );
        assert_eq!(r.text, *message, "{path} {body}");
        assert_eq!(r.headers["content-type"], "text/plain; charset=UTF-8");
    }

    // Over 1 MiB → 413.
    let big = format!(r#"{{"userId":"{}"}}"#, "x".repeat(1024 * 1024 + 10));
    let r = s
        .raw(
            Method::POST,
            "/public/recipe/session",
            Some(big.into_bytes()),
            &[("cdi-version", "5.4")],
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);

    // Deep nesting is a 400, not a crash.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let r = s
        .raw(
            Method::POST,
            "/recipe/session/verify",
            Some(deep.into_bytes()),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // Unknown paths and methods.
    for path in [
        "/recipe/nope",
        "/a/b/c",
        "/recipe/handshake",
        "/appid-x_y/hello",
    ] {
        let r = s.raw(Method::POST, path, Some(b"{}".to_vec()), &[]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.text, "Not found");
    }
    let r = s
        .raw(Method::DELETE, "/recipe/session/verify", None, &[])
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.text, "Method not supported");

    // cdi-version rules.
    let r = s
        .raw(Method::GET, "/hello", None, &[("cdi-version", "abc")])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.text, "cdi-version header is invalid");
    let r = s
        .raw(Method::GET, "/apiversion", None, &[("cdi-version", "9.9")])
        .await;
    assert_eq!(r.text, "cdi-version 9.9 not supported");
    let r = s
        .raw(
            Method::GET,
            "/recipe/session/user?userId=x",
            None,
            &[("cdi-version", "5.4.0")],
        )
        .await;
    assert_eq!(r.text, "cdi-version 5.4.0 not supported");
    let r = s
        .raw(
            Method::GET,
            "/.well-known/jwks.json",
            None,
            &[("cdi-version", "5.4.0")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn base_path_and_user_lookup() {
    let mut config = in_process::config();
    config.base_path = "/auth".into();
    let s = in_process::start_with(Place::fresh(Backend::Sqlite), config).await;
    // `s.base` already ends in /auth.
    let r = s.raw(Method::GET, "/hello", None, &[]).await;
    assert_eq!(r.text, "Hello");
    let root = s.base.trim_end_matches("/auth").to_owned();
    let r = s.client.get(format!("{root}/hello")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // The SDKs look the user up before creating a session; this core has no user records.
    let r = s.get("/user/id?userId=someone").await;
    assert_eq!(r.json, json!({"status": "UNKNOWN_USER_ID_ERROR"}));
    let r = s.get("/user/id").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    s.stop().await;
}
