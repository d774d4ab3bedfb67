//! Security round 2 (issue 11), the engine and store findings: each test is the attack, then the
//! verdict read from the engine and the store. Ids: SEC2-H1, SEC2-L8, SEC2-M2, SEC2-L2.

mod common;

use common::{engine_on, fresh_store, test_config, Backend};
use serde_json::Value;
use std::sync::Arc;
use tessera::encoding::{b64url_decode, b64url_encode};
use tessera::{
    KeyKind, ManualClock, NewSession, SessionEngine, SessionError, SigningKey, Store, VerifyOptions,
};

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
            &tessera::store::StoredKey {
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
