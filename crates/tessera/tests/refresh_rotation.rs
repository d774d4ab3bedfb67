//! Refresh-token rotation and reuse detection, named by the catalogue's RT-* ids
//! (security-tests.md §3). Every case runs on both stores and asserts the exact outcome and
//! its side effects on the session row.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use tessera::fuzzing::sha256_hex;
use tessera::{
    NewSession, RefreshOptions, SessionConfig, SessionError, SessionTokens, UnauthorisedReason,
    VerifyOptions,
};
use tessera_testkit::engine::{setup, setup_with, test_config};
use tessera_testkit::{on_both_stores, Backend};

fn h2(token: &str) -> String {
    sha256_hex(&sha256_hex(token))
}

async fn refresh(engine: &tessera::SessionEngine, rt: &str) -> Result<SessionTokens, SessionError> {
    engine.refresh_session(rt, RefreshOptions::default()).await
}

/// Uses a child (verifies its first access token), which promotes it.
async fn use_child(engine: &tessera::SessionEngine, child: &SessionTokens) {
    let v = engine
        .verify_session(&child.access_token.token, VerifyOptions::default())
        .await
        .expect("verify promotes");
    assert!(v.access_token.is_some());
}

// RT-01: rotation gives new, different tokens; the row holds only hashes; the promotion records
// the previous hash and the rotation time.
async fn rt_01_normal_rotation_records_prev_and_time(backend: Backend) {
    let (engine, clock, store) = setup(backend).await;
    let s = engine
        .create_session(NewSession::for_user("u"))
        .await
        .unwrap();
    let c = refresh(&engine, &s.refresh_token.token).await.unwrap();
    assert_ne!(c.refresh_token.token, s.refresh_token.token);
    assert_ne!(c.access_token.token, s.access_token.token);
    let row = store
        .get_session("public", "public", &s.session.handle)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row.refresh_token_hash2,
        h2(&s.refresh_token.token),
        "refresh alone writes nothing"
    );
    assert_eq!(row.prev_refresh_token_hash2, None);
    clock.advance_ms(1_234);
    use_child(&engine, &c).await;
    let row = store
        .get_session("public", "public", &s.session.handle)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.refresh_token_hash2, h2(&c.refresh_token.token));
    assert_eq!(
        row.prev_refresh_token_hash2,
        Some(h2(&s.refresh_token.token))
    );
    assert_eq!(
        row.refresh_token_rotated_at,
        Some(tessera::Clock::now_ms(&*clock))
    );
    for value in [
        &row.refresh_token_hash2,
        row.prev_refresh_token_hash2.as_ref().unwrap(),
    ] {
        assert_ne!(value, &c.refresh_token.token);
        assert_ne!(value, &s.refresh_token.token);
    }
}

// RT-02: RT1→RT2, RT2→RT3, then RT1 outside the grace window: theft, the session is revoked,
// RT3 is then unauthorised and AT3 is rejected where the database is checked.
async fn rt_02_reuse_two_generations_old_is_theft_and_revokes(backend: Backend) {
    let (engine, clock, store) = setup(backend).await;
    let s = engine
        .create_session(NewSession::for_user("u"))
        .await
        .unwrap();
    let r2 = refresh(&engine, &s.refresh_token.token).await.unwrap();
    let r3 = refresh(&engine, &r2.refresh_token.token).await.unwrap();
    clock.advance_ms(test_config().sibling_grace_ms + 1);
    let r = refresh(&engine, &s.refresh_token.token).await;
    assert!(
        matches!(r, Err(SessionError::TokenTheft { ref session_handle, .. }) if *session_handle == s.session.handle)
    );
    assert!(store
        .get_session("public", "public", &s.session.handle)
        .await
        .unwrap()
        .is_none());
    let r = refresh(&engine, &r3.refresh_token.token).await;
    assert!(matches!(
        r,
        Err(SessionError::Unauthorised(
            UnauthorisedReason::SessionMissingOrExpired
        ))
    ));
    let r = engine
        .verify_session(
            &r3.access_token.token,
            VerifyOptions {
                check_database: true,
                ..Default::default()
            },
        )
        .await;
    assert!(matches!(r, Err(SessionError::Unauthorised(_))));
}

// RT-03: refresh RT1 → (AT2, RT2), use AT2, present RT1: theft, with and without grace.
async fn rt_03_parent_after_child_used_is_theft(backend: Backend) {
    for grace in [0, 30_000] {
        let config = SessionConfig {
            sibling_grace_ms: grace,
            ..test_config()
        };
        let (engine, clock, store) = setup_with(backend, config).await;
        let s = engine
            .create_session(NewSession::for_user("u"))
            .await
            .unwrap();
        let c = refresh(&engine, &s.refresh_token.token).await.unwrap();
        use_child(&engine, &c).await;
        clock.advance_ms(grace + 1); // "after the grace window"
        let r = refresh(&engine, &s.refresh_token.token).await;
        assert!(
            matches!(r, Err(SessionError::TokenTheft { .. })),
            "grace {grace}"
        );
        assert_eq!(store.count_sessions("public").await.unwrap(), 0);
    }
}

