//! ROB-01 (8): JWKS serialise-then-parse.
//!
//! Properties: a JWKS document that parses serialises and parses back to the same value; the
//! verifying key set never panics and never holds a weak key; a key built from fuzzed modulus
//! and exponent publishes a JWK that parses back to the same key; the fixture JWKS (what the
//! engine publishes) parses back into a key set that verifies every genuine token.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::fuzzing::b64url_decode;
use tessera::{verify_access_token, Jwk, Jwks, VerifyingKey, VerifyingKeySet};
use tessera_fuzz::{genuine_tokens, jwks_json, policy};

fuzz_target!(|data: &[u8]| {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let set = VerifyingKeySet::from_jwks_json(jwks_json()).expect("published JWKS parses");
        for t in genuine_tokens() {
            assert!(verify_access_token(t, &set, &policy()).is_ok());
        }
        let parsed: Jwks = serde_json::from_str(jwks_json()).expect("parses");
        assert_eq!(
            serde_json::to_string(&parsed).expect("serialises"),
            jwks_json()
        );
    });

    if let Ok(jwks) = serde_json::from_slice::<Jwks>(data) {
        let text = serde_json::to_string(&jwks).expect("serialises");
        let back: Jwks = serde_json::from_str(&text).expect("parses back");
        assert_eq!(back, jwks);
        if let Ok(set) = VerifyingKeySet::from_jwks(&jwks) {
            for jwk in &jwks.keys {
                let access_key = jwk.kty == "RSA"
                    && jwk.alg == "RS256"
                    && jwk.use_ == "sig"
                    && !jwk.kid.starts_with("a-");
                if access_key && set.contains(&jwk.kid) {
                    let n = jwk.n.as_deref().and_then(|n| b64url_decode(n.as_bytes()));
                    let n = n.expect("a taken key has a valid n");
                    let significant = n.iter().skip_while(|b| **b == 0).count();
                    assert!(significant >= 256, "weak key taken");
                }
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = VerifyingKeySet::from_jwks_json(text);
    }

    // Fuzzed components: split the input into modulus and exponent.
    if data.len() > 2 {
        let split = usize::from(data[0]) % (data.len() - 1) + 1;
        let (n, e) = data[1..].split_at(split.min(data.len() - 1));
        if let Ok(key) = VerifyingKey::from_components("k", n, e, u64::MAX) {
            let jwk = Jwk::rs256(&key);
            let text = serde_json::to_string(&Jwks {
                keys: vec![jwk.clone()],
            })
            .expect("json");
            let set = VerifyingKeySet::from_jwks_json(&text).expect("own JWK parses back");
            assert!(set.contains("k"));
            let back: Jwks = serde_json::from_str(&text).expect("parses");
            assert_eq!(back.keys, vec![jwk]);
        }
    }
});
