//! Anonymous tokens in the engine: minting, strict verification, key rotation, the
//! anonymousId claim in access tokens, and the separation of the two token kinds. Test names
//! carry the requirement ids of `anonymous-sessions.md` (A*, B*) and `security-tests.md`
//! (ANON-*).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::sync::Arc;
use tessera::fuzzing::{b64url_decode, b64url_encode};
use tessera::fuzzing::{verify_anonymous_token, AnonymousKeyLookup, AnonymousPolicy};
use tessera::protocol::ANONYMOUS_ID_CLAIM;
use tessera::{
    AnonymousAlgorithm, AnonymousClaims, AnonymousConfig, AnonymousRejection, AnonymousSessions,
    AnonymousSigningKey, AnonymousVerifyingKey, InputError, ManualClock, MintAnonymous, MintError,
    NewSession, RefreshOptions, SessionEngine, SessionError, VerifyOptions, VerifyingKeySet,
    MAX_ANONYMOUS_TOKEN_LEN,
};
use tessera_testkit::engine::{engine_on, setup, test_config};
use tessera_testkit::{fresh_store, fresh_store_pair, on_both_stores, Backend};

const NOW: u64 = 1_700_000_000_000;
const DAY: u64 = 86_400_000;

fn set(alg: AnonymousAlgorithm) -> (AnonymousSessions, String) {
    let key = AnonymousSigningKey::generate(alg).unwrap();
    let stored = key.to_stored().unwrap();
    (
        AnonymousSessions::new(AnonymousConfig::default(), Some(key), vec![]).unwrap(),
        stored,
    )
}

fn segments(token: &str) -> (Value, Value, String) {
    let mut parts = token.split('.');
    let h = b64url_decode(parts.next().unwrap().as_bytes()).unwrap();
    let p = b64url_decode(parts.next().unwrap().as_bytes()).unwrap();
    (
        serde_json::from_slice(&h).unwrap(),
        serde_json::from_slice(&p).unwrap(),
        parts.next().unwrap().to_owned(),
    )
}

/// Re-signs `header.payload` with `key`, as someone holding the anonymous key could.
fn sign_with(key: &AnonymousSigningKey, header: &Value, payload: &Value) -> String {
    let signing_input = format!(
        "{}.{}",
        b64url_encode(header.to_string().as_bytes()),
        b64url_encode(payload.to_string().as_bytes())
    );
    let sig = key.sign(signing_input.as_bytes()).unwrap();
    format!("{signing_input}.{}", b64url_encode(&sig))
}

#[test]
fn a12_minted_token_is_anonymous_and_has_no_user_id() {
    for alg in [AnonymousAlgorithm::EdDSA, AnonymousAlgorithm::Rs256] {
        let (anon, _) = set(alg);
        let minted = anon.mint(MintAnonymous::default(), NOW).unwrap();
        let (header, payload, _) = segments(&minted.token);
        assert_eq!(header["typ"], "anon+jwt");
        assert_eq!(header["alg"], alg.jose_name());
        assert!(header["kid"].as_str().unwrap().starts_with("a-"));
        assert!(header.get("version").is_none());
        assert!(payload.get("sub").is_none(), "A12: anonymous = no sub");
        assert_eq!(payload["tokenType"], "anonymous");
        assert_eq!(
            payload[ANONYMOUS_ID_CLAIM],
            minted.claims.anonymous_id.as_str()
        );
        let verified = anon.verify(&minted.token, NOW).unwrap();
        assert_eq!(*verified.claims, minted.claims);
        assert!(!verified.renew);
    }
}

#[test]
fn anon10_ids_are_unique_random_and_long_enough() {
    let (anon, _) = set(AnonymousAlgorithm::EdDSA);
    let mut seen = HashSet::new();
    for _ in 0..20_000 {
        let id = tessera::new_anonymous_id().unwrap();
        assert_eq!(b64url_decode(id.as_bytes()).unwrap().len(), 16, "128 bits");
        assert!(seen.insert(id), "never repeats");
    }
    // Two mints at the same instant for the same tenant differ (not derived from time).
    let a = anon.mint(MintAnonymous::default(), NOW).unwrap();
    let b = anon.mint(MintAnonymous::default(), NOW).unwrap();
    assert_ne!(a.claims.anonymous_id, b.claims.anonymous_id);
}

