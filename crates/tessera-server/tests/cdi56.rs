//! Issue 10, CDI 5.5/5.6 over raw HTTP against a live `tessera serve` (1 s rotation grace
//! window), on SQLite and PostgreSQL:
//!
//! * `/apiversion` lists 5.5 and 5.6, and a request at 5.6 is accepted;
//! * verify at 5.6 is stateless: it never writes (the row is read back from the database) and
//!   never mints; `payloadUpdateAvailable` with `checkDatabase`; a rotated-out branch is
//!   unauthorised; public tenant only;
//! * the `accessTokenValidity` override on create and refresh at 5.6, 400 on bad values;
//! * reuse at 5.6 is answered with `recentTokenReuseSubtype` (`RECENT_PREV`,
//!   `ORPHANED_BRANCH`, `STALE_LINEAGE`) and revokes the session;
//! * refresh at 5.6 keeps the lineage v2 rules (P1): the previous child still refreshes
//!   inside the window (named after SuperTokens' `SessionRefreshRotationTest`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use serde_json::{json, Value};
use std::time::Duration;
use tessera::{PostgresStore, SessionRow, SqliteStore, Store};
use tessera_testkit::binary::Server;
use tessera_testkit::cdi::{create_body, handle, refresh_body, status, token, verify_body};
use tessera_testkit::{binary, cdi, fresh_schema, postgres_url, skip_postgres, Place};

const GRACE_S: &str = "1";
/// Long enough to be past the window after the last promotion.
const PAST_WINDOW: Duration = Duration::from_millis(1_300);

struct Harness {
    server: Server,
    client: reqwest::Client,
    store: Box<dyn Store>,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start(storage: &str) -> Option<Harness> {
        Self::start_with(storage, GRACE_S).await
    }

    /// A server with the given rotation grace (seconds; "0" gives random children).
    async fn start_with(storage: &str, grace_s: &'static str) -> Option<Harness> {
        Self::start_args(
            storage,
            vec!["--refresh-token-rotation-grace-period", grace_s],
        )
        .await
    }

    async fn start_args(storage: &str, args: Vec<&'static str>) -> Option<Harness> {
        let dir = tempfile::tempdir().unwrap();
        let storage = match storage {
            "postgres" => {
                if skip_postgres() {
                    eprintln!("skipping: TESSERA_SKIP_POSTGRES=1");
                    return None;
                }
                Place::Postgres {
                    schema: fresh_schema("cdi56"),
                }
            }
            _ => Place::Sqlite(dir.path().join("tessera.db")),
        };
        let log = dir.path().join("server.log");
        let spawn_storage = storage.clone();
        let server =
            tokio::task::spawn_blocking(move || binary::start(&spawn_storage, &args, &log))
                .await
                .expect("start");
        let store: Box<dyn Store> = match &storage {
            Place::Sqlite(path) => Box::new(SqliteStore::open(path).await.unwrap()),
            Place::Postgres { schema } => Box::new(
                PostgresStore::connect(&postgres_url(), Some(schema))
                    .await
                    .unwrap(),
            ),
        };
        Some(Harness {
            server,
            client: binary::client(),
            store,
            _dir: dir,
        })
    }

    /// POST at the given `cdi-version`; returns the HTTP status and the body text.
    async fn post_at(&self, cdi: &str, path: &str, body: &Value) -> (u16, String) {
        self.send_at(reqwest::Method::POST, cdi, path, body).await
    }

    async fn send_at(
        &self,
        method: reqwest::Method,
        cdi: &str,
        path: &str,
        body: &Value,
    ) -> (u16, String) {
        let resp = self
            .client
            .request(method, format!("{}{path}", self.server.base))
            .header("cdi-version", cdi)
            .header("rid", "session")
            .header("content-type", "application/json; charset=utf-8")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let code = resp.status().as_u16();
        (code, resp.text().await.unwrap())
    }

