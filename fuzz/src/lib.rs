//! Shared fixtures of the fuzz targets: two fixed RS256 keys (committed under `fixtures/`), the
//! genuine access tokens they sign (deterministic: RSASSA-PKCS1-v1_5 signing has no
//! randomness), a fixed refresh-token master key with genuine refresh tokens minted once, and
//! the byte-edit scripts the "mutated genuine token" properties use.
//!
//! `examples/gen_corpus.rs` writes the fixtures (`--keys`) and the seed corpora from these.

use std::sync::{Arc, OnceLock};
use tessera::{AccessTokenClaims, KeyKind, KeyRing, SigningKey, VerifyPolicy, VerifyingKeySet};
use tessera::fuzzing::encode_access_token;
use tessera::fuzzing::RefreshTokenKey;

/// The fixed "now" of every verification, epoch ms.
pub const NOW_MS: u64 = 1_700_000_000_000;
/// The access-token lifetime the fixtures use, seconds.
pub const LIFETIME_S: u64 = 3600;
/// `kid` of the dynamic fixture key.
pub const DYNAMIC_KID: &str = "d-1699999000000";
/// `kid` of the static fixture key.
pub const STATIC_KID: &str = "s-0b5c1f0e-3a0c-4f55-9d3e-2f6d9c9b7a11";

const DYNAMIC_STORED: &str = include_str!("../fixtures/dynamic_key.txt");
const STATIC_STORED: &str = include_str!("../fixtures/static_key.txt");
const REFRESH_MASTER: &str = include_str!("../fixtures/refresh_master_key.txt");
const REFRESH_TOKENS: &str = include_str!("../fixtures/refresh_tokens.txt");

/// The verification policy at [`NOW_MS`].
pub fn policy() -> VerifyPolicy {
    VerifyPolicy {
        now_ms: NOW_MS,
        max_lifetime_s: LIFETIME_S,
        ignore_time: false,
    }
}

fn load(stored: &str, kid: &str, kind: KeyKind) -> Arc<SigningKey> {
    let key = SigningKey::from_stored(stored.trim(), kid.into(), kind, 1_699_999_000_000, u64::MAX)
        .expect("fixture key parses");
    Arc::new(key)
}

/// The two fixture signing keys: dynamic, static.
pub fn signing_keys() -> &'static [Arc<SigningKey>; 2] {
    static KEYS: OnceLock<[Arc<SigningKey>; 2]> = OnceLock::new();
    KEYS.get_or_init(|| {
        [
            load(DYNAMIC_STORED, DYNAMIC_KID, KeyKind::Dynamic),
            load(STATIC_STORED, STATIC_KID, KeyKind::Static),
        ]
    })
}

/// The engine's key ring over the fixture keys (with the minted-header shortcut).
pub fn key_ring() -> &'static KeyRing {
    static RING: OnceLock<KeyRing> = OnceLock::new();
    RING.get_or_init(|| {
        let [d, s] = signing_keys();
        KeyRing::new(vec![Arc::clone(d)], vec![Arc::clone(s)], None)
    })
}

/// The JWKS the ring publishes, as JSON.
pub fn jwks_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| serde_json::to_string(&key_ring().jwks(NOW_MS)).expect("jwks serialises"))
}

/// A verifying key set parsed from [`jwks_json`] (every header is decoded and parsed).
pub fn jwks_set() -> &'static VerifyingKeySet {
    static SET: OnceLock<VerifyingKeySet> = OnceLock::new();
    SET.get_or_init(|| VerifyingKeySet::from_jwks_json(jwks_json()).expect("jwks parses"))
}

/// The claim sets the genuine tokens carry.
pub fn claim_sets() -> Vec<AccessTokenClaims> {
    let iat = NOW_MS / 1000 - 100;
    let base = AccessTokenClaims {
        sub: "user-1".into(),
        exp: iat + LIFETIME_S,
        iat,
        session_handle: "4e1b7c9e-0c5d-4c0f-8a55-8d1f9d0b6a21".into(),
        refresh_token_hash1: tessera::fuzzing::sha256_hex("rt-1"),
        parent_refresh_token_hash1: None,
        anti_csrf_token: None,
        tenant_id: "public".into(),
        rsub: "user-1".into(),
        auth_time: None,
        user_claims: Default::default(),
    };
    let mut with_csrf = base.clone();
    with_csrf.anti_csrf_token = Some("b3c1f2a0-9d8e-4f7a-8b6c-5d4e3f2a1b0c".into());
    with_csrf.parent_refresh_token_hash1 = Some(tessera::fuzzing::sha256_hex("rt-0"));
    let serde_json::Value::Object(custom) = serde_json::json!({
        "role": "admin", "n": 1.5, "big": 12345678901234567u64, "neg": -3,
        "arr": [1, "x", null, {"k": [true, false]}], "ü": "☃ \u{1F600}", "esc": "a\"b\\c\n"
    }) else {
        unreachable!()
    };
    with_csrf.user_claims = custom;
    let mut tenant = base.clone();
    tenant.tenant_id = "tenant-1".into();
    tenant.rsub = "user-1-recipe".into();
    tenant.sub = "primary-1".into();
    vec![base, with_csrf, tenant]
}

/// Genuine access tokens: every claim set signed by each fixture key.
pub fn genuine_tokens() -> &'static [String] {
    static TOKENS: OnceLock<Vec<String>> = OnceLock::new();
    TOKENS.get_or_init(|| {
        let mut out = Vec::new();
        for key in signing_keys() {
            for claims in claim_sets() {
                out.push(encode_access_token(&claims, key).expect("fixture token mints"));
            }
        }
        out
    })
}

/// The fixed refresh-token master key.
pub fn refresh_key() -> &'static RefreshTokenKey {
    static KEY: OnceLock<RefreshTokenKey> = OnceLock::new();
    KEY.get_or_init(|| RefreshTokenKey::from_stored(REFRESH_MASTER.trim()).expect("fixture key"))
}

/// Genuine refresh tokens under [`refresh_key`] (minted once by `gen_corpus --keys`).
pub fn genuine_refresh_tokens() -> Vec<&'static str> {
    REFRESH_TOKENS
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
}

/// Applies an edit script to `original`: each 3-byte instruction `(op, pos, value)` replaces
/// (`op % 3 == 0`), inserts (`1`) or deletes (`2`) one byte at `pos` (a 16-bit position from
/// `pos` and `value` for deletions, modulo the length). Leftover bytes are appended.
pub fn apply_edits(original: &[u8], script: &[u8]) -> Vec<u8> {
    let mut out = original.to_vec();
    let mut chunks = script.chunks_exact(3);
    for c in chunks.by_ref() {
        let (op, pos, value) = (c[0], usize::from(c[1]), c[2]);
        match op % 3 {
            0 if !out.is_empty() => {
                let i = (pos * 256 + usize::from(op / 3)) % out.len();
                out[i] = value;
            }
            1 => {
                let i = (pos * 256 + usize::from(op / 3)) % (out.len() + 1);
                out.insert(i, value);
            }
            2 if !out.is_empty() => {
                let i = (pos * 256 + usize::from(value)) % out.len();
                out.remove(i);
            }
            _ => {}
        }
    }
    out.extend_from_slice(chunks.remainder());
    out
}