#[test]
fn a6_a20_an_anonymous_id_is_kept_when_asked() {
    let (anon, _) = set(AnonymousAlgorithm::EdDSA);
    let first = anon.mint(MintAnonymous::default(), NOW).unwrap();
    let again = anon
        .mint(
            MintAnonymous {
                anonymous_id: Some(first.claims.anonymous_id.clone()),
                ..Default::default()
            },
            NOW + DAY,
        )
        .unwrap();
    assert_eq!(again.claims.anonymous_id, first.claims.anonymous_id);
    assert!(matches!(
        anon.mint(
            MintAnonymous {
                anonymous_id: Some("short".into()),
                ..Default::default()
            },
            NOW
        ),
        Err(MintError::InvalidPayload(_))
    ));
}

#[test]
fn a10_anon16_forged_tampered_expired_and_wrong_key_tokens_are_rejected() {
    let (anon, _) = set(AnonymousAlgorithm::EdDSA);
    let (other, _) = set(AnonymousAlgorithm::EdDSA);
    let good = anon.mint(MintAnonymous::default(), NOW).unwrap().token;
    // Expired.
    let later = NOW + 366 * DAY;
    assert_eq!(
        anon.verify(&good, later).unwrap_err(),
        AnonymousRejection::Expired
    );
    // Wrong key: another set's token.
    let foreign = other.mint(MintAnonymous::default(), NOW).unwrap().token;
    assert_eq!(
        anon.verify(&foreign, NOW).unwrap_err(),
        AnonymousRejection::UnknownKey
    );
    // Tampered: every single-character change of the payload or signature.
    let dot2 = good.rfind('.').unwrap();
    for i in (good.find('.').unwrap() + 1..good.len()).step_by(7) {
        if i == dot2 {
            continue;
        }
        let mut bytes = good.clone().into_bytes();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        if tampered != good {
            assert!(anon.verify(&tampered, NOW).is_err(), "byte {i}");
        }
    }
    // Forged: alg none, empty signature, header with extra members, garbage.
    let (header, payload, sig) = segments(&good);
    let mut none = header.clone();
    none["alg"] = "none".into();
    let unsigned = format!(
        "{}.{}.",
        b64url_encode(none.to_string().as_bytes()),
        b64url_encode(payload.to_string().as_bytes())
    );
    assert!(anon.verify(&unsigned, NOW).is_err());
    let mut jku = header.clone();
    jku["jku"] = "https://evil.test/jwks".into();
    let with_jku = format!(
        "{}.{}.{sig}",
        b64url_encode(jku.to_string().as_bytes()),
        b64url_encode(payload.to_string().as_bytes())
    );
    assert_eq!(
        anon.verify(&with_jku, NOW).unwrap_err(),
        AnonymousRejection::Malformed
    );
    for junk in ["", ".", "..", "a.b.c", "a.b.c.d", &"x".repeat(5000)] {
        assert_eq!(
            anon.verify(junk, NOW).unwrap_err(),
            AnonymousRejection::Malformed
        );
    }
}

