//! RT-05 / RT-06: two `tessera serve` processes on one PostgreSQL schema.
//!
//! * Both start at the same moment on an empty schema and agree on one signing key.
//! * A token minted through one verifies and refreshes through the other.
//! * Concurrent refreshes of one session split across both instances — with the default 30 s
//!   grace and with grace 0 (the strict SuperTokens CDI 5.4 behaviour) — never report theft
//!   and stay in one lineage. The exact semantics are those of `crates/tessera/src/lineage.rs`:
//!   refreshing with the head writes nothing; with a grace window every refresh of one token
//!   answers the same (derived) child on either instance, with grace 0 a fresh random one; the
//!   first use of a child promotes it (compare-and-set, so concurrent uses promote once); with
//!   grace 0 a displaced sibling is theft.
//! * 50 parallel refreshes of one session, first on one instance and then spread over both:
//!   no 5xx, no theft, one lineage, no lost or duplicated row.
//!
//! PostgreSQL only (a shared SQLite file is not a multi-instance deployment). Never skipped
//! under `CI=true`; `TESSERA_SKIP_POSTGRES=1` skips locally.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use serde_json::Value;
use std::collections::HashSet;
use std::sync::Arc;
use tessera_testkit::binary::Server;
use tessera_testkit::cdi::{create_body, handle, kids, refresh_body, status, token, verify_body};
use tessera_testkit::{binary, cdi, fresh_schema, skip_postgres, Place};

struct Pair {
    a: Server,
    b: Server,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Pair {
    /// Spawns A and B at the same moment on one fresh schema, then waits for both.
    async fn start(tag: &str, extra: &'static [&'static str]) -> Pair {
        let dir = tempfile::tempdir().unwrap();
        let storage = Place::Postgres {
            schema: fresh_schema(tag),
        };
        let (log_a, log_b) = (dir.path().join("a.log"), dir.path().join("b.log"));
        let (a, b) = tokio::task::spawn_blocking(move || {
            let a = binary::spawn(&storage, extra, &log_a);
            let b = binary::spawn(&storage, extra, &log_b);
            (a.ready(), b.ready())
        })
        .await
        .expect("start pair");
        Pair {
            a,
            b,
            client: binary::client(),
            _dir: dir,
        }
    }

    fn base(&self, i: usize) -> &str {
        if i % 2 == 0 {
            &self.a.base
        } else {
            &self.b.base
        }
    }

    async fn post(&self, i: usize, path: &str, body: &Value) -> Value {
        binary::post(&self.client, self.base(i), path, body).await
    }

    async fn get(&self, i: usize, path: &str) -> Value {
        binary::get(&self.client, self.base(i), path).await
    }

    async fn refresh_ok(&self, i: usize, rt: &str, session: &str) -> Value {
        let v = self
            .post(i, "/recipe/session/refresh", &refresh_body(rt))
            .await;
        assert_eq!(status(&v), "OK", "refresh via instance {}: {v}", i % 2);
        assert_eq!(handle(&v), session, "{v}");
        v
    }

    async fn verify_ok(&self, i: usize, at: &str, check_database: bool, session: &str) {
        let v = self
            .post(
                i,
                "/recipe/session/verify",
                &verify_body(at, check_database),
            )
            .await;
        assert_eq!(status(&v), "OK", "verify via instance {}: {v}", i % 2);
        assert_eq!(handle(&v), session, "{v}");
    }

    /// The sessions of `user` as each instance sees them; both must agree.
    async fn user_handles(&self, user: &str) -> Vec<String> {
        let mut seen = Vec::new();
        for i in 0..2 {
            let v = self
                .get(i, &format!("/recipe/session/user?userId={user}"))
                .await;
            assert_eq!(status(&v), "OK", "{v}");
            let mut hs: Vec<String> = v["sessionHandles"]
                .as_array()
                .expect("sessionHandles")
                .iter()
                .map(|h| h.as_str().unwrap().to_owned())
                .collect();
            hs.sort();
            seen.push(hs);
        }
        assert_eq!(
            seen[0], seen[1],
            "the instances disagree on {user}'s sessions"
        );
        seen.pop().unwrap()
    }

