//! Byte encodings used by the token formats: strict base64url (JWS segments), standard base64
//! (key storage, refresh-token ciphertext), lowercase hex and the SHA-256 hex digests that the
//! SuperTokens formats chain together.

use aws_lc_rs::digest;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;

/// Encodes bytes as base64url without padding (RFC 7515 §2).
pub fn b64url_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding, strictly: only `[A-Za-z0-9_-]`, no `=`, and unused
/// trailing bits must be zero, so every accepted input re-encodes to exactly itself.
pub fn b64url_decode(text: &[u8]) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// Encodes bytes as standard base64 with padding.
pub fn b64_encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decodes standard base64 with padding.
pub fn b64_decode(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text).ok()
}

/// Lowercase hexadecimal encoding.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

/// `lowercase_hex(SHA-256(UTF-8(text)))`: the digest SuperTokens chains for refresh-token
/// hashes (`hash1 = sha256_hex(token)`, `hash2 = sha256_hex(hash1)`).
pub fn sha256_hex(text: &str) -> String {
    hex(digest::digest(&digest::SHA256, text.as_bytes()).as_ref())
}

/// Constant-time equality of two byte strings (aws-lc's `verify_slices_are_equal`): the time
/// depends on the lengths only, never on where the first difference is. Every comparison of a
/// secret goes through this (ROB-05); hash both sides first when the length is secret too.
///
/// ```
/// assert!(tessera::fuzzing::constant_time_eq(b"abc", b"abc"));
/// assert!(!tessera::fuzzing::constant_time_eq(b"abc", b"abd"));
/// assert!(!tessera::fuzzing::constant_time_eq(b"abc", b"ab"));
/// ```
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_hex_matches_known_vector() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn jwt_26_base64url_is_strict() {
        assert_eq!(b64url_decode(b"aGk").as_deref(), Some(&b"hi"[..]));
        assert!(b64url_decode(b"aGk=").is_none(), "padding");
        assert!(b64url_decode(b"aGl").is_none(), "non-zero trailing bits");
        assert!(b64url_decode(b"a+k").is_none(), "standard alphabet");
        assert!(b64url_decode(b"a/k").is_none(), "standard alphabet");
        assert!(b64url_decode(b"aG k").is_none(), "space");
        assert!(b64url_decode(b"aG\nk").is_none(), "newline");
        assert!(b64url_decode(b"aG?k").is_none(), "question mark");
        assert!(b64url_decode(b"aG%k").is_none(), "percent");
    }
}
