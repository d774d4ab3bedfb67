//! Device Bound Session Credentials (W3C webappsec-dbsc): the device's proof of possession
//! (`dbsc+jwt`), the public key it names (RFC 7638 thumbprint) and the server's challenges.
//! No I/O here: [`crate::SessionEngine`]'s `dbsc_*` methods apply it to the store.
//!
//! Order of checks on a proof (each step runs only if the previous passed):
//! 1. length bound ([`MAX_PROOF_LEN`]) before any decoding;
//! 2. exactly three segments of strict base64url; decoded header and payload each at most
//!    [`MAX_JSON_LEN`];
//! 3. header: `typ` = `dbsc+jwt`, `alg` = `ES256` or `RS256` (never `none`, an HMAC or
//!    EdDSA), no `crit`; duplicate members refused;
//! 4. the key: at registration the header's `jwk` (public members only; EC P-256 for ES256,
//!    RSA 2048–4096 bits for RS256); at refresh the bound key — its algorithm must be the
//!    header's, and a `jwk` in the header must have the bound key's thumbprint;
//! 5. the signature over `header.payload`, through aws-lc-rs;
//! 6. only then the payload: `jti` a string of at most [`MAX_CHALLENGE_LEN`] bytes,
//!    `authorization` optional.
//!
//! The caller then checks `jti` against an outstanding challenge ([`ChallengeKey::open`]):
//! an HMAC-SHA256 over the app, tenant, session handle, a random nonce and an expiry,
//! compared in constant time; single use is the store's used-set (its primary key decides,
//! across instances).
//!
//! ```
//! use tessera::{ChallengeKey, ChallengeRejection};
//! let key = ChallengeKey::generate().unwrap();
//! let challenge = key.mint("public", "public", "handle-1", 1_000, 60_000).unwrap();
//! let opened = key.open(&challenge, "public", "public", "handle-1", 2_000).unwrap();
//! assert_eq!(opened.expires_at, 61_000);
//! assert_eq!(
//!     key.open(&challenge, "public", "public", "handle-2", 2_000).unwrap_err(),
//!     ChallengeRejection::Invalid
//! );
//! ```

use crate::encoding::{b64url_decode, b64url_encode, hex};
use crate::error::{EngineError, SessionError, StoreError};
use crate::random;
use aws_lc_rs::{digest, hmac, signature};
use serde::Deserialize;
use std::fmt;

/// Longest proof accepted, in bytes (an RS256 proof with a 4096-bit `jwk` is about 2 KiB).
pub const MAX_PROOF_LEN: usize = 8 * 1024;
/// Longest decoded header or payload JSON, in bytes.
pub const MAX_JSON_LEN: usize = 4 * 1024;
/// Longest challenge (`jti`) accepted, in bytes.
pub const MAX_CHALLENGE_LEN: usize = 256;
/// The `typ` of a DBSC proof.
pub const PROOF_TYPE: &str = "dbsc+jwt";

/// The algorithms a device key may use (the spec's list, in our order of preference).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbscAlgorithm {
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
}

impl DbscAlgorithm {
    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            DbscAlgorithm::Es256 => "ES256",
            DbscAlgorithm::Rs256 => "RS256",
        }
    }

    /// Parses a JOSE name; only `ES256` and `RS256`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "ES256" => Some(DbscAlgorithm::Es256),
            "RS256" => Some(DbscAlgorithm::Rs256),
            _ => None,
        }
    }
}

/// Why a proof was refused. Each is its own outcome so tests can name it; the HTTP answer
/// is the same for all (the client cannot repair a proof, only make a new one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofRejection {
    /// Longer than [`MAX_PROOF_LEN`], or a decoded part longer than `MAX_JSON_LEN`.
    #[error("proof too large")]
    TooLarge,
    /// Not three strict base64url segments of JSON objects.
    #[error("malformed proof")]
    Malformed,
    /// `typ` is not `dbsc+jwt`.
    #[error("wrong proof type")]
    WrongType,
    /// `alg` is not ES256 or RS256 (or not the bound key's), or `crit` is present.
    #[error("algorithm not allowed")]
    WrongAlgorithm,
    /// Registration without a `jwk`, or a `jwk` that is not a usable public key for `alg`.
    #[error("bad key")]
    BadKey,
    /// The proof names a key other than the bound one.
    #[error("not the bound key")]
    WrongKey,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// The payload lacks a usable `jti`.
    #[error("bad payload")]
    BadPayload,
}

