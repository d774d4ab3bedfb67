//! ROB-01: the DBSC proof parser (`tessera::verify_proof`, issue 14) with a fixed bound
//! key.
//!
//! Input byte 0 < 0x80: the rest is a proof; verifying it (as a registration, and against the
//! bound key) never panics, and against the bound key it verifies only if it is byte-identical
//! to the genuine proof.
//! Input byte 0 ≥ 0x80: the genuine proof edited by the rest (the shared edit script): against
//! the bound key it verifies only if the signed part is unchanged.
#![no_main]

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tessera::{verify_proof, DbscAlgorithm, DevicePublicKey};
use tessera::fuzzing::b64url_encode;
use tessera_fuzz::apply_edits;

/// The bound key and one genuine refresh proof signed by it.
fn fixture() -> &'static (DevicePublicKey, String) {
    static FIXTURE: OnceLock<(DevicePublicKey, String)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let rng = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .expect("key");
        let p = key.public_key().as_ref();
        let jwk = format!(
            r#"{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}"#,
            b64url_encode(&p[1..33]),
            b64url_encode(&p[33..65])
        );
        let bound = DevicePublicKey::from_jwk(DbscAlgorithm::Es256, &jwk).expect("jwk");
        let input = format!(
            "{}.{}",
            b64url_encode(br#"{"alg":"ES256","typ":"dbsc+jwt"}"#),
            b64url_encode(br#"{"jti":"challenge"}"#)
        );
        let sig = key.sign(&rng, input.as_bytes()).expect("sign");
        (bound, format!("{input}.{}", b64url_encode(sig.as_ref())))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (bound, genuine) = fixture();
    if mode < 0x80 {
        let Ok(proof) = std::str::from_utf8(rest) else {
            return;
        };
        let _ = verify_proof(proof, None);
        if verify_proof(proof, Some(bound)).is_ok() {
            assert_eq!(proof, genuine);
        }
    } else {
        let edited = apply_edits(genuine.as_bytes(), rest);
        let Ok(proof) = std::str::from_utf8(&edited) else {
            return;
        };
        if verify_proof(proof, Some(bound)).is_ok() {
            let signed = |p: &str| p.rsplit_once('.').map(|(s, _)| s.to_owned());
            assert_eq!(signed(proof), signed(genuine));
        }
    }
});
