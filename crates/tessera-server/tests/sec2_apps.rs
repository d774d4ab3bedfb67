//! Security round 2 (issue 11), SEC2-M2: removing an app removes what it owns. Over HTTP on a
//! real server, on SQLite and PostgreSQL, with a second instance on the same database.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use serde_json::{json, Value};
use tessera_testkit::{both_stores, in_process, Backend, Place};

fn session_body(user: &str) -> Value {
    json!({"userId": user, "userDataInJWT": {}, "userDataInDatabase": {},
           "enableAntiCsrf": false, "useDynamicSigningKey": true})
}

// SEC2-M2: create app `x` and a session in it; remove `x`; re-create `x`. The old access token
// no longer verifies (with or without the database), the old refresh token does not refresh,
// the user's handles are not listed, and the store holds no row of the old app — on the
// instance that removed it and on a second instance that had the old app loaded.
both_stores!(
    sec2_m2_removed_app_leaves_nothing_behind,
    |backend: Backend| async move {
        let place = Place::fresh(backend);
        let s = in_process::start_with(place.clone(), in_process::config()).await;
        let other = in_process::start_with(place.clone(), in_process::config()).await;
        let r = s
            .put("/recipe/multitenancy/app/v2", json!({"appId": "x"}))
            .await;
        assert_eq!(r.json["createdNew"], true, "{}", r.text);
        let created = s
            .post("/appid-x/public/recipe/session", session_body("u1"))
            .await;
        assert_eq!(created.status_field(), "OK", "{}", created.text);
        let at = created.json["accessToken"]["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let rt = created.json["refreshToken"]["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let handle = created.json["session"]["handle"]
            .as_str()
            .unwrap()
            .to_owned();
        // The second instance has app x loaded, with its keys in memory.
        let v = other
            .post(
                "/appid-x/public/recipe/session/verify",
                json!({"accessToken": at, "doAntiCsrfCheck": false, "enableAntiCsrf": false,
                   "checkDatabase": false}),
            )
            .await;
        assert_eq!(v.status_field(), "OK", "{}", v.text);

        s.create("public-user").await;
        let store = place.open().await;
        let master_key = |store: std::sync::Arc<dyn tessera::Store>| async move {
            store
                .get_or_insert_key_value("x", "refresh_token_key", "unused", 0)
                .await
                .unwrap()
        };
        let old_master = master_key(std::sync::Arc::clone(&store)).await;
        assert_ne!(old_master, "unused");

        let r = s
            .post("/recipe/multitenancy/app/remove", json!({"appId": "x"}))
            .await;
        assert_eq!(r.json["didExist"], true, "{}", r.text);
        assert_eq!(
            store.count_sessions("x").await.unwrap(),
            0,
            "sessions deleted"
        );
        assert!(
            store.static_keys("x").await.unwrap().is_empty(),
            "static keys deleted"
        );
        assert!(
            store.dynamic_keys("x", 0).await.unwrap().is_empty(),
            "dynamic keys deleted"
        );
        assert_eq!(
            store.count_sessions("public").await.unwrap(),
            1,
            "the public app's session stays"
        );

        let r = s
            .put("/recipe/multitenancy/app/v2", json!({"appId": "x"}))
            .await;
        assert_eq!(r.json["createdNew"], true, "re-created: {}", r.text);
        let new_master = master_key(std::sync::Arc::clone(&store)).await;
        assert_ne!(new_master, old_master, "a new refresh-token master key");
        assert_ne!(new_master, "unused");
        // Past the other instance's re-check interval.
        tokio::time::sleep(std::time::Duration::from_millis(5_500)).await;

        for server in [&s, &other] {
            for check_database in [false, true] {
                let v = server
                    .post(
                        "/appid-x/public/recipe/session/verify",
                        json!({"accessToken": at, "doAntiCsrfCheck": false, "enableAntiCsrf": false,
                           "checkDatabase": check_database}),
                    )
                    .await;
                assert_ne!(
                    v.status_field(),
                    "OK",
                    "old access token verifies: {}",
                    v.text
                );
                assert!(
                    ["TRY_REFRESH_TOKEN", "UNAUTHORISED"].contains(&v.status_field()),
                    "{}",
                    v.text
                );
            }
            let r = server
                .post(
                    "/appid-x/public/recipe/session/refresh",
                    json!({"refreshToken": rt, "enableAntiCsrf": false, "useDynamicSigningKey": true}),
                )
                .await;
            assert_eq!(
                r.status_field(),
                "UNAUTHORISED",
                "old refresh token: {}",
                r.text
            );
            let r = server
                .get("/appid-x/public/recipe/session/user?userId=u1")
                .await;
            assert_eq!(r.json["sessionHandles"], json!([]), "{}", r.text);
            let r = server
                .get(&format!(
                    "/appid-x/public/recipe/session?sessionHandle={handle}"
                ))
                .await;
            assert_eq!(r.status_field(), "UNAUTHORISED", "{}", r.text);
        }
        // The new app works, on both instances.
        let created = other
            .post("/appid-x/public/recipe/session", session_body("u2"))
            .await;
        assert_eq!(created.status_field(), "OK", "{}", created.text);
        let at2 = created.json["accessToken"]["token"].as_str().unwrap();
        let v = s
            .post(
                "/appid-x/public/recipe/session/verify",
                json!({"accessToken": at2, "doAntiCsrfCheck": false, "enableAntiCsrf": false,
                   "checkDatabase": true}),
            )
            .await;
        assert_eq!(v.status_field(), "OK", "{}", v.text);
        s.stop().await;
        other.stop().await;
    }
);
