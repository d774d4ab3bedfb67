//! Issue 10 over real HTTP: the refresh-lineage sequences that end in a false theft with the
//! v1 rules, against a live `tessera serve` with a 2 s rotation grace window, on SQLite and on
//! PostgreSQL, through the CDI API only. The client model is `tessera`'s
//! `tests/lineage_model.rs`: one token store, concurrent requests, replies kept in any order,
//! in-flight access tokens verified (with the database) in any order.
//!
//! * P1: none of the client's requests is answered theft, and the token it keeps refreshes
//!   during and after the window.
//! * P2: a superseded refresh token replayed after the window is theft, the session is
//!   revoked and every later use is unauthorised.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use serde_json::Value;
use std::time::Duration;
use tessera_testkit::binary::Server;
use tessera_testkit::cdi::{create_body, handle, refresh_body, status, token, verify_body};
use tessera_testkit::rng::XorShift;
use tessera_testkit::{binary, fresh_schema, skip_postgres, Place};

const GRACE_S: &str = "2";
/// Long enough to be past the window after the last promotion.
const PAST_WINDOW: Duration = Duration::from_millis(2_300);

struct Harness {
    server: Server,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start(storage: &str) -> Option<Harness> {
        let dir = tempfile::tempdir().unwrap();
        let storage = match storage {
            "postgres" => {
                if skip_postgres() {
                    eprintln!("skipping: TESSERA_SKIP_POSTGRES=1");
                    return None;
                }
                Place::Postgres {
                    schema: fresh_schema("lineage"),
                }
            }
            _ => Place::Sqlite(dir.path().join("tessera.db")),
        };
        let log = dir.path().join("server.log");
        let server = tokio::task::spawn_blocking(move || {
            binary::start(
                &storage,
                &["--refresh-token-rotation-grace-period", GRACE_S],
                &log,
            )
        })
        .await
        .expect("start");
        Some(Harness {
            server,
            client: binary::client(),
            _dir: dir,
        })
    }

    async fn post(&self, path: &str, body: &Value) -> Value {
        binary::post(&self.client, &self.server.base, path, body).await
    }

    async fn create(&self, user: &str) -> (Value, String) {
        let v = self
            .post("/public/recipe/session", &create_body(user))
            .await;
        assert_eq!(status(&v), "OK", "{v}");
        let h = handle(&v);
        (v, h)
    }

    async fn refresh(&self, rt: &str) -> Value {
        self.post("/recipe/session/refresh", &refresh_body(rt))
            .await
    }

    /// A refresh that must succeed for `session` (P1).
    async fn refresh_ok(&self, rt: &str, session: &str, what: &str) -> Value {
        let v = self.refresh(rt).await;
        assert_eq!(status(&v), "OK", "{what}: {v}\n{}", self.server.log_text());
        assert_eq!(handle(&v), session, "{what}: {v}");
        v
    }

    /// A database-checked verify that must succeed.
    async fn verify_ok(&self, at: &str, session: &str, what: &str) {
        let v = self
            .post("/recipe/session/verify", &verify_body(at, true))
            .await;
        assert_eq!(status(&v), "OK", "{what}: {v}");
        assert_eq!(handle(&v), session, "{what}: {v}");
    }

    /// `n` refreshes with `rt` at once; every reply must be OK (P1).
    async fn storm(&self, rt: &str, n: usize, session: &str) -> Vec<Value> {
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(n));
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let (client, base) = (self.client.clone(), self.server.base.clone());
                let (body, barrier) = (refresh_body(rt), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    binary::post(&client, &base, "/recipe/session/refresh", &body).await
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            let v = t.await.expect("refresh task");
            assert_eq!(status(&v), "OK", "storm: false theft or failure: {v}");
            assert_eq!(handle(&v), session, "{v}");
            out.push(v);
        }
        out
    }

    /// Verifies (with the database) the access token of every reply, all at once, in the
    /// order `order`; none may fail.
    async fn verify_all(&self, replies: &[Value], order: &[usize], session: &str) {
        let tasks: Vec<_> = order
            .iter()
            .map(|&i| {
                let (client, base) = (self.client.clone(), self.server.base.clone());
                let body = verify_body(&token(&replies[i], "accessToken"), true);
                tokio::spawn(async move {
                    binary::post(&client, &base, "/recipe/session/verify", &body).await
                })
            })
            .collect();
        for t in tasks {
            let v = t.await.expect("verify task");
            assert_eq!(status(&v), "OK", "in-flight access token: {v}");
            assert_eq!(handle(&v), session, "{v}");
        }
    }

    /// P2: `stale` after the window is theft; the session is gone for `kept` too.
    async fn assert_replay_is_theft(&self, stale: &str, kept: &str) {
        let v = self.refresh(stale).await;
        assert_eq!(status(&v), "TOKEN_THEFT_DETECTED", "replay: {v}");
        let v = self.refresh(kept).await;
        assert_eq!(status(&v), "UNAUTHORISED", "after theft: {v}");
    }
}

