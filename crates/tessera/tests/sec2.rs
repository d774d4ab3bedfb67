//! Security round 2 (issue 11), the engine and store findings: each test is the attack, then the
//! verdict read from the engine and the store. Ids: SEC2-H1, SEC2-L8, SEC2-M2, SEC2-L2.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use serde_json::Value;
use std::sync::Arc;
use tessera::fuzzing::{b64url_decode, b64url_encode};
use tessera::{
    KeyKind, ManualClock, NewSession, SessionEngine, SessionError, SigningKey, Store, VerifyOptions,
};
use tessera_testkit::engine::{engine_on, test_config};
use tessera_testkit::{fresh_store, on_both_stores, postgres_url, Backend};

const NOW_MS: u64 = 1_700_000_000_000;

/// An operator key in the storage form `<spki>|<pkcs8>`.
fn operator_key() -> String {
    SigningKey::generate("s-x".into(), KeyKind::Static, 0, u64::MAX)
        .and_then(|k| k.to_stored())
        .expect("RSA keygen")
}

async fn engine_with(
    store: &Arc<dyn Store>,
    clock: &Arc<ManualClock>,
    key: &str,
    previous: &[&String],
) -> SessionEngine {
    SessionEngine::builder(Arc::clone(store))
        .config(test_config())
        .clock(Arc::clone(clock) as _)
        .static_signing_key(key)
        .previous_static_signing_keys(previous.iter().map(|k| (*k).clone()).collect())
        .build()
        .await
        .expect("engine")
}

fn segment(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).expect("segment");
    serde_json::from_slice(&b64url_decode(part.as_bytes()).expect("b64url")).expect("json")
}

/// What an attacker holding the leaked key `stored` mints offline: a copy of a genuine
/// token's claims with `sub: admin` and a made-up session, signed with the leaked key.
fn forge_admin(genuine: &str, stored: &str) -> String {
    let header = segment(genuine, 0);
    let kid = header["kid"].as_str().expect("kid").to_owned();
    let mut claims = segment(genuine, 1);
    claims["sub"] = "admin".into();
    claims["rsub"] = "admin".into();
    claims["sessionHandle"] = "forged-session".into();
    let key = SigningKey::from_stored(stored, kid, KeyKind::Static, 0, u64::MAX).expect("key");
    let signing_input = format!(
        "{}.{}",
        b64url_encode(header.to_string().as_bytes()),
        b64url_encode(claims.to_string().as_bytes())
    );
    let signature = key.sign_rs256(signing_input.as_bytes()).expect("sign");
    format!("{signing_input}.{}", b64url_encode(&signature))
}

fn jwks_kids(engine: &SessionEngine) -> Vec<String> {
    engine.jwks().keys.iter().map(|k| k.kid.clone()).collect()
}

async fn verify(engine: &SessionEngine, token: &str) -> Result<String, SessionError> {
    engine
        .verify_session(token, VerifyOptions::default())
        .await
        .map(|v| v.session.user_id)
}

