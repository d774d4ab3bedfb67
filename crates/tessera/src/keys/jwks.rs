//! JSON Web Key Sets: what we publish at `/.well-known/jwks.json`, and a verifying key set built
//! from a published one (for gateways and remote-core SDKs).

use super::rsa_key::{KeyLookup, VerifyingKey};
use crate::encoding::{b64url_decode, b64url_encode};
use crate::error::EngineError;
use crate::protocol::ANONYMOUS_KID_PREFIX;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// One public key (RFC 7517), public members only: an RSA key (`kty: RSA`, `n`, `e`) for
/// access tokens or RS256 anonymous tokens, or an Ed25519 key (`kty: OKP`, `crv`, `x`, RFC 8037)
/// for EdDSA anonymous tokens. Anonymous keys have `kid`s starting with `a-`; a gateway must
/// check the token type (`typ: anon+jwt`) as well as the signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// `RSA` or `OKP`.
    pub kty: String,
    /// Key id.
    pub kid: String,
    /// RSA modulus, base64url of the unsigned big-endian integer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA public exponent, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// OKP curve (`Ed25519`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// OKP public key, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// `RS256` or `EdDSA`.
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
            n: Some(b64url_encode(key.modulus())),
            e: Some(b64url_encode(key.exponent())),
            crv: None,
            x: None,
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
    /// Parses a JWKS. Only `kty:"RSA"`, `alg:"RS256"` access-token keys are taken (anonymous
    /// keys, `kid` `a-…`, never are); a duplicate `kid` or a weak key refuses the whole set.
    pub fn from_jwks_json(text: &str) -> Result<Self, EngineError> {
        if !crate::jose::starts_json_object(text.as_bytes()) {
            return Err(EngineError::Corrupt("JWKS is not valid"));
        }
        let jwks: Jwks =
            serde_json::from_str(text).map_err(|_| EngineError::Corrupt("JWKS is not valid"))?;
        Self::from_jwks(&jwks)
    }

    /// Builds the set from parsed JWKs.
    pub fn from_jwks(jwks: &Jwks) -> Result<Self, EngineError> {
        let mut by_kid = HashMap::new();
        for jwk in &jwks.keys {
            if jwk.kty != "RSA"
                || jwk.alg != "RS256"
                || jwk.use_ != "sig"
                || jwk.kid.starts_with(ANONYMOUS_KID_PREFIX)
            {
                continue;
            }
            let (Some(n), Some(e)) = (&jwk.n, &jwk.e) else {
                return Err(EngineError::Corrupt("JWK without n or e"));
            };
            let n = b64url_decode(n.as_bytes()).ok_or(EngineError::Corrupt("JWK n"))?;
            let e = b64url_decode(e.as_bytes()).ok_or(EngineError::Corrupt("JWK e"))?;
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
