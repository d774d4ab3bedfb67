#![allow(clippy::unwrap_used, clippy::expect_used)] // test code
//! DBSC on the engine (issue 14): the `dbsc+jwt` proof, challenges and bindings, each
//! rejection its own test, on SQLite and PostgreSQL.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use std::sync::Arc;
use tessera::{
    verify_proof, ChallengeRejection, DbscError, ManualClock, NewSession, ProofRejection,
    RefreshOptions, SessionEngine, SessionError, UnauthorisedReason, DBSC_CHALLENGE_TTL_MS,
    MAX_PROOF_LEN,
};
use tessera_testkit::engine::{engine_on, setup, test_config};
use tessera_testkit::{fresh_store_pair, on_both_stores, Backend};

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A device key as a browser's key provider would hold it.
enum Device {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

impl Device {
    fn es256() -> Self {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        Device::Ec(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap(),
        )
    }
    fn rs256() -> Self {
        Device::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).unwrap())
    }
    fn alg(&self) -> &'static str {
        match self {
            Device::Ec(_) => "ES256",
            Device::Rsa(_) => "RS256",
        }
    }
    fn jwk(&self) -> Value {
        match self {
            Device::Ec(k) => {
                let p = k.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "x": b64(&p[1..33]), "y": b64(&p[33..65])})
            }
            Device::Rsa(k) => {
                let p = k.public_key();
                json!({"kty": "RSA", "n": b64(p.modulus().big_endian_without_leading_zero()),
                       "e": b64(p.exponent().big_endian_without_leading_zero())})
            }
        }
    }
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            Device::Ec(k) => k
                .sign(&SystemRandom::new(), message)
                .unwrap()
                .as_ref()
                .to_vec(),
            Device::Rsa(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut sig)
                    .unwrap();
                sig
            }
        }
    }
    /// A JWT with `header` and `payload` signed by this key.
    fn jwt(&self, header: &Value, payload: &Value) -> String {
        let signing_input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(payload.to_string().as_bytes())
        );
        let sig = self.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", b64(&sig))
    }
    /// The registration proof (key in the header), as the spec describes it.
    fn registration(&self, jti: &str) -> String {
        self.jwt(
            &json!({"alg": self.alg(), "typ": "dbsc+jwt", "jwk": self.jwk()}),
            &json!({"jti": jti}),
        )
    }
    /// The refresh proof (the bound key, no `jwk`).
    fn refresh(&self, jti: &str) -> String {
        self.jwt(
            &json!({"alg": self.alg(), "typ": "dbsc+jwt"}),
            &json!({"jti": jti}),
        )
    }
}

async fn signed_in(engine: &SessionEngine) -> tessera::SessionTokens {
    engine
        .create_session(NewSession::for_user("alice"))
        .await
        .unwrap()
}

async fn bound(engine: &SessionEngine, device: &Device) -> tessera::SessionTokens {
    let tokens = signed_in(engine).await;
    let handle = &tokens.session.handle;
    let challenge = engine.dbsc_challenge("public", handle).unwrap();
    engine
        .dbsc_register("public", handle, &device.registration(&challenge))
        .await
        .unwrap();
    tokens
}

fn proof_rejection(e: DbscError) -> ProofRejection {
    match e {
        DbscError::Proof(r) => r,
        other => panic!("expected a proof rejection, got {other:?}"),
    }
}

fn challenge_rejection(e: DbscError) -> ChallengeRejection {
    match e {
        DbscError::Challenge(r) => r,
        other => panic!("expected a challenge rejection, got {other:?}"),
    }
}

/// The RFC 7638 thumbprint, computed here independently of the engine.
fn thumbprint(device: &Device) -> String {
    let jwk = device.jwk();
    let canonical = match device {
        Device::Ec(_) => format!(
            r#"{{"crv":"P-256","kty":"EC","x":{},"y":{}}}"#,
            jwk["x"], jwk["y"]
        ),
        Device::Rsa(_) => format!(r#"{{"e":{},"kty":"RSA","n":{}}}"#, jwk["e"], jwk["n"]),
    };
    b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()).as_ref())
}