impl ProofRejection {
    const ALL: [ProofRejection; 8] = [
        ProofRejection::TooLarge,
        ProofRejection::Malformed,
        ProofRejection::WrongType,
        ProofRejection::WrongAlgorithm,
        ProofRejection::BadKey,
        ProofRejection::WrongKey,
        ProofRejection::BadSignature,
        ProofRejection::BadPayload,
    ];

    /// A stable code (the remote-core extension's `reason`).
    pub fn code(self) -> &'static str {
        match self {
            ProofRejection::TooLarge => "TOO_LARGE",
            ProofRejection::Malformed => "MALFORMED",
            ProofRejection::WrongType => "WRONG_TYPE",
            ProofRejection::WrongAlgorithm => "WRONG_ALGORITHM",
            ProofRejection::BadKey => "BAD_KEY",
            ProofRejection::WrongKey => "WRONG_KEY",
            ProofRejection::BadSignature => "BAD_SIGNATURE",
            ProofRejection::BadPayload => "BAD_PAYLOAD",
        }
    }

    /// The rejection of a [`Self::code`].
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }
}

/// A device public key in its canonical RFC 7638 form.
#[derive(Clone, PartialEq, Eq)]
pub struct DevicePublicKey {
    algorithm: DbscAlgorithm,
    /// The required members in lexicographic order, no whitespace (RFC 7638 §3).
    canonical_jwk: String,
    /// Uncompressed EC point, or (n, e) for RSA.
    material: KeyMaterial,
}

#[derive(Clone, PartialEq, Eq)]
enum KeyMaterial {
    Ec(Vec<u8>),
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

impl fmt::Debug for DevicePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevicePublicKey")
            .field("algorithm", &self.algorithm)
            .field("thumbprint", &self.thumbprint())
            .finish()
    }
}

struct JwkIn<'a> {
    kty: &'a str,
    crv: Option<&'a str>,
    x: Option<&'a str>,
    y: Option<&'a str>,
    n: Option<&'a str>,
    e: Option<&'a str>,
}

fn strip_leading_zeros(mut b: &[u8]) -> &[u8] {
    while let [0, rest @ ..] = b {
        b = rest;
    }
    b
}

impl DevicePublicKey {
    /// Parses a public JWK (JSON text) for `algorithm`: EC P-256 (`x`, `y` 32 bytes each)
    /// for ES256, RSA with a 2048–4096-bit modulus for RS256.
    ///
    /// # Errors
    /// [`ProofRejection::BadKey`] for anything else, a private key included.
    pub fn from_jwk(algorithm: DbscAlgorithm, jwk: &str) -> Result<Self, ProofRejection> {
        let value: serde_json::Value =
            serde_json::from_str(jwk).map_err(|_| ProofRejection::BadKey)?;
        Self::from_value(algorithm, &value)
    }

