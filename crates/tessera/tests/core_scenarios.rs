//! The SuperTokens core's session scenarios (core-api.md §14), ported to the engine and run on
//! both stores. Every negative case asserts the exact error variant and its side effects.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use serde_json::{json, Map, Value};
use std::sync::Arc;
use tessera::{
    fuzzing::sha256_hex, NewSession, RefreshOptions, SessionConfig, SessionError, TryRefreshReason,
    UnauthorisedReason, VerifyOptions,
};
use tessera_testkit::engine::{engine_on, setup, setup_with, test_config};
use tessera_testkit::{on_both_stores, Backend};

const MIN: u64 = 60_000;

fn payload(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn new_session(user: &str) -> NewSession {
    NewSession {
        access_token_payload: payload(json!({"key": "value"})),
        session_data: json!({"db": 1}),
        ..NewSession::for_user(user)
    }
}

fn check_db() -> VerifyOptions<'static> {
    VerifyOptions {
        check_database: true,
        ..Default::default()
    }
}

fn claims_of(token: &str) -> Map<String, Value> {
    let part = token.split('.').nth(1).expect("payload segment");
    let bytes = tessera::fuzzing::b64url_decode(part.as_bytes()).expect("base64url");
    serde_json::from_slice(&bytes).expect("json")
}

fn header_of(token: &str) -> Map<String, Value> {
    let part = token.split('.').next().expect("header segment");
    let bytes = tessera::fuzzing::b64url_decode(part.as_bytes()).expect("base64url");
    serde_json::from_slice(&bytes).expect("json")
}

// SessionTest1: create then get, with and without anti-CSRF; claim set and header format.
async fn create_and_get_session(backend: Backend) {
    let (engine, _clock, store) = setup(backend).await;
    for anti_csrf in [false, true] {
        let created = engine
            .create_session(NewSession {
                enable_anti_csrf: anti_csrf,
                ..new_session("user-1")
            })
            .await
            .unwrap();
        assert_eq!(created.anti_csrf_token.is_some(), anti_csrf);
        let claims = claims_of(&created.access_token.token);
        assert_eq!(
            claims.len(),
            10,
            "V5 with one custom claim has exactly 10 claims"
        );
        assert_eq!(claims["parentRefreshTokenHash1"], Value::Null);
        assert_eq!(claims["sub"], "user-1");
        assert_eq!(claims["rsub"], "user-1");
        assert_eq!(claims["tId"], "public");
        assert_eq!(claims["key"], "value");
        assert_eq!(
            claims["refreshTokenHash1"],
            sha256_hex(&created.refresh_token.token)
        );
        let header = header_of(&created.access_token.token);
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["typ"], "JWT");
        assert_eq!(header["version"], "5");
        assert!(header["kid"].as_str().unwrap().starts_with("d-"));
        assert_eq!(created.access_token.expiry % 1000, 0, "whole seconds");

        let verified = engine
            .verify_session(
                &created.access_token.token,
                VerifyOptions {
                    check_database: false,
                    anti_csrf_check: anti_csrf,
                    anti_csrf_token: created.anti_csrf_token.as_deref(),
                },
            )
            .await
            .unwrap();
        assert_eq!(verified.session.handle, created.session.handle);
        assert_eq!(verified.session.user_id, "user-1");
        assert_eq!(verified.session.user_data_in_jwt["key"], "value");
        assert!(verified.access_token.is_none(), "fast path mints nothing");

        // The row stores hash2 = sha256_hex(sha256_hex(token)), never the token.
        let row = store
            .get_session("public", "public", &created.session.handle)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            row.refresh_token_hash2,
            sha256_hex(&sha256_hex(&created.refresh_token.token))
        );
        assert_eq!(row.session_data, r#"{"db":1}"#);
    }
}

// SessionTest1: expiry gives try-refresh; a bad or missing anti-CSRF token gives try-refresh.
async fn expired_and_anti_csrf_failures(backend: Backend) {
    let (engine, clock, _store) = setup(backend).await;
    let created = engine
        .create_session(NewSession {
            enable_anti_csrf: true,
            ..new_session("u")
        })
        .await
        .unwrap();
    let token = &created.access_token.token;
    for given in [None, Some("wrong")] {
        let r = engine
            .verify_session(
                token,
                VerifyOptions {
                    check_database: false,
                    anti_csrf_check: true,
                    anti_csrf_token: given,
                },
            )
            .await;
        assert!(matches!(
            r,
            Err(SessionError::TryRefreshToken(
                TryRefreshReason::AntiCsrfFailed
            ))
        ));
    }
    clock.advance_ms(MIN + 1_000);
    let r = engine.verify_session(token, VerifyOptions::default()).await;
    assert!(matches!(
        r,
        Err(SessionError::TryRefreshToken(TryRefreshReason::Expired))
    ));
    // Refresh with a wrong anti-CSRF token: unauthorised, nothing rotates.
    let r = engine
        .refresh_session(
            &created.refresh_token.token,
            RefreshOptions {
                anti_csrf_token: Some("wrong"),
                enable_anti_csrf: true,
                use_static_key: None,
            },
        )
        .await;
    assert!(matches!(
        r,
        Err(SessionError::Unauthorised(
            UnauthorisedReason::AntiCsrfMismatch
        ))
    ));
    let ok = engine
        .refresh_session(
            &created.refresh_token.token,
            RefreshOptions {
                anti_csrf_token: created.anti_csrf_token.as_deref(),
                enable_anti_csrf: true,
                use_static_key: None,
            },
        )
        .await
        .unwrap();
    assert!(ok.anti_csrf_token.is_some());
    assert_ne!(ok.anti_csrf_token, created.anti_csrf_token, "rotated");
}