async fn registration_binds_the_key(backend: Backend) {
    let (engine, _clock, _store) = setup(backend).await;
    for device in [Device::es256(), Device::rs256()] {
        let tokens = signed_in(&engine).await;
        let handle = &tokens.session.handle;
        assert!(engine
            .dbsc_binding("public", handle)
            .await
            .unwrap()
            .is_none());
        let challenge = engine.dbsc_challenge("public", handle).unwrap();
        let binding = engine
            .dbsc_register("public", handle, &device.registration(&challenge))
            .await
            .unwrap();
        assert_eq!(binding.algorithm, device.alg());
        assert_eq!(binding.jwk_thumbprint, thumbprint(&device));
        let read = engine
            .dbsc_binding("public", handle)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read, binding);
        // Another key cannot take over a bound session.
        let other = Device::es256();
        let challenge = engine.dbsc_challenge("public", handle).unwrap();
        let e = engine
            .dbsc_register("public", handle, &other.registration(&challenge))
            .await
            .unwrap_err();
        assert!(matches!(e, DbscError::AlreadyBound), "{e:?}");
    }
}

async fn jti_replay_is_refused(backend: Backend) {
    let (engine, _clock, _store) = setup(backend).await;
    let device = Device::es256();
    let tokens = bound(&engine, &device).await;
    let DbscError::NeedsChallenge { challenge, .. } = engine
        .dbsc_refresh_session(&tokens.refresh_token.token, RefreshOptions::default(), None)
        .await
        .unwrap_err()
    else {
        panic!("expected a challenge")
    };
    let proof = device.refresh(&challenge);
    let (next, _) = engine
        .dbsc_refresh_session(
            &tokens.refresh_token.token,
            RefreshOptions::default(),
            Some(&proof),
        )
        .await
        .unwrap();
    let e = engine
        .dbsc_refresh_session(
            &next.refresh_token.token,
            RefreshOptions::default(),
            Some(&proof),
        )
        .await
        .unwrap_err();
    assert_eq!(challenge_rejection(e), ChallengeRejection::Replayed);
    // A fresh proof over the same challenge (a new signature) is a replay too.
    let e = engine
        .dbsc_refresh_session(
            &next.refresh_token.token,
            RefreshOptions::default(),
            Some(&device.refresh(&challenge)),
        )
        .await
        .unwrap_err();
    assert_eq!(challenge_rejection(e), ChallengeRejection::Replayed);
}

/// Single use holds across two instances sharing the database (the used-set's primary key).
async fn single_use_across_instances(backend: Backend) {
    let (a, b) = fresh_store_pair(backend).await;
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let one = engine_on(a, test_config(), Arc::clone(&clock)).await;
    let two = engine_on(b, test_config(), Arc::clone(&clock)).await;
    let device = Device::es256();
    let tokens = signed_in(&one).await;
    let handle = &tokens.session.handle;
    let challenge = one.dbsc_challenge("public", handle).unwrap();
    let proof = device.registration(&challenge);
    // Both instances race the same proof: exactly one wins.
    let (r1, r2) = tokio::join!(
        one.dbsc_register("public", handle, &proof),
        two.dbsc_register("public", handle, &proof)
    );
    let wins = [r1.is_ok(), r2.is_ok()].iter().filter(|w| **w).count();
    assert_eq!(wins, 1, "{r1:?} {r2:?}");
    let loser = if r1.is_err() { r1 } else { r2 };
    assert_eq!(
        challenge_rejection(loser.unwrap_err()),
        ChallengeRejection::Replayed
    );
}

