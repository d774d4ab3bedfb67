//! Issue 15 over HTTP: the device extension endpoints, the `device` field of create, and the
//! per-app lifetime and cap settings, on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera_testkit::in_process::TestServer;
use tessera_testkit::{both_stores, in_process, Backend, Place};

const CHROME_LINUX: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like \
                            Gecko) Chrome/120.0.0.0 Safari/537.36";
const FIREFOX_MAC: &str =
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:121.0) Gecko/20100101 Firefox/121.0";

async fn sign_in(s: &TestServer, user: &str, device: Value) -> in_process::Reply {
    let r = s
        .post(
            "/public/recipe/session",
            json!({
                "userId": user,
                "userDataInJWT": {},
                "userDataInDatabase": {},
                "enableAntiCsrf": false,
                "useDynamicSigningKey": true,
                "device": device,
            }),
        )
        .await;
    r
}

fn handle(r: &in_process::Reply) -> String {
    r.json["session"]["handle"].as_str().unwrap().to_owned()
}

async fn verify_db(s: &TestServer, r: &in_process::Reply) -> String {
    let at = r.json["accessToken"]["token"].as_str().unwrap();
    let v = s
        .post(
            "/recipe/session/verify",
            json!({"accessToken": at, "doAntiCsrfCheck": false, "enableAntiCsrf": false,
                   "checkDatabase": true}),
        )
        .await;
    v.status_field().to_owned()
}

both_stores!(
    req_07_list_revoke_and_revoke_others,
    |backend: Backend| async move {
        let s = in_process::start(backend).await;
        let a = sign_in(
            &s,
            "alice",
            json!({"userAgent": CHROME_LINUX, "ip": "198.51.100.4"}),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        // The create body is the CDI one: no extra fields.
        let keys: Vec<&str> = a
            .json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 4, "{keys:?}");
        let b = sign_in(&s, "alice", json!({"userAgent": FIREFOX_MAC})).await;
        let plain = s.create("alice").await; // no device field: CDI create unchanged
        let bob = sign_in(&s, "bob", json!({"userAgent": CHROME_LINUX})).await;
        let (ha, hb, hp) = (handle(&a), handle(&b), handle(&plain));

        let listed = s
            .get(&format!(
                "/recipe/session/devices?userId=alice&currentSessionHandle={ha}"
            ))
            .await;
        assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
        let devices = listed.json["devices"].as_array().unwrap();
        assert_eq!(devices.len(), 3);
        let of = |h: &str| devices.iter().find(|d| d["handle"] == h).unwrap().clone();
        assert_eq!(of(&ha)["label"], "Chrome on Linux");
        assert_eq!(of(&ha)["ip"], "198.51.100.4");
        assert_eq!(of(&ha)["current"], true);
        assert_eq!(of(&hb)["label"], "Firefox on Mac OSX");
        assert_eq!(of(&hb)["current"], false);
        assert_eq!(of(&hp)["label"], "Unknown device");
        assert_eq!(of(&hp)["userAgent"], Value::Null);
        assert!(of(&ha)["lastActiveAt"].as_u64().unwrap() > 1_600_000_000_000);
        assert_eq!(listed.json["nextOffset"], Value::Null);

        let page = s.get("/recipe/session/devices?userId=alice&limit=2").await;
        assert_eq!(page.json["devices"].as_array().unwrap().len(), 2);
        assert_eq!(page.json["nextOffset"], 2);
        for bad in ["limit=0", "limit=101", "limit=x", "offset=-1"] {
            let r = s
                .get(&format!("/recipe/session/devices?userId=alice&{bad}"))
                .await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
        }
        let r = s.get("/recipe/session/devices").await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);

        // Another user's handle: NOT_FOUND, and the session lives on.
        let r = s
            .post(
                "/recipe/session/devices/revoke",
                json!({"userId": "bob", "sessionHandle": ha}),
            )
            .await;
        assert_eq!(r.status_field(), "NOT_FOUND", "{}", r.text);
        assert_eq!(verify_db(&s, &a).await, "OK");
        let r = s
            .post(
                "/recipe/session/devices/revoke",
                json!({"userId": "alice", "sessionHandle": hp}),
            )
            .await;
        assert_eq!(r.status_field(), "OK", "{}", r.text);
        assert_eq!(verify_db(&s, &plain).await, "UNAUTHORISED");

        // Sign out everywhere else.
        let r = s
            .post(
                "/recipe/session/devices/revoke-others",
                json!({"sessionHandle": ha}),
            )
            .await;
        assert_eq!(r.status_field(), "OK", "{}", r.text);
        assert_eq!(r.json["sessionHandlesRevoked"], json!([hb]));
        assert_eq!(verify_db(&s, &a).await, "OK");
        assert_eq!(verify_db(&s, &b).await, "UNAUTHORISED");
        assert_eq!(verify_db(&s, &bob).await, "OK");
        let r = s
            .post(
                "/recipe/session/devices/revoke-others",
                json!({"sessionHandle": "nope"}),
            )
            .await;
        assert_eq!(r.status_field(), "UNAUTHORISED", "{}", r.text);
        s.stop().await;
    }
);