// SessionTest1: an altered payload fails; empty and complex payloads round-trip.
async fn altered_empty_and_complex_payloads(backend: Backend) {
    let (engine, _clock, _store) = setup(backend).await;
    let complex = payload(json!({"a": {"b": [1, 2, {"c": null}]}, "s": "ü", "n": null}));
    for p in [Map::new(), complex] {
        let created = engine
            .create_session(NewSession {
                access_token_payload: p.clone(),
                ..NewSession::for_user("u")
            })
            .await
            .unwrap();
        let v = engine
            .verify_session(&created.access_token.token, VerifyOptions::default())
            .await
            .unwrap();
        assert_eq!(v.session.user_data_in_jwt, p);
    }
    let created = engine.create_session(new_session("u")).await.unwrap();
    let mut parts: Vec<String> = created
        .access_token
        .token
        .split('.')
        .map(String::from)
        .collect();
    let mut claims = claims_of(&created.access_token.token);
    claims.insert("sub".into(), json!("admin"));
    parts[1] = tessera::fuzzing::b64url_encode(Value::Object(claims).to_string().as_bytes());
    let r = engine
        .verify_session(&parts.join("."), VerifyOptions::default())
        .await;
    assert!(matches!(
        r,
        Err(SessionError::TryRefreshToken(
            TryRefreshReason::InvalidToken
        ))
    ));
}

// Protected claims are refused before any write.
async fn protected_claims_refused_before_write(backend: Backend) {
    let (engine, _clock, store) = setup(backend).await;
    for claim in [
        "sub",
        "exp",
        "iat",
        "sessionHandle",
        "refreshTokenHash1",
        "parentRefreshTokenHash1",
        "antiCsrfToken",
        "tId",
        "rsub",
    ] {
        let r = engine
            .create_session(NewSession {
                access_token_payload: payload(json!({ claim: "x" })),
                ..NewSession::for_user("u")
            })
            .await;
        assert!(
            matches!(
                r,
                Err(SessionError::InvalidInput(
                    tessera::InputError::ProtectedClaim
                ))
            ),
            "{claim}"
        );
    }
    assert_eq!(store.count_sessions("public").await.unwrap(), 0);
    let created = engine.create_session(new_session("u")).await.unwrap();
    let r = engine
        .update_access_token_payload(&created.session.handle, &payload(json!({"sub": "admin"})))
        .await;
    assert!(matches!(
        r,
        Err(SessionError::InvalidInput(
            tessera::InputError::ProtectedClaim
        ))
    ));
    let r = engine
        .regenerate_access_token(
            &created.access_token.token,
            Some(payload(json!({"exp": 1}))),
        )
        .await;
    assert!(matches!(
        r,
        Err(SessionError::InvalidInput(
            tessera::InputError::ProtectedClaim
        ))
    ));
}

// SessionTest2 / PRJ-07: theft S1_R1_S2_R1 — the parent reused after its child was promoted
// by verify. Theft at once (grace does not cover the parent), and the session is revoked.
async fn prj_07_theft_s1_r1_s2_r1_parent_reused_after_child_promoted(backend: Backend) {
    for grace in [0, 30_000] {
        let (engine, clock, store) = setup_with(
            backend,
            SessionConfig {
                sibling_grace_ms: grace,
                ..test_config()
            },
        )
        .await;
        let s = engine
            .create_session(new_session("thief-victim"))
            .await
            .unwrap();
        let r1 = engine
            .refresh_session(&s.refresh_token.token, RefreshOptions::default())
            .await
            .unwrap();
        let v = engine
            .verify_session(&r1.access_token.token, VerifyOptions::default())
            .await
            .unwrap();
        let promoted_at = v.access_token.expect("promotion mints a new access token");
        assert_eq!(
            claims_of(&promoted_at.token)["parentRefreshTokenHash1"],
            Value::Null
        );
        // Inside the grace window the old token is a late concurrent refresh; after it, theft.
        clock.advance_ms(grace + 1);
        let r = engine
            .refresh_session(&s.refresh_token.token, RefreshOptions::default())
            .await;
        match r {
            Err(SessionError::TokenTheft {
                session_handle,
                user_id,
                recipe_user_id,
                ..
            }) => {
                assert_eq!(session_handle, s.session.handle);
                assert_eq!(user_id, "thief-victim");
                assert_eq!(recipe_user_id, "thief-victim");
            }
            other => panic!("grace {grace}: expected theft, got {other:?}"),
        }
        // Side effects: the session is gone; the legitimate token no longer refreshes.
        assert_eq!(store.count_sessions("public").await.unwrap(), 0);
        let r = engine
            .refresh_session(&r1.refresh_token.token, RefreshOptions::default())
            .await;
        assert!(matches!(
            r,
            Err(SessionError::Unauthorised(
                UnauthorisedReason::SessionMissingOrExpired
            ))
        ));
        let r = engine.verify_session(&promoted_at.token, check_db()).await;
        assert!(matches!(
            r,
            Err(SessionError::Unauthorised(UnauthorisedReason::SessionEnded))
        ));
    }
}

