#![allow(clippy::unwrap_used, clippy::expect_used)] // test code
//! The audit trail of `tessera serve` (issue 13), on SQLite and PostgreSQL: a record for every
//! security event kind with its fields (client IP included), the store's filters, retention
//! that deletes only old rows in batches, the admin page's CSRF rules, and a full trace-level
//! run whose log holds no token, key, API key, admin key or admin session secret.

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera::{AuditQuery, AuditRow, KeyKind, SigningKey, Store};
use tessera_testkit::in_process::TestServer;
use tessera_testkit::{
    binary, both_stores, fresh_schema, in_process, postgres_url, skip_postgres, Backend, Place,
};

const ADMIN_KEY: &str = "admin-key-for-audit-tests-0123456789";

fn audit_config() -> tessera_server::config::ServerConfig {
    let mut config = in_process::config();
    config.audit_retention_days = Some(30);
    config.admin_key = Some(ADMIN_KEY.into());
    config
}

fn now_ms() -> u64 {
    tessera_server::audit::now_ms()
}

/// Polls the store until a record of `kind` matching `pred` is there (the writer is a task).
async fn wait_for(
    store: &Arc<dyn Store>,
    kind: &str,
    pred: impl Fn(&AuditRow) -> bool,
) -> AuditRow {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = store
            .audit_events(&AuditQuery {
                kind: Some(kind.into()),
                limit: 1000,
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        if let Some(row) = rows.into_iter().find(|r| pred(r)) {
            return row;
        }
        assert!(Instant::now() < deadline, "no {kind} record appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn detail(row: &AuditRow) -> Value {
    serde_json::from_str(&row.detail).unwrap()
}

/// Signs in to the admin page as a script would (no `Origin`): `(cookie header, csrf)`.
async fn admin_sign_in(server: &in_process::TestServer) -> (String, String) {
    let root = server.base.clone();
    let r = server
        .client
        .post(format!("{root}/dashboard/api/sign-in"))
        .header("content-type", "application/json")
        .body(json!({ "key": ADMIN_KEY }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    assert!(set_cookie.contains("Path=/dashboard"), "{set_cookie}");
    assert!(!set_cookie.contains(ADMIN_KEY), "{set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    (cookie, body["csrf"].as_str().unwrap().to_owned())
}

async fn session_alive(server: &in_process::TestServer, handle: &str) -> bool {
    let r = server
        .get(&format!("/public/recipe/session?sessionHandle={handle}"))
        .await;
    r.status_field() == "OK"
}

/// `POST /dashboard/api/revoke` of the admin page with `headers` and a JSON `body`.
async fn dashboard_revoke(
    server: &TestServer,
    headers: &[(&str, &str)],
    body: String,
) -> reqwest::Response {
    let mut request = server
        .client
        .post(format!("{}/dashboard/api/revoke", server.base))
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(body).send().await.unwrap()
}

both_stores!(
    every_security_event_becomes_a_record,
    |backend| async move {
        let server = in_process::start_with(Place::fresh(backend), audit_config()).await;
        let store = server.place.open().await;
        let localhost = Some("127.0.0.1".to_owned());

        // Key created at start (no request: no client IP).
        let key = wait_for(&store, "key_created", |r| {
            r.app_id.as_deref() == Some("public")
        })
        .await;
        assert!(detail(&key)["kid"].as_str().unwrap().starts_with("d-"));
        assert_eq!(key.client_ip, None);

        // Session created.
        let created = server.create("audit-alice").await;
        let handle = created.json["session"]["handle"]
            .as_str()
            .unwrap()
            .to_owned();
        let rt1 = created.json["refreshToken"]["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let row = wait_for(&store, "session_created", |r| {
            r.session_handle.as_deref() == Some(handle.as_str())
        })
        .await;
        assert_eq!(row.user_id.as_deref(), Some("audit-alice"));
        assert_eq!(row.app_id.as_deref(), Some("public"));
        assert_eq!(row.client_ip, localhost);
        assert_eq!(detail(&row)["tenant_id"], "public");

        let refresh = |rt: String| {
            let server = &server;
            async move {
                server
                    .post(
                        "/public/recipe/session/refresh",
                        json!({"refreshToken": rt, "enableAntiCsrf": false,
                           "useDynamicSigningKey": true}),
                    )
                    .await
            }
        };
        // Theft: RT1 → RT2, RT2 → RT3 (RT2 promoted), then RT1 again (grace 0).
        let r2 = refresh(rt1.clone()).await;
        assert_eq!(r2.status_field(), "OK", "{}", r2.text);
        let rt2 = r2.json["refreshToken"]["token"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(refresh(rt2).await.status_field(), "OK");
        assert_eq!(
            refresh(rt1.clone()).await.status_field(),
            "TOKEN_THEFT_DETECTED"
        );
        let theft = wait_for(&store, "theft_detected", |r| {
            r.session_handle.as_deref() == Some(handle.as_str())
        })
        .await;
        assert_eq!(theft.user_id.as_deref(), Some("audit-alice"));
        assert_eq!(theft.client_ip, localhost);
        assert!(detail(&theft)["reason"].is_string());
        let revoked = wait_for(&store, "session_revoked", |r| {
            r.session_handle.as_deref() == Some(handle.as_str())
        })
        .await;
        assert_eq!(detail(&revoked)["cause"], "theft");
        assert_eq!(revoked.client_ip, localhost);

        // Revoked on request.
        let second = server.create("audit-bob").await;
        let h2 = second.json["session"]["handle"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = server
            .post(
                "/public/recipe/session/remove",
                json!({"sessionHandles": [h2]}),
            )
            .await;
        assert_eq!(r.status_field(), "OK", "{}", r.text);
        let row = wait_for(&store, "session_revoked", |r| {
            r.session_handle.as_deref() == Some(h2.as_str())
        })
        .await;
        assert_eq!(detail(&row)["cause"], "requested");
        assert_eq!(
            row.user_id.as_deref(),
            Some("audit-bob"),
            "a revocation by handle still names whose session it was"
        );

        // App created and removed.
        let r = server
            .put("/recipe/multitenancy/app/v2", json!({"appId": "audit-app"}))
            .await;
        assert_eq!(r.json["createdNew"], true, "{}", r.text);
        let row = wait_for(&store, "app_created", |r| {
            r.app_id.as_deref() == Some("audit-app")
        })
        .await;
        assert_eq!(row.client_ip, localhost);
        wait_for(&store, "key_created", |r| {
            r.app_id.as_deref() == Some("audit-app")
        })
        .await;
        let r = server
            .post(
                "/recipe/multitenancy/app/remove",
                json!({"appId": "audit-app"}),
            )
            .await;
        assert_eq!(r.json["didExist"], true, "{}", r.text);
        wait_for(&store, "app_removed", |r| {
            r.app_id.as_deref() == Some("audit-app")
        })
        .await;

        // Admin page: a wrong key is refused and recorded; a right one signs in.
        let root = server.base.clone();
        let r = server
            .client
            .post(format!("{root}/dashboard/api/sign-in"))
            .header("content-type", "application/json")
            .body(json!({"key": "not-the-admin-key-000000000"}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(r.text().await.unwrap().contains("Wrong admin key"));
        let row = wait_for(&store, "admin_sign_in_refused", |_| true).await;
        assert_eq!(row.client_ip, localhost);
        assert!(!row.detail.contains("not-the-admin-key"), "{}", row.detail);
        let (cookie, csrf) = admin_sign_in(&server).await;
        wait_for(&store, "admin_sign_in", |_| true).await;

        // A cross-origin write, and one without the CSRF token, change nothing.
        let third = server.create("audit-carol").await;
        let h3 = third.json["session"]["handle"].as_str().unwrap().to_owned();
        let body = json!({"app": "public", "handles": [h3]}).to_string();
        let cross = dashboard_revoke(
            &server,
            &[
                ("cookie", &cookie),
                ("x-tessera-csrf", &csrf),
                ("origin", "http://127.0.0.1:1"),
                ("sec-fetch-site", "same-site"),
            ],
            body.clone(),
        )
        .await;
        assert_eq!(cross.status(), StatusCode::FORBIDDEN);
        let no_token = dashboard_revoke(&server, &[("cookie", &cookie)], body.clone()).await;
        assert_eq!(no_token.status(), StatusCode::FORBIDDEN);
        let no_cookie = dashboard_revoke(&server, &[("x-tessera-csrf", &csrf)], body.clone()).await;
        assert_eq!(no_cookie.status(), StatusCode::UNAUTHORIZED);
        assert!(session_alive(&server, &h3).await);

        // Admin revoke.
        let admin = [
            ("cookie", cookie.as_str()),
            ("x-tessera-csrf", csrf.as_str()),
        ];
        let r = dashboard_revoke(
            &server,
            &admin,
            json!({"app": "public", "user": "audit-carol", "handles": [h3]}).to_string(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(!session_alive(&server, &h3).await);
        let row = wait_for(&store, "session_revoked", |r| {
            r.session_handle.as_deref() == Some(h3.as_str())
        })
        .await;
        assert_eq!(detail(&row)["cause"], "admin");
        assert_eq!(row.client_ip, localhost);
        let row = wait_for(&store, "admin_revoke", |_| true).await;
        assert_eq!(row.user_id.as_deref(), Some("audit-carol"));
        assert_eq!(detail(&row)["handles"], json!([h3]));

        // Admin revoke of every session of a user.
        let d1 = server.create("audit-dave").await;
        let d2 = server.create("audit-dave").await;
        let r = dashboard_revoke(
            &server,
            &admin,
            json!({"user": "audit-dave", "all": true}).to_string(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        let revoked: Value = r.json().await.unwrap();
        assert_eq!(revoked["revoked"].as_array().unwrap().len(), 2, "{revoked}");
        for d in [d1, d2] {
            let h = d.json["session"]["handle"].as_str().unwrap().to_owned();
            assert!(!session_alive(&server, &h).await);
            let row = wait_for(&store, "session_revoked", |r| {
                r.session_handle.as_deref() == Some(h.as_str())
            })
            .await;
            assert_eq!(detail(&row)["cause"], "admin");
        }
        wait_for(&store, "admin_revoke", |r| {
            r.user_id.as_deref() == Some("audit-dave") && detail(r)["all"] == true
        })
        .await;

        // Filters: by user, by kind and user, by time.
        let alice = store
            .audit_events(&AuditQuery {
                user_id: Some("audit-alice".into()),
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        let kinds: Vec<&str> = alice.iter().map(|r| r.kind.as_str()).collect();
        assert!(kinds.contains(&"session_created") && kinds.contains(&"theft_detected"));
        assert!(
            alice.windows(2).all(|w| w[0].at_ms >= w[1].at_ms),
            "newest first"
        );
        let future = store
            .audit_events(&AuditQuery {
                since_ms: Some(now_ms() + 60_000),
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        assert!(future.is_empty());
        let one = store
            .audit_events(&AuditQuery {
                limit: 1,
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(one.len(), 1);

        // The admin page lists the same records from the store.
        let events: Value = server
            .client
            .get(format!("{root}/dashboard/api/events?kind=theft_detected"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(events["source"], "store");
        assert_eq!(events["records"][0]["session_handle"], handle.as_str());
        assert_eq!(events["records"][0]["client_ip"], "127.0.0.1");
        server.stop().await;
    }
);

both_stores!(retention_deletes_only_old_records, |backend| async move {
    let place = Place::fresh(backend);
    let store = place.open().await;
    let now = now_ms();
    let row = |at_ms: u64, user: &str| AuditRow {
        id: 0,
        at_ms,
        app_id: Some("public".into()),
        kind: "session_created".into(),
        user_id: Some(user.into()),
        session_handle: None,
        client_ip: None,
        detail: "{}".into(),
    };
    // More old rows than one clean-up statement deletes (CLEANUP_BATCH).
    let old: Vec<AuditRow> = (0..2_500)
        .map(|i| row(now - 40 * 86_400_000 + i, "old"))
        .collect();
    store.insert_audit_events(&old).await.unwrap();
    let fresh: Vec<AuditRow> = (0..3)
        .map(|i| row(now - 29 * 86_400_000 + i, "fresh"))
        .collect();
    store.insert_audit_events(&fresh).await.unwrap();
    // One statement deletes at most `limit` rows.
    let first = store
        .delete_audit_events_before(now - 30 * 86_400_000, 100)
        .await
        .unwrap();
    assert_eq!(first, 100);

    // The server's retention task (30 days) removes the rest at start, in batches.
    let server = in_process::start_with(place, audit_config()).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let old_left = store
            .audit_events(&AuditQuery {
                user_id: Some("old".into()),
                limit: 10,
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        if old_left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "old records were not removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fresh_left = store
        .audit_events(&AuditQuery {
            user_id: Some("fresh".into()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(fresh_left.len(), 3);
    // And the library function reports what it removed.
    store
        .insert_audit_events(&[row(now - 31 * 86_400_000, "old")])
        .await
        .unwrap();
    let removed =
        tessera_server::audit::delete_records_before(store.as_ref(), now - 30 * 86_400_000)
            .await
            .unwrap();
    assert_eq!(removed, 1);
    server.stop().await;
});

/// Without `audit_retention_days` nothing is written to the table, and the admin page lists
/// the in-memory records instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_retention_records_stay_in_memory() {
    let mut config = audit_config();
    config.audit_retention_days = None;
    let server = in_process::start_with(Place::fresh(Backend::Sqlite), config).await;
    let store = server.place.open().await;
    server.create("memory-user").await;
    let (cookie, _) = admin_sign_in(&server).await;
    let events: Value = server
        .client
        .get(format!(
            "{}/dashboard/api/events?user=memory-user",
            server.base
        ))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(events["source"], "memory");
    assert_eq!(events["records"][0]["kind"], "session_created");
    let stored = store.audit_events(&AuditQuery::default()).await.unwrap();
    assert!(stored.is_empty(), "{stored:?}");
    // Without an admin key there is no admin page.
    let off = in_process::start_with(Place::fresh(Backend::Sqlite), in_process::config()).await;
    let r = off
        .client
        .get(format!("{}/dashboard", off.base))
        .send()
        .await
        .unwrap();
    // (`/dashboard` then reads as a tenant prefix of the core API: its hello, not the page.)
    assert!(!r.text().await.unwrap().contains("Tessera admin"));
    let r = off
        .client
        .post(format!("{}/dashboard/api/sign-in", off.base))
        .header("content-type", "application/json")
        .body(json!({ "key": ADMIN_KEY }).to_string())
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("set-cookie").is_none());
    assert_ne!(r.status(), StatusCode::OK);
    off.stop().await;
    server.stop().await;
}

// ---- The trace-level run: nothing secret in the whole log. ----

const API_KEY: &str = "api-key-for-the-leak-test-0123456789";

struct Caller {
    client: reqwest::Client,
    base: String,
    seen: Vec<String>,
}

impl Caller {
    /// A core API call with the API key; every token-like string in the answer is remembered.
    async fn call(&mut self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("cdi-version", "5.4")
            .header("api-key", API_KEY);
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let r = req.send().await.unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        let v: Value = r.json().await.unwrap();
        for field in [
            "accessToken",
            "refreshToken",
            "antiCsrfToken",
            "idRefreshToken",
        ] {
            if let Some(t) = v[field]["token"].as_str().or(v[field].as_str()) {
                self.seen.push(t.to_owned());
            }
        }
        for field in ["jwt", "token"] {
            if let Some(t) = v[field].as_str() {
                self.seen.push(t.to_owned());
            }
        }
        v
    }
}

/// Every piece of `secret` at least `window` long (or the whole of a shorter one).
fn pieces(secret: &str, window: usize) -> Vec<String> {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() <= window {
        return vec![secret.to_owned()];
    }
    chars
        .windows(window)
        .step_by(window / 2)
        .map(|w| w.iter().collect())
        .collect()
}

async fn trace_run_leaks_nothing(storage: Place) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("tessera.log");
    let stored_static = SigningKey::generate("s-leak".into(), KeyKind::Static, 0, u64::MAX)
        .unwrap()
        .to_stored()
        .unwrap();
    let der = stored_static.split('|').nth(1).unwrap().to_owned();
    let pem_path = dir.path().join("static.pem");
    let body: Vec<String> = der
        .as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    std::fs::write(
        &pem_path,
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            body.join("\n")
        ),
    )
    .unwrap();
    let pem_arg = pem_path.display().to_string();
    let spawned = binary::spawn_with_env(
        &storage,
        &[
            "--api-keys",
            API_KEY,
            "--audit-retention-days",
            "7",
            "--refresh-token-rotation-grace-period",
            "0",
            "--static-signing-key-file",
            &pem_arg,
        ],
        &[("TESSERA_LOG", "trace"), ("TESSERA_ADMIN_KEY", ADMIN_KEY)],
        &log,
    );
    let server = tokio::task::spawn_blocking(move || spawned.ready())
        .await
        .unwrap();
    let mut c = Caller {
        client: binary::client(),
        base: server.base.clone(),
        seen: Vec::new(),
    };
    use reqwest::Method;
    let create = |user: &str, dynamic: bool, csrf: bool| {
        json!({"userId": user, "userDataInJWT": {"role": "r"}, "userDataInDatabase": {},
               "enableAntiCsrf": csrf, "useDynamicSigningKey": dynamic})
    };
    let a = c
        .call(
            Method::POST,
            "/recipe/session",
            Some(create("leak-a", true, true)),
        )
        .await;
    let b = c
        .call(
            Method::POST,
            "/recipe/session",
            Some(create("leak-b", false, false)),
        )
        .await;
    let at = a["accessToken"]["token"].as_str().unwrap().to_owned();
    let anti_csrf = a["antiCsrfToken"].as_str().unwrap_or_default().to_owned();
    c.call(
        Method::POST,
        "/recipe/session/verify",
        Some(
            json!({"accessToken": at, "antiCsrfToken": anti_csrf, "doAntiCsrfCheck": true,
                    "enableAntiCsrf": true, "checkDatabase": true}),
        ),
    )
    .await;
    let rt1 = a["refreshToken"]["token"].as_str().unwrap().to_owned();
    let refresh = json!({"refreshToken": rt1, "antiCsrfToken": anti_csrf, "enableAntiCsrf": true,
                         "useDynamicSigningKey": true});
    let r = c
        .call(
            Method::POST,
            "/recipe/session/refresh",
            Some(refresh.clone()),
        )
        .await;
    assert_eq!(r["status"], "OK", "{r}");
    // RT1 → RT2, RT2 → RT3 (RT2 promoted), then RT1 again: theft (grace 0).
    let rt2 = r["refreshToken"]["token"].as_str().unwrap().to_owned();
    let anti2 = r["antiCsrfToken"].as_str().unwrap_or(&anti_csrf).to_owned();
    c.call(
        Method::POST,
        "/recipe/session/refresh",
        Some(
            json!({"refreshToken": rt2, "antiCsrfToken": anti2, "enableAntiCsrf": true,
                    "useDynamicSigningKey": true}),
        ),
    )
    .await;
    let theft = c
        .call(Method::POST, "/recipe/session/refresh", Some(refresh))
        .await;
    assert_eq!(theft["status"], "TOKEN_THEFT_DETECTED", "{theft}");
    let hb = b["session"]["handle"].as_str().unwrap().to_owned();
    let bt = b["accessToken"]["token"].as_str().unwrap().to_owned();
    c.call(
        Method::POST,
        "/recipe/session/regenerate",
        Some(json!({"accessToken": bt, "userDataInJWT": {"x": 1}})),
    )
    .await;
    c.call(
        Method::POST,
        "/recipe/jwt",
        Some(
            json!({"payload": {"a": 1}, "algorithm": "RS256", "jwksDomain": "http://x",
                    "validity": 60, "useStaticSigningKey": false}),
        ),
    )
    .await;
    c.call(
        Method::POST,
        "/recipe/session/remove",
        Some(json!({"sessionHandles": [hb]})),
    )
    .await;
    // Admin page: sign in (the key and the session cookie are secrets too), read, revoke.
    let r = c
        .client
        .post(format!("{}/dashboard/api/sign-in", c.base))
        .header("content-type", "application/json")
        .body(json!({ "key": ADMIN_KEY }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let csrf = r.json::<Value>().await.unwrap()["csrf"]
        .as_str()
        .unwrap()
        .to_owned();
    c.seen.push(cookie.split_once('=').unwrap().1.to_owned());
    c.seen.push(csrf.clone());
    for path in ["keys", "events", "counters", "sessions?user=leak-a"] {
        let r = c
            .client
            .get(format!("{}/dashboard/api/{path}", c.base))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    let r = c
        .client
        .post(format!("{}/dashboard/api/revoke", c.base))
        .header("cookie", &cookie)
        .header("x-tessera-csrf", &csrf)
        .header("content-type", "application/json")
        .body(json!({"user": "leak-a", "all": true}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Key material the server holds: its dynamic keys, the refresh-token master key and the
    // anonymous key, read from the store, and the operator's static key.
    let store: Arc<dyn Store> = match &storage {
        Place::Sqlite(path) => Arc::new(tessera::SqliteStore::open(path).await.unwrap()),
        Place::Postgres { schema } => Arc::new(
            tessera::PostgresStore::connect(&postgres_url(), Some(schema))
                .await
                .unwrap(),
        ),
    };
    let mut key_material = vec![der.clone()];
    for k in store.dynamic_keys("public", 0).await.unwrap() {
        key_material.push(k.value.split('|').nth(1).unwrap().to_owned());
    }
    for name in ["refresh_token_key", "anonymous_signing_key"] {
        let v = store
            .get_or_insert_key_value("public", name, "placeholder-never-used", 0)
            .await
            .unwrap();
        key_material.push(v.split('|').next_back().unwrap().to_owned());
    }
    let rows = store
        .audit_events(&AuditQuery {
            limit: 1000,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert!(rows.iter().any(|r| r.kind == "theft_detected"));
    drop(server);
    // The whole log, and every stored record, searched the same way.
    let mut text = std::fs::read_to_string(&log).unwrap();
    for r in &rows {
        text.push_str(&format!("\n{r:?}"));
    }

    // The run really was at trace level and audited.
    // (sqlx is at `warn` unless the filter says otherwise: its statements prove the
    // `TESSERA_LOG=trace` filter took effect.)
    assert!(
        text.contains("DEBUG") && text.contains("sqlx::query"),
        "not a trace-level log"
    );
    assert!(
        text.contains("tessera::audit"),
        "no audit records in the log"
    );
    assert!(text.contains("theft_detected"), "no theft in the log");
    assert!(c.seen.len() >= 8, "{:?}", c.seen.len());

    let mut secrets: Vec<(String, String)> = vec![
        ("API key".into(), API_KEY.into()),
        ("admin key".into(), ADMIN_KEY.into()),
    ];
    for t in &c.seen {
        secrets.push(("token".into(), t.clone()));
        // A JWT's signature alone is as bad.
        if let Some(sig) = t.split('.').nth(2) {
            secrets.push(("token signature".into(), sig.to_owned()));
        }
    }
    for k in &key_material {
        for p in pieces(k, 24) {
            secrets.push(("key material".into(), p));
        }
    }
    for (what, secret) in &secrets {
        assert!(
            !secret.is_empty() && !text.contains(secret.as_str()),
            "{what} found in the trace-level log: {}",
            &secret[..secret.len().min(12)]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_level_run_logs_no_secret_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leak.db");
    trace_run_leaks_nothing(Place::Sqlite(path)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_level_run_logs_no_secret_postgres() {
    if skip_postgres() {
        eprintln!("skipping PostgreSQL (TESSERA_SKIP_POSTGRES=1)");
        return;
    }
    trace_run_leaks_nothing(Place::Postgres {
        schema: fresh_schema("leak"),
    })
    .await;
}

/// Wrong admin keys are answered slowly, then the client IP must wait (429 with Retry-After),
/// even with the right key; each refusal is recorded without the key tried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_sign_in_is_slowed_then_limited() {
    let server = in_process::start_with(Place::fresh(Backend::Sqlite), audit_config()).await;
    let store = server.place.open().await;
    let try_key = |key: &'static str| {
        let client = server.client.clone();
        let url = format!("{}/dashboard/api/sign-in", server.base);
        async move {
            let started = Instant::now();
            let r = client
                .post(url)
                .header("content-type", "application/json")
                .body(json!({ "key": key }).to_string())
                .send()
                .await
                .unwrap();
            (
                r.status(),
                r.headers().get("retry-after").cloned(),
                started.elapsed(),
            )
        }
    };
    let wrong = "wrong-admin-key-guess-000000000";
    let tries: Vec<_> = (0..tessera_server::dashboard::MAX_FAILURES)
        .map(|_| tokio::spawn(try_key(wrong)))
        .collect();
    for t in tries {
        let (status, _, took) = t.await.unwrap();
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(took >= tessera_server::dashboard::WRONG_KEY_DELAY);
    }
    for key in [wrong, ADMIN_KEY] {
        let (status, retry_after, _) = try_key(key).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{key}");
        let secs: u64 = retry_after.unwrap().to_str().unwrap().parse().unwrap();
        assert!((1..=tessera_server::dashboard::FAILURE_WINDOW.as_secs()).contains(&secs));
    }
    wait_for(&store, "admin_sign_in_refused", |r| {
        detail(r)["reason"] == "too_many_tries"
    })
    .await;
    let all = store.audit_events(&AuditQuery::default()).await.unwrap();
    assert!(all.iter().all(|r| !r.detail.contains("wrong-admin-key")));
    server.stop().await;
}