    /// POST at `cdi` that must answer 200 JSON.
    async fn json_at(&self, cdi: &str, path: &str, body: &Value) -> Value {
        let (code, text) = self.post_at(cdi, path, body).await;
        assert_eq!(code, 200, "POST {path} at {cdi}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    async fn create(&self, cdi: &str, user: &str) -> (Value, String) {
        let v = self
            .json_at(cdi, "/public/recipe/session", &create_body(user))
            .await;
        assert_eq!(status(&v), "OK", "{v}");
        let h = handle(&v);
        (v, h)
    }

    async fn refresh(&self, cdi: &str, rt: &str) -> Value {
        self.json_at(cdi, "/recipe/session/refresh", &refresh_body(rt))
            .await
    }

    async fn verify(&self, cdi: &str, at: &str, check_database: bool) -> Value {
        self.json_at(
            cdi,
            "/recipe/session/verify",
            &verify_body(at, check_database),
        )
        .await
    }

    /// The session row as stored.
    async fn row(&self, h: &str) -> SessionRow {
        self.stored(h).await.expect("row")
    }

    async fn stored(&self, h: &str) -> Option<SessionRow> {
        self.store.get_session("public", "public", h).await.unwrap()
    }

    /// A refresh that must be OK; returns its refresh token.
    async fn next(&self, rt: &str) -> String {
        let v = self.refresh("5.6", rt).await;
        assert_eq!(status(&v), "OK", "{v}");
        token(&v, "refreshToken")
    }

    /// Refreshing `rt` at 5.6 is theft of the given subtype; the row is gone; at 5.4 the
    /// same answer has no subtype.
    async fn assert_theft(&self, rt: &str, h: &str, subtype: &str) {
        let v = self.refresh("5.6", rt).await;
        assert_eq!(status(&v), "TOKEN_THEFT_DETECTED", "{v}");
        assert_eq!(v["recentTokenReuseSubtype"], json!(subtype), "{v}");
        assert_eq!(v["session"]["handle"], json!(h), "{v}");
        assert!(self.stored(h).await.is_none(), "theft revokes the session");
    }
}

fn lineage_of(r: &SessionRow) -> (String, Option<String>, Option<u64>, u64) {
    (
        r.refresh_token_hash2.clone(),
        r.prev_refresh_token_hash2.clone(),
        r.refresh_token_rotated_at,
        r.expires_at,
    )
}

/// Step 1: the version list and a 5.6 request.
async fn apiversion_lists_5_5_and_5_6(storage: &str) {
    let Some(s) = Harness::start(storage).await else {
        return;
    };
    let resp = s
        .client
        .get(format!("{}/apiversion", s.server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let v: Value = resp.json().await.unwrap();
    let versions: Vec<&str> = v["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert!(versions.contains(&"5.5"), "{v}");
    assert_eq!(versions.last(), Some(&"5.6"), "{v}");
    assert!(versions.contains(&"5.4"), "{v}");
    for cdi in ["5.5", "5.6"] {
        let (created, _) = s.create(cdi, "versions").await;
        assert!(created["accessToken"]["token"].is_string(), "{created}");
    }
    let (code, text) = s
        .post_at("5.7", "/public/recipe/session", &create_body("x"))
        .await;
    assert_eq!(
        (code, text.as_str()),
        (400, "cdi-version 5.7 not supported")
    );
}

/// Step 2: verify at 5.6 with a child's access token leaves the row unchanged and mints
/// nothing; the same verify at 5.4 promotes (the contrast shows the row was promotable).
async fn verify_at_5_6_never_writes_or_mints(storage: &str) {
    let Some(s) = Harness::start(storage).await else {
        return;
    };
    let (created, h) = s.create("5.6", "stateless").await;
    let child = s.refresh("5.6", &token(&created, "refreshToken")).await;
    assert_eq!(status(&child), "OK", "{child}");
    let child_at = token(&child, "accessToken");
    let before = lineage_of(&s.row(&h).await);
    for check_database in [true, false] {
        let v = s.verify("5.6", &child_at, check_database).await;
        assert_eq!(status(&v), "OK", "{v}");
        assert_eq!(handle(&v), h);
        assert!(v.get("accessToken").is_none(), "5.6 never mints: {v}");
        if check_database {
            assert_eq!(v["payloadUpdateAvailable"], json!(false), "{v}");
        } else {
            assert!(v.get("payloadUpdateAvailable").is_none(), "{v}");
        }
        assert_eq!(lineage_of(&s.row(&h).await), before, "5.6 verify wrote");
    }
    // The stored payload changes by handle: available, still no mint, still no write.
    let (code, text) = s
        .send_at(
            reqwest::Method::PUT,
            "5.6",
            "/recipe/jwt/data",
            &json!({"sessionHandle": h, "userDataInJWT": {"u": "changed"}}),
        )
        .await;
    assert_eq!(code, 200, "{text}");
    let before = lineage_of(&s.row(&h).await);
    let v = s.verify("5.6", &child_at, true).await;
    assert_eq!(status(&v), "OK", "{v}");
    assert_eq!(v["payloadUpdateAvailable"], json!(true), "{v}");
    assert!(v.get("accessToken").is_none(), "{v}");
    assert_eq!(
        v["session"]["userDataInJWT"]["u"],
        json!("stateless"),
        "{v}"
    );
    assert_eq!(lineage_of(&s.row(&h).await), before);
    // Legacy verify still promotes.
    let v = s.verify("5.4", &child_at, true).await;
    assert_eq!(status(&v), "OK", "{v}");
    assert!(v["accessToken"]["token"].is_string(), "{v}");
    assert_ne!(lineage_of(&s.row(&h).await), before, "5.4 verify promotes");
}

/// Step 2: an access token of a branch that is neither the head nor the previous head is
/// refused at 5.6 with a database check (accepted without one: no I/O).
async fn verify_at_5_6_rejects_a_rotated_out_branch(storage: &str) {
    let Some(s) = Harness::start(storage).await else {
        return;
    };
    let (created, h) = s.create("5.6", "fork").await;
    let at0 = token(&created, "accessToken");
    // Two promotions, one window apart: the head is now two generations past RT0.
    let c = s.refresh("5.6", &token(&created, "refreshToken")).await;
    let v = s.verify("5.4", &token(&c, "accessToken"), true).await;
    assert!(v["accessToken"]["token"].is_string(), "promoted: {v}");
    tokio::time::sleep(PAST_WINDOW).await;
    let d = s.refresh("5.6", &token(&c, "refreshToken")).await;
    assert_eq!(status(&d), "OK", "{d}");
    let v = s.verify("5.4", &token(&d, "accessToken"), true).await;
    assert!(v["accessToken"]["token"].is_string(), "promoted: {v}");
    let before = lineage_of(&s.row(&h).await);
    let v = s.verify("5.6", &at0, true).await;
    assert_eq!(status(&v), "UNAUTHORISED", "{v}");
    assert_eq!(
        v["message"],
        json!("rotated-out token branch; refresh required")
    );
    assert_eq!(lineage_of(&s.row(&h).await), before);
    let v = s.verify("5.6", &at0, false).await;
    assert_eq!(status(&v), "OK", "no database check: {v}");
    // The head's and the previous head's tokens are accepted.
    for at in [token(&c, "accessToken"), token(&d, "accessToken")] {
        let v = s.verify("5.6", &at, true).await;
        assert_eq!(status(&v), "OK", "{v}");
    }
    // A revoked session is unauthorised.
    s.json_at(
        "5.6",
        "/recipe/session/remove",
        &json!({"sessionHandles": [h]}),
    )
    .await;
    let v = s.verify("5.6", &token(&d, "accessToken"), true).await;
    assert_eq!(status(&v), "UNAUTHORISED", "{v}");
}

/// Step 2: verify at 5.6 is public-tenant only; at 5.4 a tenant path still works.
async fn verify_at_5_6_is_public_tenant_only(storage: &str) {
    let Some(s) = Harness::start(storage).await else {
        return;
    };
    let (created, _) = s.create("5.6", "gate").await;
    let at = token(&created, "accessToken");
    let (code, text) = s
        .post_at("5.6", "/t1/recipe/session/verify", &verify_body(&at, true))
        .await;
    assert_eq!(
        (code, text.as_str()),
        (403, "Only public tenantId can call this app specific API")
    );
    let (code, text) = s
        .post_at("5.4", "/t1/recipe/session/verify", &verify_body(&at, true))
        .await;
    assert_ne!(code, 403, "{text}");
}

/// P1 at 5.6, after SuperTokens' `SessionRefreshRotationTest` grace re-rotation case: there
/// the re-rotation kills the previous child; with lineage v2 the previous child still
/// refreshes inside the window, and every answer is the same lineage.
async fn grace_window_re_rotation_keeps_previous_child_alive(storage: &str) {
    let Some(s) = Harness::start(storage).await else {
        return;
    };
    let (created, h) = s.create("5.6", "grace").await;
    let rt0 = token(&created, "refreshToken");
    let first = s.refresh("5.6", &rt0).await;
    assert_eq!(status(&first), "OK", "{first}");
    let rt1 = token(&first, "refreshToken");
    // Promote RT1 by using it: RT0 is now the previous head, inside the window.
    let second = s.refresh("5.6", &rt1).await;
    assert_eq!(status(&second), "OK", "{second}");
    // Re-rotation with the previous head inside the window.
    let again = s.refresh("5.6", &rt0).await;
    assert_eq!(status(&again), "OK", "RT0 inside the window: {again}");
    assert_eq!(handle(&again), h);
    // The previous child (RT1) still works inside the window.
    let still = s.refresh("5.6", &rt1).await;
    assert_eq!(
        status(&still),
        "OK",
        "previous child inside the window: {still}"
    );
    assert_eq!(handle(&still), h);
    // And the kept token refreshes after the window.
    tokio::time::sleep(PAST_WINDOW).await;
    let later = s.refresh("5.6", &token(&still, "refreshToken")).await;
    assert_eq!(status(&later), "OK", "{later}");
}

/// Step 4, after `SessionRefreshRotationTest`'s RECENT_PREV case: the previous head replayed
/// after the window is theft with subtype `RECENT_PREV`, and the session is revoked.
async fn recent_prev_reuse_revokes_with_subtype(storage: &str) {
    let Some(s) = Harness::start(storage).await else {
        return;
    };
    let (created, h) = s.create("5.6", "recent-prev").await;
    let rt0 = token(&created, "refreshToken");
    let rt1 = s.next(&rt0).await;
    s.next(&rt1).await; // promotes RT1: RT0 is the previous head
    tokio::time::sleep(PAST_WINDOW).await;
    s.assert_theft(&rt0, &h, "RECENT_PREV").await;
}

/// Step 4, `ORPHANED_BRANCH`: with random children (grace 0) a sibling of the promoted child
/// is a branch off the previous head.
async fn orphaned_branch_reuse_revokes_with_subtype(storage: &str) {
    let Some(s) = Harness::start_with(storage, "0").await else {
        return;
    };
    let (created, h) = s.create("5.6", "orphan").await;
    let rt0 = token(&created, "refreshToken");
    let c1 = s.next(&rt0).await;
    let c2 = s.next(&rt0).await;
    assert_ne!(c1, c2, "grace 0: random children");
    s.next(&c1).await; // promotes C1: RT0 is the previous head, C2 its orphaned child
    s.assert_theft(&c2, &h, "ORPHANED_BRANCH").await;
}

/// `recent_token_reuse_behaviour = UNAUTHORISED` (config file only, upper-cased): a recent
/// token's reuse (RECENT_PREV, ORPHANED_BRANCH) is answered `UNAUTHORISED` with its subtype, the
/// session still revoked; a stale token is still `TOKEN_THEFT_DETECTED`.
async fn recent_token_reuse_behaviour_unauthorised(storage: &str) {
    let file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::fs::write(
        file.path(),
        "recent_token_reuse_behaviour = \" unauthorised \"\nrefresh_token_rotation_grace_period = 0\n",
    )
    .unwrap();
    let path: &'static str = Box::leak(file.path().display().to_string().into_boxed_str());
    let Some(s) = Harness::start_args(storage, vec!["--config", path]).await else {
        return;
    };
    // ORPHANED_BRANCH (grace 0: random children).
    let (created, h) = s.create("5.6", "reuse-unauthorised").await;
    let rt0 = token(&created, "refreshToken");
    let c1 = s.next(&rt0).await;
    let c2 = s.next(&rt0).await;
    s.next(&c1).await; // promotes C1: C2 is an orphaned branch
    let v = s.refresh("5.6", &c2).await;
    assert_eq!(status(&v), "UNAUTHORISED", "{v}");
    assert_eq!(
        v["recentTokenReuseSubtype"],
        json!("ORPHANED_BRANCH"),
        "{v}"
    );
    assert!(
        s.stored(&h).await.is_none(),
        "the session is revoked either way"
    );
    // STALE_LINEAGE stays theft.
    let (created, h) = s.create("5.6", "reuse-stale").await;
    let rt0 = token(&created, "refreshToken");
    let rt1 = s.next(&rt0).await;
    let rt2 = s.next(&rt1).await; // promotes RT1
    s.next(&rt2).await; // promotes RT2: RT0 is two generations back
    s.assert_theft(&rt0, &h, "STALE_LINEAGE").await;
    // Below 5.6 the setting changes nothing.
    let (created, _) = s.create("5.4", "reuse-54").await;
    let rt0 = token(&created, "refreshToken");
    let c1 = s.next(&rt0).await;
    let c2 = s.next(&rt0).await;
    s.next(&c1).await;
    assert_eq!(status(&s.refresh("5.4", &c2).await), "TOKEN_THEFT_DETECTED");
}

/// Step 4, `STALE_LINEAGE`: a token two promotions old; at 5.4 the answer has no subtype.
async fn stale_lineage_reuse_revokes_with_subtype(storage: &str) {
    let Some(s) = Harness::start(storage).await else {
        return;
    };
    for cdi in ["5.6", "5.4"] {
        let (created, h) = s.create(cdi, "stale").await;
        let rt0 = token(&created, "refreshToken");
        let rt1 = s.next(&rt0).await;
        let rt2 = s.next(&rt1).await; // promotes RT1
        tokio::time::sleep(PAST_WINDOW).await;
        s.next(&rt2).await; // promotes RT2: RT0 is two generations back
        if cdi == "5.6" {
            s.assert_theft(&rt0, &h, "STALE_LINEAGE").await;
        } else {
            let v = s.refresh("5.4", &rt0).await;
            assert_eq!(status(&v), "TOKEN_THEFT_DETECTED", "{v}");
            assert!(v.get("recentTokenReuseSubtype").is_none(), "{v}");
        }
    }
}

/// Lifetime of an access token in seconds (`exp - iat`).
fn lifetime_s(reply: &Value) -> u64 {
    let claims = cdi::jwt_claims(&token(reply, "accessToken"));
    claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap()
}

/// Step 3, after `AccessTokenValidityParamTest`: the override shortens on create and
/// refresh; equal to the config is allowed; zero, negative or above the config is 400;
/// ignored below 5.6.
async fn access_token_validity_override(storage: &str) {
    let Some(s) = Harness::start(storage).await else {
        return;
    };
    let with = |v: Value| {
        let mut body = create_body("validity");
        body["accessTokenValidity"] = v;
        body
    };
    let created = s
        .json_at("5.6", "/public/recipe/session", &with(json!(60_000)))
        .await;
    assert_eq!(lifetime_s(&created), 60, "{created}");
    let mut refresh = refresh_body(&token(&created, "refreshToken"));
    refresh["accessTokenValidity"] = json!(30_000);
    let refreshed = s.json_at("5.6", "/recipe/session/refresh", &refresh).await;
    assert_eq!(lifetime_s(&refreshed), 30, "{refreshed}");
    let full = s
        .json_at("5.6", "/public/recipe/session", &with(json!(3_600_000)))
        .await;
    assert_eq!(lifetime_s(&full), 3_600, "equal to the config: {full}");
    let expected = "accessTokenValidity must be greater than 0 and at most the configured \
                    access_token_validity (3600000 ms)";
    for bad in [json!(0), json!(-1), json!(3_600_001)] {
        let (code, text) = s
            .post_at("5.6", "/public/recipe/session", &with(bad.clone()))
            .await;
        assert_eq!((code, text.as_str()), (400, expected), "create {bad}");
        let mut r = refresh_body(&token(&refreshed, "refreshToken"));
        r["accessTokenValidity"] = bad.clone();
        let (code, text) = s.post_at("5.6", "/recipe/session/refresh", &r).await;
        assert_eq!((code, text.as_str()), (400, expected), "refresh {bad}");
    }
    let (code, _) = s
        .post_at("5.6", "/public/recipe/session", &with(json!("soon")))
        .await;
    assert_eq!(code, 400, "not a number");
    // Below 5.6 the field is ignored, bad or not.
    let legacy = s
        .json_at("5.4", "/public/recipe/session", &with(json!(0)))
        .await;
    assert_eq!(lifetime_s(&legacy), 3_600, "{legacy}");
}

/// Step 3, after `AccessTokenValidityJitterTest`: with jitter 0.25 the lifetimes of tokens
/// minted at create and refresh lie in 75–100 % of the validity, spread out, with a mean near
/// the middle; a verify promotion still gets the full validity. (Jitter 0, the default, gives
/// the exact validity: `access_token_validity_override`.)
async fn access_token_validity_jitter_is_bounded(storage: &str) {
    let Some(s) = Harness::start_args(
        storage,
        vec![
            "--refresh-token-rotation-grace-period",
            GRACE_S,
            "--access-token-validity-jitter",
            "0.25",
        ],
    )
    .await
    else {
        return;
    };
    const N: usize = 60;
    let mut lifetimes = Vec::with_capacity(N + 1);
    let mut last = Value::Null;
    for _ in 0..N {
        let (created, _) = s.create("5.6", "jitter").await;
        lifetimes.push(lifetime_s(&created));
        last = created;
    }
    let refreshed = s.refresh("5.6", &token(&last, "refreshToken")).await;
    lifetimes.push(lifetime_s(&refreshed));
    // Whole seconds: exp is truncated, so the floor may be one second under 2700.
    assert!(
        lifetimes.iter().all(|l| (2_699..=3_600).contains(l)),
        "{lifetimes:?}"
    );
    let distinct: std::collections::BTreeSet<_> = lifetimes.iter().collect();
    assert!(distinct.len() > N / 4, "spread: {lifetimes:?}");
    let mean = lifetimes.iter().sum::<u64>() as f64 / lifetimes.len() as f64;
    // U[2700, 3600]: mean 3150, sd of the mean of 61 ≈ 33 s; ±200 s is over 6 sd.
    assert!((2_950.0..=3_350.0).contains(&mean), "mean {mean}");
    let promoted = s
        .verify("5.4", &token(&refreshed, "accessToken"), true)
        .await;
    assert_eq!(
        lifetime_s(&promoted),
        3_600,
        "verify promotion: full validity"
    );
    eprintln!(
        "jitter 0.25: {} tokens, mean lifetime {mean:.0} s",
        lifetimes.len()
    );
}

macro_rules! on_both_storages {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name("sqlite").await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name("postgres").await;
                }
            )*
        }
    };
}

on_both_storages!(
    apiversion_lists_5_5_and_5_6,
    verify_at_5_6_never_writes_or_mints,
    verify_at_5_6_rejects_a_rotated_out_branch,
    verify_at_5_6_is_public_tenant_only,
    grace_window_re_rotation_keeps_previous_child_alive,
    recent_prev_reuse_revokes_with_subtype,
    orphaned_branch_reuse_revokes_with_subtype,
    stale_lineage_reuse_revokes_with_subtype,
    recent_token_reuse_behaviour_unauthorised,
    access_token_validity_override,
    access_token_validity_jitter_is_bounded,
);