both_stores!(bad_device_input_is_a_400, |backend: Backend| async move {
    let s = in_process::start(backend).await;
    for device in [
        json!({"ip": "not-an-ip"}),
        json!({"userAgent": 5}),
        json!("x"),
    ] {
        let r = sign_in(&s, "alice", device.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{device}: {}", r.text);
    }
    let r = s
        .post("/recipe/session/devices/revoke", json!({"userId": "a"}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = s
        .post(
            "/recipe/session/devices/revoke",
            json!({"userId": "a", "sessionHandle": "a\u{0}"}),
        )
        .await;
    assert_eq!(r.status_field(), "NOT_FOUND", "{}", r.text);
    let r = s.get("/recipe/session/devices/revoke").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    s.stop().await;
});

both_stores!(cap_setting_refuses_sign_in, |backend: Backend| async move {
    let mut config = in_process::config();
    config.app.devices.max_sessions_per_user = Some(1);
    config.app.devices.over_cap = tessera::OverCap::RefuseSignIn;
    let s = in_process::start_with(Place::fresh(backend), config).await;
    let first = sign_in(&s, "alice", json!({})).await;
    assert_eq!(first.status_field(), "OK");
    let second = sign_in(&s, "alice", json!({})).await;
    assert_eq!(second.status, StatusCode::BAD_REQUEST, "{}", second.text);
    assert!(
        second.text.contains("maximum number of sessions"),
        "{}",
        second.text
    );
    s.stop().await;
});

#[test]
fn app_settings_parse_the_device_keys() {
    use std::collections::BTreeMap;
    let base = tessera_server::config::AppSettings::default();
    let set = |pairs: &[(&str, &str)]| {
        let overrides: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        tessera_server::config::apply_app_settings(&base, &overrides, false)
    };
    let s = set(&[
        ("session_idle_timeout", "1800"),
        ("session_absolute_lifetime", "86400"),
        ("session_last_active_update_interval", "60"),
        ("max_sessions_per_user", "5"),
        ("session_cap_policy", "refuse_sign_in"),
        ("session_sign_in_time_claim", "true"),
    ])
    .unwrap();
    assert_eq!(s.devices.idle_timeout_ms, Some(1_800_000));
    assert_eq!(s.devices.absolute_lifetime_ms, Some(86_400_000));
    assert_eq!(s.devices.last_active_interval_ms, 60_000);
    assert_eq!(s.devices.max_sessions_per_user, Some(5));
    assert_eq!(s.devices.over_cap, tessera::OverCap::RefuseSignIn);
    assert!(s.devices.sign_in_time_claim);
    assert_eq!(
        set(&[("session_idle_timeout", "0")]).unwrap().devices,
        Default::default()
    );
    for (k, v) in [
        ("session_idle_timeout", "-1"),
        ("max_sessions_per_user", "x"),
        ("session_cap_policy", "drop"),
        ("session_sign_in_time_claim", "yes"),
    ] {
        assert!(set(&[(k, v)]).is_err(), "{k}={v}");
    }
    // An idle timeout not longer than the last-active interval would end active sessions.
    assert!(set(&[
        ("session_idle_timeout", "60"),
        ("session_last_active_update_interval", "60")
    ])
    .is_err());
}
