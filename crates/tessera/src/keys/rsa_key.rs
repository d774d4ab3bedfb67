//! RSA-2048 key pairs for RS256: generation, the SuperTokens storage format
//! (`<base64 SPKI DER>|<base64 PKCS#8 DER>`), and keys parsed once for signing and verifying.

use crate::encoding::{b64_decode, b64_encode};
use crate::error::EngineError;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    KeyPair as _, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
};
use std::fmt;

/// The only public exponent we accept (JWT-29).
const E_65537: &[u8] = &[0x01, 0x00, 0x01];
/// Smallest modulus we accept, in bytes (2048 bits).
const MIN_MODULUS_BYTES: usize = 256;

/// Which family a key belongs to; it decides the `kid` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// Rotating key, `kid = "d-<createdAtMillis>"`.
    Dynamic,
    /// Long-lived key, `kid = "s-<uuid>"`.
    Static,
}

/// A public key parsed once, ready for RS256 verification on the hot path.
pub struct VerifyingKey {
    kid: String,
    parsed: ParsedPublicKey,
    n: Vec<u8>,
    e: Vec<u8>,
    verify_until_ms: u64,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("verify_until_ms", &self.verify_until_ms)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// Builds a verifying key from JWK components (big-endian modulus and exponent).
    /// Refuses moduli under 2048 bits and exponents other than 65537.
    pub fn from_components(
        kid: &str,
        n: &[u8],
        e: &[u8],
        verify_until_ms: u64,
    ) -> Result<Self, EngineError> {
        let n = strip_leading_zeros(n);
        let e = strip_leading_zeros(e);
        check_strength(n, e)?;
        let parsed = PublicKeyComponents { n, e }
            .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
            .map_err(|_| EngineError::Crypto("RSA public key rejected"))?;
        Ok(Self {
            kid: kid.to_owned(),
            parsed,
            n: n.to_vec(),
            e: e.to_vec(),
            verify_until_ms,
        })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The last instant (epoch ms) at which tokens signed by this key are accepted.
    pub fn verify_until_ms(&self) -> u64 {
        self.verify_until_ms
    }

    /// Big-endian modulus without leading zeros.
    pub fn modulus(&self) -> &[u8] {
        &self.n
    }

    /// Big-endian public exponent without leading zeros.
    pub fn exponent(&self) -> &[u8] {
        &self.e
    }

    /// RSASSA-PKCS1-v1_5 SHA-256 verification: the one call every RS256 check goes through.
    pub fn verify_rs256(&self, message: &[u8], signature: &[u8]) -> bool {
        self.parsed.verify_sig(message, signature).is_ok()
    }
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    &b[start..]
}

fn check_strength(n: &[u8], e: &[u8]) -> Result<(), EngineError> {
    if n.len() < MIN_MODULUS_BYTES {
        return Err(EngineError::Crypto("RSA modulus shorter than 2048 bits"));
    }
    if e != E_65537 {
        return Err(EngineError::Crypto("RSA public exponent must be 65537"));
    }
    Ok(())
}

/// A private key parsed once, with its public half.
pub struct SigningKey {
    kind: KeyKind,
    created_at_ms: u64,
    pair: KeyPair,
    verifying: VerifyingKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never prints key material.
        f.debug_struct("SigningKey")
            .field("kid", &self.verifying.kid)
            .field("kind", &self.kind)
            .field("created_at_ms", &self.created_at_ms)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a fresh RSA-2048 key.
    pub fn generate(
        kid: String,
        kind: KeyKind,
        created_at_ms: u64,
        verify_until_ms: u64,
    ) -> Result<Self, EngineError> {
        let pair = KeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| EngineError::Crypto("RSA key generation failed"))?;
        Self::from_pair(pair, kid, kind, created_at_ms, verify_until_ms)
    }

    /// Parses the SuperTokens storage format `<b64 SPKI>|<b64 PKCS#8>` (`;` is accepted as the
    /// legacy separator).
    pub fn from_stored(
        stored: &str,
        kid: String,
        kind: KeyKind,
        created_at_ms: u64,
        verify_until_ms: u64,
    ) -> Result<Self, EngineError> {
        let (_public, private) = stored
            .split_once(['|', ';'])
            .ok_or(EngineError::Corrupt("stored key has no separator"))?;
        let der = b64_decode(private).ok_or(EngineError::Corrupt("stored key is not base64"))?;
        let pair = KeyPair::from_pkcs8(&der)
            .map_err(|_| EngineError::Corrupt("stored key is not a PKCS#8 RSA key"))?;
        Self::from_pair(pair, kid, kind, created_at_ms, verify_until_ms)
    }