fn shuffled(n: usize, rng: &mut XorShift) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = usize::try_from(rng.range(0, i as u64 + 1)).unwrap();
        v.swap(i, j);
    }
    v
}

/// Sibling storm: n refreshes with the same token at once, the client keeps the reply whose
/// access token is verified first (every reply's access token is still used by an in-flight
/// request, in random order); after the window the kept token refreshes. Twice, the second
/// storm with the kept token's child. Then the first token is theft.
async fn sibling_storm(storage: &str) {
    let Some(s) = Harness::start(storage).await else {
        return;
    };
    let mut rng = XorShift::new(XorShift::seed_from_env_or_time());
    let (created, h) = s.create("storm").await;
    let first = token(&created, "refreshToken");
    let mut next = first.clone();
    for round in 0..2 {
        let replies = s.storm(&next, 8, &h).await;
        let order = shuffled(replies.len(), &mut rng);
        let kept = token(&replies[order[0]], "refreshToken");
        s.verify_all(&replies, &order, &h).await;
        tokio::time::sleep(PAST_WINDOW).await;
        let v = s
            .refresh_ok(
                &kept,
                &h,
                &format!("round {round}: kept reply after the window"),
            )
            .await;
        next = token(&v, "refreshToken");
    }
    let v = s.refresh_ok(&next, &h, "the last child").await;
    tokio::time::sleep(PAST_WINDOW).await;
    s.assert_replay_is_theft(&first, &token(&v, "refreshToken"))
        .await;
}

/// Stale access token arriving last: refresh twice with P (replies 1 and 2), the client keeps
/// reply 2, reply 1's access token is verified after reply 2's. Then the same with replies of
/// two generations (one from the head, one from its promoted child).
async fn stale_access_token_last(storage: &str) {
    let Some(s) = Harness::start(storage).await else {
        return;
    };
    let (created, h) = s.create("stale-at").await;
    let p = token(&created, "refreshToken");
    let r1 = s.refresh_ok(&p, &h, "reply 1").await;
    let r2 = s.refresh_ok(&p, &h, "reply 2").await;
    s.verify_ok(&token(&r2, "accessToken"), &h, "AT 2").await;
    s.verify_ok(&token(&r1, "accessToken"), &h, "AT 1 last")
        .await;
    tokio::time::sleep(PAST_WINDOW).await;
    let r3 = s
        .refresh_ok(&token(&r2, "refreshToken"), &h, "reply 2 after the window")
        .await;
    // One generation on, with replies of two generations: reply 4 from reply 3's token (it
    // promotes), reply 3's access token verified last.
    let r4 = s
        .refresh_ok(&token(&r3, "refreshToken"), &h, "reply 4")
        .await;
    s.verify_ok(&token(&r4, "accessToken"), &h, "AT 4").await;
    s.verify_ok(&token(&r3, "accessToken"), &h, "AT 3 last")
        .await;
    tokio::time::sleep(PAST_WINDOW).await;
    let r5 = s
        .refresh_ok(&token(&r4, "refreshToken"), &h, "reply 4 after the window")
        .await;
    s.assert_replay_is_theft(&p, &token(&r5, "refreshToken"))
        .await;
}