    fn from_value(
        algorithm: DbscAlgorithm,
        value: &serde_json::Value,
    ) -> Result<Self, ProofRejection> {
        let bad = ProofRejection::BadKey;
        let obj = value.as_object().ok_or(bad)?;
        // A private key (or a symmetric one) in a public header is refused outright.
        if ["d", "p", "q", "dp", "dq", "qi", "oth", "k"]
            .iter()
            .any(|m| obj.contains_key(*m))
        {
            return Err(bad);
        }
        let member = |name: &str| -> Result<Option<&str>, ProofRejection> {
            match obj.get(name) {
                None => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.as_str())),
                Some(_) => Err(bad),
            }
        };
        let jwk = JwkIn {
            kty: member("kty")?.ok_or(bad)?,
            crv: member("crv")?,
            x: member("x")?,
            y: member("y")?,
            n: member("n")?,
            e: member("e")?,
        };
        let decode = |s: Option<&str>| s.and_then(|s| b64url_decode(s.as_bytes())).ok_or(bad);
        match (algorithm, jwk.kty) {
            (DbscAlgorithm::Es256, "EC") => {
                if jwk.crv != Some("P-256") || jwk.n.is_some() || jwk.e.is_some() {
                    return Err(bad);
                }
                let (x, y) = (decode(jwk.x)?, decode(jwk.y)?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(bad);
                }
                let mut point = Vec::with_capacity(65);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                // aws-lc-rs checks the point is on the curve when verifying; check now so a
                // bad key is refused at registration, not bound.
                signature::ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &point)
                    .map_err(|_| bad)?;
                let canonical_jwk = format!(
                    r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                    b64url_encode(&x),
                    b64url_encode(&y)
                );
                Ok(Self {
                    algorithm,
                    canonical_jwk,
                    material: KeyMaterial::Ec(point),
                })
            }
            (DbscAlgorithm::Rs256, "RSA") => {
                if jwk.crv.is_some() || jwk.x.is_some() || jwk.y.is_some() {
                    return Err(bad);
                }
                let (n, e) = (decode(jwk.n)?, decode(jwk.e)?);
                let (n, e) = (
                    strip_leading_zeros(&n).to_vec(),
                    strip_leading_zeros(&e).to_vec(),
                );
                let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
                if !(2048..=4096).contains(&bits) || e.is_empty() || e.len() > 4 {
                    return Err(bad);
                }
                let canonical_jwk = format!(
                    r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                    b64url_encode(&e),
                    b64url_encode(&n)
                );
                Ok(Self {
                    algorithm,
                    canonical_jwk,
                    material: KeyMaterial::Rsa { n, e },
                })
            }
            _ => Err(bad),
        }
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> DbscAlgorithm {
        self.algorithm
    }

    /// The canonical public JWK (what is stored).
    pub fn canonical_jwk(&self) -> &str {
        &self.canonical_jwk
    }

    /// The RFC 7638 SHA-256 thumbprint, base64url.
    pub fn thumbprint(&self) -> String {
        b64url_encode(digest::digest(&digest::SHA256, self.canonical_jwk.as_bytes()).as_ref())
    }

    fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match &self.material {
            KeyMaterial::Ec(point) => {
                sig.len() == 64
                    && signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                        .verify(message, sig)
                        .is_ok()
            }
            KeyMaterial::Rsa { n, e } => signature::RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, sig)
                .is_ok(),
        }
    }
}

/// A verified proof.
#[derive(Debug, Clone)]
pub struct VerifiedProof {
    /// The key that signed it.
    pub key: DevicePublicKey,
    /// The challenge it answers (`jti`), not yet checked.
    pub jti: String,
    /// The `authorization` value, when the registration offer named one.
    pub authorization: Option<String>,
}

#[derive(Deserialize)]
struct ProofHeader {
    alg: String,
    typ: String,
    jwk: Option<serde_json::Value>,
    crit: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ProofPayload {
    jti: String,
    authorization: Option<String>,
}

/// Refuses JSON objects with a repeated member name at the top level (a parser that keeps
/// the first and one that keeps the last would disagree on what was signed).
fn unique_members(json: &[u8]) -> Result<(), ProofRejection> {
    struct Unique;
    impl<'de> serde::de::Visitor<'de> for Unique {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object with unique members")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                map.next_value::<serde::de::IgnoredAny>()?;
                if !seen.insert(k.into_owned()) {
                    return Err(serde::de::Error::custom("duplicate member"));
                }
            }
            Ok(())
        }
    }
    let mut de = serde_json::Deserializer::from_slice(json);
    serde::Deserializer::deserialize_map(&mut de, Unique).map_err(|_| ProofRejection::Malformed)
}

fn decode_json_part(part: &[u8]) -> Result<Vec<u8>, ProofRejection> {
    if part.len() > MAX_JSON_LEN * 4 / 3 + 4 {
        return Err(ProofRejection::TooLarge);
    }
    let json = b64url_decode(part).ok_or(ProofRejection::Malformed)?;
    if json.len() > MAX_JSON_LEN {
        return Err(ProofRejection::TooLarge);
    }
    unique_members(&json)?;
    Ok(json)
}

