//! JWT attacks against the access-token verifier: security catalogue §2 (JWT-01..JWT-30) and
//! PRJ-06 (the `jsonwebtoken` crate's negative tests), plus interoperability with
//! `jsonwebtoken` in both directions.
//!
//! Every negative case asserts the exact [`TryRefreshReason`], never just "is an error", and
//! every test ends with a persistence check: the untouched genuine token still verifies.
//!
//! Forged tokens that should fail on a *header* or *claim* rule are signed with OUR key, so the
//! signature passes and the rule under test is what rejects them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature as lc_sig;
use aws_lc_rs::{hmac, rsa};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};
use tessera::fuzzing::encode_access_token;
use tessera::fuzzing::sha256_hex;
use tessera::{
    verify_access_token, AccessTokenClaims, Jwk, KeyKind, KeyRing, SigningKey, TryRefreshReason,
    VerifyPolicy, VerifyingKeySet, MAX_ACCESS_TOKEN_LEN,
};
use TryRefreshReason::{Expired, InvalidToken, KeyNotFound};

// ---------------------------------------------------------------------------------------------
// Forge kit
// ---------------------------------------------------------------------------------------------

/// The fixed "now" of every test (injected clock; never the system clock, except interop).
const NOW_MS: u64 = 1_700_000_000_000;
const NOW_S: u64 = NOW_MS / 1000;
/// Our dynamic key's id.
const KID: &str = "d-1";
/// The configured access-token lifetime (`max_lifetime_s`).
const MAX_LIFETIME_S: u64 = 3600;
/// `exp` and `iat` of the genuine token: inside the lifetime, not expired at `NOW_MS`.
const GENUINE_EXP: u64 = NOW_S + 3000;
const GENUINE_IAT: u64 = NOW_S - 600;

fn policy(now_ms: u64) -> VerifyPolicy {
    VerifyPolicy {
        now_ms,
        max_lifetime_s: MAX_LIFETIME_S,
        ignore_time: false,
    }
}

fn new_key(kid: &str, kind: KeyKind, created_ms: u64, verify_until_ms: u64) -> SigningKey {
    SigningKey::generate(kid.into(), kind, created_ms, verify_until_ms).expect("RSA keygen")
}

/// Our key and ring, an attacker key, and one genuine token (shared: RSA keygen is slow).
struct Kit {
    ours: Arc<SigningKey>,
    attacker: SigningKey,
    ring: KeyRing,
    claims: AccessTokenClaims,
    genuine: String,
}

fn kit() -> &'static Kit {
    static KIT: OnceLock<Kit> = OnceLock::new();
    KIT.get_or_init(|| {
        let ours = Arc::new(new_key(
            KID,
            KeyKind::Dynamic,
            NOW_MS - 60_000,
            NOW_MS + 7 * 86_400_000,
        ));
        let attacker = new_key("d-666", KeyKind::Dynamic, NOW_MS, u64::MAX);
        let ring = KeyRing::new(vec![Arc::clone(&ours)], vec![], None);
        let claims = claims_for("user-1", GENUINE_EXP, GENUINE_IAT);
        let genuine = encode_access_token(&claims, &ours).expect("mint genuine token");
        Kit {
            ours,
            attacker,
            ring,
            claims,
            genuine,
        }
    })
}

/// A complete v5 claim set with one custom claim.
fn claims_for(sub: &str, exp: u64, iat: u64) -> AccessTokenClaims {
    let mut user_claims = Map::new();
    user_claims.insert("role".into(), json!("user"));
    AccessTokenClaims {
        sub: sub.into(),
        exp,
        iat,
        session_handle: "public-0b9c6a3e-7d41-4c1f-8a52-3f6d2e1b9c07".into(),
        refresh_token_hash1: sha256_hex("refresh-token-of-user-1"),
        parent_refresh_token_hash1: None,
        anti_csrf_token: Some("7e0c2d5b-1f3a-4b6c-9d8e-0a1b2c3d4e5f".into()),
        tenant_id: "public".into(),
        rsub: sub.into(),
        auth_time: None,
        user_claims,
    }
}

/// Verifies against our ring at `now_ms`.
fn verify_at(token: &str, now_ms: u64) -> Result<AccessTokenClaims, TryRefreshReason> {
    verify_access_token(token, &kit().ring, &policy(now_ms))
}

/// Verifies against our ring at `NOW_MS`.
fn verify(token: &str) -> Result<AccessTokenClaims, TryRefreshReason> {
    verify_at(token, NOW_MS)
}

/// A short printable form of a token for assertion messages.
fn show(token: &str) -> String {
    if token.len() <= 200 {
        format!("{token:?}")
    } else {
        let head: String = token.chars().take(120).collect();
        format!("{head:?}… ({} bytes)", token.len())
    }
}

/// Asserts that `token` is rejected with exactly `want` by `verify`.
#[track_caller]
fn assert_rejected(token: &str, want: TryRefreshReason, case: &str) {
    assert_rejected_with(verify(token), token, want, case);
}

#[track_caller]
fn assert_rejected_with(
    got: Result<AccessTokenClaims, TryRefreshReason>,
    token: &str,
    want: TryRefreshReason,
    case: &str,
) {
    match got {
        Ok(c) => panic!(
            "{case}: forged token ACCEPTED (sub={:?}) {}",
            c.sub,
            show(token)
        ),
        Err(reason) => assert_eq!(reason, want, "{case}: {}", show(token)),
    }
}

