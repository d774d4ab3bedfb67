//! The anonymous-token key: a static key of its own (Ed25519 by default, RS256 selectable),
//! never one of the access-token keys. Its `kid` starts with `a-`, a namespace no access-token
//! key uses (`d-`, `s-`), and is derived from the public key, so every instance given the same
//! key agrees on it.
//!
//! Storage form: `ed25519|<b64 PKCS#8>` or `rs256|<b64 PKCS#8>`. Operators may also configure
//! an unencrypted PKCS#8 PEM (`openssl genpkey -algorithm ed25519`); the algorithm is read from
//! the key.

use super::jwks::Jwk;
use super::rsa_key::{KeyKind, SigningKey, VerifyingKey};
use crate::encoding::{b64_decode, b64_encode, b64url_decode, b64url_encode, sha256_hex};
use crate::error::EngineError;
use crate::protocol::ANONYMOUS_KID_PREFIX;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _, ParsedPublicKey, ED25519};
use std::fmt;

/// The signature algorithm of anonymous tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AnonymousAlgorithm {
    /// Ed25519 (`alg: EdDSA`): ~30× cheaper to sign than RSA-2048, so minting stays cheap.
    #[default]
    EdDSA,
    /// RS256, for gateways that cannot verify EdDSA.
    Rs256,
}

impl AnonymousAlgorithm {
    /// The JOSE `alg` value.
    pub fn jose_name(self) -> &'static str {
        match self {
            Self::EdDSA => "EdDSA",
            Self::Rs256 => "RS256",
        }
    }
}

/// Ed25519 signature verification over `message` with a raw 32-byte public key: the one call
/// every EdDSA anonymous-token check goes through.
///
/// ```
/// assert!(!tessera::fuzzing::verify_ed25519(&[0u8; 32], b"m", &[0u8; 64]));
/// ```
pub fn verify_ed25519(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    ParsedPublicKey::new(&ED25519, public_key)
        .is_ok_and(|key| key.verify_sig(message, signature).is_ok())
}

/// The public half of an anonymous key, parsed once.
pub struct AnonymousVerifyingKey {
    kid: String,
    inner: VerifyingInner,
}

enum VerifyingInner {
    Ed25519 {
        raw: [u8; 32],
        parsed: ParsedPublicKey,
    },
    Rs256(VerifyingKey),
}

impl fmt::Debug for AnonymousVerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnonymousVerifyingKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm())
            .finish()
    }
}

impl AnonymousVerifyingKey {
    /// An Ed25519 public key (32 raw bytes, as in a JWK's `x`).
    pub fn ed25519(kid: &str, raw: &[u8]) -> Result<Self, EngineError> {
        let raw: [u8; 32] = raw
            .try_into()
            .map_err(|_| EngineError::Crypto("Ed25519 public key must be 32 bytes"))?;
        let parsed = ParsedPublicKey::new(&ED25519, raw)
            .map_err(|_| EngineError::Crypto("Ed25519 public key rejected"))?;
        check_kid(kid)?;
        Ok(Self {
            kid: kid.to_owned(),
            inner: VerifyingInner::Ed25519 { raw, parsed },
        })
    }

    /// An RSA public key from JWK components.
    pub fn rs256(kid: &str, n: &[u8], e: &[u8]) -> Result<Self, EngineError> {
        check_kid(kid)?;
        Ok(Self {
            kid: kid.to_owned(),
            inner: VerifyingInner::Rs256(VerifyingKey::from_components(kid, n, e, u64::MAX)?),
        })
    }

    /// The key id (`a-…`).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm this key verifies.
    pub fn algorithm(&self) -> AnonymousAlgorithm {
        match self.inner {
            VerifyingInner::Ed25519 { .. } => AnonymousAlgorithm::EdDSA,
            VerifyingInner::Rs256(_) => AnonymousAlgorithm::Rs256,
        }
    }

