//! Engine benchmarks. Each figure has its baseline in the same run:
//! - `verify/access_token` (string → verified claims, keys loaded) against
//!   `verify/raw_rs256` (the RSA signature check alone on the same bytes);
//! - `sign/access_token` (claims → signed token, key parsed once) against `sign/raw_rs256`;
//! - `sqlite/create` and `sqlite/refresh`: whole operations on a SQLite file (WAL), one
//!   core (current-thread runtime).
//!
//! - `anonymous/*`: minting and verifying anonymous tokens against the raw Ed25519 calls.
//!
//! - `dbsc/refresh_unbound` against `dbsc/refresh_bound`: the same rotation on SQLite, the
//!   second through the DBSC refresh (a `dbsc+jwt` ES256 proof verified, its challenge
//!   spent in the used-set). The client's signing is done outside the timed part.
//!
//! `scripts/bench-engine.sh` runs them and prints the ratios.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::sync::Arc;
use tessera::fuzzing::encode_access_token;
use tessera::{
    verify_access_token, AccessTokenClaims, KeyKind, KeyRing, NewSession, RefreshOptions,
    SessionEngine, SigningKey, SqliteStore, VerifyPolicy,
};

fn claims(now_s: u64) -> AccessTokenClaims {
    let mut user = serde_json::Map::new();
    user.insert("iss".into(), "https://api.example.com/auth".into());
    user.insert("role".into(), "member".into());
    AccessTokenClaims {
        sub: "5a1f1c9e-7d2b-4a39-9d0e-0d9b1d0b7c11".into(),
        exp: now_s + 3600,
        iat: now_s,
        session_handle: "0b6a5a9e-3c52-4f0e-9b5e-6f7a2f1d9c3b".into(),
        refresh_token_hash1: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
            .into(),
        parent_refresh_token_hash1: None,
        anti_csrf_token: None,
        tenant_id: "public".into(),
        rsub: "5a1f1c9e-7d2b-4a39-9d0e-0d9b1d0b7c11".into(),
        auth_time: None,
        user_claims: user,
    }
}

fn token_paths(c: &mut Criterion) {
    let now_ms = tessera::Clock::now_ms(&tessera::SystemClock);
    let key = Arc::new(
        SigningKey::generate(format!("d-{now_ms}"), KeyKind::Dynamic, now_ms, u64::MAX)
            .expect("key"),
    );
    let ring = KeyRing::new(vec![Arc::clone(&key)], vec![], None);
    let claims = claims(now_ms / 1000);
    let token = encode_access_token(&claims, &key).expect("mint");
    let policy = VerifyPolicy {
        now_ms,
        max_lifetime_s: 3600,
        ignore_time: false,
    };
    let (signed, sig_b64) = token.rsplit_once('.').expect("three parts");
    let signature = tessera::fuzzing::b64url_decode(sig_b64.as_bytes()).expect("sig");

    let mut g = c.benchmark_group("verify");
    g.bench_function("raw_rs256", |b| {
        b.iter(|| {
            assert!(key
                .verifying()
                .verify_rs256(black_box(signed.as_bytes()), black_box(&signature)))
        })
    });
    g.bench_function("access_token", |b| {
        b.iter(|| verify_access_token(black_box(&token), &ring, &policy).expect("valid"))
    });
    g.finish();

    let mut g = c.benchmark_group("sign");
    g.bench_function("raw_rs256", |b| {
        b.iter(|| key.sign_rs256(black_box(signed.as_bytes())).expect("sign"))
    });
    g.bench_function("access_token", |b| {
        b.iter(|| encode_access_token(black_box(&claims), &key).expect("mint"))
    });
    // What the refresh-token format adds to every create and refresh (core-api §6.1): the
    // token's AES key, PBKDF2-HMAC-SHA512 over 100 iterations of the master key's string
    // (`1000:<128 hex>:<128 hex>`) salted with the token's 12-byte IV.
    let master = format!("1000:{}:{}", "ab".repeat(64), "cd".repeat(64));
    let iterations = std::num::NonZeroU32::new(100).expect("non-zero");
    g.bench_function("refresh_token_key_pbkdf2", |b| {
        b.iter(|| {
            let mut aes_key = [0u8; 32];
            aws_lc_rs::pbkdf2::derive(
                aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA512,
                iterations,
                black_box(&[7u8; 12]),
                master.as_bytes(),
                &mut aes_key,
            );
            aes_key
        })
    });
    g.finish();
}

fn sqlite_operations(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = rt.block_on(async {
        let store = SqliteStore::open(dir.path().join("bench.db"))
            .await
            .expect("store");
        SessionEngine::builder(Arc::new(store))
            .build()
            .await
            .expect("engine")
    });
    let mut g = c.benchmark_group("sqlite");
    g.bench_function("create", |b| {
        b.iter(|| {
            rt.block_on(engine.create_session(NewSession::for_user("bench-user")))
                .expect("create")
        })
    });
    let first = rt
        .block_on(engine.create_session(NewSession::for_user("bench-user")))
        .expect("create");
    let mut current = first.refresh_token.token;
    g.bench_function("refresh", |b| {
        b.iter(|| {
            // Refresh with the current token, then with the child (which promotes it), so
            // every iteration pays for one real rotation.
            let child = rt
                .block_on(engine.refresh_session(&current, RefreshOptions::default()))
                .expect("refresh");
            current = child.refresh_token.token;
        })
    });
    g.finish();
}

