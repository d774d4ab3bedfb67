//! ROB-01 as properties in the normal test suite (proptest; the same properties as the
//! `fuzz/` targets, with modest case counts so this runs in seconds in a debug build):
//! parse ∘ serialise is the identity for access-token claims, JWKS, refresh tokens and
//! base64url; a genuine token changed by random byte edits, insertions and deletions never
//! verifies unless its bytes are unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::{Map, Value};
use std::sync::{Arc, OnceLock};
use tessera::fuzzing::encode_access_token;
use tessera::fuzzing::{b64url_decode, b64url_encode};
use tessera::fuzzing::{
    decode_refresh_token, mint_refresh_token, RefreshTokenFields, RefreshTokenKey,
};
use tessera::protocol::PROTECTED_CLAIMS;
use tessera::{
    verify_access_token, AccessTokenClaims, Jwk, Jwks, KeyKind, KeyRing, SigningKey, VerifyPolicy,
    VerifyingKeySet,
};

const NOW_S: u64 = 1_700_000_000;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn key() -> &'static Arc<SigningKey> {
    static KEY: OnceLock<Arc<SigningKey>> = OnceLock::new();
    KEY.get_or_init(|| {
        Arc::new(SigningKey::generate("d-1".into(), KeyKind::Dynamic, 1, u64::MAX).unwrap())
    })
}

fn ring() -> &'static KeyRing {
    static RING: OnceLock<KeyRing> = OnceLock::new();
    RING.get_or_init(|| KeyRing::new(vec![Arc::clone(key())], vec![], None))
}

fn jwks_set() -> &'static VerifyingKeySet {
    static SET: OnceLock<VerifyingKeySet> = OnceLock::new();
    SET.get_or_init(|| {
        let json = serde_json::to_string(&ring().jwks(0)).unwrap();
        VerifyingKeySet::from_jwks_json(&json).unwrap()
    })
}

fn refresh_key() -> &'static RefreshTokenKey {
    static KEY: OnceLock<RefreshTokenKey> = OnceLock::new();
    KEY.get_or_init(|| RefreshTokenKey::generate().unwrap())
}

fn policy() -> VerifyPolicy {
    VerifyPolicy {
        now_ms: NOW_S * 1000,
        max_lifetime_s: 3600,
        ignore_time: false,
    }
}

/// JSON values without floats (floats are checked separately: serde_json's default number
/// parsing is best-effort to the last ulp).
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map(".{0,6}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn user_claims() -> impl Strategy<Value = Map<String, Value>> {
    btree_map("[a-zA-Z_ü☃]{1,8}", json_value(), 0..5).prop_map(|m| {
        m.into_iter()
            .filter(|(k, _)| !PROTECTED_CLAIMS.contains(&k.as_str()) && k != "nbf")
            .collect()
    })
}

prop_compose! {
    fn claims()(
        sub in ".{1,16}",
        iat in (NOW_S - 1000)..NOW_S,
        life in 1000u64..=3600,
        session_handle in "[a-f0-9-]{1,36}",
        rth1 in "[a-f0-9]{64}",
        prth1 in proptest::option::of("[a-f0-9]{64}"),
        csrf in proptest::option::of(".{1,36}"),
        tenant_id in "[a-z0-9-]{1,16}",
        rsub in ".{1,16}",
        user_claims in user_claims(),
    ) -> AccessTokenClaims {
        AccessTokenClaims {
            sub, exp: iat + life, iat, session_handle, refresh_token_hash1: rth1,
            parent_refresh_token_hash1: prth1, anti_csrf_token: csrf, tenant_id, rsub, auth_time: None, user_claims,
        }
    }
}