    /// Checks `signature` over `message` with this key's algorithm only.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.inner {
            VerifyingInner::Ed25519 { parsed, .. } => parsed.verify_sig(message, signature).is_ok(),
            VerifyingInner::Rs256(key) => key.verify_rs256(message, signature),
        }
    }

    /// The raw Ed25519 public key, for the JWK `x`.
    pub fn ed25519_raw(&self) -> Option<&[u8; 32]> {
        match &self.inner {
            VerifyingInner::Ed25519 { raw, .. } => Some(raw),
            VerifyingInner::Rs256(_) => None,
        }
    }

    /// The RSA public key, for the JWK `n`/`e`.
    pub fn rsa(&self) -> Option<&VerifyingKey> {
        match &self.inner {
            VerifyingInner::Ed25519 { .. } => None,
            VerifyingInner::Rs256(key) => Some(key),
        }
    }

    /// The JWK published for this key: `OKP`/`Ed25519`/`EdDSA`, or `RSA`/`RS256`.
    pub fn jwk(&self) -> Jwk {
        match &self.inner {
            VerifyingInner::Ed25519 { raw, .. } => Jwk {
                kty: "OKP".into(),
                kid: self.kid.clone(),
                n: None,
                e: None,
                crv: Some("Ed25519".into()),
                x: Some(b64url_encode(raw)),
                alg: "EdDSA".into(),
                use_: "sig".into(),
            },
            VerifyingInner::Rs256(key) => Jwk::rs256(key),
        }
    }

    /// A fingerprint of the public key material, to refuse an anonymous key that equals an
    /// access-token key (ANON-02).
    pub fn fingerprint(&self) -> String {
        match &self.inner {
            VerifyingInner::Ed25519 { raw, .. } => sha256_hex(&b64url_encode(raw)),
            VerifyingInner::Rs256(key) => sha256_hex(&b64_encode(key.modulus())),
        }
    }
}

fn check_kid(kid: &str) -> Result<(), EngineError> {
    if !kid.starts_with(ANONYMOUS_KID_PREFIX) || kid.len() > 64 {
        return Err(EngineError::Crypto("anonymous key ids start with a-"));
    }
    Ok(())
}

/// The private anonymous key, parsed once. Its `Debug` never prints key material.
pub struct AnonymousSigningKey {
    inner: SigningInner,
    verifying: AnonymousVerifyingKey,
}

enum SigningInner {
    Ed25519(Ed25519KeyPair),
    Rs256(SigningKey),
}

impl fmt::Debug for AnonymousSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnonymousSigningKey")
            .field("kid", &self.verifying.kid)
            .finish_non_exhaustive()
    }
}

impl AnonymousSigningKey {
    /// Generates a fresh key from the OS RNG.
    pub fn generate(algorithm: AnonymousAlgorithm) -> Result<Self, EngineError> {
        match algorithm {
            AnonymousAlgorithm::EdDSA => {
                let pair = Ed25519KeyPair::generate()
                    .map_err(|_| EngineError::Crypto("Ed25519 key generation failed"))?;
                Self::from_ed25519(pair)
            }
            AnonymousAlgorithm::Rs256 => {
                let pair = SigningKey::generate("a-probe".into(), KeyKind::Static, 0, u64::MAX)?;
                Self::from_rsa_stored(&pair.to_stored()?)
            }
        }
    }

    /// Parses the storage form or a PKCS#8 PEM.
    pub fn parse(text: &str) -> Result<Self, EngineError> {
        let text = text.trim();
        if text.contains("-----BEGIN") {
            if !text.contains("BEGIN PRIVATE KEY") {
                return Err(EngineError::Config(
                    "anonymous signing key: expected an unencrypted PKCS#8 PEM (BEGIN PRIVATE KEY)"
                        .into(),
                ));
            }
            let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
            let der = b64_decode(&body).ok_or_else(|| {
                EngineError::Config("anonymous signing key: PEM body is not base64".into())
            })?;
            return Self::from_pkcs8(&der);
        }
        let (alg, body) = text
            .split_once('|')
            .ok_or(EngineError::Corrupt("anonymous key has no algorithm"))?;
        let der = b64_decode(body).ok_or(EngineError::Corrupt("anonymous key is not base64"))?;
        match alg {
            "ed25519" => Self::from_ed25519(ed25519_from_pkcs8(&der)?),
            "rs256" => Self::from_rsa_stored(&format!("|{}", b64_encode(&der))),
            _ => Err(EngineError::Corrupt("anonymous key algorithm unknown")),
        }
    }

    fn from_pkcs8(der: &[u8]) -> Result<Self, EngineError> {
        if let Ok(pair) = ed25519_from_pkcs8(der) {
            return Self::from_ed25519(pair);
        }
        Self::from_rsa_stored(&format!("|{}", b64_encode(der))).map_err(|_| {
            EngineError::Config(
                "anonymous signing key: not an Ed25519 or RSA (≥ 2048 bits, e = 65537) PKCS#8 key"
                    .into(),
            )
        })
    }

    fn from_ed25519(pair: Ed25519KeyPair) -> Result<Self, EngineError> {
        let raw = pair.public_key().as_ref().to_vec();
        let kid = format!("a-{}", &sha256_hex(&b64url_encode(&raw))[..32]);
        let verifying = AnonymousVerifyingKey::ed25519(&kid, &raw)?;
        Ok(Self {
            inner: SigningInner::Ed25519(pair),
            verifying,
        })
    }