#[test]
fn anon16_time_claims_are_strict() {
    let key = AnonymousSigningKey::generate(AnonymousAlgorithm::EdDSA).unwrap();
    let stored = key.to_stored().unwrap();
    let anon = AnonymousSessions::new(AnonymousConfig::default(), Some(key), vec![]).unwrap();
    let signer = AnonymousSigningKey::parse(&stored).unwrap();
    let good = anon.mint(MintAnonymous::default(), NOW).unwrap().token;
    let (header, payload, _) = segments(&good);
    let now_s = NOW / 1000;
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "missing exp",
            Box::new(|p| drop(p.as_object_mut().unwrap().remove("exp"))),
        ),
        (
            "exp as string",
            Box::new(move |p| p["exp"] = json!((now_s + 10).to_string())),
        ),
        (
            "exp beyond max lifetime",
            Box::new(move |p| p["exp"] = json!(now_s + 401 * 86_400)),
        ),
        (
            "iat in the future",
            Box::new(move |p| {
                p["iat"] = json!(now_s + 3600);
                p["exp"] = json!(now_s + 7200);
            }),
        ),
        (
            "exp before iat",
            Box::new(move |p| p["exp"] = json!(now_s - 1)),
        ),
        (
            "sub present (forged promotion)",
            Box::new(|p| p["sub"] = json!("victim")),
        ),
        (
            "sessionHandle present",
            Box::new(|p| p["sessionHandle"] = json!("h")),
        ),
        (
            "wrong tokenType",
            Box::new(|p| p["tokenType"] = json!("access")),
        ),
        (
            "short anonymousId",
            Box::new(|p| p["anonymousId"] = json!("abc")),
        ),
        (
            "anonymousId not a string",
            Box::new(|p| p["anonymousId"] = json!(12345)),
        ),
    ];
    // ROB-01: the header as a JSON array of the same values, genuinely signed: refused.
    let array_header = json!(["EdDSA", "anon+jwt", header["kid"]]);
    let token = sign_with(&signer, &array_header, &payload);
    assert_eq!(
        anon.verify(&token, NOW).unwrap_err(),
        AnonymousRejection::Malformed
    );
    let control = sign_with(&signer, &header, &payload);
    assert!(
        anon.verify(&control, NOW).is_ok(),
        "the re-signing harness works"
    );
    for (name, edit) in cases {
        let mut p = payload.clone();
        edit(&mut p);
        let token = sign_with(&signer, &header, &p);
        assert!(anon.verify(&token, NOW).is_err(), "{name} must be rejected");
    }
    // Duplicate members in the signed JSON.
    let dup = format!(
        "{}.{}",
        b64url_encode(header.to_string().as_bytes()),
        b64url_encode(
            payload
                .to_string()
                .replacen('{', "{\"tokenType\":\"anonymous\",", 1)
                .as_bytes()
        )
    );
    let sig = signer.sign(dup.as_bytes()).unwrap();
    let dup = format!("{dup}.{}", b64url_encode(&sig));
    assert_eq!(
        anon.verify(&dup, NOW).unwrap_err(),
        AnonymousRejection::Malformed
    );
}

#[test]
fn anon14_payload_is_small_and_cannot_use_reserved_names() {
    let (anon, _) = set(AnonymousAlgorithm::EdDSA);
    let mut payload = Map::new();
    payload.insert("cartSize".into(), json!(3));
    let minted = anon
        .mint(
            MintAnonymous {
                payload: payload.clone(),
                ..Default::default()
            },
            NOW,
        )
        .unwrap();
    assert_eq!(
        anon.verify(&minted.token, NOW).unwrap().claims.payload,
        payload
    );
    for reserved in ["sub", "anonymousId", "exp", "sessionHandle", "tokenType"] {
        let mut p = Map::new();
        p.insert(reserved.into(), json!("x"));
        assert!(
            matches!(
                anon.mint(
                    MintAnonymous {
                        payload: p,
                        ..Default::default()
                    },
                    NOW
                ),
                Err(MintError::InvalidPayload(_))
            ),
            "{reserved}"
        );
    }
    let mut big = Map::new();
    big.insert("blob".into(), json!("x".repeat(1100)));
    let err = anon
        .mint(
            MintAnonymous {
                payload: big,
                ..Default::default()
            },
            NOW,
        )
        .unwrap_err();
    assert!(err.to_string().contains("limit is 1024"), "{err}");
    assert!(minted.token.len() < 4096);
}