/// SEC2-H1: the operator replaces a leaked static key A with B and restarts. A token forged
/// offline with A (`sub: admin`) and A's genuine tokens are refused, A leaves the JWKS, and a
/// row an earlier version stored for A is deleted. A verifies again only while listed as a
/// previous key.
async fn sec2_h1_replaced_static_key_stops_verifying(backend: Backend) {
    let store = fresh_store(backend).await;
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let (a, b) = (operator_key(), operator_key());

    let with_a = engine_with(&store, &clock, &a, &[]).await;
    let mut new = NewSession::for_user("alice");
    new.use_static_key = true;
    let genuine = with_a
        .create_session(new)
        .await
        .expect("create")
        .access_token
        .token;
    let kid_a = segment(&genuine, 0)["kid"].as_str().unwrap().to_owned();
    let forged = forge_admin(&genuine, &a);
    assert_eq!(
        verify(&with_a, &forged).await.unwrap(),
        "admin",
        "the attack works with A"
    );
    assert!(jwks_kids(&with_a).contains(&kid_a));
    // What an earlier version left behind: A's private key stored as a static key.
    store
        .insert_static_key(
            "public",
            &tessera::StoredKey {
                kid: kid_a.clone(),
                value: a.clone(),
                created_at: NOW_MS,
            },
        )
        .await
        .unwrap();
    drop(with_a);

    // Restart with B.
    let with_b = engine_with(&store, &clock, &b, &[]).await;
    for token in [&forged, &genuine] {
        let verdict = verify(&with_b, token).await;
        assert!(
            matches!(verdict, Err(SessionError::TryRefreshToken(_))),
            "a token signed with the replaced key must be refused: {verdict:?}"
        );
    }
    assert!(!jwks_kids(&with_b).contains(&kid_a), "A left the JWKS");
    assert!(
        store
            .static_keys("public")
            .await
            .unwrap()
            .iter()
            .all(|k| k.kid != kid_a),
        "A's stored row is gone"
    );
    let mut new = NewSession::for_user("bob");
    new.use_static_key = true;
    let by_b = with_b.create_session(new).await.unwrap().access_token.token;
    assert_eq!(verify(&with_b, &by_b).await.unwrap(), "bob");
    assert_ne!(segment(&by_b, 0)["kid"], kid_a.as_str(), "B signs");
    drop(with_b);

    // An explicit overlap: A verifies (and is published) but B signs.
    let overlap = engine_with(&store, &clock, &b, &[&a]).await;
    assert_eq!(verify(&overlap, &genuine).await.unwrap(), "alice");
    assert!(jwks_kids(&overlap).contains(&kid_a));
    let mut new = NewSession::for_user("carol");
    new.use_static_key = true;
    let by_overlap = overlap
        .create_session(new)
        .await
        .unwrap()
        .access_token
        .token;
    assert_eq!(segment(&by_overlap, 0)["kid"], segment(&by_b, 0)["kid"]);
    drop(overlap);

    // Dropped from the list: refused again, even on an engine that never saw A sign.
    let after = engine_with(&store, &clock, &b, &[]).await;
    assert!(verify(&after, &forged).await.is_err());
    assert!(!jwks_kids(&after).contains(&kid_a));

    // No operator key at all: the generated static key signs; A stays out.
    let plain = engine_on(Arc::clone(&store), test_config(), Arc::clone(&clock)).await;
    assert!(verify(&plain, &forged).await.is_err());
    assert!(!jwks_kids(&plain).contains(&kid_a));
}

on_both_stores!(sec2_h1_replaced_static_key_stops_verifying);

/// Every byte-level variant of a genuine refresh token that an attacker (or a proxy that
/// changes case) can produce without the key.
fn malleated(token: &str) -> Vec<String> {
    let (blob, rest) = token.split_once('.').expect("blob");
    let (nonce, _tag) = rest.split_once('.').expect("nonce");
    let mut out = vec![
        format!("{blob}.{nonce}.v2"),
        format!("{blob}.{}.V2", nonce.to_ascii_uppercase()),
        format!("{blob}.{nonce}.V2."),
        format!(" {token}"),
    ];
    if let Some(stripped) = blob.strip_suffix('=') {
        out.push(format!("{stripped}.{nonce}.V2"));
    } else {
        out.push(format!("{blob}=.{nonce}.V2"));
    }
    out
}

/// SEC2-L8: a malleated copy of the current refresh token (`v2` for `V2`, and the other
/// variants) is invalid — UNAUTHORISED, never theft — and the session stays alive: the genuine
/// token still refreshes and the row is still there.
async fn sec2_l8_malleated_refresh_token_is_invalid_not_theft(backend: Backend) {
    let store = fresh_store(backend).await;
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let engine = engine_on(Arc::clone(&store), test_config(), Arc::clone(&clock)).await;
    let created = engine
        .create_session(NewSession::for_user("alice"))
        .await
        .unwrap();
    let handle = created.session.handle.clone();
    let mut current = created.refresh_token.token.clone();
    for round in 0..2 {
        for variant in malleated(&current) {
            let verdict = engine
                .refresh_session(&variant, tessera::RefreshOptions::default())
                .await;
            assert!(
                matches!(
                    verdict,
                    Err(SessionError::Unauthorised(
                        tessera::UnauthorisedReason::InvalidRefreshToken
                    ))
                ),
                "round {round}, {:?}: {verdict:?}",
                &variant[variant.len() - 4..]
            );
            assert!(
                store
                    .get_session("public", "public", &handle)
                    .await
                    .unwrap()
                    .is_some(),
                "the session survives a malleated token"
            );
        }
        // The genuine token still works; use the child so it becomes current.
        let next = engine
            .refresh_session(&current, tessera::RefreshOptions::default())
            .await
            .expect("the genuine token refreshes");
        engine
            .verify_session(&next.access_token.token, VerifyOptions::default())
            .await
            .expect("child verifies");
        current = next.refresh_token.token;
        clock.advance_ms(60_000);
    }
}

on_both_stores!(sec2_l8_malleated_refresh_token_is_invalid_not_theft);