// SessionTest2 / PRJ-07: theft S1_R1_R2_R1 — the original reused after its child was itself
// used to refresh.
async fn prj_07_theft_s1_r1_r2_r1_original_reused_after_child_refreshed(backend: Backend) {
    for grace in [0, 30_000] {
        let (engine, clock, store) = setup_with(
            backend,
            SessionConfig {
                sibling_grace_ms: grace,
                ..test_config()
            },
        )
        .await;
        let s = engine.create_session(new_session("u")).await.unwrap();
        let r1 = engine
            .refresh_session(&s.refresh_token.token, RefreshOptions::default())
            .await
            .unwrap();
        let r2 = engine
            .refresh_session(&r1.refresh_token.token, RefreshOptions::default())
            .await
            .unwrap();
        clock.advance_ms(grace + 1); // after the grace window
        let r = engine
            .refresh_session(&s.refresh_token.token, RefreshOptions::default())
            .await;
        assert!(
            matches!(r, Err(SessionError::TokenTheft { .. })),
            "grace {grace}: {r:?}"
        );
        assert_eq!(store.count_sessions("public").await.unwrap(), 0);
        let r = engine
            .refresh_session(&r2.refresh_token.token, RefreshOptions::default())
            .await;
        assert!(matches!(r, Err(SessionError::Unauthorised(_))));
    }
}

// Two tabs refreshing with the same token at once get the same child (deterministic children
// with a grace window): no siblings, both keep working during and after the window; the
// superseded first token, presented after the window, is theft.
async fn two_tabs_refreshing_at_once_get_one_child(backend: Backend) {
    let (engine, clock, store) = setup(backend).await;
    let s = engine.create_session(new_session("u")).await.unwrap();
    let tab_a = engine
        .refresh_session(&s.refresh_token.token, RefreshOptions::default())
        .await
        .unwrap();
    let tab_b = engine
        .refresh_session(&s.refresh_token.token, RefreshOptions::default())
        .await
        .unwrap();
    assert_eq!(tab_a.refresh_token.token, tab_b.refresh_token.token);
    // Tab A's child is promoted; tab B (the same token) keeps refreshing.
    engine
        .verify_session(&tab_a.access_token.token, VerifyOptions::default())
        .await
        .unwrap();
    clock.advance_ms(10_000);
    let b2 = engine
        .refresh_session(&tab_b.refresh_token.token, RefreshOptions::default())
        .await
        .expect("the head refreshes");
    clock.advance_ms(30_000);
    engine
        .refresh_session(&b2.refresh_token.token, RefreshOptions::default())
        .await
        .expect("the head's child refreshes after the window");
    clock.advance_ms(30_001);
    let r = engine
        .refresh_session(&s.refresh_token.token, RefreshOptions::default())
        .await;
    assert!(matches!(r, Err(SessionError::TokenTheft { .. })), "{r:?}");
    assert_eq!(store.count_sessions("public").await.unwrap(), 0);
}

// SessionTest4: an access token of an older generation verifies (with the DB check) with no
// new token and no theft. Grace 0, as in the reference core: with a window the third refresh
// would not promote a second time within it.
async fn prj_07_grandparent_access_token_verifies_without_new_token(backend: Backend) {
    let config = SessionConfig {
        sibling_grace_ms: 0,
        ..test_config()
    };
    let (engine, _clock, _store) = setup_with(backend, config).await;
    let s = engine.create_session(new_session("u")).await.unwrap();
    let r1 = engine
        .refresh_session(&s.refresh_token.token, RefreshOptions::default())
        .await
        .unwrap();
    let r2 = engine
        .refresh_session(&r1.refresh_token.token, RefreshOptions::default())
        .await
        .unwrap();
    let r3 = engine
        .refresh_session(&r2.refresh_token.token, RefreshOptions::default())
        .await
        .unwrap();
    assert!(!r3.refresh_token.token.is_empty());
    let v = engine
        .verify_session(&r1.access_token.token, VerifyOptions::default())
        .await
        .unwrap();
    assert!(v.access_token.is_none());
    assert_eq!(v.session.handle, s.session.handle);
}

// SessionTest4 createVerifyRefreshVerifyRefresh: always exactly one row.
async fn verify_expire_refresh_loop_keeps_one_row(backend: Backend) {
    let (engine, clock, store) = setup(backend).await;
    let s = engine.create_session(new_session("u")).await.unwrap();
    let (mut at, mut rt) = (s.access_token.token, s.refresh_token.token);
    for _ in 0..5 {
        let v = engine
            .verify_session(&at, VerifyOptions::default())
            .await
            .unwrap();
        if let Some(new_at) = v.access_token {
            at = new_at.token;
        }
        engine
            .verify_session(&at, VerifyOptions::default())
            .await
            .unwrap();
        clock.advance_ms(MIN + 1_000);
        let r = engine.verify_session(&at, VerifyOptions::default()).await;
        assert!(matches!(
            r,
            Err(SessionError::TryRefreshToken(TryRefreshReason::Expired))
        ));
        let refreshed = engine
            .refresh_session(&rt, RefreshOptions::default())
            .await
            .unwrap();
        at = refreshed.access_token.token;
        rt = refreshed.refresh_token.token;
        assert_eq!(store.count_sessions("public").await.unwrap(), 1);
    }
}