#[test]
fn anon11_rotation_keeps_old_tokens_during_overlap_and_drops_them_after() {
    let old = AnonymousSigningKey::generate(AnonymousAlgorithm::EdDSA).unwrap();
    let old_stored = old.to_stored().unwrap();
    let old_set = AnonymousSessions::new(AnonymousConfig::default(), Some(old), vec![]).unwrap();
    let old_token = old_set.mint(MintAnonymous::default(), NOW).unwrap();

    // Overlap: the new key signs, the old one still verifies, and the token asks for renewal.
    let new = AnonymousSigningKey::generate(AnonymousAlgorithm::EdDSA).unwrap();
    let old_public = AnonymousSigningKey::parse(&old_stored)
        .unwrap()
        .verifying()
        .jwk()
        .to_anonymous()
        .unwrap()
        .unwrap();
    let overlap =
        AnonymousSessions::new(AnonymousConfig::default(), Some(new), vec![old_public]).unwrap();
    let verified = overlap.verify(&old_token.token, NOW).unwrap();
    assert!(verified.renew, "signed by a previous key: re-sign");
    let renewed = overlap
        .mint(
            MintAnonymous {
                anonymous_id: Some(verified.claims.anonymous_id.clone()),
                ..Default::default()
            },
            NOW,
        )
        .unwrap();
    assert_eq!(renewed.claims.anonymous_id, old_token.claims.anonymous_id);
    assert!(!overlap.verify(&renewed.token, NOW).unwrap().renew);

    // Retired (or an emergency removal): the old token is rejected at once.
    let new_only = AnonymousSessions::new(
        AnonymousConfig::default(),
        Some(AnonymousSigningKey::parse(&old_stored).unwrap()),
        vec![],
    )
    .unwrap();
    assert!(new_only.verify(&old_token.token, NOW).is_ok());
    let retired = AnonymousSessions::new(
        AnonymousConfig::default(),
        Some(AnonymousSigningKey::generate(AnonymousAlgorithm::EdDSA).unwrap()),
        vec![],
    )
    .unwrap();
    assert_eq!(
        retired.verify(&old_token.token, NOW).unwrap_err(),
        AnonymousRejection::UnknownKey
    );
}

#[test]
fn renewal_is_due_past_half_the_lifetime() {
    let (anon, _) = set(AnonymousAlgorithm::EdDSA);
    let minted = anon.mint(MintAnonymous::default(), NOW).unwrap();
    assert!(!anon.verify(&minted.token, NOW + 100 * DAY).unwrap().renew);
    assert!(anon.verify(&minted.token, NOW + 200 * DAY).unwrap().renew);
}

async fn engine_tokens(engine: &SessionEngine) -> (String, String) {
    let anon = engine
        .anonymous()
        .mint(MintAnonymous::default(), NOW)
        .unwrap();
    let at = engine
        .create_session(NewSession {
            anonymous_id: Some(anon.claims.anonymous_id.clone()),
            ..NewSession::for_user("alice")
        })
        .await
        .unwrap();
    (anon.token, at.access_token.token)
}

async fn anon01_03_neither_verifier_accepts_the_other_kind(backend: Backend) {
    let (engine, clock, _store) = setup(backend).await;
    clock.set_ms(NOW);
    let (ant, at) = engine_tokens(&engine).await;
    // ANON-01: an AnT presented as an access token.
    assert!(matches!(
        engine.verify_session(&ant, VerifyOptions::default()).await,
        Err(SessionError::TryRefreshToken(_))
    ));
    assert!(engine
        .verify_session_local(&ant, VerifyOptions::default())
        .is_some_and(|r| r.is_err()));
    // ... and at refresh.
    assert!(matches!(
        engine
            .refresh_session(&ant, RefreshOptions::default())
            .await,
        Err(SessionError::Unauthorised(_))
    ));
    // ANON-03: an access token presented to the anonymous verifier.
    assert!(engine.anonymous().verify(&at, NOW).is_err());
    assert!(engine.anonymous().readable_anonymous_id(&at, NOW).is_none());
}

async fn anon02_forged_promotion_with_the_anonymous_key_is_rejected(backend: Backend) {
    let store = fresh_store(backend).await;
    let clock = Arc::new(ManualClock::new(NOW));
    let anon_key = AnonymousSigningKey::generate(AnonymousAlgorithm::Rs256).unwrap();
    let stored = anon_key.to_stored().unwrap();
    let engine = SessionEngine::builder(Arc::clone(&store))
        .config(test_config())
        .clock(clock)
        .anonymous_signing_key(stored.clone())
        .build()
        .await
        .unwrap();
    let (_, at) = engine_tokens(&engine).await;
    // Take a genuine AT, keep its header (kid of an AT key), re-sign with the anonymous key.
    let (header, payload, _) = segments(&at);
    let forged = sign_with(&anon_key, &header, &payload);
    assert!(engine
        .verify_session(&forged, VerifyOptions::default())
        .await
        .is_err());
    // Same claims under the anonymous key's own kid and an AT typ.
    let mut h = header.clone();
    h["kid"] = json!(anon_key.kid());
    let forged = sign_with(&anon_key, &h, &payload);
    assert!(engine
        .verify_session(&forged, VerifyOptions::default())
        .await
        .is_err());
}