/// A store of `backend` holding `expired` sessions that expired before `NOW_MS`, inserted in
/// one statement (as a long-idle database accumulates them).
async fn store_with_expired(backend: Backend, expired: u64) -> Arc<dyn Store> {
    let cols = "app_id, tenant_id, session_handle, user_id, refresh_token_hash_2, \
                session_data, jwt_user_payload, expires_at, created_at_time, use_static_key";
    let expires = NOW_MS - 1_000;
    match backend {
        Backend::Sqlite => {
            let path = std::env::temp_dir().join(format!("tessera-l2-{}.db", uuid::Uuid::new_v4()));
            let store = tessera::SqliteStore::open(&path).await.expect("sqlite");
            sqlx::query(&format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {expired}) \
                 INSERT INTO session_info ({cols}) SELECT 'public', 'public', 'expired-' || i, \
                 'user-' || (i % 1000), 'h', '{{}}', '{{}}', {expires}, {expires} - 3600000, false FROM n"
            ))
            .execute(store.pool())
            .await
            .expect("bulk insert");
            Arc::new(store)
        }
        Backend::Postgres => {
            let schema = format!("tessera_test_{}", uuid::Uuid::new_v4().simple());
            let store = tessera::PostgresStore::connect(&postgres_url(), Some(&schema))
                .await
                .expect("postgres");
            sqlx::query(&format!(
                "INSERT INTO session_info ({cols}) SELECT 'public', 'public', 'expired-' || i, \
                 'user-' || (i % 1000), 'h', '{{}}', '{{}}', {expires}, {expires} - 3600000, false \
                 FROM generate_series(1, {expired}) AS i"
            ))
            .execute(store.pool())
            .await
            .expect("bulk insert");
            Arc::new(store)
        }
    }
}

/// SEC2-L2, the bound: one clean-up statement deletes at most the batch it is given, and
/// never a live session.
async fn sec2_l2_one_statement_deletes_at_most_one_batch(backend: Backend) {
    let store = store_with_expired(backend, 2_500).await;
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let engine = engine_on(Arc::clone(&store), test_config(), clock).await;
    for user in ["a", "b", "c"] {
        engine
            .create_session(NewSession::for_user(user))
            .await
            .unwrap();
    }
    let batch = tessera::CLEANUP_BATCH;
    assert_eq!(batch, 1_000);
    let mut counts = Vec::new();
    loop {
        let n = store.delete_expired_sessions(NOW_MS, batch).await.unwrap();
        counts.push(n);
        if n == 0 {
            break;
        }
    }
    assert_eq!(counts, vec![1_000, 1_000, 500, 0]);
    assert_eq!(
        store.count_sessions("public").await.unwrap(),
        3,
        "live sessions stay"
    );
}

/// SEC2-L2, the symptom: 200,000 expired sessions are cleaned while four clients keep
/// creating sessions. Every create succeeds, none waits long for the write lock, and the
/// clean-up removes exactly the expired rows.
async fn sec2_l2_cleanup_of_many_expired_rows_never_blocks_creates(backend: Backend) {
    const EXPIRED: u64 = 200_000;
    let store = store_with_expired(backend, EXPIRED).await;
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let engine = engine_on(Arc::clone(&store), test_config(), clock).await;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..4 {
        let (engine, done) = (engine.clone(), Arc::clone(&done));
        clients.push(tokio::spawn(async move {
            let (mut ok, mut failed, mut slowest) = (0u64, Vec::new(), std::time::Duration::ZERO);
            let mut i = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) || i < 5 {
                let started = std::time::Instant::now();
                match engine
                    .create_session(NewSession::for_user(format!("live-{c}-{i}")))
                    .await
                {
                    Ok(_) => ok += 1,
                    Err(e) => failed.push(e.to_string()),
                }
                slowest = slowest.max(started.elapsed());
                i += 1;
            }
            (ok, failed, slowest)
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    let report = engine.cleanup().await.expect("cleanup");
    let took = started.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut created, mut slowest) = (0, std::time::Duration::ZERO);
    for client in clients {
        let (ok, failed, slow) = client.await.unwrap();
        assert!(
            failed.is_empty(),
            "creates failed during clean-up: {failed:?}"
        );
        created += ok;
        slowest = slowest.max(slow);
    }
    eprintln!(
        "{backend:?}: cleaned {} rows in {took:?}; {created} creates meanwhile, slowest {slowest:?}",
        report.sessions
    );
    assert_eq!(report.sessions, EXPIRED);
    assert_eq!(store.count_sessions("public").await.unwrap(), created);
    assert!(
        slowest < std::time::Duration::from_millis(1_500),
        "a create waited {slowest:?} for the clean-up"
    );
}

on_both_stores!(
    sec2_l2_one_statement_deletes_at_most_one_batch,
    sec2_l2_cleanup_of_many_expired_rows_never_blocks_creates
);