// SessionTest1 refreshTokenExpiresAfterShortTime: refreshing with the parent does not extend
// the session; promotion does. Grace 0, as in the reference core (with a window, promotions
// are at most one per window, longer than this 1.5 s session).
async fn parent_refresh_does_not_extend_but_promotion_does(backend: Backend) {
    let config = SessionConfig {
        access_token_validity_ms: 1_000,
        refresh_token_validity_ms: 1_500,
        sibling_grace_ms: 0,
        ..test_config()
    };
    let (engine, clock, _store) = setup_with(backend, config).await;
    let s = engine.create_session(new_session("u")).await.unwrap();
    let child = engine
        .refresh_session(&s.refresh_token.token, RefreshOptions::default())
        .await
        .unwrap();
    clock.advance_ms(1_600);
    let r = engine
        .refresh_session(&child.refresh_token.token, RefreshOptions::default())
        .await;
    assert!(matches!(
        r,
        Err(SessionError::Unauthorised(
            UnauthorisedReason::SessionMissingOrExpired
        ))
    ));

    // Each child's access token is verified right away: that promotes the child and
    // extends the session, so the chain outlives the original 1.5 s.
    let s = engine.create_session(new_session("u")).await.unwrap();
    let mut rt = s.refresh_token.token;
    for _ in 0..4 {
        let next = engine
            .refresh_session(&rt, RefreshOptions::default())
            .await
            .unwrap();
        engine
            .verify_session(&next.access_token.token, VerifyOptions::default())
            .await
            .unwrap();
        rt = next.refresh_token.token;
        clock.advance_ms(1_000);
    }
}

// SessionTest3: revoke, then refresh is unauthorised and verify with the DB check is
// unauthorised; without the DB check the token lives until it expires.
async fn revoke_then_refresh_and_verify(backend: Backend) {
    let (engine, clock, _store) = setup(backend).await;
    let s = engine.create_session(new_session("u")).await.unwrap();
    assert!(engine.revoke_session(&s.session.handle).await.unwrap());
    assert!(
        !engine.revoke_session(&s.session.handle).await.unwrap(),
        "already gone"
    );
    let r = engine
        .refresh_session(&s.refresh_token.token, RefreshOptions::default())
        .await;
    assert!(matches!(
        r,
        Err(SessionError::Unauthorised(
            UnauthorisedReason::SessionMissingOrExpired
        ))
    ));
    let r = engine
        .verify_session(&s.access_token.token, check_db())
        .await;
    assert!(matches!(
        r,
        Err(SessionError::Unauthorised(UnauthorisedReason::SessionEnded))
    ));
    engine
        .verify_session(&s.access_token.token, VerifyOptions::default())
        .await
        .expect("stateless verify until exp");
    clock.advance_ms(MIN + 1_000);
    let r = engine
        .verify_session(&s.access_token.token, VerifyOptions::default())
        .await;
    assert!(matches!(
        r,
        Err(SessionError::TryRefreshToken(TryRefreshReason::Expired))
    ));
}

// SessionTest3/4: revoke all for a user, list handles, expired sessions are not listed and
// cannot be updated; the clean-up removes them.
async fn user_sessions_listing_revoking_and_cleanup(backend: Backend) {
    let (engine, clock, store) = setup(backend).await;
    let a1 = engine.create_session(new_session("alice")).await.unwrap();
    let a2 = engine.create_session(new_session("alice")).await.unwrap();
    let b = engine.create_session(new_session("bob")).await.unwrap();
    let mut handles = engine
        .session_handles_for_user("alice", None)
        .await
        .unwrap();
    handles.sort();
    let mut expected = vec![a1.session.handle.clone(), a2.session.handle.clone()];
    expected.sort();
    assert_eq!(handles, expected);
    let mut revoked = engine
        .revoke_all_sessions_for_user("alice", None)
        .await
        .unwrap();
    revoked.sort();
    assert_eq!(revoked, expected);
    assert!(engine
        .session_handles_for_user("alice", None)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.count_sessions("public").await.unwrap(), 1);

    clock.advance_ms(test_config().refresh_token_validity_ms + 1);
    assert!(engine
        .session_handles_for_user("bob", None)
        .await
        .unwrap()
        .is_empty());
    let r = engine
        .update_session_data(&b.session.handle, &json!({}))
        .await;
    assert!(matches!(
        r,
        Err(SessionError::Unauthorised(
            UnauthorisedReason::SessionDoesNotExist
        ))
    ));
    let r = engine.get_session_info(&b.session.handle).await;
    assert!(matches!(
        r,
        Err(SessionError::Unauthorised(
            UnauthorisedReason::SessionDoesNotExist
        ))
    ));
    let report = engine.cleanup().await.unwrap();
    assert_eq!(report.sessions, 1);
    assert_eq!(store.count_sessions("public").await.unwrap(), 0);
}