async fn wrong_type_and_algorithms_are_refused(backend: Backend) {
    let (engine, _clock, _store) = setup(backend).await;
    let device = Device::es256();
    let tokens = signed_in(&engine).await;
    let handle = &tokens.session.handle;
    let cases: Vec<(Value, ProofRejection)> = vec![
        (
            json!({"alg": "ES256", "typ": "JWT", "jwk": device.jwk()}),
            ProofRejection::WrongType,
        ),
        (
            json!({"alg": "ES256", "jwk": device.jwk()}),
            ProofRejection::Malformed,
        ),
        (
            json!({"alg": "none", "typ": "dbsc+jwt", "jwk": device.jwk()}),
            ProofRejection::WrongAlgorithm,
        ),
        (
            json!({"alg": "HS256", "typ": "dbsc+jwt", "jwk": device.jwk()}),
            ProofRejection::WrongAlgorithm,
        ),
        (
            json!({"alg": "EdDSA", "typ": "dbsc+jwt", "jwk": device.jwk()}),
            ProofRejection::WrongAlgorithm,
        ),
        (
            json!({"alg": "ES384", "typ": "dbsc+jwt", "jwk": device.jwk()}),
            ProofRejection::WrongAlgorithm,
        ),
        // An EC key claimed for RS256.
        (
            json!({"alg": "RS256", "typ": "dbsc+jwt", "jwk": device.jwk()}),
            ProofRejection::BadKey,
        ),
        (
            json!({"alg": "ES256", "typ": "dbsc+jwt", "jwk": device.jwk(), "crit": ["x"]}),
            ProofRejection::WrongAlgorithm,
        ),
        // Registration without the key.
        (
            json!({"alg": "ES256", "typ": "dbsc+jwt"}),
            ProofRejection::BadKey,
        ),
    ];
    for (header, want) in cases {
        let challenge = engine.dbsc_challenge("public", handle).unwrap();
        let proof = device.jwt(&header, &json!({"jti": challenge}));
        let e = engine
            .dbsc_register("public", handle, &proof)
            .await
            .unwrap_err();
        assert_eq!(proof_rejection(e), want, "{header}");
    }
    // `alg: none` with an empty signature, the classic.
    let challenge = engine.dbsc_challenge("public", handle).unwrap();
    let none = format!(
        "{}.{}.",
        b64(
            json!({"alg": "none", "typ": "dbsc+jwt", "jwk": device.jwk()})
                .to_string()
                .as_bytes()
        ),
        b64(json!({"jti": challenge}).to_string().as_bytes())
    );
    let e = engine
        .dbsc_register("public", handle, &none)
        .await
        .unwrap_err();
    assert_eq!(proof_rejection(e), ProofRejection::WrongAlgorithm);
    // A private key in the header is not a public key.
    let mut private = device.jwk();
    private["d"] = json!(b64(&[7; 32]));
    let proof = device.jwt(
        &json!({"alg": "ES256", "typ": "dbsc+jwt", "jwk": private}),
        &json!({"jti": challenge}),
    );
    let e = engine
        .dbsc_register("public", handle, &proof)
        .await
        .unwrap_err();
    assert_eq!(proof_rejection(e), ProofRejection::BadKey);
    assert!(engine
        .dbsc_binding("public", handle)
        .await
        .unwrap()
        .is_none());
}

