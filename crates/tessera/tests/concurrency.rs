//! Concurrent refreshes and verifications (RT-05/06, REQ-22) on both stores: no false theft,
//! exactly one lineage survives, no lost session.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::HashSet;
use tessera::fuzzing::sha256_hex;
use tessera::fuzzing::Lineage;
use tessera::{NewSession, RefreshDecision, RefreshOptions, SessionError, VerifyOptions};
use tessera_testkit::engine::setup;
use tessera_testkit::{on_both_stores, Backend};

const PARALLEL: usize = 50;

// RT-06: 50 simultaneous refreshes with one refresh token.
async fn rt_06_fifty_parallel_refreshes_with_one_token(backend: Backend) {
    let (engine, clock, store) = setup(backend).await;
    let s = engine
        .create_session(NewSession::for_user("tabs"))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..PARALLEL)
        .map(|_| {
            let engine = engine.clone();
            let rt = s.refresh_token.token.clone();
            tokio::spawn(
                async move { engine.refresh_session(&rt, RefreshOptions::default()).await },
            )
        })
        .collect();
    let mut children = Vec::new();
    for t in tasks {
        let r = t.await.expect("task");
        children.push(r.expect("no false theft, no error"));
    }
    let distinct: HashSet<_> = children
        .iter()
        .map(|c| c.refresh_token.token.clone())
        .collect();
    assert_eq!(
        distinct.len(),
        1,
        "with a grace window every refresh of one token answers the same child"
    );
    assert_eq!(
        store.count_sessions("public").await.unwrap(),
        1,
        "no duplicate rows"
    );

    // The browser's jar keeps one of them; its first request promotes it.
    let kept = children.last().unwrap().clone();
    engine
        .verify_session(&kept.access_token.token, VerifyOptions::default())
        .await
        .unwrap();
    let next = engine
        .refresh_session(&kept.refresh_token.token, RefreshOptions::default())
        .await
        .expect("the kept lineage refreshes");
    let row = store
        .get_session("public", "public", &s.session.handle)
        .await
        .unwrap()
        .expect("no lost session");
    assert_eq!(
        row.refresh_token_hash2,
        sha256_hex(&sha256_hex(&kept.refresh_token.token))
    );
    let lineage = Lineage {
        current: &row.refresh_token_hash2,
        prev: row.prev_refresh_token_hash2.as_deref(),
        rotated_at_ms: row.refresh_token_rotated_at,
    };
    let first = sha256_hex(&sha256_hex(&s.refresh_token.token));
    let grace = engine.config().sibling_grace_ms;
    assert_eq!(
        lineage.decide_refresh(&first, None, clock_now(&clock), grace),
        RefreshDecision::LateParent
    );
    assert!(matches!(
        lineage.decide_refresh(&first, None, clock_now(&clock) + grace + 1, grace),
        RefreshDecision::Theft(_)
    ));
    // After the window every reply of the storm still refreshes (they are one token), and
    // the first token is theft, which revokes the session.
    clock.advance_ms(grace + 1);
    for c in [&children[0], &children[PARALLEL / 2]] {
        engine
            .refresh_session(&c.refresh_token.token, RefreshOptions::default())
            .await
            .expect("any reply of the storm refreshes after the window");
    }
    let r = engine
        .refresh_session(&s.refresh_token.token, RefreshOptions::default())
        .await;
    assert!(matches!(r, Err(SessionError::TokenTheft { .. })), "{r:?}");
    let r = engine
        .refresh_session(&next.refresh_token.token, RefreshOptions::default())
        .await;
    assert!(matches!(r, Err(SessionError::Unauthorised(_))));
}

fn clock_now(clock: &tessera::ManualClock) -> u64 {
    use tessera::Clock;
    clock.now_ms()
}

// Two tabs each use their own child at the same moment (promotion races adoption): no theft,
// one current lineage, both tabs keep working inside the window.
async fn rt_05_siblings_used_concurrently_are_not_theft(backend: Backend) {
    let (engine, _clock, store) = setup(backend).await;
    let s = engine
        .create_session(NewSession::for_user("tabs"))
        .await
        .unwrap();
    let mut children = Vec::new();
    for _ in 0..PARALLEL {
        children.push(
            engine
                .refresh_session(&s.refresh_token.token, RefreshOptions::default())
                .await
                .unwrap(),
        );
    }
    let tasks: Vec<_> = children
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let engine = engine.clone();
            let (at, rt) = (c.access_token.token.clone(), c.refresh_token.token.clone());
            tokio::spawn(async move {
                if i % 2 == 0 {
                    engine
                        .verify_session(&at, VerifyOptions::default())
                        .await
                        .map(|_| ())
                } else {
                    engine
                        .refresh_session(&rt, RefreshOptions::default())
                        .await
                        .map(|_| ())
                }
            })
        })
        .collect();
    for t in tasks {
        t.await
            .expect("task")
            .expect("no theft among concurrent siblings");
    }
    assert_eq!(store.count_sessions("public").await.unwrap(), 1);
}

// 50 parallel verifications of the same first-generation access token promote once.
async fn parallel_promotions_of_one_token(backend: Backend) {
    let (engine, clock, store) = setup(backend).await;
    let s = engine
        .create_session(NewSession::for_user("u"))
        .await
        .unwrap();
    let child = engine
        .refresh_session(&s.refresh_token.token, RefreshOptions::default())
        .await
        .unwrap();
    let tasks: Vec<_> = (0..PARALLEL)
        .map(|_| {
            let engine = engine.clone();
            let at = child.access_token.token.clone();
            tokio::spawn(async move { engine.verify_session(&at, VerifyOptions::default()).await })
        })
        .collect();
    for t in tasks {
        let v = t.await.expect("task").expect("verify");
        assert!(
            v.access_token.is_some(),
            "every caller gets a token without parent"
        );
    }
    let row = store
        .get_session("public", "public", &s.session.handle)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row.refresh_token_hash2,
        sha256_hex(&sha256_hex(&child.refresh_token.token))
    );
    assert_eq!(
        row.prev_refresh_token_hash2,
        Some(sha256_hex(&sha256_hex(&s.refresh_token.token)))
    );
    // The parent is now rotated out (theft once the grace window has passed).
    clock.advance_ms(engine.config().sibling_grace_ms + 1);
    let r = engine
        .refresh_session(&s.refresh_token.token, RefreshOptions::default())
        .await;
    assert!(matches!(r, Err(SessionError::TokenTheft { .. })));
}

on_both_stores!(
    rt_06_fifty_parallel_refreshes_with_one_token,
    rt_05_siblings_used_concurrently_are_not_theft,
    parallel_promotions_of_one_token,
);