/// Late tab: tab A's child is promoted; tab B's refresh with P arrives late (inside the
/// window) and B's reply is what the jar keeps; A's old access token is used once more.
/// After the window B's token refreshes, and P is theft.
async fn late_tab(storage: &str) {
    let Some(s) = Harness::start(storage).await else {
        return;
    };
    let (created, h) = s.create("late-tab").await;
    let p = token(&created, "refreshToken");
    let a = s.refresh_ok(&p, &h, "tab A").await;
    s.verify_ok(&token(&a, "accessToken"), &h, "A promotes")
        .await;
    let a2 = s
        .refresh_ok(&token(&a, "refreshToken"), &h, "tab A again")
        .await;
    let b = s.refresh_ok(&p, &h, "tab B, late, inside the window").await;
    s.verify_ok(&token(&a, "accessToken"), &h, "A's old AT once more")
        .await;
    s.verify_ok(&token(&a2, "accessToken"), &h, "A's newer AT")
        .await;
    s.verify_ok(&token(&b, "accessToken"), &h, "B's AT").await;
    tokio::time::sleep(PAST_WINDOW).await;
    let b2 = s
        .refresh_ok(&token(&b, "refreshToken"), &h, "B after the window")
        .await;
    let b3 = s
        .refresh_ok(&token(&b2, "refreshToken"), &h, "and on")
        .await;
    tokio::time::sleep(PAST_WINDOW).await;
    s.assert_replay_is_theft(&p, &token(&b3, "refreshToken"))
        .await;
}

/// 50 concurrent refreshes; the client keeps a random reply and every access token is
/// verified in random order, for three generations; after the window the kept token
/// refreshes, and a superseded one replayed is theft.
async fn fifty_concurrent_refreshes_random_reply(storage: &str) {
    let Some(s) = Harness::start(storage).await else {
        return;
    };
    let seed = XorShift::seed_from_env_or_time();
    eprintln!("TESSERA_TEST_SEED={seed}");
    let mut rng = XorShift::new(seed);
    let (created, h) = s.create("fifty").await;
    let mut kept = token(&created, "refreshToken");
    let mut superseded = Vec::new();
    for _ in 0..3 {
        superseded.push(kept.clone());
        let replies = s.storm(&kept, 50, &h).await;
        let pick = usize::try_from(rng.range(0, 50)).unwrap();
        kept = token(&replies[pick], "refreshToken");
        s.verify_all(&replies, &shuffled(50, &mut rng), &h).await;
        if rng.chance(50) {
            tokio::time::sleep(PAST_WINDOW).await;
        }
    }
    tokio::time::sleep(PAST_WINDOW).await;
    let v = s.refresh_ok(&kept, &h, "kept reply after the window").await;
    let v = s
        .refresh_ok(&token(&v, "refreshToken"), &h, "and its child")
        .await;
    tokio::time::sleep(PAST_WINDOW).await;
    s.assert_replay_is_theft(&superseded[0], &token(&v, "refreshToken"))
        .await;
}

/// P2: a token whose child was promoted, replayed after the window, is theft — whether the
/// child was promoted by a verify or by a refresh.
async fn superseded_token_replayed_after_the_window_is_theft(storage: &str) {
    let Some(s) = Harness::start(storage).await else {
        return;
    };
    for promote_by_verify in [true, false] {
        let (created, h) = s.create("replay").await;
        let p = token(&created, "refreshToken");
        let c = s.refresh_ok(&p, &h, "child").await;
        let kept = if promote_by_verify {
            s.verify_ok(&token(&c, "accessToken"), &h, "promote").await;
            token(&c, "refreshToken")
        } else {
            let g = s
                .refresh_ok(&token(&c, "refreshToken"), &h, "promote by refresh")
                .await;
            token(&g, "refreshToken")
        };
        // Inside the window the replay is a late request, not theft.
        s.refresh_ok(&p, &h, "inside the window").await;
        tokio::time::sleep(PAST_WINDOW).await;
        s.assert_replay_is_theft(&p, &kept).await;
    }
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
    sibling_storm,
    stale_access_token_last,
    late_tab,
    fifty_concurrent_refreshes_random_reply,
    superseded_token_replayed_after_the_window_is_theft,
);