async fn a_key_other_than_the_bound_one_is_refused(backend: Backend) {
    let (engine, _clock, _store) = setup(backend).await;
    let device = Device::es256();
    let thief = Device::es256();
    let tokens = bound(&engine, &device).await;
    let rt = &tokens.refresh_token.token;
    let handle = &tokens.session.handle;
    // The thief signs with its own key, with or without naming it.
    for proof in [
        thief.refresh(&engine.dbsc_challenge("public", handle).unwrap()),
        thief.registration(&engine.dbsc_challenge("public", handle).unwrap()),
    ] {
        let e = engine
            .dbsc_refresh_session(rt, RefreshOptions::default(), Some(&proof))
            .await
            .unwrap_err();
        assert_eq!(proof_rejection(e), ProofRejection::WrongKey);
    }
    // Forged: the header names the bound key (its thumbprint), the thief signs.
    let forged = thief.jwt(
        &json!({"alg": "ES256", "typ": "dbsc+jwt", "jwk": device.jwk()}),
        &json!({"jti": engine.dbsc_challenge("public", handle).unwrap()}),
    );
    let e = engine
        .dbsc_refresh_session(rt, RefreshOptions::default(), Some(&forged))
        .await
        .unwrap_err();
    assert_eq!(proof_rejection(e), ProofRejection::WrongKey);
    // An RS256 proof for an ES256-bound session.
    let rsa = Device::rs256();
    let e = engine
        .dbsc_refresh_session(
            rt,
            RefreshOptions::default(),
            Some(&rsa.refresh(&engine.dbsc_challenge("public", handle).unwrap())),
        )
        .await
        .unwrap_err();
    assert_eq!(proof_rejection(e), ProofRejection::WrongAlgorithm);
    // The real device still refreshes with the same refresh token.
    let challenge = engine.dbsc_challenge("public", handle).unwrap();
    engine
        .dbsc_refresh_session(
            rt,
            RefreshOptions::default(),
            Some(&device.refresh(&challenge)),
        )
        .await
        .unwrap();
}

async fn forged_registration_is_refused(backend: Backend) {
    let (engine, _clock, _store) = setup(backend).await;
    let device = Device::es256();
    let thief = Device::es256();
    let tokens = signed_in(&engine).await;
    let handle = &tokens.session.handle;
    let challenge = engine.dbsc_challenge("public", handle).unwrap();
    // Claims the device's key, signed by another.
    let forged = thief.jwt(
        &json!({"alg": "ES256", "typ": "dbsc+jwt", "jwk": device.jwk()}),
        &json!({"jti": challenge}),
    );
    let e = engine
        .dbsc_register("public", handle, &forged)
        .await
        .unwrap_err();
    assert_eq!(proof_rejection(e), ProofRejection::BadSignature);
    // Tampered: a genuine proof with one signature byte changed, and with its payload swapped.
    let genuine = device.registration(&challenge);
    let mut bytes = genuine.clone().into_bytes();
    let last = bytes.len() - 3;
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    let e = engine
        .dbsc_register("public", handle, &tampered)
        .await
        .unwrap_err();
    assert_eq!(proof_rejection(e), ProofRejection::BadSignature);
    let parts: Vec<&str> = genuine.split('.').collect();
    let other_payload = b64(
        json!({"jti": engine.dbsc_challenge("public", handle).unwrap()})
            .to_string()
            .as_bytes(),
    );
    let swapped = format!("{}.{}.{}", parts[0], other_payload, parts[2]);
    let e = engine
        .dbsc_register("public", handle, &swapped)
        .await
        .unwrap_err();
    assert_eq!(proof_rejection(e), ProofRejection::BadSignature);
    // None of it consumed the challenge: the genuine proof still registers.
    engine
        .dbsc_register("public", handle, &genuine)
        .await
        .unwrap();
}

async fn expired_and_foreign_challenges_are_refused(backend: Backend) {
    let (engine, clock, _store) = setup(backend).await;
    let device = Device::es256();
    let tokens = signed_in(&engine).await;
    let other = signed_in(&engine).await;
    let handle = &tokens.session.handle;
    // Minted for another session.
    let foreign = engine
        .dbsc_challenge("public", &other.session.handle)
        .unwrap();
    let e = engine
        .dbsc_register("public", handle, &device.registration(&foreign))
        .await
        .unwrap_err();
    assert_eq!(challenge_rejection(e), ChallengeRejection::Invalid);
    // Not one of ours at all (same length, random bytes).
    let made_up = b64(&[9u8; 56]);
    let e = engine
        .dbsc_register("public", handle, &device.registration(&made_up))
        .await
        .unwrap_err();
    assert_eq!(challenge_rejection(e), ChallengeRejection::Invalid);
    // Expired.
    let challenge = engine.dbsc_challenge("public", handle).unwrap();
    clock.advance_ms(DBSC_CHALLENGE_TTL_MS + 1);
    let e = engine
        .dbsc_register("public", handle, &device.registration(&challenge))
        .await
        .unwrap_err();
    assert_eq!(challenge_rejection(e), ChallengeRejection::Expired);
}