#[derive(Debug, Clone)]
enum Edit {
    Replace(usize, u8),
    Insert(usize, u8),
    Delete(usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Replace(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        // Bytes the token alphabet uses, so edits often stay well-formed.
        (any::<usize>(), prop::sample::select(&b"A_-.09az="[..]))
            .prop_map(|(i, b)| Edit::Replace(i, b)),
        any::<usize>().prop_map(Edit::Delete),
    ];
    vec(edit, 1..4)
}

fn apply(original: &str, edits: &[Edit]) -> Vec<u8> {
    let mut out = original.as_bytes().to_vec();
    for e in edits {
        match *e {
            Edit::Replace(i, b) if !out.is_empty() => {
                let i = i % out.len();
                out[i] = b;
            }
            Edit::Insert(i, b) => {
                let i = i % (out.len() + 1);
                out.insert(i, b);
            }
            Edit::Delete(i) if !out.is_empty() => {
                let i = i % out.len();
                out.remove(i);
            }
            _ => {}
        }
    }
    out
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn rob01_base64url_round_trips_and_is_canonical(bytes in vec(any::<u8>(), 0..64),
                                                    text in "[A-Za-z0-9_=+/-]{0,12}") {
        prop_assert_eq!(b64url_decode(b64url_encode(&bytes).as_bytes()), Some(bytes));
        if let Some(decoded) = b64url_decode(text.as_bytes()) {
            prop_assert_eq!(b64url_encode(&decoded), text);
        }
    }

    #[test]
    fn rob01_jwks_parse_of_serialise_is_identity(
        keys in vec((".{0,8}", ".{0,8}", proptest::option::of("[A-Za-z0-9_-]{0,12}"),
                     proptest::option::of("[A-Za-z0-9_-]{0,6}"), ".{0,6}", ".{0,4}"), 0..4)
    ) {
        let jwks = Jwks {
            keys: keys.into_iter().map(|(kty, kid, n, e, alg, use_)| Jwk {
                kty, kid, n, e, crv: None, x: None, alg, use_,
            }).collect(),
        };
        let text = serde_json::to_string(&jwks).unwrap();
        prop_assert_eq!(serde_json::from_str::<Jwks>(&text).unwrap(), jwks);
    }
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn rob01_access_token_claims_parse_of_serialise_is_identity(c in claims()) {
        let text = serde_json::to_vec(&c).unwrap();
        prop_assert_eq!(serde_json::from_slice::<AccessTokenClaims>(&text).unwrap(), c);
    }

    #[test]
    fn rob01_minted_access_tokens_verify_and_round_trip(c in claims()) {
        let token = encode_access_token(&c, key()).unwrap();
        prop_assert_eq!(verify_access_token(&token, ring(), &policy()), Ok(c.clone()));
        prop_assert_eq!(verify_access_token(&token, jwks_set(), &policy()), Ok(c));
    }

    #[test]
    fn rob01_refresh_tokens_decode_to_what_was_minted(
        handle in "[a-z0-9-]{1,36}", user in ".{1,24}", tenant in "[a-z0-9-]{1,12}",
        parent in proptest::option::of("[a-f0-9]{64}"), csrf in proptest::option::of(".{1,36}"),
    ) {
        let fields = RefreshTokenFields {
            session_handle: &handle, user_id: &user, tenant_id: &tenant,
            parent_hash1: parent.as_deref(), anti_csrf_token: csrf.as_deref(), anonymous_id: None,
        };
        let minted = mint_refresh_token(refresh_key(), fields).unwrap();
        let p = decode_refresh_token(refresh_key(), &minted.token).unwrap();
        prop_assert_eq!(&p.session_handle, &handle);
        prop_assert_eq!(&p.user_id, &user);
        prop_assert_eq!(p.tenant(), tenant.as_str());
        prop_assert_eq!(p.parent_refresh_token_hash1, parent);
        prop_assert_eq!(p.anti_csrf_token, csrf);
    }
}

fn genuine_access_tokens() -> &'static [String] {
    static TOKENS: OnceLock<Vec<String>> = OnceLock::new();
    TOKENS.get_or_init(|| {
        let mut c = AccessTokenClaims {
            sub: "user-1".into(),
            exp: NOW_S + 3000,
            iat: NOW_S - 100,
            session_handle: "h-1".into(),
            refresh_token_hash1: tessera::fuzzing::sha256_hex("rt"),
            parent_refresh_token_hash1: None,
            anti_csrf_token: None,
            tenant_id: "public".into(),
            rsub: "user-1".into(),
            auth_time: None,
            user_claims: Map::new(),
        };
        let plain = encode_access_token(&c, key()).unwrap();
        c.anti_csrf_token = Some("csrf".into());
        c.user_claims.insert("role".into(), Value::from("admin"));
        let rich = encode_access_token(&c, key()).unwrap();
        vec![plain, rich]
    })
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn rob01_edited_genuine_access_token_verifies_only_if_unchanged(
        which in 0usize..2, edits in edits()
    ) {
        let original = &genuine_access_tokens()[which];
        prop_assert!(verify_access_token(original, ring(), &policy()).is_ok());
        let edited = apply(original, &edits);
        if let Ok(token) = std::str::from_utf8(&edited) {
            let unchanged = token == original.as_str();
            prop_assert_eq!(verify_access_token(token, ring(), &policy()).is_ok(), unchanged);
            prop_assert_eq!(verify_access_token(token, jwks_set(), &policy()).is_ok(), unchanged);
        }
    }
}

