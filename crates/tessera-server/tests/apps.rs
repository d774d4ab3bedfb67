//! Apps: `PUT /recipe/multitenancy/app/v2` with per-app core config, the `appid-…` prefix,
//! persistence across restarts, and two instances on one database.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use reqwest::StatusCode;
use serde_json::json;
use tessera_testkit::{both_stores, in_process, Backend, Place};

both_stores!(app_creation_and_isolation, |backend: Backend| async move {
    let s = in_process::start(backend).await;
    let r = s
        .put(
            "/recipe/multitenancy/app/v2",
            json!({"appId": "Test-App", "coreConfig": {"access_token_validity": 2,
                   "refresh_token_validity": 1, "some_other_setting": true}}),
        )
        .await;
    assert_eq!(
        r.json,
        json!({"status": "OK", "createdNew": true}),
        "{}",
        r.text
    );
    let r = s
        .put(
            "/recipe/multitenancy/app/v2",
            json!({"appId": "test-app", "coreConfig": {"access_token_validity": 3}}),
        )
        .await;
    assert_eq!(
        r.json,
        json!({"status": "OK", "createdNew": false}),
        "{}",
        r.text
    );

    let created = s
        .post(
            "/appid-test-app/public/recipe/session",
            json!({"userId": "u", "userDataInJWT": {}, "userDataInDatabase": {},
                   "enableAntiCsrf": false}),
        )
        .await;
    assert_eq!(created.status_field(), "OK", "{}", created.text);
    let at = &created.json["accessToken"];
    assert_eq!(
        at["expiry"].as_u64().unwrap() - at["createdTime"].as_u64().unwrap(),
        3000,
        "the app's access_token_validity"
    );
    let rt = &created.json["refreshToken"];
    assert_eq!(
        rt["expiry"].as_u64().unwrap() - rt["createdTime"].as_u64().unwrap(),
        60_000
    );
    let handle = created.json["session"]["handle"]
        .as_str()
        .unwrap()
        .to_owned();
    // Not visible from the public app.
    let r = s
        .get(&format!("/recipe/session?sessionHandle={handle}"))
        .await;
    assert_eq!(r.status_field(), "UNAUTHORISED");
    let r = s
        .get(&format!(
            "/appid-test-app/recipe/session?sessionHandle={handle}"
        ))
        .await;
    assert_eq!(r.status_field(), "OK", "{}", r.text);
    // The app has its own keys.
    let public = s.get("/.well-known/jwks.json").await;
    let own = s.get("/appid-test-app/.well-known/jwks.json").await;
    // One dynamic and one static key; the anonymous (`a-`) key apart (SEC2-L3), its own too.
    assert_eq!(own.json["keys"].as_array().unwrap().len(), 2);
    assert_ne!(public.json["keys"], own.json["keys"]);
    let public = s.get("/.well-known/anonymous-jwks.json").await;
    let own = s
        .get("/appid-test-app/.well-known/anonymous-jwks.json")
        .await;
    assert_eq!(
        own.json["keys"].as_array().unwrap().len(),
        1,
        "{}",
        own.text
    );
    assert_ne!(public.json["keys"], own.json["keys"]);

    // Unknown app → 400.
    let r = s.get("/appid-nope/recipe/session?sessionHandle=x").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.text.starts_with("AppId or tenantId not found"),
        "{}",
        r.text
    );
    // Bad config → 400 naming the setting; bad app id → 400.
    let r = s
        .put(
            "/recipe/multitenancy/app/v2",
            json!({"appId": "x2", "coreConfig": {"access_token_validity": "soon"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text.contains("access_token_validity"), "{}", r.text);
    let r = s
        .put("/recipe/multitenancy/app/v2", json!({"appId": "a_b"}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Only the public app creates apps.
    let r = s
        .put(
            "/appid-test-app/recipe/multitenancy/app/v2",
            json!({"appId": "zz"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // A restart on the same store knows the app and its settings.
    let place = s.place.clone();
    s.stop().await;
    let s = in_process::start_with(place, in_process::config()).await;
    let r = s
        .post(
            "/appid-test-app/recipe/session",
            json!({"userId": "u2", "userDataInJWT": {}, "userDataInDatabase": {},
                   "enableAntiCsrf": false}),
        )
        .await;
    assert_eq!(r.status_field(), "OK", "{}", r.text);
    let at = &r.json["accessToken"];
    assert_eq!(
        at["expiry"].as_u64().unwrap() - at["createdTime"].as_u64().unwrap(),
        3000
    );

    // Removal.
    let r = s
        .post(
            "/recipe/multitenancy/app/remove",
            json!({"appId": "test-app"}),
        )
        .await;
    assert_eq!(
        r.json,
        json!({"status": "OK", "didExist": true}),
        "{}",
        r.text
    );
    let r = s
        .get("/appid-test-app/recipe/session?sessionHandle=x")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = s
        .post(
            "/recipe/multitenancy/app/remove",
            json!({"appId": "test-app"}),
        )
        .await;
    assert_eq!(r.json, json!({"status": "OK", "didExist": false}));
    let r = s
        .post(
            "/recipe/multitenancy/app/remove",
            json!({"appId": "public"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    s.stop().await;
});

both_stores!(two_instances_behave_as_one, |backend: Backend| async move {
    let place = Place::fresh(backend);
    let a = in_process::start_with(place.clone(), in_process::config()).await;
    let b = in_process::start_with(place, in_process::config()).await;
    let ja = a.get("/.well-known/jwks.json").await;
    let jb = b.get("/.well-known/jwks.json").await;
    assert_eq!(ja.json, jb.json);

    let created = a.create("multi").await;
    let rt = created.json["refreshToken"]["token"].as_str().unwrap();
    let at = created.json["accessToken"]["token"].as_str().unwrap();
    let v = b
        .post(
            "/recipe/session/verify",
            json!({"accessToken": at, "doAntiCsrfCheck": false, "enableAntiCsrf": false,
                   "checkDatabase": true}),
        )
        .await;
    assert_eq!(v.status_field(), "OK", "{}", v.text);
    let r = b
        .post(
            "/recipe/session/refresh",
            json!({"refreshToken": rt, "enableAntiCsrf": false, "useDynamicSigningKey": true}),
        )
        .await;
    assert_eq!(r.status_field(), "OK", "{}", r.text);

    // An app created on A is usable on B.
    let r = a
        .put("/recipe/multitenancy/app/v2", json!({"appId": "shared"}))
        .await;
    assert_eq!(r.json["createdNew"], true);
    let r = b
        .post(
            "/appid-shared/recipe/session",
            json!({"userId": "s", "userDataInJWT": {}, "userDataInDatabase": {},
                   "enableAntiCsrf": false}),
        )
        .await;
    assert_eq!(r.status_field(), "OK", "{}", r.text);

    // Config changes and removal on A reach B within its re-check interval.
    let r = a
        .put(
            "/recipe/multitenancy/app/v2",
            json!({"appId": "shared", "coreConfig": {"access_token_validity": 7}}),
        )
        .await;
    assert_eq!(r.json["createdNew"], false);
    tokio::time::sleep(std::time::Duration::from_millis(5_500)).await;
    let r = b
        .post(
            "/appid-shared/recipe/session",
            json!({"userId": "s", "userDataInJWT": {}, "userDataInDatabase": {},
                   "enableAntiCsrf": false}),
        )
        .await;
    let at = &r.json["accessToken"];
    assert_eq!(
        at["expiry"].as_u64().unwrap() - at["createdTime"].as_u64().unwrap(),
        7000
    );
    let r = a
        .post(
            "/recipe/multitenancy/app/remove",
            json!({"appId": "shared"}),
        )
        .await;
    assert_eq!(r.json["didExist"], true);
    tokio::time::sleep(std::time::Duration::from_millis(5_500)).await;
    let r = b.get("/appid-shared/recipe/session?sessionHandle=x").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    a.stop().await;
    b.stop().await;
});