    /// `n` refreshes with `rt` released at once; request `i` goes to `pick(i)` (0 = A, 1 = B).
    async fn race(&self, rt: &str, n: usize, pick: impl Fn(usize) -> usize) -> Vec<Value> {
        let rts: Vec<String> = (0..n).map(|_| rt.to_owned()).collect();
        self.race_each(&rts, pick).await
    }

    /// One refresh per token in `rts`, all released at once.
    async fn race_each(&self, rts: &[String], pick: impl Fn(usize) -> usize) -> Vec<Value> {
        let barrier = Arc::new(tokio::sync::Barrier::new(rts.len()));
        let tasks: Vec<_> = rts
            .iter()
            .enumerate()
            .map(|(i, rt)| {
                let barrier = barrier.clone();
                let client = self.client.clone();
                let base = self.base(pick(i)).to_owned();
                let body = refresh_body(rt);
                tokio::spawn(async move {
                    barrier.wait().await;
                    binary::post(&client, &base, "/recipe/session/refresh", &body).await
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("refresh task"));
        }
        out
    }
}

fn skip() -> bool {
    if skip_postgres() {
        eprintln!("skipping: TESSERA_SKIP_POSTGRES=1");
        return true;
    }
    false
}

fn claim(at: &str, name: &str) -> String {
    cdi::jwt_claims(at)[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {at}"))
        .to_owned()
}

/// Every reply is OK for `session` and every new access token names the same parent refresh
/// token: one lineage. With a grace window (`derived`) every reply carries the same refresh
/// token (children are derived from their parent); with grace 0 they are all distinct.
/// Returns the new RTs.
fn assert_one_lineage(replies: &[Value], session: &str, what: &str, derived: bool) -> Vec<String> {
    let mut rts = Vec::new();
    let mut parents = HashSet::new();
    let mut own = HashSet::new();
    for v in replies {
        assert_eq!(status(v), "OK", "{what}: false theft or failure: {v}");
        assert_eq!(handle(v), session, "{what}: {v}");
        let at = token(v, "accessToken");
        parents.insert(claim(&at, "parentRefreshTokenHash1"));
        own.insert(claim(&at, "refreshTokenHash1"));
        rts.push(token(v, "refreshToken"));
    }
    assert_eq!(
        parents.len(),
        1,
        "{what}: more than one parent: {parents:?}"
    );
    let expected = if derived { 1 } else { replies.len() };
    assert_eq!(own.len(), expected, "{what}: refresh tokens issued");
    assert_eq!(rts.iter().collect::<HashSet<_>>().len(), expected, "{what}");
    rts
}

fn dynamic_kids(k: &[String]) -> usize {
    k.iter().filter(|k| k.starts_with("d-")).count()
}

fn static_kids(k: &[String]) -> usize {
    k.iter().filter(|k| k.starts_with("s-")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rt05_rt06_two_instances_started_together_agree_on_one_signing_key() {
    if skip() {
        return;
    }
    for round in 0..3 {
        let p = Pair::start("pairkeys", &[]).await;
        // Both instances serve JWKS and mint at once, right after start-up.
        let (body_a, body_b) = (create_body("key-a"), create_body("key-b"));
        let (ja, jb, ca, cb) = tokio::join!(
            p.get(0, "/.well-known/jwks.json"),
            p.get(1, "/.well-known/jwks.json"),
            p.post(0, "/public/recipe/session", &body_a),
            p.post(1, "/public/recipe/session", &body_b),
        );
        let (ka, kb) = (kids(&ja), kids(&jb));
        assert_eq!(
            ka, kb,
            "round {round}: the instances publish different keys"
        );
        assert_eq!(dynamic_kids(&ka), 1, "round {round}: {ka:?}");
        assert_eq!(static_kids(&ka), 1, "round {round}: {ka:?}");
        assert_eq!(
            ja, jb,
            "round {round}: same kids but different key material"
        );
        let kid_a = cdi::jwt_header(&token(&ca, "accessToken"))["kid"].clone();
        let kid_b = cdi::jwt_header(&token(&cb, "accessToken"))["kid"].clone();
        assert_eq!(
            kid_a, kid_b,
            "round {round}: the instances sign with different keys"
        );
        assert!(ka.iter().any(|k| *k == kid_a), "{kid_a} not in {ka:?}");
        // Nothing changed after the first mints.
        let (ja2, jb2) = tokio::join!(
            p.get(0, "/.well-known/jwks.json"),
            p.get(1, "/.well-known/jwks.json"),
        );
        assert_eq!(ja2, ja, "round {round}");
        assert_eq!(jb2, ja, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rt05_token_minted_via_one_instance_verifies_and_refreshes_via_the_other() {
    if skip() {
        return;
    }
    let p = Pair::start("pairxv", &[]).await;
    let created = p
        .post(0, "/public/recipe/session", &create_body("cross"))
        .await;
    assert_eq!(status(&created), "OK", "{created}");
    let h = handle(&created);
    let at1 = token(&created, "accessToken");
    // Minted by A, verified by B: statelessly and with the database.
    p.verify_ok(1, &at1, false, &h).await;
    p.verify_ok(1, &at1, true, &h).await;
    // Refreshed by B, the new access token verified (and its RT promoted) by A.
    let r = p.refresh_ok(1, &token(&created, "refreshToken"), &h).await;
    p.verify_ok(0, &token(&r, "accessToken"), true, &h).await;
    // The promoted child refreshes via B again, then A.
    let r = p.refresh_ok(1, &token(&r, "refreshToken"), &h).await;
    let r = p.refresh_ok(0, &token(&r, "refreshToken"), &h).await;
    p.verify_ok(1, &token(&r, "accessToken"), true, &h).await;
    assert_eq!(p.user_handles("cross").await, vec![h]);
}

/// RT-05 across two instances: 2×`n` refreshes split over A and B, first with the current
/// token (no writes), then with a child (one compare-and-set promotion across processes).
/// Returns the pair, the session handle and the children of the second race.
async fn split_races(
    tag: &str,
    extra: &'static [&'static str],
    n: usize,
) -> (Pair, String, String, Vec<String>) {
    let p = Pair::start(tag, extra).await;
    let user = format!("{tag}-user");
    let created = p
        .post(0, "/public/recipe/session", &create_body(&user))
        .await;
    assert_eq!(status(&created), "OK", "{created}");
    let h = handle(&created);
    let rt1 = token(&created, "refreshToken");

    let derived = extra.is_empty();
    let first = p.race(&rt1, 2 * n, |i| i % 2).await;
    let children = assert_one_lineage(&first, &h, "race with the current token", derived);
    let second = p.race(&children[0], 2 * n, |i| i % 2).await;
    let grandchildren = assert_one_lineage(&second, &h, "race with a child (promotion)", derived);
    assert_eq!(
        p.user_handles(&user).await,
        vec![h.clone()],
        "lost or extra row"
    );
    (p, h, user, grandchildren)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rt05_split_concurrent_refreshes_default_grace_one_child() {
    if skip() {
        return;
    }
    let (p, h, user, siblings) = split_races("pairg30", &[], 8).await;
    // Inside the 30 s window every reply (all the same token) is accepted, alternating
    // instances: whichever one a cookie jar kept keeps working.
    let mut last = None;
    for (i, rt) in siblings.iter().enumerate() {
        last = Some(p.refresh_ok(i, rt, &h).await);
    }
    // After the race the session refreshes normally from the last adopted sibling's child.
    let mut v = last.unwrap();
    for i in 0..4 {
        v = p.refresh_ok(i, &token(&v, "refreshToken"), &h).await;
        p.verify_ok(i + 1, &token(&v, "accessToken"), true, &h)
            .await;
    }
    assert_eq!(p.user_handles(&user).await, vec![h]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rt05_split_concurrent_refreshes_grace_0_supertokens_behaviour() {
    if skip() {
        return;
    }
    let (p, h, user, siblings) =
        split_races("pairg0", &["--refresh-token-rotation-grace-period", "0"], 8).await;
    // The racing refreshes themselves never report theft (checked above); the session
    // refreshes normally from the sibling the client kept, through either instance.
    let kept = siblings.last().unwrap();
    let mut v = p.refresh_ok(1, kept, &h).await;
    for i in 0..4 {
        p.verify_ok(i, &token(&v, "accessToken"), true, &h).await;
        v = p.refresh_ok(i, &token(&v, "refreshToken"), &h).await;
    }
    assert_eq!(p.user_handles(&user).await, vec![h.clone()]);
    // Strict CDI 5.4 (grace 0): a sibling displaced by the promotion of another is a
    // rotated-out token, i.e. theft (SuperTokens' ORPHANED_BRANCH), and revokes the session.
    let displaced = p
        .post(0, "/recipe/session/refresh", &refresh_body(&siblings[0]))
        .await;
    assert_eq!(status(&displaced), "TOKEN_THEFT_DETECTED", "{displaced}");
    assert_eq!(displaced["session"]["handle"], h.as_str());
    let after = p
        .post(
            1,
            "/recipe/session/refresh",
            &refresh_body(&token(&v, "refreshToken")),
        )
        .await;
    assert_eq!(status(&after), "UNAUTHORISED", "{after}");
    assert!(p.user_handles(&user).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rt06_fifty_parallel_refreshes_across_two_instances() {
    if skip() {
        return;
    }
    let p = Pair::start("pair50", &[]).await;
    let created = p
        .post(0, "/public/recipe/session", &create_body("fifty"))
        .await;
    assert_eq!(status(&created), "OK", "{created}");
    let h = handle(&created);
    let rt1 = token(&created, "refreshToken");

    // First on one instance: 50 × RT1 (the current token) via A.
    let first = p.race(&rt1, 50, |_| 0).await;
    let children = assert_one_lineage(&first, &h, "50 × current token via A", true);
    // Then spread: 50 × one child, 25 via A and 25 via B; exactly one promotion wins.
    let second = p.race(&children[7], 50, |i| i % 2).await;
    let grandchildren = assert_one_lineage(&second, &h, "50 × child over A and B", true);
    assert_eq!(p.user_handles("fifty").await, vec![h.clone()], "lost row");

    // Then the 50 replies at once, spread (tabs that refresh while the cookie jar is still
    // changing; all hold the same token). None may be reported as theft, none may fail.
    let third = p.race_each(&grandchildren, |i| i % 2).await;
    let kept = assert_one_lineage(&third, &h, "50 × the replies over A and B", true);
    assert_eq!(p.user_handles("fifty").await, vec![h.clone()], "lost row");
    // Every reply's access token verifies with the database, not theft.
    for (i, v) in third.iter().enumerate() {
        p.verify_ok(i, &token(v, "accessToken"), true, &h).await;
    }

    // The session refreshes normally from that reply, through both instances.
    let mut v = p.refresh_ok(0, &kept[0], &h).await;
    for i in 1..5 {
        v = p.refresh_ok(i, &token(&v, "refreshToken"), &h).await;
        p.verify_ok(i + 1, &token(&v, "accessToken"), true, &h)
            .await;
    }
    let info = p
        .get(1, &format!("/recipe/session?sessionHandle={h}"))
        .await;
    assert_eq!(status(&info), "OK", "{info}");
    assert_eq!(info["userId"], "fifty");
    assert_eq!(p.user_handles("fifty").await, vec![h]);
}

/// RT-06 "whichever RT the browser keeps must stay usable", for a sibling storm over both
/// instances: a browser keeps the reply that arrives last, whichever it is. (With the v1
/// lineage rules the children of displaced adopted siblings were theft; lineage v2 derives
/// one child per token, so there are no siblings.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rt06_every_reply_of_a_sibling_storm_stays_usable() {
    if skip() {
        return;
    }
    let p = Pair::start("pairstorm", &["--refresh-token-rotation-grace-period", "2"]).await;
    let created = p
        .post(0, "/public/recipe/session", &create_body("storm"))
        .await;
    let h = handle(&created);
    let first = p.race(&token(&created, "refreshToken"), 2, |i| i % 2).await;
    let children = assert_one_lineage(&first, &h, "race", true);
    let second = p.race(&children[0], 8, |i| i % 2).await;
    let siblings = assert_one_lineage(&second, &h, "race", true);
    let storm = p.race_each(&siblings, |i| i % 2).await;
    for v in &storm {
        assert_eq!(status(v), "OK", "{v}");
    }
    // Whichever reply the cookie jar kept must refresh, inside the window and after it.
    p.refresh_ok(1, &token(&storm[0], "refreshToken"), &h).await;
    tokio::time::sleep(std::time::Duration::from_millis(2_300)).await;
    p.refresh_ok(0, &token(&storm[7], "refreshToken"), &h).await;
    p.refresh_ok(1, &token(&storm[3], "refreshToken"), &h).await;
}
