//! The `/recipe/session*` family over HTTP, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera_testkit::in_process::TestServer;
use tessera_testkit::{both_stores, in_process, Backend};

fn token(r: &in_process::Reply, field: &str) -> String {
    r.json[field]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {}", r.text))
        .to_owned()
}

async fn verify(s: &TestServer, at: &str, check_database: bool) -> in_process::Reply {
    s.post(
        "/recipe/session/verify",
        json!({"accessToken": at, "doAntiCsrfCheck": false, "enableAntiCsrf": false,
               "checkDatabase": check_database}),
    )
    .await
}

async fn refresh(s: &TestServer, rt: &str) -> in_process::Reply {
    s.post(
        "/recipe/session/refresh",
        json!({"refreshToken": rt, "enableAntiCsrf": false, "useDynamicSigningKey": true}),
    )
    .await
}

both_stores!(create_verify_refresh_theft, |backend: Backend| async move {
    let s = in_process::start(backend).await;
    let created = s.create("alice").await;
    let session = &created.json["session"];
    let handle = session["handle"].as_str().unwrap().to_owned();
    assert_eq!(session["userId"], "alice");
    assert_eq!(session["recipeUserId"], "alice");
    assert_eq!(session["tenantId"], "public");
    assert_eq!(session["userDataInJWT"], json!({"role": "admin"}));
    assert!(created.json.get("antiCsrfToken").is_none());
    let at_info = &created.json["accessToken"];
    assert_eq!(at_info["expiry"].as_u64().unwrap() % 1000, 0);
    assert_eq!(
        at_info["expiry"].as_u64().unwrap() - at_info["createdTime"].as_u64().unwrap(),
        3_600_000
    );
    assert_eq!(
        created.headers["content-type"],
        "application/json; charset=UTF-8"
    );
    let at1 = token(&created, "accessToken");
    let rt1 = token(&created, "refreshToken");

    // Verify: OK, exactly {status, session}.
    let v = verify(&s, &at1, true).await;
    assert_eq!(v.status_field(), "OK", "{}", v.text);
    assert_eq!(v.json.as_object().unwrap().len(), 2, "{}", v.text);
    assert_eq!(v.json["session"]["handle"], handle.as_str());

    // Garbage → TRY_REFRESH_TOKEN.
    let v = verify(&s, "not.a.jwt", false).await;
    assert_eq!(v.status_field(), "TRY_REFRESH_TOKEN", "{}", v.text);
    assert!(v.json["message"].is_string());

    // Refresh with RT1 → RT2; the new AT carries the parent, so verify promotes and mints.
    let r2 = refresh(&s, &rt1).await;
    assert_eq!(r2.status_field(), "OK", "{}", r2.text);
    assert_eq!(r2.json["session"]["handle"], handle.as_str());
    let rt2 = token(&r2, "refreshToken");
    let at2 = token(&r2, "accessToken");
    assert_ne!(rt2, rt1);
    let v = verify(&s, &at2, false).await;
    assert_eq!(v.status_field(), "OK", "{}", v.text);
    assert!(
        v.json["accessToken"]["token"].is_string(),
        "promotion mints: {}",
        v.text
    );

    // Refresh again with RT2 → RT3; RT1 is now two generations old: theft.
    let r3 = refresh(&s, &rt2).await;
    assert_eq!(r3.status_field(), "OK", "{}", r3.text);
    let theft = refresh(&s, &rt1).await;
    assert_eq!(theft.status, StatusCode::OK);
    assert_eq!(
        theft.status_field(),
        "TOKEN_THEFT_DETECTED",
        "{}",
        theft.text
    );
    assert_eq!(
        theft.json["session"],
        json!({"handle": handle, "userId": "alice", "recipeUserId": "alice"})
    );
    // The session is gone.
    let v = verify(&s, &at1, true).await;
    assert_eq!(v.status_field(), "UNAUTHORISED", "{}", v.text);
    assert_eq!(
        v.json["message"],
        "Either the session has ended or has been blacklisted"
    );

    // Garbage refresh token → UNAUTHORISED.
    let bad = refresh(&s, "garbage").await;
    assert_eq!(bad.status_field(), "UNAUTHORISED", "{}", bad.text);
    s.stop().await;
});