// SessionTest4 / JWTDataTest: data updates, missing sessions, payload changes visible at
// verify only with the DB check.
async fn data_and_payload_updates(backend: Backend) {
    let (engine, _clock, _store) = setup(backend).await;
    let r = engine
        .update_session_data("no-such-handle", &json!({}))
        .await;
    assert!(matches!(
        r,
        Err(SessionError::Unauthorised(
            UnauthorisedReason::SessionDoesNotExist
        ))
    ));
    let s = engine.create_session(new_session("u")).await.unwrap();
    engine
        .update_session_data(&s.session.handle, &json!({"cart": [1, 2]}))
        .await
        .unwrap();
    let info = engine.get_session_info(&s.session.handle).await.unwrap();
    assert_eq!(info.session_data, json!({"cart": [1, 2]}));
    assert_eq!(info.user_id, "u");
    assert_eq!(info.tenant_id, "public");
    assert_eq!(info.access_token_payload, payload(json!({"key": "value"})));

    let new_payload = payload(json!({"role": "admin"}));
    engine
        .update_access_token_payload(&s.session.handle, &new_payload)
        .await
        .unwrap();
    let v = engine
        .verify_session(&s.access_token.token, VerifyOptions::default())
        .await
        .unwrap();
    assert!(
        v.access_token.is_none(),
        "without the DB check the token is unchanged"
    );
    assert_eq!(v.session.user_data_in_jwt["key"], "value");
    let v = engine
        .verify_session(&s.access_token.token, check_db())
        .await
        .unwrap();
    let minted = v.access_token.expect("payload change mints a new token");
    assert_eq!(claims_of(&minted.token)["role"], "admin");
    assert_eq!(v.session.user_data_in_jwt, new_payload);
    // A refresh then carries the stored payload.
    let r = engine
        .refresh_session(&s.refresh_token.token, RefreshOptions::default())
        .await
        .unwrap();
    assert_eq!(r.session.user_data_in_jwt, new_payload);
}

// RegenerateTokenTest: re-issue in place (same exp, same lineage), expired token → DB-only
// update, gone session → unauthorised.
async fn regenerate_access_token(backend: Backend) {
    let (engine, clock, store) = setup(backend).await;
    let s = engine.create_session(new_session("u")).await.unwrap();
    let r1 = engine
        .refresh_session(&s.refresh_token.token, RefreshOptions::default())
        .await
        .unwrap();
    clock.advance_ms(5_000);
    let g = engine
        .regenerate_access_token(&r1.access_token.token, Some(payload(json!({"v": 2}))))
        .await
        .unwrap();
    let token = g.access_token.expect("live token is re-issued");
    let before = claims_of(&r1.access_token.token);
    let after = claims_of(&token.token);
    assert_eq!(after["exp"], before["exp"], "same expiry");
    assert_eq!(after["refreshTokenHash1"], before["refreshTokenHash1"]);
    assert_eq!(
        after["parentRefreshTokenHash1"],
        before["parentRefreshTokenHash1"]
    );
    assert_eq!(after["v"], 2);
    assert!(after.get("key").is_none(), "payload replaced");
    // Regenerate without a payload keeps the stored one.
    let g = engine
        .regenerate_access_token(&token.token, None)
        .await
        .unwrap();
    assert_eq!(g.session.user_data_in_jwt, payload(json!({"v": 2})));

    clock.advance_ms(MIN);
    let g = engine
        .regenerate_access_token(&token.token, Some(payload(json!({"v": 3}))))
        .await
        .unwrap();
    assert!(
        g.access_token.is_none(),
        "expired token: database-only update"
    );
    let info = engine.get_session_info(&s.session.handle).await.unwrap();
    assert_eq!(info.access_token_payload, payload(json!({"v": 3})));

    store
        .delete_sessions("public", &[("public".into(), s.session.handle.clone())])
        .await
        .unwrap();
    let r = engine.regenerate_access_token(&token.token, None).await;
    assert!(matches!(
        r,
        Err(SessionError::Unauthorised(
            UnauthorisedReason::SessionDoesNotExist
        ))
    ));
    let r = engine.regenerate_access_token("garbage", None).await;
    assert!(matches!(
        r,
        Err(SessionError::Unauthorised(
            UnauthorisedReason::InvalidAccessToken
        ))
    ));
}