// RT-04: the attacker refreshes first with a copied RT1 and uses the result; the victim's
// RT1 is then theft, and the attacker's lineage dies with the session.
async fn rt_04_attacker_first_then_victim_revokes_both(backend: Backend) {
    let (engine, clock, _store) = setup(backend).await;
    let s = engine
        .create_session(NewSession::for_user("victim"))
        .await
        .unwrap();
    let attacker = refresh(&engine, &s.refresh_token.token).await.unwrap();
    use_child(&engine, &attacker).await;
    clock.advance_ms(test_config().sibling_grace_ms + 1); // the victim comes back later
    let r = refresh(&engine, &s.refresh_token.token).await;
    assert!(matches!(r, Err(SessionError::TokenTheft { .. })));
    let r = refresh(&engine, &attacker.refresh_token.token).await;
    assert!(
        matches!(r, Err(SessionError::Unauthorised(_))),
        "attacker's RT2' is dead too"
    );
}

// RT-07: grace boundary for the previous token: at rotation + G it is a late request (answered
// the head's child), at + G + 1 ms it is theft and the session is revoked.
async fn rt_07_grace_boundary(backend: Backend) {
    for (offset, accepted) in [(30_000u64, true), (30_001, false)] {
        let (engine, clock, store) = setup(backend).await;
        let s = engine
            .create_session(NewSession::for_user("u"))
            .await
            .unwrap();
        let a = refresh(&engine, &s.refresh_token.token).await.unwrap();
        use_child(&engine, &a).await;
        clock.advance_ms(offset);
        let r = refresh(&engine, &s.refresh_token.token).await;
        if accepted {
            let late = r.expect("late request inside the window");
            let head_child = refresh(&engine, &a.refresh_token.token).await.unwrap();
            assert_eq!(late.refresh_token.token, head_child.refresh_token.token);
            assert_eq!(store.count_sessions("public").await.unwrap(), 1);
        } else {
            assert!(matches!(r, Err(SessionError::TokenTheft { .. })), "{r:?}");
            assert_eq!(store.count_sessions("public").await.unwrap(), 0);
        }
    }
}

// RT-08: the window cannot be stretched: late requests with the previous token and uses of
// the head's child inside the window write nothing, so `rotated_at` stays and the previous
// token dies at rotation time + G.
async fn rt_08_window_is_anchored_to_the_first_rotation(backend: Backend) {
    let (engine, clock, store) = setup(backend).await;
    let s = engine
        .create_session(NewSession::for_user("u"))
        .await
        .unwrap();
    let a = refresh(&engine, &s.refresh_token.token).await.unwrap();
    use_child(&engine, &a).await;
    let row_before = store
        .get_session("public", "public", &s.session.handle)
        .await
        .unwrap()
        .unwrap();
    for _ in 0..3 {
        clock.advance_ms(10_000); // 10 s, 20 s, 30 s: inside the window
        let late = refresh(&engine, &s.refresh_token.token)
            .await
            .expect("late request");
        refresh(&engine, &late.refresh_token.token)
            .await
            .expect("the head's child inside the window");
        use_child(&engine, &late).await;
        let row = store
            .get_session("public", "public", &s.session.handle)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            row.refresh_token_rotated_at, row_before.refresh_token_rotated_at,
            "anchored"
        );
        assert_eq!(row.refresh_token_hash2, row_before.refresh_token_hash2);
        assert_eq!(row.expires_at, row_before.expires_at, "no write");
    }
    clock.advance_ms(1);
    let r = refresh(&engine, &s.refresh_token.token).await;
    assert!(matches!(r, Err(SessionError::TokenTheft { .. })), "{r:?}");
    assert_eq!(store.count_sessions("public").await.unwrap(), 0);
}

// RT-09: refresh after sign-out (revoke) or revoke-all: unauthorised, not theft, no tokens.
async fn rt_09_refresh_after_revocation_is_unauthorised(backend: Backend) {
    let (engine, _clock, _store) = setup(backend).await;
    let a = engine
        .create_session(NewSession::for_user("u"))
        .await
        .unwrap();
    let b = engine
        .create_session(NewSession::for_user("u"))
        .await
        .unwrap();
    engine.revoke_session(&a.session.handle).await.unwrap();
    let r = refresh(&engine, &a.refresh_token.token).await;
    assert!(matches!(
        r,
        Err(SessionError::Unauthorised(
            UnauthorisedReason::SessionMissingOrExpired
        ))
    ));
    engine
        .revoke_all_sessions_for_user("u", None)
        .await
        .unwrap();
    let r = refresh(&engine, &b.refresh_token.token).await;
    assert!(matches!(
        r,
        Err(SessionError::Unauthorised(
            UnauthorisedReason::SessionMissingOrExpired
        ))
    ));
}