async fn anon02_startup_refuses_an_anonymous_key_equal_to_an_access_token_key(backend: Backend) {
    let store = fresh_store(backend).await;
    let rsa = AnonymousSigningKey::generate(AnonymousAlgorithm::Rs256).unwrap();
    let stored = rsa.to_stored().unwrap();
    // The same RSA key as the static AT key (the core's storage form is `<spki>|<pkcs8>`).
    let pkcs8 = stored.strip_prefix("rs256|").unwrap();
    let err = SessionEngine::builder(store)
        .static_signing_key(format!("|{pkcs8}"))
        .anonymous_signing_key(stored)
        .build()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("anonymous signing key equals"),
        "{err}"
    );
}

async fn a8_anonymous_id_is_a_protected_claim_kept_through_every_update(backend: Backend) {
    let (engine, clock, _store) = setup(backend).await;
    clock.set_ms(NOW);
    let id = tessera::new_anonymous_id().unwrap();
    let created = engine
        .create_session(NewSession {
            anonymous_id: Some(id.clone()),
            ..NewSession::for_user("alice")
        })
        .await
        .unwrap();
    let (_, payload, _) = segments(&created.access_token.token);
    assert_eq!(
        payload[ANONYMOUS_ID_CLAIM],
        id.as_str(),
        "A15: carried into the AT"
    );

    // The app cannot set it at creation …
    let mut p = Map::new();
    p.insert(ANONYMOUS_ID_CLAIM.into(), json!(id));
    assert!(matches!(
        engine
            .create_session(NewSession {
                access_token_payload: p,
                ..NewSession::for_user("bob")
            })
            .await,
        Err(SessionError::InvalidInput(InputError::ProtectedClaim))
    ));
    // … nor change it by regenerating or by handle; repeating the same value is fine.
    let mut changed = Map::new();
    changed.insert(ANONYMOUS_ID_CLAIM.into(), json!("A".repeat(22)));
    assert!(matches!(
        engine
            .regenerate_access_token(&created.access_token.token, Some(changed.clone()))
            .await,
        Err(SessionError::InvalidInput(InputError::ProtectedClaim))
    ));
    assert!(matches!(
        engine
            .update_access_token_payload(&created.session.handle, &changed)
            .await,
        Err(SessionError::InvalidInput(InputError::ProtectedClaim))
    ));
    let mut same = Map::new();
    same.insert(ANONYMOUS_ID_CLAIM.into(), json!(id));
    same.insert("plan".into(), json!("pro"));
    engine
        .regenerate_access_token(&created.access_token.token, Some(same))
        .await
        .unwrap();
    let mut other = Map::new();
    other.insert("theme".into(), json!("dark"));
    engine
        .update_access_token_payload(&created.session.handle, &other)
        .await
        .unwrap();
    // After refresh the new AT still carries it, with the app's latest payload.
    let next = engine
        .refresh_session(&created.refresh_token.token, RefreshOptions::default())
        .await
        .unwrap();
    let (_, payload, _) = segments(&next.access_token.token);
    assert_eq!(payload[ANONYMOUS_ID_CLAIM], id.as_str());
    assert_eq!(payload["theme"], "dark");
}

