//! JSON Web Key Sets: what we publish at `/.well-known/jwks.json`, and a verifying key set built
//! from a published one (for gateways and remote-core SDKs).

use super::ring::KeyLookup;
use super::rsa_key::VerifyingKey;
use crate::encoding::{b64url_decode, b64url_encode};
use crate::error::EngineError;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// One public RSA key (RFC 7517), public members only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Always `RSA`.
    pub kty: String,
    /// Key id.
    pub kid: String,
    /// Modulus, base64url of the unsigned big-endian integer.
    pub n: String,
    /// Public exponent, base64url.
    pub e: String,
    /// Always `RS256`.
    pub alg: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: String,
}

impl Jwk {
    /// The JWK of an RS256 verifying key.
    pub fn rs256(key: &VerifyingKey) -> Self {
        Self {
            kty: "RSA".into(),
            kid: key.kid().to_owned(),
            n: b64url_encode(key.modulus()),
            e: b64url_encode(key.exponent()),
            alg: "RS256".into(),
            use_: "sig".into(),
        }
    }
}

/// `{"keys": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys, in publication order.
    pub keys: Vec<Jwk>,
}

/// Verifying keys built from a JWKS document.
///
/// ```no_run
/// # fn demo(jwks_json: &str) -> Result<(), tessera::EngineError> {
/// let keys = tessera::VerifyingKeySet::from_jwks_json(jwks_json)?;
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct VerifyingKeySet {
    by_kid: HashMap<String, VerifyingKey>,
}

impl VerifyingKeySet {
    /// Parses a JWKS. Only `kty:"RSA"`, `alg:"RS256"` keys are taken; a duplicate `kid` or a
    /// weak key refuses the whole set.
    pub fn from_jwks_json(text: &str) -> Result<Self, EngineError> {
        let jwks: Jwks =
            serde_json::from_str(text).map_err(|_| EngineError::Corrupt("JWKS is not valid"))?;
        Self::from_jwks(&jwks)
    }

    /// Builds the set from parsed JWKs.
    pub fn from_jwks(jwks: &Jwks) -> Result<Self, EngineError> {
        let mut by_kid = HashMap::new();
        for jwk in &jwks.keys {
            if jwk.kty != "RSA" || jwk.alg != "RS256" || jwk.use_ != "sig" {
                continue;
            }
            let n = b64url_decode(jwk.n.as_bytes()).ok_or(EngineError::Corrupt("JWK n"))?;
            let e = b64url_decode(jwk.e.as_bytes()).ok_or(EngineError::Corrupt("JWK e"))?;
            let key = VerifyingKey::from_components(&jwk.kid, &n, &e, u64::MAX)?;
            if by_kid.insert(jwk.kid.clone(), key).is_some() {
                return Err(EngineError::Corrupt("JWKS has a duplicate kid"));
            }
        }
        Ok(Self { by_kid })
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.by_kid.len()
    }

    /// The key ids in the set.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.by_kid.keys().map(String::as_str)
    }

    /// True when the set holds `kid`.
    pub fn contains(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    /// True when no key was taken.
    pub fn is_empty(&self) -> bool {
        self.by_kid.is_empty()
    }
}

impl KeyLookup for VerifyingKeySet {
    fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey> {
        self.by_kid.get(kid)
    }
}