/// Verifies a `dbsc+jwt` proof (steps 1–6 of the module rules). `bound` is the session's key
/// at refresh, `None` at registration (the header's `jwk` is then the key).
///
/// ```
/// use tessera::{verify_proof, ProofRejection};
/// assert_eq!(verify_proof("a.b", None).unwrap_err(), ProofRejection::Malformed);
/// ```
///
/// # Errors
/// The [`ProofRejection`] of the first rule that fails.
pub fn verify_proof(
    proof: &str,
    bound: Option<&DevicePublicKey>,
) -> Result<VerifiedProof, ProofRejection> {
    use ProofRejection::{
        BadKey, BadPayload, BadSignature, Malformed, TooLarge, WrongAlgorithm, WrongKey, WrongType,
    };
    if proof.len() > MAX_PROOF_LEN {
        return Err(TooLarge);
    }
    let bytes = proof.as_bytes();
    let mut parts = bytes.split(|b| *b == b'.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Malformed);
    };
    let header_json = decode_json_part(h)?;
    let header: ProofHeader = serde_json::from_slice(&header_json).map_err(|_| Malformed)?;
    if header.typ != PROOF_TYPE {
        return Err(WrongType);
    }
    let alg = DbscAlgorithm::parse(&header.alg).ok_or(WrongAlgorithm)?;
    if header.crit.is_some() {
        return Err(WrongAlgorithm);
    }
    let key = match (bound, &header.jwk) {
        (Some(bound), jwk) => {
            if bound.algorithm != alg {
                return Err(WrongAlgorithm);
            }
            if let Some(jwk) = jwk {
                let named = DevicePublicKey::from_value(alg, jwk).map_err(|_| WrongKey)?;
                if named.canonical_jwk != bound.canonical_jwk {
                    return Err(WrongKey);
                }
            }
            bound.clone()
        }
        (None, Some(jwk)) => DevicePublicKey::from_value(alg, jwk)?,
        (None, None) => return Err(BadKey),
    };
    let sig = b64url_decode(s).ok_or(Malformed)?;
    let signed_len = h.len() + 1 + p.len();
    if !key.verify(&bytes[..signed_len], &sig) {
        return Err(if bound.is_some() {
            WrongKey
        } else {
            BadSignature
        });
    }
    let payload_json = decode_json_part(p)?;
    let payload: ProofPayload = serde_json::from_slice(&payload_json).map_err(|_| BadPayload)?;
    if payload.jti.is_empty() || payload.jti.len() > MAX_CHALLENGE_LEN {
        return Err(BadPayload);
    }
    Ok(VerifiedProof {
        key,
        jti: payload.jti,
        authorization: payload.authorization,
    })
}

/// Why a challenge was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChallengeRejection {
    /// Not one of ours, or minted for another session.
    #[error("unknown challenge")]
    Invalid,
    /// Past its expiry.
    #[error("expired challenge")]
    Expired,
    /// Already used once.
    #[error("challenge already used")]
    Replayed,
}

impl ChallengeRejection {
    /// A stable code (the remote-core extension's `reason`).
    pub fn code(self) -> &'static str {
        match self {
            ChallengeRejection::Invalid => "INVALID",
            ChallengeRejection::Expired => "EXPIRED",
            ChallengeRejection::Replayed => "REPLAYED",
        }
    }

    /// The rejection of a [`Self::code`].
    pub fn from_code(code: &str) -> Option<Self> {
        [Self::Invalid, Self::Expired, Self::Replayed]
            .into_iter()
            .find(|r| r.code() == code)
    }
}

/// An opened challenge: what the used-set records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedChallenge {
    /// The random nonce, hex (the used-set key).
    pub nonce: String,
    /// Expiry, epoch ms.
    pub expires_at: u64,
}

const NONCE_LEN: usize = 16;
const TAG_LEN: usize = 32;
const CHALLENGE_BYTES: usize = NONCE_LEN + 8 + TAG_LEN;

/// The HMAC key challenges are minted with (one per app, kept in the store so every instance
/// shares it). Its `Debug` hides the key.
pub struct ChallengeKey(hmac::Key);

impl fmt::Debug for ChallengeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChallengeKey(..)")
    }
}

impl ChallengeKey {
    /// A fresh random key.
    ///
    /// # Errors
    /// When the OS RNG fails.
    pub fn generate() -> Result<Self, EngineError> {
        Ok(Self::from_bytes(&random::bytes::<32>()?))
    }