async fn b5_jwks_publishes_the_anonymous_key_apart_from_access_token_keys(backend: Backend) {
    let (engine, clock, _store) = setup(backend).await;
    clock.set_ms(NOW);
    // SEC2-L3: the access-token JWKS holds no anonymous key; they have a set of their own.
    assert!(engine.jwks().keys.iter().all(|k| !k.kid.starts_with("a-")));
    let jwks = engine.anonymous_jwks();
    let anon: Vec<_> = jwks
        .keys
        .iter()
        .filter(|k| k.kid.starts_with("a-"))
        .collect();
    assert_eq!(anon.len(), 1);
    assert_eq!(jwks.keys.len(), 1);
    assert_eq!(anon[0].kty, "OKP");
    assert_eq!(anon[0].alg, "EdDSA");
    assert_eq!(anon[0].crv.as_deref(), Some("Ed25519"));
    // An access-token key set built from the JWKS never holds the anonymous key …
    let at_keys = VerifyingKeySet::from_jwks(&jwks).unwrap();
    assert!(!at_keys.contains(&anon[0].kid));
    // … and a verify-only anonymous set built from it verifies what the engine mints.
    let remote = AnonymousSessions::from_jwks(AnonymousConfig::default(), &jwks).unwrap();
    assert!(!remote.can_mint());
    let minted = engine
        .anonymous()
        .mint(MintAnonymous::default(), NOW)
        .unwrap();
    let verified = remote.verify(&minted.token, NOW).unwrap();
    assert_eq!(verified.claims.anonymous_id, minted.claims.anonymous_id);
    assert!(!verified.renew);
    // The JSON round-trips (gateways parse it).
    let text = serde_json::to_string(&jwks).unwrap();
    assert!(text.contains("\"crv\":\"Ed25519\""));
    assert!(!text.contains("\"n\":null"));
}

async fn a9_the_generated_anonymous_key_is_kept_across_restarts(backend: Backend) {
    let (store, second) = fresh_store_pair(backend).await;
    let clock = Arc::new(ManualClock::new(NOW));
    let a = engine_on(store, test_config(), Arc::clone(&clock)).await;
    let b = engine_on(second, test_config(), clock).await;
    assert_eq!(a.anonymous().current_kid(), b.anonymous().current_kid());
    let minted = a.anonymous().mint(MintAnonymous::default(), NOW).unwrap();
    assert!(b.anonymous().verify(&minted.token, NOW).is_ok());
}

on_both_stores!(
    anon01_03_neither_verifier_accepts_the_other_kind,
    anon02_forged_promotion_with_the_anonymous_key_is_rejected,
    anon02_startup_refuses_an_anonymous_key_equal_to_an_access_token_key,
    a8_anonymous_id_is_a_protected_claim_kept_through_every_update,
    b5_jwks_publishes_the_anonymous_key_apart_from_access_token_keys,
    a9_the_generated_anonymous_key_is_kept_across_restarts,
);

// ---------------------------------------------------------------------------------------------
// PRJ-09: mutation-testing hygiene for `verify_anonymous_token` and its claims visitor. Each
// test below pins a boundary or a rejection to its exact `AnonymousRejection`, so that a
// mutated comparison (`>` → `>=`, `<` → `<=`, `||` → `&&`) or a deleted match arm is caught.
// ---------------------------------------------------------------------------------------------

/// A key lookup holding exactly one anonymous verifying key.
struct OneKey<'a>(&'a AnonymousVerifyingKey);

impl AnonymousKeyLookup for OneKey<'_> {
    fn anonymous_key(&self, kid: &str) -> Option<&AnonymousVerifyingKey> {
        (kid == self.0.kid()).then_some(self.0)
    }
}

/// The lifetime the PRJ-09 policies allow, in seconds.
const PRJ09_MAX_LIFETIME_S: u64 = 3600;

fn prj09_policy(now_ms: u64) -> AnonymousPolicy {
    AnonymousPolicy {
        now_ms,
        max_lifetime_s: PRJ09_MAX_LIFETIME_S,
        ignore_time: false,
    }
}

/// A fresh EdDSA key and the JSON header text of its tokens.
fn prj09_key() -> (AnonymousSigningKey, String) {
    let key = AnonymousSigningKey::generate(AnonymousAlgorithm::EdDSA).unwrap();
    let header = json!({"alg": "EdDSA", "typ": "anon+jwt", "kid": key.kid()}).to_string();
    (key, header)
}

/// A valid claim set issued `iat` and expiring `exp` (epoch seconds).
fn prj09_claims(iat: u64, exp: u64) -> Value {
    json!({
        "anonymousId": "AAAAAAAAAAAAAAAAAAAAAA",
        "tokenType": "anonymous",
        "iat": iat,
        "exp": exp,
        "tId": "public",
    })
}

/// Signs raw header and payload JSON texts (duplicates and odd spacing survive byte-exactly).
fn prj09_sign_raw(key: &AnonymousSigningKey, header: &str, payload: &str) -> String {
    let signing_input = format!(
        "{}.{}",
        b64url_encode(header.as_bytes()),
        b64url_encode(payload.as_bytes())
    );
    let sig = key.sign(signing_input.as_bytes()).unwrap();
    format!("{signing_input}.{}", b64url_encode(&sig))
}

