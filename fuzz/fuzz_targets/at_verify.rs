//! ROB-01 (3): full access-token verification with a fixed key set.
//!
//! Input byte 0 < 0x80: the rest is a token. It verifies only if it is byte-identical to one of
//! the genuine tokens, and the engine's key ring (minted-header shortcut) and a key set parsed
//! from the published JWKS (full header parse) give the same answer.
//! Input byte 0 ≥ 0x80: genuine token `byte0 % n` edited by the rest (an edit script of byte
//! replacements, insertions and deletions): it verifies if and only if the bytes are unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::verify_access_token;
use tessera_fuzz::{apply_edits, genuine_tokens, jwks_set, key_ring, policy};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let genuine = genuine_tokens();
    if mode < 0x80 {
        let Ok(token) = std::str::from_utf8(rest) else {
            return;
        };
        let by_ring = verify_access_token(token, key_ring(), &policy());
        let by_jwks = verify_access_token(token, jwks_set(), &policy());
        assert_eq!(by_ring, by_jwks, "key ring and JWKS key set disagree");
        if by_ring.is_ok() {
            assert!(
                genuine.iter().any(|t| t == token),
                "a non-genuine token verified"
            );
        }
    } else {
        let original = &genuine[usize::from(mode) % genuine.len()];
        let edited = apply_edits(original.as_bytes(), rest);
        let Ok(token) = std::str::from_utf8(&edited) else {
            return;
        };
        let verified = verify_access_token(token, key_ring(), &policy()).is_ok();
        assert_eq!(
            verified,
            token == original,
            "edited token: verified={verified}, unchanged={}",
            token == original
        );
        assert_eq!(
            verify_access_token(token, jwks_set(), &policy()).is_ok(),
            verified
        );
    }
});