// SessionTest5/6: static vs dynamic keys, switching at refresh.
async fn static_and_dynamic_keys(backend: Backend) {
    let (engine, _clock, store) = setup(backend).await;
    let s = engine
        .create_session(NewSession {
            use_static_key: true,
            ..new_session("u")
        })
        .await
        .unwrap();
    let kid = header_of(&s.access_token.token)["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(kid.starts_with("s-"), "{kid}");
    engine
        .verify_session(&s.access_token.token, VerifyOptions::default())
        .await
        .unwrap();
    let jwks = engine.jwks();
    assert_eq!(
        jwks.keys.len(),
        2,
        "a fresh install publishes one d- and one s- key (the anonymous a- key apart: SEC2-L3)"
    );
    assert!(engine.anonymous_jwks().keys[0].kid.starts_with("a-"));
    assert!(jwks.keys[0].kid.starts_with("d-"));
    assert!(jwks.keys.iter().any(|k| k.kid == kid));

    let r = engine
        .refresh_session(
            &s.refresh_token.token,
            RefreshOptions {
                use_static_key: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(header_of(&r.access_token.token)["kid"]
        .as_str()
        .unwrap()
        .starts_with("d-"));
    let row = store
        .get_session("public", "public", &s.session.handle)
        .await
        .unwrap()
        .unwrap();
    assert!(!row.use_static_key, "the switch is stored");
    // Promotion mints with the row's (new) key type.
    let v = engine
        .verify_session(&r.access_token.token, VerifyOptions::default())
        .await
        .unwrap();
    let promoted = v.access_token.unwrap();
    assert!(header_of(&promoted.token)["kid"]
        .as_str()
        .unwrap()
        .starts_with("d-"));
}

// SessionTest1 signing-key change / AccessTokenSigningKeyTest: rotation with a short interval.
// Old tokens verify while their key is published; a dropped key means try-refresh; refresh
// and promotion then use the new key with the same handle, user and payload.
async fn signing_key_rotation(backend: Backend) {
    let config = SessionConfig {
        access_token_validity_ms: 10_000,
        refresh_token_validity_ms: 3_600_000,
        dynamic_key_update_interval_ms: 60_000,
        key_overlap_ms: 5_000,
        ..test_config()
    };
    let (engine, clock, _store) = setup_with(backend, config).await;
    let s = engine.create_session(new_session("u")).await.unwrap();
    let old_kid = header_of(&s.access_token.token)["kid"]
        .as_str()
        .unwrap()
        .to_owned();

    // A new key becomes due at I − O = 55 s: it is published but does not sign yet.
    clock.advance_ms(56_000);
    let r = engine
        .refresh_session(&s.refresh_token.token, RefreshOptions::default())
        .await
        .unwrap();
    let jwks = engine.jwks();
    assert_eq!(
        jwks.keys.iter().filter(|k| k.kid.starts_with("d-")).count(),
        2
    );
    assert_eq!(
        header_of(&r.access_token.token)["kid"].as_str().unwrap(),
        old_kid,
        "inside the overlap the old key still signs"
    );
    clock.advance_ms(5_000);
    let r2 = engine
        .refresh_session(&r.refresh_token.token, RefreshOptions::default())
        .await
        .unwrap();
    let new_kid = header_of(&r2.access_token.token)["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_kid, old_kid, "after the overlap the new key signs");
    assert_eq!(jwks.keys[0].kid, new_kid, "newest first");

    // The old key verifies for I + 2V = 80 s after its creation, then it is gone.
    clock.advance_ms(20_000); // t = 81 s
    engine.reload_keys().await.unwrap();
    assert!(engine.jwks().keys.iter().all(|k| k.kid != old_kid));
    let v = engine
        .verify_session(&s.access_token.token, VerifyOptions::default())
        .await;
    assert!(matches!(v, Err(SessionError::TryRefreshToken(_))));
    let report = engine.cleanup().await.unwrap();
    assert_eq!(report.keys, 1, "the expired key is deleted");
    let r3 = engine
        .refresh_session(&r2.refresh_token.token, RefreshOptions::default())
        .await
        .unwrap();
    let v = engine
        .verify_session(&r3.access_token.token, VerifyOptions::default())
        .await
        .unwrap();
    let promoted = v.access_token.unwrap();
    assert_eq!(header_of(&promoted.token)["kid"].as_str().unwrap(), new_kid);
    assert_eq!(v.session.handle, s.session.handle);
    assert_eq!(v.session.user_data_in_jwt["key"], "value");
}

// RefreshTokenTest / ROB-08: a restarted engine (and a second instance) on the same store uses
// the same keys: old access tokens verify, old refresh tokens refresh, JWKS are identical.
async fn restart_and_second_instance_share_keys(backend: Backend) {
    let (engine, clock, store) = setup(backend).await;
    let s = engine.create_session(new_session("u")).await.unwrap();
    let jwks_before = engine.jwks();
    drop(engine);
    let restarted = engine_on(Arc::clone(&store), test_config(), Arc::clone(&clock)).await;
    assert_eq!(
        restarted.jwks(),
        jwks_before,
        "keys reloaded, not regenerated"
    );
    restarted
        .verify_session(&s.access_token.token, VerifyOptions::default())
        .await
        .unwrap();
    let r = restarted
        .refresh_session(&s.refresh_token.token, RefreshOptions::default())
        .await
        .unwrap();
    let second = engine_on(Arc::clone(&store), test_config(), Arc::clone(&clock)).await;
    assert_eq!(second.jwks(), jwks_before);
    second
        .refresh_session(&r.refresh_token.token, RefreshOptions::default())
        .await
        .expect("a session refreshes on another instance");
}

// A key created by another instance is picked up when a token names it (unknown kid → one
// reload), and an engine on a different store rejects our tokens (JWT-20 d).
async fn keys_from_another_instance(backend: Backend) {
    let config = SessionConfig {
        dynamic_key_update_interval_ms: 60_000,
        key_overlap_ms: 5_000,
        access_token_validity_ms: 10_000,
        ..test_config()
    };
    let (a, clock, store) = setup_with(backend, config.clone()).await;
    let b = engine_on(Arc::clone(&store), config.clone(), Arc::clone(&clock)).await;
    clock.advance_ms(61_000);
    let s = b.create_session(new_session("u")).await.unwrap(); // b rotates
    let kid = header_of(&s.access_token.token)["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        !a.jwks().keys.iter().any(|k| k.kid == kid),
        "a has not seen it yet"
    );
    a.verify_session(&s.access_token.token, VerifyOptions::default())
        .await
        .expect("unknown kid triggers one reload");
    assert!(a.jwks().keys.iter().any(|k| k.kid == kid));

    let (other, _c, _s) = setup(backend).await;
    let r = other
        .verify_session(&s.access_token.token, VerifyOptions::default())
        .await;
    assert!(matches!(r, Err(SessionError::TryRefreshToken(_))), "{r:?}");
    let r = other
        .refresh_session(&s.refresh_token.token, RefreshOptions::default())
        .await;
    assert!(matches!(
        r,
        Err(SessionError::Unauthorised(
            UnauthorisedReason::InvalidRefreshToken
        ))
    ));
}

// Tenants: the handle carries the tenant; sessions are listed per tenant or across tenants.
async fn tenants(backend: Backend) {
    let (engine, _clock, _store) = setup(backend).await;
    let t = engine
        .create_session(NewSession {
            anonymous_id: None,
            tenant_id: "acme".into(),
            ..new_session("u")
        })
        .await
        .unwrap();
    assert!(t.session.handle.ends_with("_acme"));
    assert_eq!(claims_of(&t.access_token.token)["tId"], "acme");
    let p = engine.create_session(new_session("u")).await.unwrap();
    assert_eq!(
        engine
            .session_handles_for_user("u", Some("acme"))
            .await
            .unwrap(),
        vec![t.session.handle.clone()]
    );
    assert_eq!(
        engine
            .session_handles_for_user("u", None)
            .await
            .unwrap()
            .len(),
        2
    );
    let r = engine
        .refresh_session(&t.refresh_token.token, RefreshOptions::default())
        .await
        .unwrap();
    assert_eq!(r.session.tenant_id, "acme");
    assert_eq!(
        engine
            .get_session_info(&t.session.handle)
            .await
            .unwrap()
            .tenant_id,
        "acme"
    );
    assert!(engine.revoke_session(&p.session.handle).await.unwrap());
    let r = engine
        .create_session(NewSession {
            anonymous_id: None,
            tenant_id: "Bad Tenant".into(),
            ..new_session("u")
        })
        .await;
    assert!(matches!(r, Err(SessionError::InvalidInput(_))));
}

// Bad input to every public operation: typed errors, never a panic.
async fn bad_input_gets_typed_errors(backend: Backend) {
    let (engine, _clock, store) = setup(backend).await;
    let long = "x".repeat(200);
    for user in ["", long.as_str()] {
        let r = engine.create_session(NewSession::for_user(user)).await;
        assert!(matches!(r, Err(SessionError::InvalidInput(_))));
    }
    for garbage in ["", ".", "..", "a.b.c", "\u{0}", long.as_str(), "ey.ey.ey"] {
        let r = engine.verify_session(garbage, check_db()).await;
        assert!(
            matches!(r, Err(SessionError::TryRefreshToken(_))),
            "{garbage:?}"
        );
        let r = engine
            .refresh_session(garbage, RefreshOptions::default())
            .await;
        assert!(matches!(
            r,
            Err(SessionError::Unauthorised(
                UnauthorisedReason::InvalidRefreshToken
            ))
        ));
        let r = engine.get_session_info(garbage).await;
        assert!(matches!(r, Err(SessionError::Unauthorised(_))));
        assert!(!engine.revoke_session(garbage).await.unwrap());
    }
    assert_eq!(store.count_sessions("public").await.unwrap(), 0);
    let big = payload(json!({"blob": "x".repeat(10_000)}));
    let r = engine
        .create_session(NewSession {
            access_token_payload: big,
            ..NewSession::for_user("u")
        })
        .await;
    assert!(matches!(
        r,
        Err(SessionError::InvalidInput(
            tessera::InputError::PayloadTooLarge(..)
        ))
    ));
    assert_eq!(
        store.count_sessions("public").await.unwrap(),
        0,
        "no row for a refused token"
    );
}

// The configured issuer is added to minted tokens and required at verify.
async fn issuer_is_minted_and_checked(backend: Backend) {
    let config = SessionConfig {
        issuer: Some("https://api.example.com/auth".into()),
        ..test_config()
    };
    let (engine, clock, store) = setup_with(backend, config).await;
    let s = engine.create_session(new_session("u")).await.unwrap();
    assert_eq!(
        claims_of(&s.access_token.token)["iss"],
        "https://api.example.com/auth"
    );
    engine
        .verify_session(&s.access_token.token, VerifyOptions::default())
        .await
        .unwrap();
    let foreign = engine_on(
        Arc::clone(&store),
        SessionConfig {
            issuer: Some("https://other.example.com".into()),
            ..test_config()
        },
        clock,
    )
    .await;
    let r = foreign
        .verify_session(&s.access_token.token, VerifyOptions::default())
        .await;
    assert!(matches!(
        r,
        Err(SessionError::TryRefreshToken(
            TryRefreshReason::InvalidToken
        ))
    ));
}

// The background task deletes expired sessions without being called.
async fn background_cleanup_task_runs(backend: Backend) {
    let (engine, clock, store) = setup(backend).await;
    engine.create_session(new_session("u")).await.unwrap();
    clock.advance_ms(test_config().refresh_token_validity_ms + 1);
    let task = engine.spawn_cleanup(std::time::Duration::from_millis(20));
    for _ in 0..250 {
        if store.count_sessions("public").await.unwrap() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    task.abort();
    assert_eq!(store.count_sessions("public").await.unwrap(), 0);
}

// The verified-token cache never outlives the key: after a key is withdrawn (deleted by an
// operator, then reloaded), a token verified before is rejected, not served from the cache.
async fn verified_token_cache_is_emptied_when_a_key_is_withdrawn(backend: Backend) {
    let (engine, clock, store) = setup(backend).await;
    let withdraw_and_verify = |token: String| {
        let (engine, store) = (engine.clone(), store.clone());
        async move {
            store
                .delete_dynamic_keys_before("public", u64::MAX)
                .await
                .unwrap();
            engine.reload_keys().await.unwrap();
            engine
                .verify_session(&token, VerifyOptions::default())
                .await
        }
    };
    // Same millisecond: the replacement key gets the same kid but other material.
    let s = engine.create_session(new_session("u")).await.unwrap();
    for _ in 0..2 {
        engine
            .verify_session(&s.access_token.token, VerifyOptions::default())
            .await
            .unwrap();
    }
    let r = withdraw_and_verify(s.access_token.token.clone()).await;
    assert!(
        matches!(
            r,
            Err(SessionError::TryRefreshToken(
                TryRefreshReason::InvalidToken
            ))
        ),
        "{r:?}"
    );
    // A hit an SDK took before the withdrawal (the layer probes the cache while it reads the
    // request) is not answered from after it: the full check runs again, and fails.
    let s = engine.create_session(new_session("u")).await.unwrap();
    let token = s.access_token.token.clone();
    engine
        .verify_session(&token, VerifyOptions::default())
        .await
        .unwrap();
    let cached = engine
        .cached_access_token(token.as_bytes())
        .expect("verified once: cached");
    assert!(engine
        .verify_cached_session(&cached, VerifyOptions::default())
        .is_some_and(|r| r.is_ok()));
    let r = withdraw_and_verify(token.clone()).await;
    assert!(r.is_err(), "{r:?}");
    assert!(
        engine
            .verify_cached_session(&cached, VerifyOptions::default())
            .is_none(),
        "a hit from before the withdrawal goes to the full check"
    );
    assert!(engine.cached_access_token(token.as_bytes()).is_none());
    // Later: the kid is gone altogether.
    clock.advance_ms(1);
    let s = engine.create_session(new_session("u")).await.unwrap();
    engine
        .verify_session(&s.access_token.token, VerifyOptions::default())
        .await
        .unwrap();
    clock.advance_ms(1);
    let r = withdraw_and_verify(s.access_token.token.clone()).await;
    assert!(
        matches!(
            r,
            Err(SessionError::TryRefreshToken(TryRefreshReason::KeyNotFound))
        ),
        "{r:?}"
    );
}

// Two tabs without the cross-tab lock: tab B sends the old token after tab A's child was
// promoted. Inside the window B gets the head's child (no theft, no write) and keeps
// refreshing after the window; the old token after the window is theft.
async fn late_refresh_with_the_previous_token_inside_grace(backend: Backend) {
    let (engine, clock, store) = setup(backend).await;
    let s = engine.create_session(new_session("u")).await.unwrap();
    let a = engine
        .refresh_session(&s.refresh_token.token, RefreshOptions::default())
        .await
        .unwrap();
    engine
        .verify_session(&a.access_token.token, VerifyOptions::default())
        .await
        .unwrap();
    clock.advance_ms(5_000);
    let b = engine
        .refresh_session(&s.refresh_token.token, RefreshOptions::default())
        .await
        .expect("late tab inside grace is not theft");
    let row = store
        .get_session("public", "public", &s.session.handle)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row.refresh_token_hash2,
        sha256_hex(&sha256_hex(&a.refresh_token.token)),
        "A's child stays the head"
    );
    let a2 = engine
        .refresh_session(&a.refresh_token.token, RefreshOptions::default())
        .await
        .unwrap();
    assert_eq!(
        a2.refresh_token.token, b.refresh_token.token,
        "the late tab got the head's child"
    );
    clock.advance_ms(30_000);
    engine
        .refresh_session(&b.refresh_token.token, RefreshOptions::default())
        .await
        .expect("B's lineage refreshes");
    clock.advance_ms(30_000);
    let r = engine
        .refresh_session(&s.refresh_token.token, RefreshOptions::default())
        .await;
    assert!(matches!(r, Err(SessionError::TokenTheft { .. })), "{r:?}");
}

on_both_stores!(
    late_refresh_with_the_previous_token_inside_grace,
    verified_token_cache_is_emptied_when_a_key_is_withdrawn,
    background_cleanup_task_runs,
    create_and_get_session,
    expired_and_anti_csrf_failures,
    altered_empty_and_complex_payloads,
    protected_claims_refused_before_write,
    prj_07_theft_s1_r1_s2_r1_parent_reused_after_child_promoted,
    prj_07_theft_s1_r1_r2_r1_original_reused_after_child_refreshed,
    two_tabs_refreshing_at_once_get_one_child,
    prj_07_grandparent_access_token_verifies_without_new_token,
    verify_expire_refresh_loop_keeps_one_row,
    parent_refresh_does_not_extend_but_promotion_does,
    revoke_then_refresh_and_verify,
    user_sessions_listing_revoking_and_cleanup,
    data_and_payload_updates,
    regenerate_access_token,
    static_and_dynamic_keys,
    signing_key_rotation,
    restart_and_second_instance_share_keys,
    keys_from_another_instance,
    tenants,
    bad_input_gets_typed_errors,
    issuer_is_minted_and_checked,
);