fn prj09_verify(
    key: &AnonymousSigningKey,
    token: &str,
    policy: &AnonymousPolicy,
) -> Result<AnonymousClaims, AnonymousRejection> {
    verify_anonymous_token(token, &OneKey(key.verifying()), policy).map(|(claims, _)| claims)
}

#[test]
fn prj09_anonymous_time_boundaries_are_exact() {
    let (key, header) = prj09_key();
    let now_s = NOW / 1000;
    let at = |iat: u64, exp: u64, now_ms: u64| {
        let token = prj09_sign_raw(&key, &header, &prj09_claims(iat, exp).to_string());
        prj09_verify(&key, &token, &prj09_policy(now_ms))
    };
    use AnonymousRejection::{BadTime, Expired};

    // iat leeway: now + 60 s is accepted, now + 61 s is not.
    assert!(at(now_s + 60, now_s + 160, NOW).is_ok(), "iat = now + 60 s");
    assert_eq!(at(now_s + 61, now_s + 161, NOW), Err(BadTime), "iat + 61");
    // exp == iat is a (zero-lifetime) token, exp < iat is not.
    assert!(at(now_s + 10, now_s + 10, NOW).is_ok(), "exp == iat");
    assert_eq!(at(now_s + 10, now_s + 9, NOW), Err(BadTime), "exp < iat");
    // Lifetime: exactly the maximum is accepted, one second more is not.
    let max = PRJ09_MAX_LIFETIME_S;
    assert!(at(now_s - 100, now_s - 100 + max, NOW).is_ok(), "== max");
    assert_eq!(
        at(now_s - 100, now_s - 99 + max, NOW),
        Err(BadTime),
        "max + 1 s"
    );
    // Expiry: exp * 1000 == now is still valid; one millisecond later it is expired.
    let exp = now_s + 100;
    assert!(at(now_s, exp, exp * 1000).is_ok(), "exp*1000 == now");
    assert!(at(now_s, exp, exp * 1000 - 1).is_ok(), "1 ms before exp");
    assert_eq!(at(now_s, exp, exp * 1000 + 1), Err(Expired), "exp + 1 ms");
    assert_eq!(
        at(now_s, exp, exp * 1000 + 999),
        Err(Expired),
        "exp + 999 ms"
    );
    // A token both over-long and expired reports the lifetime first.
    assert_eq!(
        at(now_s - 3 * max, now_s - 1, NOW),
        Err(BadTime),
        "long and expired"
    );

    // ignore_time only skips the time checks: the expired token is readable, a tampered one
    // is still refused.
    let expired = prj09_sign_raw(
        &key,
        &header,
        &prj09_claims(now_s - 200, now_s - 100).to_string(),
    );
    let lenient = AnonymousPolicy {
        ignore_time: true,
        ..prj09_policy(NOW)
    };
    assert!(prj09_verify(&key, &expired, &lenient).is_ok());
    let mut tampered = expired.into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        prj09_verify(&key, &String::from_utf8(tampered).unwrap(), &lenient),
        Err(AnonymousRejection::BadSignature)
    );
}