fn genuine_refresh_token() -> &'static str {
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN.get_or_init(|| {
        let fields = RefreshTokenFields {
            session_handle: "h-1",
            user_id: "user-1",
            tenant_id: "public",
            parent_hash1: None,
            anti_csrf_token: Some("csrf"),
            anonymous_id: None,
        };
        mint_refresh_token(refresh_key(), fields).unwrap().token
    })
}

proptest! {
    #![proptest_config(config(128))]

    /// The only accepted change is the case of the `V2` tag (the core compares it
    /// case-insensitively); such a token has a different hash, so the store finds no session.
    #[test]
    fn rob01_edited_genuine_refresh_token_decodes_only_if_unchanged(edits in edits()) {
        let original = genuine_refresh_token();
        let edited = apply(original, &edits);
        if let Ok(token) = std::str::from_utf8(&edited) {
            let (t, o) = (token.as_bytes(), original.as_bytes());
            let same = t == o
                || (t.len() == o.len()
                    && t[..t.len() - 2] == o[..o.len() - 2]
                    && t[t.len() - 2..].eq_ignore_ascii_case(b"V2"));
            prop_assert_eq!(decode_refresh_token(refresh_key(), token).is_some(), same);
        }
    }
}

#[test]
fn rob01_property_helpers_can_fail() {
    // The edit helper really changes tokens, and the verifier really rejects a changed one.
    let original = &genuine_access_tokens()[0];
    let edited = apply(original, &[Edit::Replace(original.len() - 1, b'!')]);
    assert_ne!(edited, original.as_bytes());
    let edited = String::from_utf8(edited).unwrap();
    assert!(verify_access_token(&edited, ring(), &policy()).is_err());
}

/// Regression from the `at_header_claims` fuzzer: a header given as a JSON array of the four
/// values (`["RS256","JWT",kid,"5"]`) was accepted by the derived deserialiser. Even correctly
/// signed by our own key, such a token must be rejected: a JOSE header is a JSON object.
#[test]
fn rob01_fuzz_regression_array_header_is_rejected_even_when_signed() {
    let payload = genuine_access_tokens()[0]
        .split('.')
        .nth(1)
        .unwrap()
        .to_owned();
    for header in [
        format!(r#"["RS256","JWT","{}","5"]"#, key().kid()),
        format!(
            r#"{{"alg":"RS256","typ":"JWT","kid":"{}","version":"5"}}"#,
            key().kid()
        ),
    ] {
        let signing_input = format!("{}.{payload}", b64url_encode(header.as_bytes()));
        let sig = key().sign_rs256(signing_input.as_bytes()).unwrap();
        let token = format!("{signing_input}.{}", b64url_encode(&sig));
        let result = verify_access_token(&token, ring(), &policy());
        if header.starts_with('[') {
            assert_eq!(
                result,
                Err(tessera::TryRefreshReason::InvalidToken),
                "{header}"
            );
            assert_eq!(verify_access_token(&token, jwks_set(), &policy()), result);
        } else {
            assert!(
                result.is_ok(),
                "control: the object form verifies: {result:?}"
            );
        }
    }
}
