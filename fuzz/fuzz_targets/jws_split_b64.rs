//! ROB-01 (1): compact-JWS split and strict base64url decoding.
//!
//! Properties: strict base64url is canonical (every accepted input re-encodes to itself) and
//! round-trips; a token that does not split into exactly three strictly-encoded segments is
//! never accepted, and one with the wrong number of dots is `InvalidToken` before any key
//! lookup.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::fuzzing::{b64url_decode, b64url_encode};
use tessera::{verify_access_token, TryRefreshReason};

fuzz_target!(|data: &[u8]| {
    if let Some(decoded) = b64url_decode(data) {
        assert_eq!(
            b64url_encode(&decoded).as_bytes(),
            data,
            "non-canonical base64url accepted"
        );
    }
    let encoded = b64url_encode(data);
    assert_eq!(b64url_decode(encoded.as_bytes()).as_deref(), Some(data));

    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let segments: Vec<&str> = token.split('.').collect();
    let result = verify_access_token(token, tessera_fuzz::key_ring(), &tessera_fuzz::policy());
    if segments.len() != 3 {
        assert_eq!(result.as_ref().err(), Some(&TryRefreshReason::InvalidToken));
    }
    if segments
        .iter()
        .any(|s| b64url_decode(s.as_bytes()).is_none())
    {
        assert!(
            result.is_err(),
            "a token with a non-base64url segment verified"
        );
    }
    if let Ok(claims) = result {
        // Only a genuine token can get here (see at_verify for the full property).
        assert!(
            tessera_fuzz::genuine_tokens().iter().any(|t| t == token),
            "{claims:?}"
        );
    }
});