#[test]
fn prj09_anonymous_length_bound_is_exact() {
    assert_eq!(MAX_ANONYMOUS_TOKEN_LEN, 3 * 1024);
    let (key, header) = prj09_key();
    let now_s = NOW / 1000;
    // Genuinely signed tokens of exactly MAX and MAX + 1 bytes: pad the header JSON with
    // spaces and grow an app payload member until the length fits.
    let sized = |target: usize| {
        for pad in 0..3 {
            let h = format!("{header}{}", " ".repeat(pad));
            for filler in 1_500..2_400 {
                let mut p = prj09_claims(now_s, now_s + 100);
                p["f"] = json!("f".repeat(filler));
                let token = prj09_sign_raw(&key, &h, &p.to_string());
                if token.len() == target {
                    return token;
                }
            }
        }
        panic!("no token of {target} bytes");
    };
    let exact = sized(MAX_ANONYMOUS_TOKEN_LEN);
    assert!(
        prj09_verify(&key, &exact, &prj09_policy(NOW)).is_ok(),
        "a token of exactly MAX_ANONYMOUS_TOKEN_LEN bytes"
    );
    let over = sized(MAX_ANONYMOUS_TOKEN_LEN + 1);
    assert_eq!(
        prj09_verify(&key, &over, &prj09_policy(NOW)),
        Err(AnonymousRejection::Malformed),
        "MAX + 1 bytes"
    );
    // Far over the bound and genuinely signed: refused before the signature is looked at.
    let mut p = prj09_claims(now_s, now_s + 100);
    p["f"] = json!("f".repeat(4 * MAX_ANONYMOUS_TOKEN_LEN));
    let huge = prj09_sign_raw(&key, &header, &p.to_string());
    assert_eq!(
        prj09_verify(&key, &huge, &prj09_policy(NOW)),
        Err(AnonymousRejection::Malformed)
    );
    assert_eq!(
        prj09_verify(&key, "", &prj09_policy(NOW)),
        Err(AnonymousRejection::Malformed)
    );
}

#[test]
fn prj09_anonymous_claims_visitor_is_strict() {
    let (key, header) = prj09_key();
    let now_s = NOW / 1000;
    let check = |payload: &str| {
        let token = prj09_sign_raw(&key, &header, payload);
        prj09_verify(&key, &token, &prj09_policy(NOW))
    };
    let base = prj09_claims(now_s, now_s + 100);

    // Every member the visitor knows is read into its field (optional ones included).
    let mut full = base.clone();
    full["antiCsrfToken"] = json!("csrf-1");
    full["iss"] = json!("https://shop.example");
    full["cart"] = json!({"items": 2});
    let claims = check(&full.to_string()).expect("a complete claim set");
    assert_eq!(claims.anonymous_id, "AAAAAAAAAAAAAAAAAAAAAA");
    assert_eq!((claims.iat, claims.exp), (now_s, now_s + 100));
    assert_eq!(claims.tenant_id, "public");
    assert_eq!(claims.anti_csrf_token.as_deref(), Some("csrf-1"));
    assert_eq!(claims.iss.as_deref(), Some("https://shop.example"));
    assert_eq!(claims.payload.len(), 1);
    assert_eq!(claims.payload["cart"], json!({"items": 2}));

    // A duplicate of any member — known claim or app payload — is refused.
    let full_text = full.to_string();
    for (name, value) in full.as_object().unwrap() {
        let dup = full_text.replacen('{', &format!("{{{}:{value},", json!(name)), 1);
        assert_eq!(
            check(&dup),
            Err(AnonymousRejection::Malformed),
            "duplicate {name}"
        );
    }
    // Each required claim is required.
    for name in ["anonymousId", "tokenType", "iat", "exp", "tId"] {
        let mut p = base.clone();
        p.as_object_mut().unwrap().remove(name);
        assert_eq!(
            check(&p.to_string()),
            Err(AnonymousRejection::Malformed),
            "missing {name}"
        );
    }
    // Reserved names that are not anonymous-token claims are refused, never kept as payload.
    for name in [
        "nbf",
        "aud",
        "jti",
        "sub",
        "rsub",
        "sessionHandle",
        "refreshTokenHash1",
        "parentRefreshTokenHash1",
    ] {
        let mut p = base.clone();
        p[name] = json!(now_s);
        assert_eq!(
            check(&p.to_string()),
            Err(AnonymousRejection::Malformed),
            "reserved {name}"
        );
    }
    // tokenType must be exactly "anonymous"; the anonymousId must look like one we mint.
    for (name, value) in [
        ("tokenType", json!("access")),
        ("tokenType", json!("")),
        ("anonymousId", json!("short")),
        ("anonymousId", json!("A".repeat(65))),
        ("anonymousId", json!("AAAAAAAAAAAAAAAAAAAAA/")),
    ] {
        let mut p = base.clone();
        p[name] = value.clone();
        assert_eq!(
            check(&p.to_string()),
            Err(AnonymousRejection::Malformed),
            "{name} = {value}"
        );
    }
    // Not an object at all.
    assert_eq!(check("[]"), Err(AnonymousRejection::Malformed));
}