    /// A key from its stored bytes.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, bytes))
    }

    fn tag(&self, app: &str, tenant: &str, handle: &str, nonce_and_expiry: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.0);
        for part in ["tessera-dbsc-challenge-v1", app, tenant, handle] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part.as_bytes());
        }
        ctx.update(nonce_and_expiry);
        ctx.sign()
    }

    /// Mints a challenge for one session, valid for `ttl_ms` from `now_ms`.
    ///
    /// # Errors
    /// When the OS RNG fails.
    pub fn mint(
        &self,
        app: &str,
        tenant: &str,
        handle: &str,
        now_ms: u64,
        ttl_ms: u64,
    ) -> Result<String, EngineError> {
        let mut raw = [0u8; CHALLENGE_BYTES];
        random::fill(&mut raw[..NONCE_LEN])?;
        raw[NONCE_LEN..NONCE_LEN + 8].copy_from_slice(&now_ms.saturating_add(ttl_ms).to_be_bytes());
        let tag = self.tag(app, tenant, handle, &raw[..NONCE_LEN + 8]);
        raw[NONCE_LEN + 8..].copy_from_slice(tag.as_ref());
        Ok(b64url_encode(&raw))
    }

    /// Checks that `challenge` was minted for this session and has not expired (the tag is
    /// compared in constant time). Single use is the caller's (the store's used-set).
    ///
    /// # Errors
    /// [`ChallengeRejection::Invalid`] or [`ChallengeRejection::Expired`].
    pub fn open(
        &self,
        challenge: &str,
        app: &str,
        tenant: &str,
        handle: &str,
        now_ms: u64,
    ) -> Result<OpenedChallenge, ChallengeRejection> {
        if challenge.len() > MAX_CHALLENGE_LEN {
            return Err(ChallengeRejection::Invalid);
        }
        let raw = b64url_decode(challenge.as_bytes()).ok_or(ChallengeRejection::Invalid)?;
        if raw.len() != CHALLENGE_BYTES {
            return Err(ChallengeRejection::Invalid);
        }
        let mut ctx_input = [0u8; NONCE_LEN + 8];
        ctx_input.copy_from_slice(&raw[..NONCE_LEN + 8]);
        let expected = self.tag(app, tenant, handle, &ctx_input);
        if aws_lc_rs::constant_time::verify_slices_are_equal(
            expected.as_ref(),
            &raw[NONCE_LEN + 8..],
        )
        .is_err()
        {
            return Err(ChallengeRejection::Invalid);
        }
        let mut exp = [0u8; 8];
        exp.copy_from_slice(&raw[NONCE_LEN..NONCE_LEN + 8]);
        let expires_at = u64::from_be_bytes(exp);
        if expires_at < now_ms {
            return Err(ChallengeRejection::Expired);
        }
        Ok(OpenedChallenge {
            nonce: hex(&raw[..NONCE_LEN]),
            expires_at,
        })
    }
}

/// A device-bound session (DBSC) operation that did not succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbscError {
    /// The proof was refused.
    #[error("device-bound proof refused: {0}")]
    Proof(#[from] ProofRejection),
    /// The proof's `jti` is not an outstanding challenge of this session.
    #[error("device-bound challenge refused: {0}")]
    Challenge(#[from] ChallengeRejection),
    /// The proof is fine but no challenge was presented yet: answer with this one.
    #[error("a device-bound challenge is needed")]
    NeedsChallenge {
        /// The challenge to send (`Secure-Session-Challenge`).
        challenge: String,
        /// The DBSC session identifier it is for.
        dbsc_session_id: String,
    },
    /// The session has no bound key (a DBSC refresh of a session that never registered).
    #[error("the session is not device-bound")]
    NotBound,
    /// The session is bound to another key already.
    #[error("the session is bound to another device key")]
    AlreadyBound,
    /// The session (or guest binding) is gone or expired.
    #[error("the session does not exist")]
    SessionGone,
    /// The rotation after a valid proof failed (theft, unauthorised, …).
    #[error(transparent)]
    Session(#[from] SessionError),
}

impl From<EngineError> for DbscError {
    fn from(e: EngineError) -> Self {
        DbscError::Session(SessionError::Engine(e))
    }
}

impl From<StoreError> for DbscError {
    fn from(e: StoreError) -> Self {
        DbscError::Session(SessionError::store(e))
    }
}