both_stores!(anti_csrf_and_static_key, |backend: Backend| async move {
    let s = in_process::start(backend).await;
    let created = s
        .post(
            "/public/recipe/session",
            json!({"userId": "u", "userDataInJWT": {}, "userDataInDatabase": {},
                   "enableAntiCsrf": true, "useDynamicSigningKey": false}),
        )
        .await;
    assert_eq!(created.status_field(), "OK", "{}", created.text);
    let csrf = created.json["antiCsrfToken"].as_str().unwrap().to_owned();
    let at = token(&created, "accessToken");
    let header = at.split('.').next().unwrap();
    assert!(
        !String::from_utf8(base64_url(header))
            .unwrap()
            .contains("\"d-"),
        "static key kid"
    );
    let v = s
        .post(
            "/recipe/session/verify",
            json!({"accessToken": at, "doAntiCsrfCheck": true, "enableAntiCsrf": true,
                   "checkDatabase": false, "antiCsrfToken": "wrong"}),
        )
        .await;
    assert_eq!(v.status_field(), "TRY_REFRESH_TOKEN", "{}", v.text);
    assert_eq!(v.json["message"], "anti-csrf check failed");
    let v = s
        .post(
            "/recipe/session/verify",
            json!({"accessToken": at, "doAntiCsrfCheck": true, "enableAntiCsrf": true,
                   "checkDatabase": false, "antiCsrfToken": csrf}),
        )
        .await;
    assert_eq!(v.status_field(), "OK", "{}", v.text);
    let r = s
        .post(
            "/recipe/session/refresh",
            json!({"refreshToken": token(&created, "refreshToken"), "enableAntiCsrf": true,
                   "useDynamicSigningKey": false}),
        )
        .await;
    assert_eq!(r.status_field(), "UNAUTHORISED", "{}", r.text);
    assert_eq!(
        r.json["message"],
        "Anti CSRF token missing, or not matching"
    );
    s.stop().await;
});

fn base64_url(s: &str) -> Vec<u8> {
    tessera::fuzzing::b64url_decode(s.as_bytes()).expect("base64url")
}