async fn oversize_inputs_are_refused(backend: Backend) {
    let (engine, _clock, _store) = setup(backend).await;
    let device = Device::es256();
    let tokens = signed_in(&engine).await;
    let handle = &tokens.session.handle;
    let challenge = engine.dbsc_challenge("public", handle).unwrap();
    // A whole proof over the limit, before any decoding.
    let huge = "a".repeat(MAX_PROOF_LEN + 1);
    assert_eq!(
        verify_proof(&huge, None).unwrap_err(),
        ProofRejection::TooLarge
    );
    let e = engine
        .dbsc_register("public", handle, &huge)
        .await
        .unwrap_err();
    assert_eq!(proof_rejection(e), ProofRejection::TooLarge);
    // A header padded past the JSON limit, signed properly, under the total limit.
    let header =
        json!({"alg": "ES256", "typ": "dbsc+jwt", "jwk": device.jwk(), "pad": "x".repeat(4200)});
    let proof = device.jwt(&header, &json!({"jti": challenge}));
    assert!(proof.len() <= MAX_PROOF_LEN);
    let e = engine
        .dbsc_register("public", handle, &proof)
        .await
        .unwrap_err();
    assert_eq!(proof_rejection(e), ProofRejection::TooLarge);
    // An oversize jti.
    let proof = device.jwt(
        &json!({"alg": "ES256", "typ": "dbsc+jwt", "jwk": device.jwk()}),
        &json!({"jti": "c".repeat(300)}),
    );
    let e = engine
        .dbsc_register("public", handle, &proof)
        .await
        .unwrap_err();
    assert_eq!(proof_rejection(e), ProofRejection::BadPayload);
    // Duplicate members in the header.
    let dup = format!(
        "{}.{}.AAAA",
        b64(br#"{"alg":"ES256","typ":"dbsc+jwt","typ":"JWT"}"#),
        b64(br#"{"jti":"x"}"#)
    );
    assert_eq!(
        verify_proof(&dup, None).unwrap_err(),
        ProofRejection::Malformed
    );
    // The genuine proof still works.
    engine
        .dbsc_register("public", handle, &device.registration(&challenge))
        .await
        .unwrap();
}

/// A bound session refuses the plain refresh whatever refresh token is presented — the
/// current one, or one it rotated out (which would otherwise be theft and revoke it) — and
/// stays intact for the device.
async fn bound_session_refuses_plain_refresh(backend: Backend) {
    let (engine, _clock, _store) = setup(backend).await;
    let device = Device::es256();
    let tokens = signed_in(&engine).await;
    let old = engine
        .refresh_session(&tokens.refresh_token.token, RefreshOptions::default())
        .await
        .unwrap();
    let handle = &tokens.session.handle;
    let challenge = engine.dbsc_challenge("public", handle).unwrap();
    engine
        .dbsc_register("public", handle, &device.registration(&challenge))
        .await
        .unwrap();
    for rt in [&old.refresh_token.token, &tokens.refresh_token.token] {
        let e = engine
            .refresh_session(rt, RefreshOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                SessionError::Unauthorised(UnauthorisedReason::DeviceBound)
            ),
            "{e:?}"
        );
    }
    engine.get_session_info(handle).await.unwrap();
    let DbscError::NeedsChallenge {
        challenge,
        dbsc_session_id,
    } = engine
        .dbsc_refresh_session(&old.refresh_token.token, RefreshOptions::default(), None)
        .await
        .unwrap_err()
    else {
        panic!("expected a challenge")
    };
    let binding = engine
        .dbsc_binding("public", handle)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(dbsc_session_id, binding.dbsc_session_id);
    let (next, _) = engine
        .dbsc_refresh_session(
            &old.refresh_token.token,
            RefreshOptions::default(),
            Some(&device.refresh(&challenge)),
        )
        .await
        .unwrap();
    assert_eq!(next.session.handle, *handle);
}

async fn unbound_sessions_refresh_as_before(backend: Backend) {
    let (engine, _clock, _store) = setup(backend).await;
    let tokens = signed_in(&engine).await;
    engine
        .refresh_session(&tokens.refresh_token.token, RefreshOptions::default())
        .await
        .unwrap();
    let e = engine
        .dbsc_refresh_session(&tokens.refresh_token.token, RefreshOptions::default(), None)
        .await
        .unwrap_err();
    assert!(matches!(e, DbscError::NotBound), "{e:?}");
}

async fn binding_goes_with_the_session(backend: Backend) {
    let (engine, _clock, _store) = setup(backend).await;
    let device = Device::es256();
    let tokens = bound(&engine, &device).await;
    let handle = &tokens.session.handle;
    assert!(engine.revoke_session(handle).await.unwrap());
    assert!(engine
        .dbsc_binding("public", handle)
        .await
        .unwrap()
        .is_none());
    let e = engine
        .dbsc_refresh_session(&tokens.refresh_token.token, RefreshOptions::default(), None)
        .await
        .unwrap_err();
    assert!(matches!(e, DbscError::SessionGone), "{e:?}");
}

async fn guest_binding_carries_to_sign_in(backend: Backend) {
    let (engine, _clock, _store) = setup(backend).await;
    let device = Device::es256();
    let guest = "0b9e3e0e-4a43-4b0f-9a43-1f5f0c3b7a11";
    let challenge = engine.dbsc_guest_challenge(guest).unwrap();
    // A session challenge does not register a guest, nor the reverse.
    let tokens = signed_in(&engine).await;
    let wrong = engine
        .dbsc_challenge("public", &tokens.session.handle)
        .unwrap();
    let e = engine
        .dbsc_register_guest(guest, &device.registration(&wrong), u64::MAX)
        .await
        .unwrap_err();
    assert_eq!(challenge_rejection(e), ChallengeRejection::Invalid);
    let guest_binding = engine
        .dbsc_register_guest(guest, &device.registration(&challenge), u64::MAX)
        .await
        .unwrap();
    let carried = engine
        .dbsc_carry_guest(guest, "public", &tokens.session.handle)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(carried.jwk_thumbprint, guest_binding.jwk_thumbprint);
    assert_eq!(carried.dbsc_session_id, guest_binding.dbsc_session_id);
    let e = engine
        .refresh_session(&tokens.refresh_token.token, RefreshOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(
        e,
        SessionError::Unauthorised(UnauthorisedReason::DeviceBound)
    ));
    // An unbound guest carries nothing.
    let other = signed_in(&engine).await;
    assert!(engine
        .dbsc_carry_guest("someone-else", "public", &other.session.handle)
        .await
        .unwrap()
        .is_none());
}

async fn cleanup_forgets_expired_challenges(backend: Backend) {
    let (engine, clock, _store) = setup(backend).await;
    let device = Device::es256();
    let tokens = bound(&engine, &device).await;
    clock.advance_ms(DBSC_CHALLENGE_TTL_MS + 1);
    engine.cleanup().await.unwrap();
    // The binding stays (its session is live).
    assert!(engine
        .dbsc_binding("public", &tokens.session.handle)
        .await
        .unwrap()
        .is_some());
}

on_both_stores!(
    registration_binds_the_key,
    jti_replay_is_refused,
    single_use_across_instances,
    wrong_type_and_algorithms_are_refused,
    a_key_other_than_the_bound_one_is_refused,
    forged_registration_is_refused,
    expired_and_foreign_challenges_are_refused,
    oversize_inputs_are_refused,
    bound_session_refuses_plain_refresh,
    unbound_sessions_refresh_as_before,
    binding_goes_with_the_session,
    guest_binding_carries_to_sign_in,
    cleanup_forgets_expired_challenges,
);