// RT-10: refresh after the idle expiry: unauthorised, and the clean-up removes the row.
async fn rt_10_refresh_after_expiry_is_unauthorised(backend: Backend) {
    let (engine, clock, store) = setup(backend).await;
    let s = engine
        .create_session(NewSession::for_user("u"))
        .await
        .unwrap();
    clock.advance_ms(test_config().refresh_token_validity_ms + 1);
    let r = refresh(&engine, &s.refresh_token.token).await;
    assert!(matches!(
        r,
        Err(SessionError::Unauthorised(
            UnauthorisedReason::SessionMissingOrExpired
        ))
    ));
    assert_eq!(
        store.count_sessions("public").await.unwrap(),
        1,
        "refresh deletes nothing"
    );
    assert_eq!(engine.cleanup().await.unwrap().sessions, 1);
    assert_eq!(store.count_sessions("public").await.unwrap(), 0);
}

// RT-11: garbage, truncated, bit-flipped, never-issued and other-session tokens are
// unauthorised and leave the victim's session untouched (they cannot force a logout).
async fn rt_11_forged_tokens_cannot_touch_the_victim(backend: Backend) {
    let (engine, _clock, store) = setup(backend).await;
    let victim = engine
        .create_session(NewSession::for_user("victim"))
        .await
        .unwrap();
    let other = engine
        .create_session(NewSession::for_user("other"))
        .await
        .unwrap();
    let rt = &victim.refresh_token.token;
    let mut forged = vec![
        String::new(),
        "x".repeat(10),
        rt[..rt.len() / 2].to_string(),
        format!("{rt}x"),
        rt.replace(".V2", ".V1"),
    ];
    let mut flipped = rt.clone().into_bytes();
    flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
    forged.push(String::from_utf8(flipped).unwrap());
    for f in &forged {
        let r = refresh(&engine, f).await;
        assert!(
            matches!(
                r,
                Err(SessionError::Unauthorised(
                    UnauthorisedReason::InvalidRefreshToken
                ))
            ),
            "{f:?}"
        );
    }
    let row = store
        .get_session("public", "public", &victim.session.handle)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.refresh_token_hash2, h2(rt), "victim untouched");
    refresh(&engine, &other.refresh_token.token).await.unwrap();
    refresh(&engine, rt).await.expect("victim still refreshes");
}

// RT-16: a stored hash does not work as a refresh token.
async fn rt_16_stored_hash_is_not_a_token(backend: Backend) {
    let (engine, _clock, store) = setup(backend).await;
    let s = engine
        .create_session(NewSession::for_user("u"))
        .await
        .unwrap();
    let row = store
        .get_session("public", "public", &s.session.handle)
        .await
        .unwrap()
        .unwrap();
    for fake in [
        row.refresh_token_hash2.clone(),
        sha256_hex(&s.refresh_token.token),
    ] {
        let r = refresh(&engine, &fake).await;
        assert!(matches!(
            r,
            Err(SessionError::Unauthorised(
                UnauthorisedReason::InvalidRefreshToken
            ))
        ));
    }
}

// RT-17: identity survives rotation; the anti-CSRF token rotates; an access token two
// generations old is valid until exp and is not theft on a database-checked verify.
async fn rt_17_identity_preserved_csrf_rotated_old_at_not_theft(backend: Backend) {
    let (engine, _clock, _store) = setup(backend).await;
    let s = engine
        .create_session(NewSession {
            enable_anti_csrf: true,
            tenant_id: "acme".into(),
            ..NewSession::for_user("u")
        })
        .await
        .unwrap();
    let opts = |t: &SessionTokens| RefreshOptions {
        anti_csrf_token: t
            .anti_csrf_token
            .clone()
            .map(|s| &*Box::leak(s.into_boxed_str())),
        enable_anti_csrf: true,
        use_static_key: None,
    };
    let r1 = engine
        .refresh_session(&s.refresh_token.token, opts(&s))
        .await
        .unwrap();
    let r2 = engine
        .refresh_session(&r1.refresh_token.token, opts(&r1))
        .await
        .unwrap();
    for r in [&r1, &r2] {
        assert_eq!(r.session.handle, s.session.handle);
        assert_eq!(r.session.user_id, "u");
        assert_eq!(r.session.tenant_id, "acme");
        assert!(r.anti_csrf_token.is_some());
    }
    assert_ne!(r1.anti_csrf_token, s.anti_csrf_token);
    assert_ne!(r2.anti_csrf_token, r1.anti_csrf_token);
    let v = engine
        .verify_session(
            &s.access_token.token,
            VerifyOptions {
                check_database: true,
                ..Default::default()
            },
        )
        .await
        .expect("old-lineage AT is valid until exp, not theft");
    assert_eq!(v.session.handle, s.session.handle);
}

on_both_stores!(
    rt_01_normal_rotation_records_prev_and_time,
    rt_02_reuse_two_generations_old_is_theft_and_revokes,
    rt_03_parent_after_child_used_is_theft,
    rt_04_attacker_first_then_victim_revokes_both,
    rt_07_grace_boundary,
    rt_08_window_is_anchored_to_the_first_rotation,
    rt_09_refresh_after_revocation_is_unauthorised,
    rt_10_refresh_after_expiry_is_unauthorised,
    rt_11_forged_tokens_cannot_touch_the_victim,
    rt_16_stored_hash_is_not_a_token,
    rt_17_identity_preserved_csrf_rotated_old_at_not_theft,
);