/// Anonymous tokens: minting (a fresh anonymousId, Ed25519 signature) against the raw Ed25519
/// signature over the same bytes; verifying without and with the verified-token cache against
/// the raw Ed25519 check.
fn anonymous_paths(c: &mut Criterion) {
    use tessera::{AnonymousAlgorithm, AnonymousSigningKey};
    use tessera::{AnonymousConfig, AnonymousSessions, MintAnonymous};
    let now_ms = tessera::Clock::now_ms(&tessera::SystemClock);
    let key = AnonymousSigningKey::generate(AnonymousAlgorithm::EdDSA).expect("key");
    let stored = key.to_stored().expect("stored");
    let signer = AnonymousSigningKey::parse(&stored).expect("key");
    let minting =
        AnonymousSessions::new(AnonymousConfig::default(), Some(key), vec![]).expect("set");
    let uncached = AnonymousSessions::new(
        AnonymousConfig {
            verified_token_cache: 0,
            ..AnonymousConfig::default()
        },
        Some(AnonymousSigningKey::parse(&stored).expect("key")),
        vec![],
    )
    .expect("set");
    let token = minting
        .mint(MintAnonymous::default(), now_ms)
        .expect("mint")
        .token;
    let (signed, sig_b64) = token.rsplit_once('.').expect("three parts");
    let signature = tessera::fuzzing::b64url_decode(sig_b64.as_bytes()).expect("sig");

    let mut g = c.benchmark_group("anonymous");
    g.bench_function("raw_ed25519_sign", |b| {
        b.iter(|| signer.sign(black_box(signed.as_bytes())).expect("sign"))
    });
    g.bench_function("mint", |b| {
        b.iter(|| {
            minting
                .mint(MintAnonymous::default(), now_ms)
                .expect("mint")
        })
    });
    g.bench_function("raw_ed25519_verify", |b| {
        b.iter(|| {
            assert!(signer
                .verifying()
                .verify(black_box(signed.as_bytes()), black_box(&signature)))
        })
    });
    g.bench_function("verify_uncached", |b| {
        b.iter(|| uncached.verify(black_box(&token), now_ms).expect("valid"))
    });
    g.bench_function("verify_cached", |b| {
        b.iter(|| minting.verify(black_box(&token), now_ms).expect("valid"))
    });
    g.finish();
}

/// Issue 14: a bound refresh against an unbound one, same store, same run.
fn dbsc_refresh(c: &mut Criterion) {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = rt.block_on(async {
        let store = SqliteStore::open(dir.path().join("bench-dbsc.db"))
            .await
            .expect("store");
        SessionEngine::builder(Arc::new(store))
            .build()
            .await
            .expect("engine")
    });
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let point = key.public_key().as_ref().to_vec();
    let jwk = format!(
        r#"{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}"#,
        b64(&point[1..33]),
        b64(&point[33..65])
    );
    let sign = |header: &str, jti: &str| {
        let input = format!(
            "{}.{}",
            b64(header.as_bytes()),
            b64(format!(r#"{{"jti":"{jti}"}}"#).as_bytes())
        );
        let sig = key.sign(&rng, input.as_bytes()).unwrap();
        format!("{input}.{}", b64(sig.as_ref()))
    };
    let unbound = rt
        .block_on(engine.create_session(NewSession::for_user("bench-user")))
        .expect("create");
    let bound = rt
        .block_on(engine.create_session(NewSession::for_user("bench-user")))
        .expect("create");
    let handle = bound.session.handle.clone();
    let challenge = engine.dbsc_challenge("public", &handle).unwrap();
    let registration = sign(
        &format!(r#"{{"alg":"ES256","typ":"dbsc+jwt","jwk":{jwk}}}"#),
        &challenge,
    );
    rt.block_on(engine.dbsc_register("public", &handle, &registration))
        .expect("register");
    let mut g = c.benchmark_group("dbsc");
    g.sample_size(20)
        .measurement_time(std::time::Duration::from_secs(4));
    let mut current = unbound.refresh_token.token;
    g.bench_function("refresh_unbound", |b| {
        b.iter(|| {
            let child = rt
                .block_on(engine.refresh_session(&current, RefreshOptions::default()))
                .expect("refresh");
            current = child.refresh_token.token;
        })
    });
    let mut current = bound.refresh_token.token;
    g.bench_function("refresh_bound", |b| {
        b.iter_batched(
            || {
                let challenge = engine.dbsc_challenge("public", &handle).unwrap();
                sign(r#"{"alg":"ES256","typ":"dbsc+jwt"}"#, &challenge)
            },
            |proof| {
                let (child, _) = rt
                    .block_on(engine.dbsc_refresh_session(
                        &current,
                        RefreshOptions::default(),
                        Some(&proof),
                    ))
                    .expect("bound refresh");
                current = child.refresh_token.token;
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(
    benches,
    token_paths,
    anonymous_paths,
    sqlite_operations,
    dbsc_refresh
);
criterion_main!(benches);