both_stores!(read_update_remove, |backend: Backend| async move {
    let s = in_process::start(backend).await;
    let a = s.create("bob").await;
    let b = s.create("bob").await;
    let c = s.create("carol").await;
    let handle_a = a.json["session"]["handle"].as_str().unwrap().to_owned();
    let handle_b = b.json["session"]["handle"].as_str().unwrap().to_owned();
    let handle_c = c.json["session"]["handle"].as_str().unwrap().to_owned();

    // GET session.
    let info = s
        .get(&format!("/recipe/session?sessionHandle={handle_a}"))
        .await;
    assert_eq!(info.status_field(), "OK", "{}", info.text);
    let keys: Vec<&String> = info.json.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 9, "{keys:?}");
    assert_eq!(info.json["userDataInDatabase"], json!({"n": 1}));
    assert_eq!(info.json["userDataInJWT"], json!({"role": "admin"}));
    assert_eq!(info.json["tenantId"], "public");
    assert!(info.json["expiry"].as_u64().unwrap() > info.json["timeCreated"].as_u64().unwrap());
    let missing = s.get("/recipe/session?sessionHandle=nope").await;
    assert_eq!(missing.status_field(), "UNAUTHORISED");
    assert_eq!(missing.json["message"], "Session does not exist.");
    let no_param = s.get("/recipe/session").await;
    assert_eq!(no_param.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        no_param.text,
        "Field name 'sessionHandle' is missing in GET request"
    );

    // PUT session data.
    let r = s
        .put(
            "/recipe/session/data",
            json!({"sessionHandle": handle_a, "userDataInDatabase": {"k": "v"}}),
        )
        .await;
    assert_eq!(r.json, json!({"status": "OK"}));
    let info = s
        .get(&format!("/recipe/session?sessionHandle={handle_a}"))
        .await;
    assert_eq!(info.json["userDataInDatabase"], json!({"k": "v"}));
    let r = s
        .put(
            "/recipe/session/data",
            json!({"sessionHandle": "nope", "userDataInDatabase": {}}),
        )
        .await;
    assert_eq!(r.status_field(), "UNAUTHORISED");
    assert_eq!(r.json["message"], "Session does not exist.");

    // PUT jwt data: stored only; the next regenerate/refresh carries it.
    let r = s
        .put(
            "/recipe/jwt/data",
            json!({"sessionHandle": handle_a, "userDataInJWT": {"plan": "pro"}}),
        )
        .await;
    assert_eq!(r.json, json!({"status": "OK"}), "{}", r.text);
    let info = s
        .get(&format!("/recipe/session?sessionHandle={handle_a}"))
        .await;
    assert_eq!(info.json["userDataInJWT"], json!({"plan": "pro"}));
    let r = s
        .put(
            "/recipe/jwt/data",
            json!({"sessionHandle": handle_a, "userDataInJWT": {"sub": "x"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.text, "The user payload contains protected field");

    // Regenerate with a new payload.
    let at_a = a.json["accessToken"]["token"].as_str().unwrap();
    let r = s
        .post(
            "/recipe/session/regenerate",
            json!({"accessToken": at_a, "userDataInJWT": {"plan": "team"}}),
        )
        .await;
    assert_eq!(r.status_field(), "OK", "{}", r.text);
    assert_eq!(r.json["session"]["userDataInJWT"], json!({"plan": "team"}));
    let new_at = r.json["accessToken"]["token"].as_str().unwrap();
    assert_ne!(new_at, at_a);
    let payload: Value =
        serde_json::from_slice(&base64_url(new_at.split('.').nth(1).unwrap())).unwrap();
    assert_eq!(payload["plan"], "team");
    let r = s
        .post(
            "/recipe/session/regenerate",
            json!({"accessToken": "x.y.z"}),
        )
        .await;
    assert_eq!(r.status_field(), "UNAUTHORISED", "{}", r.text);

    // Handles by user.
    let r = s.get("/recipe/session/user?userId=bob").await;
    let mut handles: Vec<String> =
        serde_json::from_value(r.json["sessionHandles"].clone()).unwrap();
    handles.sort();
    let mut expected = vec![handle_a.clone(), handle_b.clone()];
    expected.sort();
    assert_eq!(handles, expected);

    // Remove by handle: only real ones are listed.
    let r = s
        .post(
            "/recipe/session/remove",
            json!({"sessionHandles": [handle_c, "not-a-handle"]}),
        )
        .await;
    assert_eq!(
        r.json,
        json!({"status": "OK", "sessionHandlesRevoked": [handle_c]})
    );

    // Remove by user.
    let r = s
        .post("/recipe/session/remove", json!({"userId": "bob"}))
        .await;
    let mut revoked: Vec<String> =
        serde_json::from_value(r.json["sessionHandlesRevoked"].clone()).unwrap();
    revoked.sort();
    assert_eq!(revoked, expected);
    let r = s.get("/recipe/session/user?userId=bob").await;
    assert_eq!(r.json, json!({"status": "OK", "sessionHandles": []}));

    // Neither or both → 400.
    let r = s.post("/recipe/session/remove", json!({})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = s
        .post(
            "/recipe/session/remove",
            json!({"userId": "x", "sessionHandles": []}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    s.stop().await;
});

both_stores!(tenants, |backend: Backend| async move {
    let s = in_process::start(backend).await;
    let r = s
        .post(
            "/Acme/recipe/session",
            json!({"userId": "t", "userDataInJWT": {}, "userDataInDatabase": {},
                   "enableAntiCsrf": false}),
        )
        .await;
    assert_eq!(r.status_field(), "OK", "{}", r.text);
    assert_eq!(r.json["session"]["tenantId"], "acme");
    let handle = r.json["session"]["handle"].as_str().unwrap().to_owned();
    assert!(handle.ends_with("_acme"));
    // App-specific: readable from any tenant path.
    let info = s
        .get(&format!("/other/recipe/session?sessionHandle={handle}"))
        .await;
    assert_eq!(info.json["tenantId"], "acme", "{}", info.text);
    // Per-tenant listing.
    let r = s
        .get("/acme/recipe/session/user?userId=t&fetchAcrossAllTenants=false")
        .await;
    assert_eq!(r.json["sessionHandles"], json!([handle]));
    let r = s
        .get("/public/recipe/session/user?userId=t&fetchAcrossAllTenants=false")
        .await;
    assert_eq!(r.json["sessionHandles"], json!([]));
    // Across all tenants needs the public tenant.
    let r = s.get("/acme/recipe/session/user?userId=t").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.text,
        "Only public tenantId can call this app specific API"
    );
    let r = s
        .post(
            "/acme/recipe/session/remove",
            json!({"userId": "t", "revokeAcrossAllTenants": false}),
        )
        .await;
    assert_eq!(r.json["sessionHandlesRevoked"], json!([handle]));
    s.stop().await;
});