    fn from_rsa_stored(stored: &str) -> Result<Self, EngineError> {
        let probe = SigningKey::from_stored(stored, "a-probe".into(), KeyKind::Static, 0, 0)?;
        let kid = format!(
            "a-{}",
            &sha256_hex(&b64_encode(probe.verifying().modulus()))[..32]
        );
        let key = SigningKey::from_stored(stored, kid.clone(), KeyKind::Static, 0, u64::MAX)?;
        let verifying = AnonymousVerifyingKey::rs256(
            &kid,
            key.verifying().modulus(),
            key.verifying().exponent(),
        )?;
        Ok(Self {
            inner: SigningInner::Rs256(key),
            verifying,
        })
    }

    /// The storage form (`ed25519|…` or `rs256|…`).
    pub fn to_stored(&self) -> Result<String, EngineError> {
        match &self.inner {
            SigningInner::Ed25519(pair) => {
                let doc = pair
                    .to_pkcs8()
                    .map_err(|_| EngineError::Crypto("Ed25519 key encoding failed"))?;
                Ok(format!("ed25519|{}", b64_encode(doc.as_ref())))
            }
            SigningInner::Rs256(key) => {
                let stored = key.to_stored()?;
                let private = stored
                    .split_once('|')
                    .map(|(_, p)| p)
                    .ok_or(EngineError::Crypto("RSA key encoding failed"))?;
                Ok(format!("rs256|{private}"))
            }
        }
    }

    /// The key id (`a-…`).
    pub fn kid(&self) -> &str {
        &self.verifying.kid
    }

    /// The algorithm.
    pub fn algorithm(&self) -> AnonymousAlgorithm {
        self.verifying.algorithm()
    }

    /// The public half.
    pub fn verifying(&self) -> &AnonymousVerifyingKey {
        &self.verifying
    }

    /// Signs `message` with this key's algorithm.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, EngineError> {
        match &self.inner {
            SigningInner::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            SigningInner::Rs256(key) => key.sign_rs256(message),
        }
    }
}

fn ed25519_from_pkcs8(der: &[u8]) -> Result<Ed25519KeyPair, EngineError> {
    Ed25519KeyPair::from_pkcs8(der)
        .or_else(|_| Ed25519KeyPair::from_pkcs8_maybe_unchecked(der))
        .map_err(|_| EngineError::Corrupt("anonymous key is not an Ed25519 PKCS#8 key"))
}

impl Jwk {
    /// The anonymous verifying key this JWK describes, if it is one (`kid` `a-…`).
    pub fn to_anonymous(&self) -> Option<Result<AnonymousVerifyingKey, EngineError>> {
        if !self.kid.starts_with(ANONYMOUS_KID_PREFIX) || self.use_ != "sig" {
            return None;
        }
        let decode = |v: &Option<String>| v.as_ref().and_then(|v| b64url_decode(v.as_bytes()));
        Some(match (self.kty.as_str(), self.alg.as_str()) {
            ("OKP", "EdDSA") if self.crv.as_deref() == Some("Ed25519") => decode(&self.x)
                .ok_or(EngineError::Corrupt("JWK x"))
                .and_then(|x| AnonymousVerifyingKey::ed25519(&self.kid, &x)),
            ("RSA", "RS256") => match (decode(&self.n), decode(&self.e)) {
                (Some(n), Some(e)) => AnonymousVerifyingKey::rs256(&self.kid, &n, &e),
                _ => Err(EngineError::Corrupt("JWK n/e")),
            },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_algorithms_round_trip_and_sign() {
        for alg in [AnonymousAlgorithm::EdDSA, AnonymousAlgorithm::Rs256] {
            let key = AnonymousSigningKey::generate(alg).unwrap();
            assert!(key.kid().starts_with("a-"));
            let back = AnonymousSigningKey::parse(&key.to_stored().unwrap()).unwrap();
            assert_eq!(back.kid(), key.kid(), "kid derives from the key");
            assert_eq!(back.algorithm(), alg);
            let sig = back.sign(b"msg").unwrap();
            assert!(key.verifying().verify(b"msg", &sig));
            assert!(!key.verifying().verify(b"msh", &sig));
        }
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        for bad in [
            "",
            "ed25519|",
            "ed25519|!!",
            "rs256|AAAA",
            "x|AAAA",
            "-----BEGIN X-----",
        ] {
            assert!(AnonymousSigningKey::parse(bad).is_err(), "{bad}");
        }
        assert!(AnonymousVerifyingKey::ed25519("a-x", &[1; 31]).is_err());
        assert!(
            AnonymousVerifyingKey::ed25519("d-x", &[1; 32]).is_err(),
            "a- namespace only"
        );
    }
}