/// Persistence check: the genuine token still verifies to exactly the minted claims.
#[track_caller]
fn assert_persistence() {
    let k = kit();
    assert_eq!(
        verify(&k.genuine),
        Ok(k.claims.clone()),
        "persistence check: the genuine token must still verify"
    );
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(segment: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .expect("test segment is base64url")
}

/// The three segments of a compact token.
fn parts(token: &str) -> (&str, &str, &str) {
    let v: Vec<&str> = token.split('.').collect();
    assert_eq!(v.len(), 3, "not a compact JWS: {}", show(token));
    (v[0], v[1], v[2])
}

/// RS256-signs an already encoded signing input `h.p` with `key` and appends the signature.
fn sign_input(key: &SigningKey, signing_input: &str) -> String {
    let sig = key.sign_rs256(signing_input.as_bytes()).expect("sign");
    format!("{signing_input}.{}", b64(sig))
}

/// `b64(header).b64(payload)` RS256-signed with `key`, from raw bytes (may be invalid UTF-8).
fn rs256_raw(key: &SigningKey, header: &[u8], payload: &[u8]) -> String {
    sign_input(key, &format!("{}.{}", b64(header), b64(payload)))
}

/// `b64(header).b64(payload)` RS256-signed with `key`.
fn rs256(key: &SigningKey, header: &str, payload: &str) -> String {
    rs256_raw(key, header.as_bytes(), payload.as_bytes())
}

/// RS256-signed with our own key: the signature is genuine, only the content is forged.
fn ours_signed(header: &str, payload: &str) -> String {
    rs256(&kit().ours, header, payload)
}

/// `b64(header).b64(payload)` MAC'd with HMAC (`HS256` = `hmac::HMAC_SHA256`, …).
fn hmac_token(alg: hmac::Algorithm, secret: &[u8], header: &str, payload: &str) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let tag = hmac::sign(&hmac::Key::new(alg, secret), input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}

/// A header of exactly our schema with the given `alg` and `kid`.
fn header(alg: &str, kid: &str) -> String {
    json!({"alg": alg, "typ": "JWT", "kid": kid, "version": "5"}).to_string()
}

/// The header we issue.
fn our_header() -> String {
    header("RS256", KID)
}

/// Our header with extra raw JSON members appended (e.g. `"jku":"http://x"`).
fn header_plus(extra_members: &str) -> String {
    format!(r#"{{"alg":"RS256","typ":"JWT","kid":"{KID}","version":"5",{extra_members}}}"#)
}

/// The genuine claims as a JSON object.
fn claims_object() -> Map<String, Value> {
    match serde_json::to_value(&kit().claims).expect("claims serialise") {
        Value::Object(m) => m,
        other => panic!("claims are not an object: {other}"),
    }
}

/// The genuine claims as JSON text, after `edit`.
fn payload_with(edit: impl FnOnce(&mut Map<String, Value>)) -> String {
    let mut m = claims_object();
    edit(&mut m);
    Value::Object(m).to_string()
}

/// The genuine claims as JSON text.
fn genuine_payload() -> String {
    payload_with(|_| {})
}

/// `text` with `from` replaced by `to`; panics if `from` is absent (so no case is vacuous).
fn must_replace(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not found in {text}");
    text.replacen(from, to, 1)
}

/// Both halves of `SigningKey::to_stored()`: (SPKI DER, PKCS#8 DER).
fn stored_der(key: &SigningKey) -> (Vec<u8>, Vec<u8>) {
    let stored = key.to_stored().expect("to_stored");
    let (spki, pkcs8) = stored.split_once('|').expect("stored form has '|'");
    (
        STANDARD.decode(spki).expect("SPKI base64"),
        STANDARD.decode(pkcs8).expect("PKCS#8 base64"),
    )
}

/// One DER TLV: (tag, contents, rest).
fn der_tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = input[0];
    let first = input[1];
    let (len, header_len) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        let len = input[2..2 + n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, 2 + n)
    };
    (
        tag,
        &input[header_len..header_len + len],
        &input[header_len + len..],
    )
}

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo`.
fn pkcs1_private_der(pkcs8: &[u8]) -> Vec<u8> {
    let (tag, body, _) = der_tlv(pkcs8);
    assert_eq!(tag, 0x30, "PrivateKeyInfo is a SEQUENCE");
    let (tag, _, rest) = der_tlv(body);
    assert_eq!(tag, 0x02, "version INTEGER");
    let (tag, _, rest) = der_tlv(rest);
    assert_eq!(tag, 0x30, "AlgorithmIdentifier SEQUENCE");
    let (tag, key, _) = der_tlv(rest);
    assert_eq!(tag, 0x04, "privateKey OCTET STRING");
    key.to_vec()
}

/// The PKCS#1 `RSAPublicKey` inside an SPKI.
fn pkcs1_public_der(spki: &[u8]) -> Vec<u8> {
    let (tag, body, _) = der_tlv(spki);
    assert_eq!(tag, 0x30, "SPKI is a SEQUENCE");
    let (tag, _, rest) = der_tlv(body);
    assert_eq!(tag, 0x30, "AlgorithmIdentifier SEQUENCE");
    let (tag, bits, _) = der_tlv(rest);
    assert_eq!(tag, 0x03, "subjectPublicKey BIT STRING");
    assert_eq!(bits[0], 0, "no unused bits");
    bits[1..].to_vec()
}

/// The INTEGERs of a DER SEQUENCE, big-endian without leading zeros.
fn der_integers(seq: &[u8]) -> Vec<Vec<u8>> {
    let (tag, mut body, _) = der_tlv(seq);
    assert_eq!(tag, 0x30, "SEQUENCE");
    let mut out = Vec::new();
    while !body.is_empty() {
        let (tag, int, rest) = der_tlv(body);
        assert_eq!(tag, 0x02, "INTEGER");
        let start = int.iter().position(|b| *b != 0).unwrap_or(int.len());
        out.push(int[start..].to_vec());
        body = rest;
    }
    out
}

/// PEM armour with 64-column lines and a trailing newline.
fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Our RSA private key as an aws-lc key pair (to sign under other RSA algorithms).
fn our_rsa_pair() -> rsa::KeyPair {
    let (_, pkcs8) = stored_der(&kit().ours);
    rsa::KeyPair::from_pkcs8(&pkcs8).expect("PKCS#8")
}

/// `key` signs `message` with an RSA `encoding` (PKCS#1 v1.5 or PSS with any digest).
fn rsa_sign(key: &rsa::KeyPair, encoding: &'static dyn lc_sig::RsaEncoding, msg: &[u8]) -> Vec<u8> {
    let mut sig = vec![0u8; key.public_modulus_len()];
    key.sign(encoding, &SystemRandom::new(), msg, &mut sig)
        .expect("RSA sign");
    sig
}

/// Big-endian `x + 1` (same width, wrapping).
fn be_add_one(x: &[u8]) -> Vec<u8> {
    let mut v = x.to_vec();
    for b in v.iter_mut().rev() {
        let (r, carry) = b.overflowing_add(1);
        *b = r;
        if !carry {
            break;
        }
    }
    v
}

/// Big-endian `x - 1` (same width, wrapping).
fn be_sub_one(x: &[u8]) -> Vec<u8> {
    let mut v = x.to_vec();
    for b in v.iter_mut().rev() {
        let (r, borrow) = b.overflowing_sub(1);
        *b = r;
        if !borrow {
            break;
        }
    }
    v
}

const B64URL_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Appends spaces to JSON text until its length is `3k + 1`, so its base64url form ends in a
/// character carrying 4 unused bits.
fn pad_to_len_3k_plus_1(json_text: String) -> String {
    let mut s = json_text;
    while s.len() % 3 != 1 {
        s.push(' ');
    }
    s
}

/// Non-canonical spellings of one base64url segment (which contains `-` and `_` and has
/// `len % 4 == 2`). Each decodes to the same bytes under a lenient decoder, or is junk.
fn non_canonical_variants(seg: &str) -> Vec<(String, String)> {
    assert!(
        seg.contains('-') && seg.contains('_'),
        "precondition: {seg}"
    );
    assert_eq!(seg.len() % 4, 2, "precondition: 4 unused trailing bits");
    let mid = seg.len() / 2;
    let mut out = vec![
        ("padding =".to_owned(), format!("{seg}==")),
        ("single =".to_owned(), format!("{seg}=")),
        ("percent-encoded padding".to_owned(), format!("{seg}%3D%3D")),
        (
            "standard alphabet".to_owned(),
            seg.replace('-', "+").replace('_', "/"),
        ),
        ("one '+'".to_owned(), seg.replacen('-', "+", 1)),
        ("one '/'".to_owned(), seg.replacen('_', "/", 1)),
        (
            "'?' inserted".to_owned(),
            format!("{}?{}", &seg[..mid], &seg[mid..]),
        ),
        (
            "'%' inserted".to_owned(),
            format!("{}%{}", &seg[..mid], &seg[mid..]),
        ),
        ("'?' appended".to_owned(), format!("{seg}?")),
    ];
    for ws in [" ", "\t", "\r", "\n", "\r\n"] {
        out.push((format!("{ws:?} leading"), format!("{ws}{seg}")));
        out.push((
            format!("{ws:?} inside"),
            format!("{}{ws}{}", &seg[..mid], &seg[mid..]),
        ));
        out.push((format!("{ws:?} trailing"), format!("{seg}{ws}")));
    }
    // Set each of the 4 unused trailing bits of the last character.
    let last = *seg.as_bytes().last().expect("non-empty");
    let value = B64URL_ALPHABET
        .iter()
        .position(|c| *c == last)
        .expect("base64url char");
    assert_eq!(value & 0x0f, 0, "canonical form has zero trailing bits");
    for bit in 0..4 {
        let mutated = B64URL_ALPHABET[value | (1 << bit)] as char;
        out.push((
            format!("non-zero trailing bit {bit}"),
            format!("{}{mutated}", &seg[..seg.len() - 1]),
        ));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// JWT-01 positive control
// ---------------------------------------------------------------------------------------------

/// JWT-01: the untouched genuine token verifies to exactly the minted claims, through our ring
/// and through a key set built from our published JWKS; the forge kit's own RS256 path makes
/// tokens the verifier accepts (so every negative test below starts from a valid baseline).
#[test]
fn jwt_01_positive_control_genuine_token_verifies() {
    let k = kit();
    let claims = verify(&k.genuine).expect("genuine token verifies");
    assert_eq!(claims, k.claims);
    assert_eq!(claims.sub, "user-1");
    assert_eq!(claims.tenant_id, "public");
    assert_eq!(
        claims.session_handle,
        "public-0b9c6a3e-7d41-4c1f-8a52-3f6d2e1b9c07"
    );
    assert_eq!(claims.user_claims.get("role"), Some(&json!("user")));

    let (h, _, s) = parts(&k.genuine);
    let header: Value = serde_json::from_slice(&unb64(h)).expect("header JSON");
    assert_eq!(
        header,
        json!({"alg": "RS256", "typ": "JWT", "kid": KID, "version": "5"})
    );
    assert_eq!(unb64(s).len(), 256, "RSA-2048 signature");

    let forged_path = ours_signed(&our_header(), &genuine_payload());
    assert_eq!(verify(&forged_path), Ok(k.claims.clone()));

    let jwks_json = serde_json::to_string(&k.ring.jwks(NOW_MS)).expect("JWKS serialises");
    let set = VerifyingKeySet::from_jwks_json(&jwks_json).expect("JWKS parses");
    assert_eq!(
        verify_access_token(&k.genuine, &set, &policy(NOW_MS)),
        Ok(k.claims.clone())
    );
    assert_persistence();
}

/// JWT-01 (interop): a token minted by `encode_access_token` verifies with `jsonwebtoken`
/// using a `DecodingKey::from_jwk` built from our published JWKS, with RS256 only, `exp`
/// and `sub` required, zero leeway; a tampered copy fails there too.
#[test]
fn jwt_01_interop_tessera_token_verifies_with_jsonwebtoken() {
    use jsonwebtoken::{decode, decode_header, jwk::JwkSet, Algorithm, DecodingKey, Validation};

    let now_ms = u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis(),
    )
    .expect("ms fit u64");
    let now_s = now_ms / 1000;
    let key = Arc::new(new_key("d-42", KeyKind::Dynamic, now_ms - 1000, u64::MAX));
    let ring = KeyRing::new(vec![Arc::clone(&key)], vec![], None);
    let claims = claims_for("interop-user", now_s + 600, now_s - 10);
    let token = encode_access_token(&claims, &key).expect("mint");
    let tessera_policy = VerifyPolicy {
        now_ms,
        max_lifetime_s: MAX_LIFETIME_S,
        ignore_time: false,
    };
    assert_eq!(
        verify_access_token(&token, &ring, &tessera_policy),
        Ok(claims.clone())
    );

    let jwks_text = serde_json::to_string(&ring.jwks(now_ms)).expect("JWKS serialises");
    let set: JwkSet = serde_json::from_str(&jwks_text).expect("jsonwebtoken reads our JWKS");
    let header = decode_header(&token).expect("header");
    assert_eq!(header.alg, Algorithm::RS256);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    assert_eq!(header.kid.as_deref(), Some("d-42"));
    assert_eq!(header.extras.get("version").map(String::as_str), Some("5"));
    let jwk = set.find("d-42").expect("kid published");
    let decoding = DecodingKey::from_jwk(jwk).expect("RSA JWK");

    let mut validation = Validation::new(Algorithm::RS256);
    validation.leeway = 0;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "sub"]);
    let data = decode::<Value>(&token, &decoding, &validation).expect("jsonwebtoken verifies");
    assert_eq!(
        data.claims,
        serde_json::to_value(&claims).expect("claims serialise")
    );

    let (h, p, s) = parts(&token);
    let tampered_payload = must_replace(
        &String::from_utf8(unb64(p)).expect("UTF-8"),
        "interop-user",
        "interop-admin",
    );
    let tampered = format!("{h}.{}.{s}", b64(tampered_payload));
    assert!(decode::<Value>(&tampered, &decoding, &validation).is_err());
    assert_rejected_with(
        verify_access_token(&tampered, &ring, &tessera_policy),
        &tampered,
        InvalidToken,
        "tampered interop token",
    );
}

/// JWT-01 (interop): a token built and signed by `jsonwebtoken::encode` (RS256, header
/// `typ`/`kid` plus the `version` extra, key = the PKCS#1 form of our stored PKCS#8) verifies
/// with `verify_access_token`, and its signature is byte-identical to ours (PKCS#1 v1.5 is
/// deterministic). Without the `version` header member it is rejected (see JWT-23).
#[test]
fn jwt_01_interop_jsonwebtoken_token_verifies_with_tessera() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};

    let k = kit();
    let (_, pkcs8) = stored_der(&k.ours);
    let encoding = EncodingKey::from_rsa_der(&pkcs1_private_der(&pkcs8));

    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(KID.into());
    header.extras.insert("version".into(), "5".into());
    let token = encode(&header, &k.claims, &encoding).expect("jsonwebtoken signs");
    assert_eq!(verify(&token), Ok(k.claims.clone()));

    let (h, p, s) = parts(&token);
    let ours = k
        .ours
        .sign_rs256(format!("{h}.{p}").as_bytes())
        .expect("sign");
    assert_eq!(unb64(s), ours, "identical RS256 signatures");

    // Low-level path: jsonwebtoken::crypto::sign over our own header bytes.
    let input = format!("{}.{}", b64(our_header()), b64(genuine_payload()));
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &encoding, Algorithm::RS256)
        .expect("crypto::sign");
    assert_eq!(verify(&format!("{input}.{sig}")), Ok(k.claims.clone()));

    let mut no_version = Header::new(Algorithm::RS256);
    no_version.kid = Some(KID.into());
    let token = encode(&no_version, &k.claims, &encoding).expect("jsonwebtoken signs");
    assert_rejected(&token, InvalidToken, "jsonwebtoken header without version");
    assert_persistence();
}

// ---------------------------------------------------------------------------------------------
// Algorithm attacks
// ---------------------------------------------------------------------------------------------

/// JWT-02: `alg` none/None/NONE/nOnE, with the signature removed, kept, replaced by junk, or
/// with the header RS256-signed by our key; also the classic `{"alg":"none","typ":"JWT"}`.
#[test]
fn jwt_02_alg_none_variants_rejected() {
    let k = kit();
    let (_, genuine_p, genuine_s) = parts(&k.genuine);
    for alg in ["none", "None", "NONE", "nOnE"] {
        for h_json in [
            header(alg, KID),
            json!({"alg": alg, "typ": "JWT"}).to_string(),
            json!({"alg": alg}).to_string(),
        ] {
            let h = b64(&h_json);
            let cases = [
                ("signature removed", format!("{h}.{genuine_p}.")),
                ("two segments", format!("{h}.{genuine_p}")),
                (
                    "original signature kept",
                    format!("{h}.{genuine_p}.{genuine_s}"),
                ),
                ("junk signature", format!("{h}.{genuine_p}.AAAA")),
                (
                    "signed by our key",
                    ours_signed(&h_json, &genuine_payload()),
                ),
            ];
            for (case, token) in cases {
                assert_rejected(&token, InvalidToken, &format!("alg={alg} {h_json} {case}"));
            }
        }
    }
    assert_persistence();
}

/// JWT-03: signature stripped (`h.p.` and `h.p`) or reduced to a single byte.
#[test]
fn jwt_03_stripped_signature_rejected() {
    let (h, p, _) = parts(&kit().genuine);
    for (case, token) in [
        ("h.p.", format!("{h}.{p}.")),
        ("h.p", format!("{h}.{p}")),
        ("one-byte signature", format!("{h}.{p}.AA")),
        ("h.p..", format!("{h}.{p}..")),
    ] {
        assert_rejected(&token, InvalidToken, case);
    }
    assert_persistence();
}

/// JWT-04: HS256 (and RS256-labelled) tokens MAC'd with our RSA public key as the secret, in
/// every byte form: SPKI DER, PEM SPKI with and without trailing newline, PKCS#1 DER and PEM,
/// raw modulus (with and without a leading zero), the base64 SPKI text, JWK and JWKS JSON text.
#[test]
fn jwt_04_hs256_with_public_key_as_secret_rejected() {
    let k = kit();
    let (spki, _) = stored_der(&k.ours);
    let pkcs1 = pkcs1_public_der(&spki);
    let spki_pem = pem("PUBLIC KEY", &spki);
    let pkcs1_pem = pem("RSA PUBLIC KEY", &pkcs1);
    let modulus = k.ours.verifying().modulus().to_vec();
    let mut modulus_00 = vec![0u8];
    modulus_00.extend_from_slice(&modulus);
    let jwk_text = serde_json::to_string(&Jwk::rs256(k.ours.verifying())).expect("JWK");
    let jwks_text = serde_json::to_string(&k.ring.jwks(NOW_MS)).expect("JWKS");
    let stored = k.ours.to_stored().expect("stored");
    let spki_b64 = stored.split_once('|').expect("sep").0.to_owned();

    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("SPKI DER", spki.clone()),
        ("PEM SPKI", spki_pem.clone().into_bytes()),
        (
            "PEM SPKI without trailing newline",
            spki_pem.trim_end().as_bytes().to_vec(),
        ),
        ("PEM SPKI CRLF", spki_pem.replace('\n', "\r\n").into_bytes()),
        ("PKCS#1 DER", pkcs1.clone()),
        ("PEM PKCS#1", pkcs1_pem.clone().into_bytes()),
        (
            "PEM PKCS#1 without trailing newline",
            pkcs1_pem.trim_end().as_bytes().to_vec(),
        ),
        ("raw modulus", modulus.clone()),
        ("raw modulus with leading zero", modulus_00),
        ("modulus base64url text", b64(&modulus).into_bytes()),
        ("SPKI base64 text", spki_b64.into_bytes()),
        ("JWK JSON text", jwk_text.into_bytes()),
        ("JWKS JSON text", jwks_text.into_bytes()),
    ];
    let payload = genuine_payload();
    for (form, secret) in &secrets {
        for (alg_name, alg) in [
            ("HS256", hmac::HMAC_SHA256),
            ("HS384", hmac::HMAC_SHA384),
            ("HS512", hmac::HMAC_SHA512),
        ] {
            for h in [
                header(alg_name, KID),
                json!({"alg": alg_name, "typ": "JWT"}).to_string(),
                json!({"alg": alg_name, "typ": "JWT", "kid": KID}).to_string(),
            ] {
                let token = hmac_token(alg, secret, &h, &payload);
                assert_rejected(&token, InvalidToken, &format!("{alg_name} {form} {h}"));
            }
        }
        // The header still claims RS256, but the "signature" is an HMAC tag.
        let token = hmac_token(hmac::HMAC_SHA256, secret, &our_header(), &payload);
        assert_rejected(
            &token,
            InvalidToken,
            &format!("RS256 header, HMAC tag, {form}"),
        );
    }
    assert_persistence();
}

/// JWT-05: HS256/384/512 MAC'd with an empty secret or common weak secrets.
#[test]
fn jwt_05_hs256_with_empty_or_common_secrets_rejected() {
    let payload = genuine_payload();
    let secrets: [&[u8]; 18] = [
        b"",
        b"secret",
        b"password",
        b"123456",
        b"your-256-bit-secret",
        b"changeme",
        b"jwt",
        b"key",
        b"supertokens",
        b"tessera",
        b"d-1",
        b"admin",
        b"test",
        b"qwerty",
        b"secretkey",
        b"s3cr3t",
        &[0u8; 32],
        b"\n",
    ];
    for secret in secrets {
        for (alg_name, alg) in [
            ("HS256", hmac::HMAC_SHA256),
            ("HS384", hmac::HMAC_SHA384),
            ("HS512", hmac::HMAC_SHA512),
        ] {
            for h in [
                header(alg_name, KID),
                json!({"alg": alg_name, "typ": "JWT"}).to_string(),
            ] {
                let token = hmac_token(alg, secret, &h, &payload);
                assert_rejected(
                    &token,
                    InvalidToken,
                    &format!("{alg_name} secret {secret:?}"),
                );
            }
        }
    }
    assert_persistence();
}

/// JWT-06: valid signatures under other algorithms — RS384, RS512, PS256, PS384, PS512 made
/// with OUR key, ES256/ES384/EdDSA with attacker keys, HS384/HS512 — are rejected whether the
/// header names that algorithm or claims RS256; and a genuine RS256 signature under a header
/// naming another algorithm is rejected too. The allowlist is exactly RS256.
#[test]
fn jwt_06_other_algorithms_rejected() {
    let pair = our_rsa_pair();
    let rng = SystemRandom::new();
    let es256 = lc_sig::EcdsaKeyPair::generate(&lc_sig::ECDSA_P256_SHA256_FIXED_SIGNING)
        .expect("P-256 keygen");
    let es384 = lc_sig::EcdsaKeyPair::generate(&lc_sig::ECDSA_P384_SHA384_FIXED_SIGNING)
        .expect("P-384 keygen");
    let ed = lc_sig::Ed25519KeyPair::generate().expect("Ed25519 keygen");
    let (spki, _) = stored_der(&kit().ours);

    type Signer<'a> = Box<dyn Fn(&[u8]) -> Vec<u8> + 'a>;
    let signers: Vec<(&str, Signer<'_>)> = vec![
        (
            "RS384",
            Box::new(|m| rsa_sign(&pair, &lc_sig::RSA_PKCS1_SHA384, m)),
        ),
        (
            "RS512",
            Box::new(|m| rsa_sign(&pair, &lc_sig::RSA_PKCS1_SHA512, m)),
        ),
        (
            "PS256",
            Box::new(|m| rsa_sign(&pair, &lc_sig::RSA_PSS_SHA256, m)),
        ),
        (
            "PS384",
            Box::new(|m| rsa_sign(&pair, &lc_sig::RSA_PSS_SHA384, m)),
        ),
        (
            "PS512",
            Box::new(|m| rsa_sign(&pair, &lc_sig::RSA_PSS_SHA512, m)),
        ),
        (
            "ES256",
            Box::new(|m| es256.sign(&rng, m).expect("ES256").as_ref().to_vec()),
        ),
        (
            "ES384",
            Box::new(|m| es384.sign(&rng, m).expect("ES384").as_ref().to_vec()),
        ),
        ("EdDSA", Box::new(|m| ed.sign(m).as_ref().to_vec())),
        (
            "HS384",
            Box::new(|m| {
                hmac::sign(&hmac::Key::new(hmac::HMAC_SHA384, &spki), m)
                    .as_ref()
                    .to_vec()
            }),
        ),
        (
            "HS512",
            Box::new(|m| {
                hmac::sign(&hmac::Key::new(hmac::HMAC_SHA512, b"secret"), m)
                    .as_ref()
                    .to_vec()
            }),
        ),
    ];
    let p = b64(genuine_payload());
    for (alg, sign) in &signers {
        for header_alg in [*alg, "RS256"] {
            let input = format!("{}.{p}", b64(header(header_alg, KID)));
            let token = format!("{input}.{}", b64(sign(input.as_bytes())));
            assert_rejected(
                &token,
                InvalidToken,
                &format!("{alg} signature, header {header_alg}"),
            );
        }
    }
    for alg in [
        "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES256K", "EdDSA",
        "Ed25519", "HS256", "HS384", "HS512", "RSA-OAEP", "dir",
    ] {
        let token = ours_signed(&header(alg, KID), &genuine_payload());
        assert_rejected(
            &token,
            InvalidToken,
            &format!("genuine RS256 signature under alg {alg}"),
        );
    }
    assert_persistence();
}

/// JWT-07: `alg` missing, null, numeric, boolean, array, object, wrong case, padded with a
/// space or NUL — each RS256-signed by our key; the match is exact and case-sensitive.
#[test]
fn jwt_07_alg_type_and_spelling_must_be_exact() {
    let payload = genuine_payload();
    let tail = format!(r#""typ":"JWT","kid":"{KID}","version":"5""#);
    let mut headers = vec![format!("{{{tail}}}")];
    for alg in [
        "null",
        "256",
        "true",
        r#"["RS256"]"#,
        r#"{"RS256":true}"#,
        r#""rs256""#,
        r#""Rs256""#,
        r#""RS256 ""#,
        r#"" RS256""#,
        r#""RS256\u0000""#,
        r#""RS 256""#,
        r#""RS2560""#,
        r#""RS25""#,
        r#""""#,
        r#""RS256\n""#,
    ] {
        headers.push(format!(r#"{{"alg":{alg},{tail}}}"#));
    }
    for h in &headers {
        assert_rejected(&ours_signed(h, &payload), InvalidToken, h);
    }
    // Control: the same construction with the exact value verifies.
    let exact = format!(r#"{{"alg":"RS256",{tail}}}"#);
    assert_eq!(
        verify(&ours_signed(&exact, &payload)),
        Ok(kit().claims.clone())
    );
    assert_persistence();
}

// ---------------------------------------------------------------------------------------------
// Key selection
// ---------------------------------------------------------------------------------------------

/// JWT-08: unknown `kid` (random UUID), near-miss spellings of our `kid`, absent `kid`, and a
/// flood of 10,000 distinct random `kid`s: each is `KeyNotFound` (absent: `InvalidToken`).
#[test]
fn jwt_08_unknown_and_absent_kid_rejected() {
    let k = kit();
    let payload = genuine_payload();
    let unknown = uuid::Uuid::new_v4().to_string();
    assert_rejected(
        &rs256(&k.attacker, &header("RS256", &unknown), &payload),
        KeyNotFound,
        "random UUID kid, attacker key",
    );
    assert_rejected(
        &ours_signed(&header("RS256", &unknown), &payload),
        KeyNotFound,
        "random UUID kid, our key",
    );
    for near in [
        "d-1 ",
        " d-1",
        "D-1",
        "d-01",
        "d-1\u{0}",
        "d-",
        "d",
        "",
        "d-10",
        "d_1",
        "d\u{2010}1",
        "d-\u{0661}",
        "s-1",
    ] {
        assert_rejected(
            &ours_signed(&header("RS256", near), &payload),
            KeyNotFound,
            &format!("near-miss kid {near:?}"),
        );
    }
    let no_kid = json!({"alg": "RS256", "typ": "JWT", "version": "5"}).to_string();
    assert_rejected(&ours_signed(&no_kid, &payload), InvalidToken, "absent kid");

    let (_, p, s) = parts(&k.genuine);
    let mut seen = HashSet::new();
    for i in 0..10_000u32 {
        let id = uuid::Uuid::new_v4();
        let kid = if i % 2 == 0 {
            id.to_string()
        } else {
            format!("d-{}", id.as_u64_pair().0)
        };
        assert_ne!(kid, KID);
        assert!(seen.insert(kid.clone()), "kids are distinct");
        let token = format!("{}.{p}.{s}", b64(header("RS256", &kid)));
        assert_rejected(&token, KeyNotFound, "kid flood");
    }
    assert_persistence();
}

/// JWT-09: `kid` injection payloads (path traversal, SQL, shell, URL, 64 KiB, NUL/CRLF) as
/// HS256 tokens keyed with the predictable "file content" (rejected for `alg`), and as RS256
/// tokens signed by the attacker and by us (no such key); `kid` of the wrong JSON type.
#[test]
fn jwt_09_kid_injection_rejected() {
    let k = kit();
    let payload = genuine_payload();
    let injections: [(&str, &[u8]); 12] = [
        ("../../../../dev/null", b""),
        ("/dev/null", b""),
        ("/proc/sys/kernel/randomize_va_space", b"2\n"),
        ("/proc/sys/kernel/randomize_va_space", b"2"),
        ("' UNION SELECT 'k'--", b"k"),
        ("x' OR '1'='1", b""),
        ("$(sleep 10)", b""),
        ("`sleep 10`", b""),
        ("| curl http://canary.invalid/", b""),
        ("http://canary.invalid/jwks.json", b""),
        ("d-1\u{0}", b""),
        ("d-1\r\nX-Injected: 1", b""),
    ];
    for (kid, file_content) in injections {
        let hs = hmac_token(
            hmac::HMAC_SHA256,
            file_content,
            &header("HS256", kid),
            &payload,
        );
        assert_rejected(&hs, InvalidToken, &format!("HS256 kid {kid:?}"));
        let by_attacker = rs256(&k.attacker, &header("RS256", kid), &payload);
        assert_rejected(
            &by_attacker,
            KeyNotFound,
            &format!("attacker RS256 kid {kid:?}"),
        );
        let by_us = ours_signed(&header("RS256", kid), &payload);
        assert_rejected(&by_us, KeyNotFound, &format!("our RS256 kid {kid:?}"));
    }

    // 64 KiB kid: refused by the length bound before any decoding.
    let huge = "A".repeat(64 * 1024);
    assert_rejected(
        &ours_signed(&header("RS256", &huge), &payload),
        InvalidToken,
        "64 KiB kid",
    );
    // 4 KiB kid still fits the length bound: it is merely unknown.
    let big = "k".repeat(4 * 1024);
    assert_rejected(
        &ours_signed(&header("RS256", &big), &payload),
        KeyNotFound,
        "4 KiB kid",
    );

    // Raw (unescaped) control characters inside a JSON string are invalid JSON.
    for raw in ["\"d-1\u{0}\"", "\"d-1\r\n\"", "\"d-1\t\""] {
        let h = format!(r#"{{"alg":"RS256","typ":"JWT","kid":{raw},"version":"5"}}"#);
        assert_rejected(
            &ours_signed(&h, &payload),
            InvalidToken,
            &format!("raw control {raw:?}"),
        );
    }
    // kid of the wrong JSON type.
    for kid in ["1", "1.0", "null", "true", "[\"d-1\"]", "{\"kid\":\"d-1\"}"] {
        let h = format!(r#"{{"alg":"RS256","typ":"JWT","kid":{kid},"version":"5"}}"#);
        assert_rejected(
            &ours_signed(&h, &payload),
            InvalidToken,
            &format!("kid as {kid}"),
        );
    }
    assert_persistence();
}

/// JWT-10: `jku` / `x5u` pointing at a canary (with attacker kid or ours; signed by the
/// attacker or by us). The header schema is strict, so no URL is ever considered.
#[test]
fn jwt_10_jku_and_x5u_rejected() {
    let k = kit();
    let payload = genuine_payload();
    for member in [
        r#""jku":"http://canary.invalid/jwks.json""#,
        r#""jku":"https://127.0.0.1:1/.well-known/jwks.json""#,
        r#""x5u":"http://canary.invalid/cert.pem""#,
        r#""jku":"http://canary.invalid/","x5u":"http://canary.invalid/""#,
    ] {
        let h = header_plus(member);
        assert_rejected(&rs256(&k.attacker, &h, &payload), InvalidToken, &h);
        assert_rejected(&ours_signed(&h, &payload), InvalidToken, &h);
        let attacker_kid = h.replace(KID, "attacker-key");
        assert_rejected(
            &rs256(&k.attacker, &attacker_kid, &payload),
            InvalidToken,
            &attacker_kid,
        );
    }
    assert_persistence();
}

/// JWT-11: an embedded `jwk` holding the attacker's public key, an `x5c` chain, `x5t` and
/// `x5t#S256`; signed by the attacker (and by us, to isolate the header rule).
#[test]
fn jwt_11_embedded_jwk_and_x5c_rejected() {
    let k = kit();
    let payload = genuine_payload();
    let attacker_jwk = serde_json::to_string(&Jwk::rs256(k.attacker.verifying())).expect("JWK");
    let (attacker_spki, _) = stored_der(&k.attacker);
    let chain = STANDARD.encode(&attacker_spki);
    for member in [
        format!(r#""jwk":{attacker_jwk}"#),
        format!(r#""x5c":["{chain}"]"#),
        format!(r#""x5c":["{chain}","{chain}"]"#),
        r#""x5t":"dGh1bWJwcmludA""#.to_owned(),
        r#""x5t#S256":"dGh1bWJwcmludA""#.to_owned(),
    ] {
        let h = header_plus(&member);
        assert_rejected(&rs256(&k.attacker, &h, &payload), InvalidToken, &h);
        assert_rejected(&ours_signed(&h, &payload), InvalidToken, &h);
    }
    // The attacker's kid with the attacker's JWK embedded.
    let h = json!({"alg": "RS256", "typ": "JWT", "kid": "d-666", "version": "5",
        "jwk": serde_json::to_value(Jwk::rs256(k.attacker.verifying())).expect("JWK")})
    .to_string();
    assert_rejected(
        &rs256(&k.attacker, &h, &payload),
        InvalidToken,
        "attacker kid + jwk",
    );
    assert_persistence();
}

/// JWT-12: `crit` naming an extension we don't implement (`b64:false`), an empty `crit`, and
/// `crit` naming a registered claim.
#[test]
fn jwt_12_crit_rejected() {
    let payload = genuine_payload();
    for member in [
        r#""crit":["b64"],"b64":false"#,
        r#""crit":["b64"]"#,
        r#""b64":false"#,
        r#""crit":[]"#,
        r#""crit":["exp"]"#,
        r#""crit":"b64""#,
    ] {
        let h = header_plus(member);
        assert_rejected(&ours_signed(&h, &payload), InvalidToken, &h);
    }
    // b64:false with an unencoded payload in the signing input.
    let h = header_plus(r#""crit":["b64"],"b64":false"#);
    let input = format!("{}.{}", b64(&h), payload);
    assert_rejected(
        &sign_input(&kit().ours, &input),
        InvalidToken,
        "unencoded payload",
    );
    assert_persistence();
}

/// JWT-13: header parameters our issuer never emits (`zip`, `enc`, `p2c`, `p2s`, `cty`,
/// `epk`, `url`, `nonce`, a custom member, a case variant of `alg`) — all RS256-signed by us.
#[test]
fn jwt_13_unexpected_header_parameters_rejected() {
    let payload = genuine_payload();
    for member in [
        r#""zip":"DEF""#,
        r#""enc":"A256GCM""#,
        r#""p2c":2147483647"#,
        r#""p2s":"c2FsdA""#,
        r#""cty":"JWT""#,
        r#""cty":"application/json""#,
        r#""epk":{"kty":"EC"}"#,
        r#""url":"https://canary.invalid/""#,
        r#""nonce":"abc""#,
        r#""foo":"bar""#,
        r#""Alg":"none""#,
        r#""KID":"d-666""#,
        r#""typ2":"JWT""#,
        r#""version2":"5""#,
    ] {
        let h = header_plus(member);
        assert_rejected(&ours_signed(&h, &payload), InvalidToken, &h);
    }
    assert_persistence();
}

// ---------------------------------------------------------------------------------------------
// Signature values and tampering
// ---------------------------------------------------------------------------------------------

/// JWT-14: RS256 signature edge values — 0, 1, all 0xFF, n−1, n, n+1, one byte shorter or
/// longer than the modulus (leading/trailing zero added, first/last byte removed), a genuine
/// signature whose leading zero byte is stripped, and the empty / 512-byte signature.
#[test]
fn jwt_14_signature_edge_values_rejected() {
    let k = kit();
    let (h, p, s) = parts(&k.genuine);
    let genuine_sig = unb64(s);
    let n = k.ours.verifying().modulus().to_vec();
    assert_eq!(n.len(), 256);
    let mut one = vec![0u8; 256];
    one[255] = 1;
    let mut lead0 = vec![0u8];
    lead0.extend_from_slice(&genuine_sig);
    let mut trail0 = genuine_sig.clone();
    trail0.push(0);
    let mut n_lead0 = vec![0u8];
    n_lead0.extend_from_slice(&n);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("zero", vec![0u8; 256]),
        ("one", one),
        ("all 0xFF", vec![0xffu8; 256]),
        ("n", n.clone()),
        ("n-1", be_sub_one(&n)),
        ("n+1", be_add_one(&n)),
        ("n with leading zero", n_lead0),
        ("genuine with leading zero added", lead0),
        ("genuine with trailing zero added", trail0),
        ("genuine minus first byte", genuine_sig[1..].to_vec()),
        ("genuine minus last byte", genuine_sig[..255].to_vec()),
        (
            "genuine doubled",
            [genuine_sig.clone(), genuine_sig.clone()].concat(),
        ),
        ("empty", vec![]),
        ("one zero byte", vec![0]),
    ];
    for (case, sig) in cases {
        assert_rejected(&format!("{h}.{p}.{}", b64(sig)), InvalidToken, case);
    }

    // A genuine signature that starts with 0x00, sent without that byte (same integer).
    let mut found = false;
    for nonce in 0..4096u32 {
        let payload = payload_with(|m| {
            m.insert("nonce".into(), json!(nonce));
        });
        let token = ours_signed(&our_header(), &payload);
        let (h2, p2, s2) = parts(&token);
        let sig = unb64(s2);
        if sig[0] == 0 {
            assert!(
                verify(&token).is_ok(),
                "control: genuine token with leading 0x00"
            );
            let stripped = format!("{h2}.{p2}.{}", b64(&sig[1..]));
            assert_rejected(
                &stripped,
                InvalidToken,
                "leading zero of the signature removed",
            );
            found = true;
            break;
        }
    }
    assert!(found, "no signature with a leading zero byte in 4096 tries");
    assert_persistence();
}

/// JWT-17: change `sub`, `rsub`, `sessionHandle`, `tId`, the refresh-token hashes, the anti-CSRF
/// token, `exp`, or a custom role claim while keeping header and signature; splice the payload
/// of another genuine token; re-sign with the attacker's key under our `kid`.
#[test]
fn jwt_17_claim_tampering_rejected() {
    let k = kit();
    let (h, _, s) = parts(&k.genuine);
    let edits: Vec<(&str, Value)> = vec![
        ("sub", json!("admin")),
        ("rsub", json!("admin")),
        (
            "sessionHandle",
            json!("public-00000000-0000-0000-0000-000000000000"),
        ),
        ("tId", json!("other-tenant")),
        ("refreshTokenHash1", json!(sha256_hex("other"))),
        ("parentRefreshTokenHash1", json!(sha256_hex("parent"))),
        ("antiCsrfToken", json!(null)),
        ("exp", json!(GENUINE_EXP + 86_400)),
        ("iat", json!(GENUINE_IAT + 1)),
        ("role", json!("admin")),
        ("isAdmin", json!(true)),
    ];
    for (name, value) in edits {
        let payload = payload_with(|m| {
            m.insert(name.into(), value.clone());
        });
        assert_rejected(&format!("{h}.{}.{s}", b64(&payload)), InvalidToken, name);
        assert_rejected(
            &rs256(&k.attacker, &our_header(), &payload),
            InvalidToken,
            &format!("{name} re-signed by the attacker under our kid"),
        );
    }
    let other = encode_access_token(&claims_for("user-2", GENUINE_EXP, GENUINE_IAT), &k.ours)
        .expect("mint");
    let (_, other_p, other_s) = parts(&other);
    assert_rejected(
        &format!("{h}.{other_p}.{s}"),
        InvalidToken,
        "payload splice",
    );
    let (_, genuine_p, _) = parts(&k.genuine);
    assert_rejected(
        &format!("{h}.{genuine_p}.{other_s}"),
        InvalidToken,
        "signature splice",
    );
    assert_persistence();
}

/// JWT-17 (property): every single-bit flip of every byte of the genuine token, and every
/// truncation, fails to verify. Flips inside the header may land on another `kid`
/// (`KeyNotFound`); everything else is `InvalidToken`. Flips yielding invalid UTF-8 are
/// presented as the lossily decoded string (what a text transport would deliver).
#[test]
fn jwt_17_every_bit_flip_and_truncation_rejected() {
    let k = kit();
    let bytes = k.genuine.as_bytes();
    let header_end = k.genuine.find('.').expect("dot");
    let mut checked = 0usize;
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut m = bytes.to_vec();
            m[i] ^= 1 << bit;
            let token = match String::from_utf8(m) {
                Ok(t) => t,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            };
            if token == k.genuine {
                continue;
            }
            checked += 1;
            match verify(&token) {
                Ok(c) => panic!("bit {bit} of byte {i} flipped: ACCEPTED (sub={:?})", c.sub),
                Err(KeyNotFound) if i < header_end => {}
                Err(reason) => assert_eq!(reason, InvalidToken, "bit {bit} of byte {i}"),
            }
        }
    }
    assert_eq!(checked, bytes.len() * 8);
    for len in 0..bytes.len() {
        assert_rejected(
            &k.genuine[..len],
            InvalidToken,
            &format!("truncated to {len}"),
        );
    }
    // Truncation from the front as well.
    for start in 1..bytes.len() {
        let token = &k.genuine[start..];
        match verify(token) {
            Ok(_) => panic!("front-truncated at {start}: ACCEPTED"),
            Err(KeyNotFound) if start < header_end => {}
            Err(reason) => assert_eq!(reason, InvalidToken, "front-truncated at {start}"),
        }
    }
    assert_persistence();
}

// ---------------------------------------------------------------------------------------------
// Time claims
// ---------------------------------------------------------------------------------------------

/// JWT-18: `exp` boundaries — `exp*1000 == now` is accepted, one millisecond later is
/// `Expired`; `exp` missing is `InvalidToken`.
#[test]
fn jwt_18_exp_boundaries() {
    let k = kit();
    let exp_ms = GENUINE_EXP * 1000;
    assert_eq!(
        verify_at(&k.genuine, exp_ms),
        Ok(k.claims.clone()),
        "exp*1000 == now"
    );
    assert_eq!(verify_at(&k.genuine, exp_ms - 1), Ok(k.claims.clone()));
    assert_rejected_with(
        verify_at(&k.genuine, exp_ms + 1),
        &k.genuine,
        Expired,
        "now = exp+1ms",
    );
    assert_rejected_with(
        verify_at(&k.genuine, exp_ms + 999),
        &k.genuine,
        Expired,
        "now = exp+999ms",
    );
    assert_rejected_with(
        verify_at(&k.genuine, exp_ms + 3_600_000),
        &k.genuine,
        Expired,
        "an hour late",
    );
    let missing = payload_with(|m| {
        m.remove("exp");
    });
    assert_rejected(
        &ours_signed(&our_header(), &missing),
        InvalidToken,
        "exp missing",
    );
    assert_persistence();
}

/// JWT-18: `exp` (and `iat`) of the wrong type — string, boolean, null, array, object,
/// negative, `1e400`, 2^64, floats — RS256-signed by us, so only the claim parser rejects.
/// A wrongly typed time claim is never treated as absent.
#[test]
fn jwt_18_exp_type_confusion_rejected() {
    let genuine = genuine_payload();
    for claim in ["exp", "iat"] {
        let value = if claim == "exp" {
            GENUINE_EXP
        } else {
            GENUINE_IAT
        };
        let original = format!("\"{claim}\":{value}");
        for bad in [
            format!("\"{value}\""),
            "true".to_owned(),
            "null".to_owned(),
            format!("[{value}]"),
            format!("{{\"v\":{value}}}"),
            "-1".to_owned(),
            format!("-{value}"),
            "1e400".to_owned(),
            "-1e400".to_owned(),
            "18446744073709551616".to_owned(),
            "340282366920938463463374607431768211456".to_owned(),
            format!("{value}.0"),
            format!("{value}.5"),
            format!("{value}e0"),
            "1.7e9".to_owned(),
            "\"\"".to_owned(),
        ] {
            let payload = must_replace(&genuine, &original, &format!("\"{claim}\":{bad}"));
            assert_rejected(
                &ours_signed(&our_header(), &payload),
                InvalidToken,
                &format!("{claim}={bad}"),
            );
        }
    }
    assert_persistence();
}

/// JWT-19: `iat` more than 60 s in the future and `exp − iat` above `max_lifetime_s` are
/// `InvalidToken` (boundaries: +60 s and exactly the lifetime are accepted); `exp < iat` is
/// `InvalidToken`.
#[test]
fn jwt_19_future_iat_and_excess_lifetime_rejected() {
    let sign = |exp: u64, iat: u64| {
        let payload = payload_with(|m| {
            m.insert("exp".into(), json!(exp));
            m.insert("iat".into(), json!(iat));
        });
        ours_signed(&our_header(), &payload)
    };
    assert!(
        verify(&sign(NOW_S + 160, NOW_S + 60)).is_ok(),
        "iat = now + 60 s"
    );
    assert_rejected(
        &sign(NOW_S + 161, NOW_S + 61),
        InvalidToken,
        "iat = now + 61 s",
    );
    assert_rejected(
        &sign(NOW_S + 100_000, NOW_S + 99_000),
        InvalidToken,
        "iat far future",
    );
    assert!(
        verify(&sign(NOW_S + 100, NOW_S + 100 - MAX_LIFETIME_S)).is_ok(),
        "lifetime == max"
    );
    assert_rejected(
        &sign(NOW_S + 100, NOW_S + 99 - MAX_LIFETIME_S),
        InvalidToken,
        "lifetime = max + 1 s",
    );
    assert_rejected(
        &sign(NOW_S + 10 * 365 * 86_400, NOW_S),
        InvalidToken,
        "ten-year token",
    );
    assert_rejected(&sign(NOW_S + 10, NOW_S + 20), InvalidToken, "exp < iat");
    // An over-long AND expired token reports the lifetime violation first.
    assert_rejected(
        &sign(NOW_S - 10, NOW_S - 10 - 2 * MAX_LIFETIME_S),
        InvalidToken,
        "long+expired",
    );
    assert_persistence();
}

/// JWT-19: `nbf` is not part of the SuperTokens format, but when a payload carries one it must
/// be an integer no later than now + leeway; a future, string, null, negative or float `nbf`
/// is rejected.
#[test]
fn jwt_19_nbf_is_checked_when_present() {
    for nbf in [
        json!(NOW_S + 86_400),
        json!("tomorrow"),
        json!(null),
        json!(-1),
        json!(1.5),
    ] {
        let payload = payload_with(|m| {
            m.insert("nbf".into(), nbf.clone());
        });
        assert_rejected(
            &ours_signed(&our_header(), &payload),
            InvalidToken,
            "bad nbf",
        );
    }
    for nbf in [json!(NOW_S - 10), json!(NOW_S + 60)] {
        let payload = payload_with(|m| {
            m.insert("nbf".into(), nbf.clone());
        });
        let claims = verify(&ours_signed(&our_header(), &payload)).expect("nbf within leeway");
        assert_eq!(claims.user_claims.get("nbf"), Some(&nbf));
    }
    assert_persistence();
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

/// JWT-20: key lifecycle — (a) the current key verifies; (b) the previous key, still within its
/// `verify_until_ms`, verifies; (c) a key past `verify_until_ms` is `KeyNotFound` (boundary:
/// `verify_until_ms == now` still verifies), and a key removed from the ring is `KeyNotFound`;
/// (d) another instance's key reusing our `kid` is `InvalidToken`; (e) a static key is only
/// honoured if the ring holds it.
#[test]
fn jwt_20_key_lifecycle() {
    let k = kit();
    let previous = Arc::new(new_key(
        "d-0",
        KeyKind::Dynamic,
        NOW_MS - 86_400_000,
        NOW_MS + 60_000,
    ));
    let retired = Arc::new(new_key(
        "d-00",
        KeyKind::Dynamic,
        NOW_MS - 2 * 86_400_000,
        NOW_MS - 1,
    ));
    let static_key = Arc::new(new_key(
        "s-6a1f8e3c-2b4d-4e5f-9a0b-1c2d3e4f5a6b",
        KeyKind::Static,
        NOW_MS - 1000,
        u64::MAX,
    ));
    let ring = KeyRing::new(
        vec![
            Arc::clone(&k.ours),
            Arc::clone(&previous),
            Arc::clone(&retired),
        ],
        vec![],
        None,
    );
    let v = |t: &str, now: u64| verify_access_token(t, &ring, &policy(now));
    let payload = genuine_payload();

    // (a)
    assert_eq!(v(&k.genuine, NOW_MS), Ok(k.claims.clone()));
    // (b)
    let by_previous = encode_access_token(&k.claims, &previous).expect("mint");
    assert_eq!(v(&by_previous, NOW_MS), Ok(k.claims.clone()));
    assert_eq!(
        v(&by_previous, NOW_MS + 60_000),
        Ok(k.claims.clone()),
        "verify_until == now"
    );
    assert_rejected_with(
        v(&by_previous, NOW_MS + 60_001),
        &by_previous,
        KeyNotFound,
        "(b) lapsed",
    );
    // (c)
    let by_retired = encode_access_token(&k.claims, &retired).expect("mint");
    assert_rejected_with(
        v(&by_retired, NOW_MS),
        &by_retired,
        KeyNotFound,
        "(c) retired key",
    );
    assert_rejected(&by_previous, KeyNotFound, "(c) key not in the ring");
    // (d)
    let impostor = new_key(KID, KeyKind::Dynamic, NOW_MS, u64::MAX);
    let by_impostor = rs256(&impostor, &our_header(), &payload);
    assert_rejected_with(
        v(&by_impostor, NOW_MS),
        &by_impostor,
        InvalidToken,
        "(d) reused kid",
    );
    assert_rejected(
        &encode_access_token(&k.claims, &impostor).expect("mint"),
        InvalidToken,
        "(d)",
    );
    // (e)
    let by_static = encode_access_token(&k.claims, &static_key).expect("mint");
    assert_rejected_with(
        v(&by_static, NOW_MS),
        &by_static,
        KeyNotFound,
        "(e) static not held",
    );
    let with_static = KeyRing::new(
        vec![Arc::clone(&k.ours)],
        vec![Arc::clone(&static_key)],
        None,
    );
    assert_eq!(
        verify_access_token(&by_static, &with_static, &policy(NOW_MS)),
        Ok(k.claims.clone()),
        "(e) static key held"
    );
    assert_persistence();
}

/// JWT-30: the published JWKS has, per key, exactly `kty, kid, n, e, alg, use` with the right
/// values; no private member; unique `kid`s; lapsed dynamic keys are not listed; no private
/// key material appears anywhere in the document.
#[test]
fn jwt_30_jwks_publishes_only_public_members() {
    let k = kit();
    let previous = Arc::new(new_key(
        "d-0",
        KeyKind::Dynamic,
        NOW_MS - 86_400_000,
        NOW_MS + 60_000,
    ));
    let lapsed = Arc::new(new_key(
        "d-00",
        KeyKind::Dynamic,
        NOW_MS - 2 * 86_400_000,
        NOW_MS - 1,
    ));
    let static_key = Arc::new(new_key(
        "s-0f0e0d0c",
        KeyKind::Static,
        NOW_MS - 1000,
        u64::MAX,
    ));
    let ring = KeyRing::new(
        vec![
            Arc::clone(&lapsed),
            Arc::clone(&k.ours),
            Arc::clone(&previous),
        ],
        vec![Arc::clone(&static_key)],
        None,
    );
    let text = serde_json::to_string(&ring.jwks(NOW_MS)).expect("JWKS serialises");
    let doc: Value = serde_json::from_str(&text).expect("JSON");
    let obj = doc.as_object().expect("object");
    assert_eq!(obj.keys().collect::<Vec<_>>(), vec!["keys"]);
    let keys = obj["keys"].as_array().expect("keys array");

    let expected_members: HashSet<&str> = ["kty", "kid", "n", "e", "alg", "use"].into();
    let mut kids = Vec::new();
    for key in keys {
        let m = key.as_object().expect("JWK object");
        let members: HashSet<&str> = m.keys().map(String::as_str).collect();
        assert_eq!(members, expected_members, "{key}");
        for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            assert!(!m.contains_key(private), "{private} published");
        }
        assert_eq!(m["kty"], "RSA");
        assert_eq!(m["alg"], "RS256");
        assert_eq!(m["use"], "sig");
        assert_eq!(m["e"], "AQAB");
        kids.push(m["kid"].as_str().expect("kid string").to_owned());
    }
    assert_eq!(
        kids,
        vec![KID, "d-0", "s-0f0e0d0c"],
        "newest dynamic first, then static"
    );
    let unique: HashSet<&String> = kids.iter().collect();
    assert_eq!(unique.len(), kids.len(), "kids are unique");
    for (key, published) in [
        (&k.ours, &keys[0]),
        (&previous, &keys[1]),
        (&static_key, &keys[2]),
    ] {
        assert_eq!(published["n"], b64(key.verifying().modulus()));
    }
    for key in [&k.ours, &previous, &lapsed, &static_key] {
        let (_, pkcs8) = stored_der(key);
        let ints = der_integers(&pkcs1_private_der(&pkcs8));
        assert_eq!(ints.len(), 9, "RSAPrivateKey has 9 INTEGERs");
        // d, p, q, dp, dq, qi in any base64 spelling.
        for secret in &ints[3..] {
            for encoded in [b64(secret), STANDARD.encode(secret)] {
                assert!(
                    !text.contains(&encoded[..40]),
                    "private key material published"
                );
            }
        }
        assert!(!text.contains(&STANDARD.encode(&pkcs8)[..64]));
    }
    // The engine's own JWKS parser round-trips it.
    assert_eq!(
        VerifyingKeySet::from_jwks_json(&text).expect("parse").len(),
        3
    );
    assert_persistence();
}

// ---------------------------------------------------------------------------------------------
// Token confusion and JSON strictness
// ---------------------------------------------------------------------------------------------

/// JWT-23: other JWTs signed with our key are not access tokens — a `/recipe/jwt`-style token
/// (no `version`, only user claims + `iat`/`exp`/`iss`), the same with `version:"5"`, an
/// anonymous-token-like payload (RS256 and HS256), and a genuine payload under a header
/// lacking `version`.
#[test]
fn jwt_23_cross_jwt_confusion_rejected() {
    let no_version = json!({"alg": "RS256", "typ": "JWT", "kid": KID}).to_string();
    let generic = json!({"sub": "user-1", "iat": GENUINE_IAT, "exp": GENUINE_EXP,
        "iss": "https://api.example.com/auth", "role": "admin"})
    .to_string();
    let anon = json!({"anonymousId": "8c1e...", "iat": GENUINE_IAT, "exp": GENUINE_EXP,
        "typ": "anon"})
    .to_string();
    for (case, token) in [
        ("recipe/jwt token", ours_signed(&no_version, &generic)),
        (
            "recipe/jwt payload, v5 header",
            ours_signed(&our_header(), &generic),
        ),
        ("anonymous payload RS256", ours_signed(&our_header(), &anon)),
        (
            "anonymous token HS256",
            hmac_token(
                hmac::HMAC_SHA256,
                &[7u8; 32],
                &header("HS256", "anon-1"),
                &anon,
            ),
        ),
        (
            "session payload, header without version",
            ours_signed(&no_version, &genuine_payload()),
        ),
        ("empty payload", ours_signed(&our_header(), "{}")),
        ("payload is an array", ours_signed(&our_header(), "[]")),
        ("payload is a string", ours_signed(&our_header(), "\"x\"")),
        ("payload is null", ours_signed(&our_header(), "null")),
    ] {
        assert_rejected(&token, InvalidToken, case);
    }
    // Each unconditionally required session claim, removed on its own.
    for claim in [
        "sub",
        "exp",
        "iat",
        "sessionHandle",
        "refreshTokenHash1",
        "tId",
        "rsub",
    ] {
        let payload = payload_with(|m| {
            m.remove(claim);
        });
        assert_rejected(
            &ours_signed(&our_header(), &payload),
            InvalidToken,
            &format!("no {claim}"),
        );
    }
    assert_persistence();
}

/// JWT-23: the two nullable session claims, `parentRefreshTokenHash1` and `antiCsrfToken`,
/// must be *present* (possibly `null`): core-api §5.2 says they are always serialised and §5.3
/// lists them as required for V3+ ("if a claim is missing, the result is TRY_REFRESH_TOKEN").
#[test]
fn jwt_23_nullable_session_claims_must_be_present() {
    // Control: present as null is fine.
    let nulls = payload_with(|m| {
        m.insert("parentRefreshTokenHash1".into(), Value::Null);
        m.insert("antiCsrfToken".into(), Value::Null);
    });
    assert!(verify(&ours_signed(&our_header(), &nulls)).is_ok());
    for claim in ["parentRefreshTokenHash1", "antiCsrfToken"] {
        let payload = payload_with(|m| {
            m.remove(claim);
        });
        assert_rejected(
            &ours_signed(&our_header(), &payload),
            InvalidToken,
            &format!("no {claim}"),
        );
    }
    assert_persistence();
}

/// JWT-23: `typ` and `version` must be exactly `"JWT"` and `"5"` (string), each RS256-signed
/// by us; older/newer versions, other spellings, types and absence are rejected.
#[test]
fn jwt_23_typ_and_version_must_match_exactly() {
    let payload = genuine_payload();
    let mut headers = Vec::new();
    for typ in [
        "\"jwt\"",
        "\"at+jwt\"",
        "\"JWS\"",
        "\"JWT \"",
        "null",
        "1",
        "[\"JWT\"]",
    ] {
        headers.push(format!(
            r#"{{"alg":"RS256","typ":{typ},"kid":"{KID}","version":"5"}}"#
        ));
    }
    headers.push(format!(r#"{{"alg":"RS256","kid":"{KID}","version":"5"}}"#));
    for version in [
        "\"1\"", "\"2\"", "\"3\"", "\"4\"", "\"6\"", "\"05\"", "\"5 \"", "\"5.0\"", "\"v5\"", "5",
        "5.0", "null", "[\"5\"]",
    ] {
        headers.push(format!(
            r#"{{"alg":"RS256","typ":"JWT","kid":"{KID}","version":{version}}}"#
        ));
    }
    for h in &headers {
        assert_rejected(&ours_signed(h, &payload), InvalidToken, h);
    }
    // The legacy V1/V2 fixed headers (standard base64 with padding) are not accepted either.
    for legacy in [
        "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsInZlcnNpb24iOiIxIn0=",
        "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsInZlcnNpb24iOiIyIn0=",
        "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsInZlcnNpb24iOiIyIn0",
    ] {
        let input = format!("{legacy}.{}", b64(&payload));
        assert_rejected(&sign_input(&kit().ours, &input), InvalidToken, legacy);
    }
    assert_persistence();
}

/// JWT-24: duplicate JSON members — header `alg` twice (RS256/none and RS256/RS256), `kid`
/// twice, `typ`/`version` twice, also via an escaped member name; payload `sub`, `exp`, a
/// custom claim or a nullable claim twice. All RS256-signed by us.
#[test]
fn jwt_24_duplicate_members_rejected() {
    let payload = genuine_payload();
    for h in [
        format!(r#"{{"alg":"RS256","alg":"none","typ":"JWT","kid":"{KID}","version":"5"}}"#),
        format!(r#"{{"alg":"none","alg":"RS256","typ":"JWT","kid":"{KID}","version":"5"}}"#),
        format!(r#"{{"alg":"RS256","alg":"RS256","typ":"JWT","kid":"{KID}","version":"5"}}"#),
        format!(r#"{{"alg":"RS256","typ":"JWT","kid":"{KID}","kid":"d-666","version":"5"}}"#),
        format!(r#"{{"alg":"RS256","typ":"JWT","kid":"d-666","kid":"{KID}","version":"5"}}"#),
        format!(r#"{{"alg":"RS256","typ":"JWT","typ":"JWT","kid":"{KID}","version":"5"}}"#),
        format!(r#"{{"alg":"RS256","typ":"JWT","kid":"{KID}","version":"4","version":"5"}}"#),
        format!(r#"{{"alg":"RS256","\u0061lg":"none","typ":"JWT","kid":"{KID}","version":"5"}}"#),
    ] {
        assert_rejected(&ours_signed(&h, &payload), InvalidToken, &h);
    }
    for (case, dup) in [
        ("sub twice", r#""sub":"admin","#.to_owned()),
        (
            "sub twice (escaped name)",
            r#""\u0073ub":"admin","#.to_owned(),
        ),
        ("exp twice", format!(r#""exp":{},"#, GENUINE_EXP + 86_400)),
        ("iat twice", format!(r#""iat":{},"#, GENUINE_IAT)),
        ("tId twice", r#""tId":"other","#.to_owned()),
        ("custom claim twice", r#""role":"admin","#.to_owned()),
        ("antiCsrfToken twice", r#""antiCsrfToken":null,"#.to_owned()),
        (
            "parentRefreshTokenHash1 twice",
            r#""parentRefreshTokenHash1":null,"#.to_owned(),
        ),
    ] {
        let p = must_replace(&payload, "{", &format!("{{{dup}"));
        assert_rejected(&ours_signed(&our_header(), &p), InvalidToken, case);
    }
    assert_persistence();
}

/// JWT-25: format confusion — JWS JSON serialisation (flattened and general), JWE-like 5
/// segments, 4 segments, extra empty segments, leading dot, and the empty string / dots only.
#[test]
fn jwt_25_format_confusion_rejected() {
    let k = kit();
    let (h, p, s) = parts(&k.genuine);
    let flattened = json!({"protected": h, "payload": p, "signature": s}).to_string();
    let general =
        json!({"payload": p, "signatures": [{"protected": h, "signature": s}]}).to_string();
    let jwe_header = b64(r#"{"alg":"RSA-OAEP","enc":"A256GCM","kid":"d-1"}"#);
    for (case, token) in [
        ("JSON flattened", flattened),
        ("JSON general", general),
        ("JWE compact", format!("{jwe_header}.{p}.AAAA.{s}.AAAA")),
        ("5 segments", format!("{h}.{p}.{s}.{p}.{s}")),
        ("4 segments", format!("{h}.{p}.{s}.{s}")),
        ("extra empty segment", format!("{h}.{p}.{s}.")),
        ("empty segment in the middle", format!("{h}..{p}.{s}")),
        ("leading dot", format!(".{h}.{p}.{s}")),
        ("empty header", format!(".{p}.{s}")),
        ("empty payload", format!("{h}..{s}")),
        ("empty string", String::new()),
        ("one dot", ".".to_owned()),
        ("two dots", "..".to_owned()),
        ("three dots", "...".to_owned()),
        ("token twice", format!("{0}{0}", k.genuine)),
        ("Bearer prefix", format!("Bearer {}", k.genuine)),
    ] {
        assert_rejected(&token, InvalidToken, case);
    }
    assert_persistence();
}

/// JWT-26: non-canonical base64url in each segment — `=` padding, the standard alphabet's `+`
/// and `/`, whitespace (space, tab, CR, LF), `?`, `%`, and non-zero unused trailing bits. Header
/// and payload variants are re-signed over the exact mutated text, so only strict decoding can
/// reject them; signature variants decode (leniently) to the genuine signature bytes.
#[test]
fn jwt_26_non_canonical_base64url_rejected() {
    // A dedicated key whose kid makes the header's base64url contain '-' and '_'.
    let key = Arc::new(new_key(
        "d-??????~~~~~~",
        KeyKind::Dynamic,
        NOW_MS - 1000,
        NOW_MS + 86_400_000,
    ));
    let ring = KeyRing::new(vec![Arc::clone(&key)], vec![], None);
    let v = |t: &str| verify_access_token(t, &ring, &policy(NOW_MS));

    let header_json = pad_to_len_3k_plus_1(header("RS256", key.kid()));
    let payload_json = pad_to_len_3k_plus_1(payload_with(|m| {
        m.insert("probe".into(), json!("??????~~~~~~"));
    }));
    let mut canonical = rs256(&key, &header_json, &payload_json);
    // The signature must contain both '-' and '_' as well; vary a claim until it does.
    let mut nonce = 0u32;
    while !parts(&canonical).2.contains('-') || !parts(&canonical).2.contains('_') {
        nonce += 1;
        let payload_json = pad_to_len_3k_plus_1(payload_with(|m| {
            m.insert("probe".into(), json!("??????~~~~~~"));
            m.insert("nonce".into(), json!(nonce));
        }));
        canonical = rs256(&key, &header_json, &payload_json);
    }
    assert!(v(&canonical).is_ok(), "control: canonical token verifies");
    let (h, p, s) = parts(&canonical);

    for (case, hv) in non_canonical_variants(h) {
        let token = sign_input(&key, &format!("{hv}.{p}"));
        assert_rejected_with(v(&token), &token, InvalidToken, &format!("header {case}"));
    }
    for (case, pv) in non_canonical_variants(p) {
        let token = sign_input(&key, &format!("{h}.{pv}"));
        assert_rejected_with(v(&token), &token, InvalidToken, &format!("payload {case}"));
    }
    for (case, sv) in non_canonical_variants(s) {
        let token = format!("{h}.{p}.{sv}");
        assert_rejected_with(
            v(&token),
            &token,
            InvalidToken,
            &format!("signature {case}"),
        );
    }
    for ws in [" ", "\n", "\r\n", "\t"] {
        for token in [format!("{ws}{canonical}"), format!("{canonical}{ws}")] {
            assert_rejected_with(
                v(&token),
                &token,
                InvalidToken,
                "whitespace around the token",
            );
        }
    }
    assert!(v(&canonical).is_ok(), "persistence of the dedicated token");
    assert_persistence();
}

/// JWT-27: oversized tokens (9 KiB, 100 KiB, 1 MiB; genuinely signed by us and junk), 10^5
/// claims, and JSON nested 10,000 deep in header and payload are `InvalidToken`, without
/// panicking. The length bound is exact: a genuine token of `MAX_ACCESS_TOKEN_LEN` bytes
/// verifies, one byte more is refused. Nesting that fits the bound is refused by the JSON
/// depth limit (signed by us, so the parser does see it).
#[test]
fn jwt_27_oversized_and_deeply_nested_rejected() {
    assert_eq!(MAX_ACCESS_TOKEN_LEN, 8 * 1024);
    for size in [9 * 1024, 100 * 1024, 1024 * 1024] {
        let payload = payload_with(|m| {
            m.insert("filler".into(), json!("x".repeat(size)));
        });
        let token = ours_signed(&our_header(), &payload);
        assert!(token.len() > size);
        assert_rejected(&token, InvalidToken, &format!("signed {size} bytes"));
        let junk = format!(
            "{}.{}.{}",
            "A".repeat(size / 3),
            "A".repeat(size / 3),
            "A".repeat(size / 3)
        );
        assert_rejected(&junk, InvalidToken, &format!("junk {size} bytes"));
    }
    let many: Map<String, Value> = (0..100_000).map(|i| (format!("c{i}"), json!(i))).collect();
    let payload = payload_with(|m| m.extend(many));
    assert_rejected(
        &ours_signed(&our_header(), &payload),
        InvalidToken,
        "10^5 claims",
    );

    // 10,000 deep: over the length bound in both places.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_header = format!(r#"{{"alg":{deep},"typ":"JWT","kid":"{KID}","version":"5"}}"#);
    assert_rejected(
        &ours_signed(&deep_header, &genuine_payload()),
        InvalidToken,
        "deep header",
    );
    let deep_payload = must_replace(&genuine_payload(), "{", &format!("{{\"deep\":{deep},"));
    assert_rejected(
        &ours_signed(&our_header(), &deep_payload),
        InvalidToken,
        "deep payload",
    );

    // Deep nesting that fits in 8 KiB reaches the JSON parser and hits its depth limit.
    let fits = format!("{}{}", "[".repeat(2_500), "]".repeat(2_500));
    let fits_payload = must_replace(&genuine_payload(), "{", &format!("{{\"deep\":{fits},"));
    let token = ours_signed(&our_header(), &fits_payload);
    assert!(token.len() <= MAX_ACCESS_TOKEN_LEN, "{}", token.len());
    assert_rejected(&token, InvalidToken, "2,500-deep custom claim");
    let unbalanced = must_replace(
        &genuine_payload(),
        "{",
        &format!("{{\"deep\":{},", "[".repeat(5_000)),
    );
    assert_rejected(
        &ours_signed(&our_header(), &unbalanced),
        InvalidToken,
        "5,000 open brackets",
    );
    let obj_deep = format!("{}1{}", "{\"a\":".repeat(700), "}".repeat(700));
    let obj_payload = must_replace(&genuine_payload(), "{", &format!("{{\"deep\":{obj_deep},"));
    let token = ours_signed(&our_header(), &obj_payload);
    assert!(token.len() <= MAX_ACCESS_TOKEN_LEN, "{}", token.len());
    assert_rejected(&token, InvalidToken, "700-deep objects");
    let fits_header = format!(
        r#"{{"alg":"RS256","typ":"JWT","kid":"{KID}","version":"5","x":{}}}"#,
        format_args!("{}{}", "[".repeat(2_000), "]".repeat(2_000))
    );
    assert_rejected(
        &ours_signed(&fits_header, &genuine_payload()),
        InvalidToken,
        "deep header fits",
    );
    // Moderate nesting inside a custom claim is ordinary data.
    let shallow = format!("{}{}", "[".repeat(50), "]".repeat(50));
    let ok_payload = must_replace(&genuine_payload(), "{", &format!("{{\"nested\":{shallow},"));
    assert!(
        verify(&ours_signed(&our_header(), &ok_payload)).is_ok(),
        "50-deep claim"
    );

    // Exact length bound, with genuinely signed tokens: pad the header JSON with spaces and
    // grow a filler claim until the token is MAX and MAX + 1 bytes long.
    let b64_len = |n: usize| (4 * n).div_ceil(3);
    for (target, want_ok) in [
        (MAX_ACCESS_TOKEN_LEN, true),
        (MAX_ACCESS_TOKEN_LEN + 1, false),
    ] {
        let mut built = None;
        'search: for pad in 0..3 {
            let h = format!("{}{}", our_header(), " ".repeat(pad));
            for filler in 3_000..7_000 {
                let p = payload_with(|m| {
                    m.insert("filler".into(), json!("f".repeat(filler)));
                });
                if b64_len(h.len()) + 1 + b64_len(p.len()) + 1 + 342 == target {
                    built = Some(ours_signed(&h, &p));
                    break 'search;
                }
            }
        }
        let token = built.expect("a token of the target length");
        assert_eq!(token.len(), target);
        if want_ok {
            assert!(
                verify(&token).is_ok(),
                "token of exactly MAX_ACCESS_TOKEN_LEN bytes"
            );
        } else {
            assert_rejected(&token, InvalidToken, "MAX_ACCESS_TOKEN_LEN + 1 bytes");
        }
    }
    assert_persistence();
}

/// JWT-28: encoding tricks in the decoded JSON — invalid UTF-8 (raw 0xFF, overlong, CESU
/// surrogate), lone surrogate escapes, a UTF-8 BOM, UTF-16 JSON — are `InvalidToken` (signed by
/// us). Escaped member names are the same member: a header written `"\u0061lg":"RS256"` is
/// accepted like `"alg"`, and an escaped `"\u0073ub"` is `sub`. `sub` with NUL, a Cyrillic
/// homoglyph or a decomposed accent is accepted and returned byte-exactly.
#[test]
fn jwt_28_unicode_and_encoding_tricks() {
    let k = kit();
    let header = our_header();
    let payload = genuine_payload();
    let sub_field = "\"sub\":\"user-1\"";

    let raw_subs: [(&str, &[u8]); 5] = [
        ("raw 0xFF", b"\xff"),
        ("overlong '/'", b"\xc0\xaf"),
        ("CESU-8 surrogate", b"\xed\xa0\x80"),
        ("truncated sequence", b"\xe2\x82"),
        ("raw 0x80", b"\x80"),
    ];
    for (case, bad) in raw_subs {
        let mut bytes = must_replace(&payload, sub_field, "\"sub\":\"@@\"").into_bytes();
        let at = bytes.windows(2).position(|w| w == b"@@").expect("marker");
        bytes.splice(at..at + 2, bad.iter().copied());
        let token = rs256_raw(&k.ours, header.as_bytes(), &bytes);
        assert_rejected(&token, InvalidToken, &format!("payload {case}"));
        let mut hb = header.clone().into_bytes();
        let at = hb.windows(3).position(|w| w == b"JWT").expect("typ");
        hb.splice(at + 3..at + 3, bad.iter().copied());
        let token = rs256_raw(&k.ours, &hb, payload.as_bytes());
        assert_rejected(&token, InvalidToken, &format!("header {case}"));
    }
    for lone in [
        r"\ud800",
        r"\udc00",
        r"\ud800\u0041",
        r"\udbff",
        r"\ud800\ud800",
    ] {
        let p = must_replace(&payload, sub_field, &format!("\"sub\":\"user{lone}\""));
        assert_rejected(
            &ours_signed(&header, &p),
            InvalidToken,
            &format!("sub {lone}"),
        );
        let p = must_replace(
            &payload,
            "\"role\":\"user\"",
            &format!("\"role\":\"{lone}\""),
        );
        assert_rejected(
            &ours_signed(&header, &p),
            InvalidToken,
            &format!("custom {lone}"),
        );
        let p = must_replace(
            &payload,
            "\"role\":\"user\"",
            &format!("\"r{lone}\":\"user\""),
        );
        assert_rejected(
            &ours_signed(&header, &p),
            InvalidToken,
            &format!("member name {lone}"),
        );
    }
    let bom = |t: &str| [&b"\xef\xbb\xbf"[..], t.as_bytes()].concat();
    assert_rejected(
        &rs256_raw(&k.ours, header.as_bytes(), &bom(&payload)),
        InvalidToken,
        "BOM payload",
    );
    assert_rejected(
        &rs256_raw(&k.ours, &bom(&header), payload.as_bytes()),
        InvalidToken,
        "BOM header",
    );
    let utf16: Vec<u8> = payload.encode_utf16().flat_map(u16::to_le_bytes).collect();
    assert_rejected(
        &rs256_raw(&k.ours, header.as_bytes(), &utf16),
        InvalidToken,
        "UTF-16LE payload",
    );
    let utf16_header: Vec<u8> = header.encode_utf16().flat_map(u16::to_be_bytes).collect();
    assert_rejected(
        &rs256_raw(&k.ours, &utf16_header, payload.as_bytes()),
        InvalidToken,
        "UTF-16BE header",
    );

    // Escaped member names and values are parsed identically.
    let escaped_header = format!(
        r#"{{"\u0061lg":"RS\u0032\u00356","typ":"JWT","k\u0069d":"{KID}","version":"\u0035"}}"#
    );
    assert_eq!(
        verify(&ours_signed(&escaped_header, &payload)),
        Ok(k.claims.clone())
    );
    let escaped_none = format!(r#"{{"\u0061lg":"none","typ":"JWT","kid":"{KID}","version":"5"}}"#);
    assert_rejected(
        &ours_signed(&escaped_none, &payload),
        InvalidToken,
        "escaped alg none",
    );
    let escaped_sub = must_replace(&payload, sub_field, r#""\u0073ub":"\u0075ser-1""#);
    assert_eq!(
        verify(&ours_signed(&header, &escaped_sub)),
        Ok(k.claims.clone())
    );

    // Byte-exact identities: no truncation at NUL, no normalisation, no case folding.
    for sub in [
        "al\u{0}ice",
        "\u{0430}dmin",
        "e\u{301}",
        "ADMIN",
        "admin\u{200b}",
        "\u{1F600}",
    ] {
        let p = payload_with(|m| {
            m.insert("sub".into(), json!(sub));
        });
        let claims = verify(&ours_signed(&header, &p)).expect("accepted");
        assert_eq!(claims.sub.as_bytes(), sub.as_bytes(), "{sub:?}");
    }
    let pair = must_replace(&payload, sub_field, r#""sub":"\ud83d\ude00""#);
    assert_eq!(
        verify(&ours_signed(&header, &pair))
            .expect("surrogate pair")
            .sub,
        "\u{1F600}"
    );
    assert_persistence();
}

// ---------------------------------------------------------------------------------------------
// PRJ-06: the jsonwebtoken crate's negative tests, against our verifier
// ---------------------------------------------------------------------------------------------

/// PRJ-06 `decode_token_missing_parts`: a two-part token (jsonwebtoken's own fixture and ours).
#[test]
fn prj_06_decode_token_missing_parts() {
    let fixture =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJiQGIuY29tIiwiY29tcGFueSI6IkFDTUUifQ";
    assert_rejected(fixture, InvalidToken, "jsonwebtoken fixture");
    let (h, p, _) = parts(&kit().genuine);
    assert_rejected(&format!("{h}.{p}"), InvalidToken, "h.p");
    assert_rejected(h, InvalidToken, "header only");
    assert_persistence();
}

/// PRJ-06 `decode_token_invalid_signature`: genuine header and payload with `wrong`, junk, the
/// attacker's, or a random 256-byte signature.
#[test]
fn prj_06_decode_token_invalid_signature() {
    let k = kit();
    let (h, p, _) = parts(&k.genuine);
    let random: [u8; 256] = std::array::from_fn(|i| (i as u8).wrapping_mul(151).wrapping_add(7));
    let attacker = k
        .attacker
        .sign_rs256(format!("{h}.{p}").as_bytes())
        .expect("sign");
    for (case, sig) in [
        ("wrong", "wrong".to_owned()),
        ("wrongsig", "wrongsig".to_owned()),
        ("random 256 bytes", b64(random)),
        ("attacker's signature", b64(attacker)),
    ] {
        assert_rejected(&format!("{h}.{p}.{sig}"), InvalidToken, case);
    }
    assert_persistence();
}

/// PRJ-06 `decode_token_wrong_algorithm`: tokens built by `jsonwebtoken::encode` with HS256
/// (secret) and with RS512 / PS256 (our own RSA key), carrying our `kid` and `version`.
#[test]
fn prj_06_decode_token_wrong_algorithm() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let k = kit();
    let (_, pkcs8) = stored_der(&k.ours);
    let rsa_key = EncodingKey::from_rsa_der(&pkcs1_private_der(&pkcs8));
    let hmac_key = EncodingKey::from_secret(b"secret");
    for (alg, key) in [
        (Algorithm::HS256, &hmac_key),
        (Algorithm::HS512, &hmac_key),
        (Algorithm::RS384, &rsa_key),
        (Algorithm::RS512, &rsa_key),
        (Algorithm::PS256, &rsa_key),
    ] {
        let mut header = Header::new(alg);
        header.kid = Some(KID.into());
        header.extras.insert("version".into(), "5".into());
        let token = encode(&header, &k.claims, key).expect("jsonwebtoken signs");
        assert_rejected(&token, InvalidToken, &format!("{alg:?}"));
    }
    assert_persistence();
}

/// PRJ-06 `decode_token_wrong_key_family`: an RS256-labelled token whose signature comes from
/// an EC key or an HMAC key; and our genuine token checked against an RSA key of another
/// family member (the attacker's key registered under our `kid`).
#[test]
fn prj_06_decode_token_wrong_key_family() {
    let k = kit();
    let (h, p, _) = parts(&k.genuine);
    let input = format!("{h}.{p}");
    let ec = lc_sig::EcdsaKeyPair::generate(&lc_sig::ECDSA_P256_SHA256_FIXED_SIGNING).expect("EC");
    let ec_sig = ec
        .sign(&SystemRandom::new(), input.as_bytes())
        .expect("ES256");
    let ec_asn1 =
        lc_sig::EcdsaKeyPair::generate(&lc_sig::ECDSA_P256_SHA256_ASN1_SIGNING).expect("EC");
    let ec_der_sig = ec_asn1
        .sign(&SystemRandom::new(), input.as_bytes())
        .expect("ES256 DER");
    let ed = lc_sig::Ed25519KeyPair::generate().expect("Ed25519");
    let mac = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, b"secret"),
        input.as_bytes(),
    );
    for (case, sig) in [
        ("ECDSA P1363", ec_sig.as_ref().to_vec()),
        ("ECDSA DER", ec_der_sig.as_ref().to_vec()),
        ("Ed25519", ed.sign(input.as_bytes()).as_ref().to_vec()),
        ("HMAC", mac.as_ref().to_vec()),
    ] {
        assert_rejected(&format!("{input}.{}", b64(sig)), InvalidToken, case);
    }
    let impostor_ring = KeyRing::new(
        vec![Arc::new(new_key(KID, KeyKind::Dynamic, NOW_MS, u64::MAX))],
        vec![],
        None,
    );
    assert_rejected_with(
        verify_access_token(&k.genuine, &impostor_ring, &policy(NOW_MS)),
        &k.genuine,
        InvalidToken,
        "genuine token, other RSA key under our kid",
    );
    assert_persistence();
}

/// PRJ-06 `test_string_exp_rejected_when_validate_exp_enabled`: string `exp` (and `iat`), also
/// when the string holds a valid number, signed by us.
#[test]
fn prj_06_string_exp_rejected() {
    for (claim, value) in [("exp", GENUINE_EXP), ("iat", GENUINE_IAT)] {
        for as_string in [
            json!(value.to_string()),
            json!(format!(" {value}")),
            json!(""),
        ] {
            let payload = payload_with(|m| {
                m.insert(claim.into(), as_string.clone());
            });
            assert_rejected(
                &ours_signed(&our_header(), &payload),
                InvalidToken,
                &format!("{claim}={as_string}"),
            );
        }
    }
    assert_persistence();
}

/// PRJ-06 `test_string_nbf_rejected_when_validate_nbf_enabled`: a string `nbf` is a rejection,
/// not "absent".
#[test]
fn prj_06_string_nbf_rejected() {
    let payload = payload_with(|m| {
        m.insert("nbf".into(), json!(NOW_S.to_string()));
    });
    assert_rejected(
        &ours_signed(&our_header(), &payload),
        InvalidToken,
        "string nbf",
    );
    assert_persistence();
}

/// PRJ-06 `does_validation_in_right_order`: an expired token with a bad signature reports
/// `InvalidToken` (signature before claims), with an unknown kid `KeyNotFound`, with a
/// malformed header `InvalidToken`; only a correctly signed expired token is `Expired`.
#[test]
fn prj_06_does_validation_in_right_order() {
    let k = kit();
    let expired = payload_with(|m| {
        m.insert("exp".into(), json!(NOW_S - 100));
        m.insert("iat".into(), json!(NOW_S - 700));
    });
    let good = ours_signed(&our_header(), &expired);
    assert_rejected(&good, Expired, "control: expired, correctly signed");
    let (h, p, _) = parts(&good);
    let (_, _, other_sig) = parts(&k.genuine);
    assert_rejected(
        &format!("{h}.{p}.{other_sig}"),
        InvalidToken,
        "expired + bad signature",
    );
    assert_rejected(
        &rs256(&k.attacker, &our_header(), &expired),
        InvalidToken,
        "expired + attacker",
    );
    assert_rejected(
        &format!("{h}.{p}.wrong"),
        InvalidToken,
        "expired + undecodable signature",
    );
    assert_rejected(
        &ours_signed(&header("RS256", "d-404"), &expired),
        KeyNotFound,
        "expired + unknown kid",
    );
    assert_rejected(
        &ours_signed(&header("HS256", KID), &expired),
        InvalidToken,
        "expired + bad alg",
    );
    // Bad claim types after a bad signature: still the signature verdict.
    let typed = must_replace(
        &expired,
        &format!("\"exp\":{}", NOW_S - 100),
        "\"exp\":\"soon\"",
    );
    assert_rejected(
        &rs256(&k.attacker, &our_header(), &typed),
        InvalidToken,
        "bad types + attacker",
    );
    assert_persistence();
}

/// PRJ-06 `doesnt_panic_with_leeway_overflow`: `exp`/`iat` at `u64::MAX`, `now` at
/// `u64::MAX`, an unbounded lifetime policy, and `ignore_time` — no arithmetic overflow, each
/// outcome exact.
#[test]
fn prj_06_doesnt_panic_with_leeway_overflow() {
    let k = kit();
    let sign = |exp: u64, iat: u64| {
        ours_signed(
            &our_header(),
            &payload_with(|m| {
                m.insert("exp".into(), json!(exp));
                m.insert("iat".into(), json!(iat));
            }),
        )
    };
    let max_max = sign(u64::MAX, u64::MAX);
    assert_rejected(
        &max_max,
        InvalidToken,
        "exp = iat = u64::MAX (iat in the future)",
    );
    let max_now = sign(u64::MAX, NOW_S);
    assert_rejected(&max_now, InvalidToken, "exp = u64::MAX (lifetime)");
    assert_rejected(
        &sign(u64::MAX / 1000 + 1, NOW_S),
        InvalidToken,
        "exp*1000 overflows",
    );
    assert_rejected(
        &sign(0, 0),
        Expired,
        "exp = iat = 0 (zero lifetime, long expired)",
    );

    let at = |t: &str, now_ms: u64, max_lifetime_s: u64, ignore_time: bool| {
        verify_access_token(
            t,
            &k.ring,
            &VerifyPolicy {
                now_ms,
                max_lifetime_s,
                ignore_time,
            },
        )
    };
    // Key valid until NOW_MS + 7 days, so a far-future now finds no usable key.
    assert_rejected_with(
        at(&k.genuine, u64::MAX, MAX_LIFETIME_S, false),
        &k.genuine,
        KeyNotFound,
        "now = MAX",
    );
    let forever = Arc::new(new_key("d-forever", KeyKind::Dynamic, NOW_MS, u64::MAX));
    let forever_ring = KeyRing::new(vec![Arc::clone(&forever)], vec![], None);
    let token = encode_access_token(&k.claims, &forever).expect("mint");
    let policy_max = VerifyPolicy {
        now_ms: u64::MAX,
        max_lifetime_s: MAX_LIFETIME_S,
        ignore_time: false,
    };
    assert_rejected_with(
        verify_access_token(&token, &forever_ring, &policy_max),
        &token,
        Expired,
        "now = MAX",
    );
    let max_token = rs256(
        &forever,
        &header("RS256", "d-forever"),
        &payload_with(|m| {
            m.insert("exp".into(), json!(u64::MAX));
            m.insert("iat".into(), json!(u64::MAX / 1000));
        }),
    );
    let unbounded = VerifyPolicy {
        now_ms: u64::MAX,
        max_lifetime_s: u64::MAX,
        ignore_time: false,
    };
    assert!(
        verify_access_token(&max_token, &forever_ring, &unbounded).is_ok(),
        "now = u64::MAX, exp = u64::MAX (exp*1000 saturates), no lifetime bound: valid"
    );
    assert!(
        at(&max_max, NOW_MS, u64::MAX, true).is_ok(),
        "ignore_time skips the time checks"
    );
    // With no lifetime bound, exp = u64::MAX is accepted: saturating arithmetic, no panic.
    assert!(
        at(&max_now, NOW_MS, u64::MAX, false).is_ok(),
        "unbounded lifetime"
    );
    assert_persistence();
}