    fn from_pair(
        pair: KeyPair,
        kid: String,
        kind: KeyKind,
        created_at_ms: u64,
        verify_until_ms: u64,
    ) -> Result<Self, EngineError> {
        let public = pair.public_key();
        let n = public.modulus().big_endian_without_leading_zero().to_vec();
        let e = public.exponent().big_endian_without_leading_zero().to_vec();
        let verifying = VerifyingKey::from_components(&kid, &n, &e, verify_until_ms)?;
        Ok(Self {
            kind,
            created_at_ms,
            pair,
            verifying,
        })
    }

    /// The storage form `<b64 SPKI DER>|<b64 PKCS#8 DER>`.
    pub fn to_stored(&self) -> Result<String, EngineError> {
        let spki = self
            .pair
            .public_key()
            .as_der()
            .map_err(|_| EngineError::Crypto("public key encoding failed"))?;
        let pkcs8 = self
            .pair
            .as_der()
            .map_err(|_| EngineError::Crypto("private key encoding failed"))?;
        Ok(format!(
            "{}|{}",
            b64_encode(spki.as_ref()),
            b64_encode(pkcs8.as_ref())
        ))
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.verifying.kid
    }

    /// Dynamic or static.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// Creation time, epoch ms.
    pub fn created_at_ms(&self) -> u64 {
        self.created_at_ms
    }

    /// The public half.
    pub fn verifying(&self) -> &VerifyingKey {
        &self.verifying
    }

    /// RS256 signature over `message`.
    pub fn sign_rs256(&self, message: &[u8]) -> Result<Vec<u8>, EngineError> {
        let mut sig = vec![0u8; self.pair.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.pair
            .sign(&RSA_PKCS1_SHA256, &rng, message, &mut sig)
            .map_err(|_| EngineError::Crypto("RSA signing failed"))?;
        Ok(sig)
    }
}

/// Finds the verifying key for a `kid`. Implemented by the engine's [`KeyRing`](crate::KeyRing) and by key
/// sets built from a published JWKS.
pub trait KeyLookup {
    /// The key with this id, if we hold it.
    fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey>;

    /// The key whose exact base64url header segment (as this engine mints it) is
    /// `header_b64`: a shortcut that skips decoding and parsing a header we produced. The
    /// default knows none, so every header is parsed.
    fn key_for_header(&self, header_b64: &[u8]) -> Option<&VerifyingKey> {
        let _ = header_b64;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_form_round_trips_and_signatures_verify() {
        let k = SigningKey::generate("d-1".into(), KeyKind::Dynamic, 1, u64::MAX).unwrap();
        let stored = k.to_stored().unwrap();
        let back =
            SigningKey::from_stored(&stored, "d-1".into(), KeyKind::Dynamic, 1, u64::MAX).unwrap();
        let sig = back.sign_rs256(b"msg").unwrap();
        assert_eq!(sig.len(), 256);
        assert!(k.verifying().verify_rs256(b"msg", &sig));
        assert!(!k.verifying().verify_rs256(b"msh", &sig));
        let legacy = stored.replace('|', ";");
        assert!(SigningKey::from_stored(&legacy, "d-1".into(), KeyKind::Dynamic, 1, 0).is_ok());
        assert!(SigningKey::from_stored("garbage", "d".into(), KeyKind::Dynamic, 1, 0).is_err());
        assert!(SigningKey::from_stored("a|!!", "d".into(), KeyKind::Dynamic, 1, 0).is_err());
    }

    #[test]
    fn jwt_29_weak_public_keys_are_refused() {
        let k = SigningKey::generate("d-1".into(), KeyKind::Dynamic, 1, 0).unwrap();
        let n = k.verifying().modulus();
        assert!(
            VerifyingKey::from_components("x", n, &[3], 0).is_err(),
            "e=3"
        );
        assert!(
            VerifyingKey::from_components("x", n, &[1], 0).is_err(),
            "e=1"
        );
        assert!(
            VerifyingKey::from_components("x", &n[..128], E_65537, 0).is_err(),
            "1024"
        );
        assert!(VerifyingKey::from_components("x", n, E_65537, 0).is_ok());
    }
}
