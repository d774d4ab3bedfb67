//! The anonymous token (AnT): a JWT that stands for a visitor who has not signed in. It costs no
//! database row; everything it says is in the token.
//!
//! Header: exactly `{"alg":"EdDSA"|"RS256","typ":"anon+jwt","kid":"a-…"}`. Claims:
//! `anonymousId`, `tokenType: "anonymous"`, `iat`, `exp`, `tId`, optionally `antiCsrfToken` and
//! `iss`, and a small app payload at the top level. It never carries `sub`, a session handle or
//! refresh lineage, and the access-token verifier never accepts it (different `typ`, no
//! `version`, a `kid` outside the access-token key set); this verifier never accepts an access
//! token for the same reasons, the other way round (ANON-01..03).
//!
//! Order of checks: length → three strict base64url segments → exact header → `kid` in the
//! anonymous key set and `alg` equal to that key's algorithm → signature → strictly typed,
//! unique claims → time (`iat` not in the future beyond the leeway, `exp − iat` within the
//! configured lifetime, `exp` not passed).

use super::json::UniqueMap;
use crate::encoding::{b64url_decode, b64url_encode};
use crate::error::EngineError;
use crate::jose::{once, starts_json_object, MemberName};
use crate::keys::anonymous_key::{AnonymousSigningKey, AnonymousVerifyingKey};
use crate::protocol::{ANONYMOUS_ID_CLAIM, IAT_LEEWAY_S};
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// The header `typ` of every anonymous token (explicit typing, RFC 8725 §3.11).
pub const ANONYMOUS_TOKEN_TYP: &str = "anon+jwt";
/// The `tokenType` claim of every anonymous token.
pub const ANONYMOUS_TOKEN_TYPE: &str = "anonymous";
/// Longest anonymous token accepted or minted, in bytes (the cookie stays under 4 KiB).
pub const MAX_ANONYMOUS_TOKEN_LEN: usize = 3 * 1024;
/// Largest app payload, serialised, in bytes (ANON-14).
pub const MAX_ANONYMOUS_PAYLOAD_LEN: usize = 1024;

/// Member names the app cannot use in an anonymous payload: the token's own claims, every
/// access-token protected claim, and registered JWT claims with a meaning.
pub const RESERVED_ANONYMOUS_CLAIMS: &[&str] = &[
    "anonymousId",
    "tokenType",
    "iat",
    "exp",
    "nbf",
    "iss",
    "aud",
    "jti",
    "tId",
    "antiCsrfToken",
    "sub",
    "rsub",
    "sessionHandle",
    "refreshTokenHash1",
    "parentRefreshTokenHash1",
];

/// What an anonymous token says.
#[derive(Debug, Clone, PartialEq)]
pub struct AnonymousClaims {
    /// The permanent visitor id.
    pub anonymous_id: String,
    /// Issue time, epoch seconds.
    pub iat: u64,
    /// Expiry, epoch seconds.
    pub exp: u64,
    /// Tenant id.
    pub tenant_id: String,
    /// The anti-CSRF token (VIA_TOKEN mode).
    pub anti_csrf_token: Option<String>,
    /// Issuer, when configured.
    pub iss: Option<String>,
    /// The app's small payload (top-level members).
    pub payload: Map<String, Value>,
}

impl AnonymousClaims {
    /// The claims as the JSON object that is signed (and shown to the front end).
    pub fn to_json(&self) -> Map<String, Value> {
        let mut out = Map::with_capacity(self.payload.len() + 7);
        out.insert(ANONYMOUS_ID_CLAIM.into(), self.anonymous_id.clone().into());
        out.insert("tokenType".into(), ANONYMOUS_TOKEN_TYPE.into());
        out.insert("iat".into(), self.iat.into());
        out.insert("exp".into(), self.exp.into());
        out.insert("tId".into(), self.tenant_id.clone().into());
        if let Some(csrf) = &self.anti_csrf_token {
            out.insert("antiCsrfToken".into(), csrf.clone().into());
        }
        if let Some(iss) = &self.iss {
            out.insert("iss".into(), iss.clone().into());
        }
        for (k, v) in &self.payload {
            out.insert(k.clone(), v.clone());
        }
        out
    }
}

/// Why an anonymous token was not accepted. The middleware never turns any of these into an
/// error response: it mints a fresh token instead (A10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AnonymousRejection {
    /// Not a well-formed anonymous token (length, encoding, header, claim schema).
    Malformed,
    /// The `kid` is not one of our anonymous keys (retired, or never ours).
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// Well-formed and genuine, but its time claims are outside the policy.
    BadTime,
    /// Genuine and well-formed, but past `exp`.
    Expired,
}

/// True when `id` looks like an anonymousId we mint: 22–64 URL-safe characters.
pub fn plausible_anonymous_id(id: &str) -> bool {
    (22..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A fresh anonymousId: 128 bits from the OS RNG, base64url (22 characters). Never derived
/// from IP, time or user agent (ANON-10).
pub fn new_anonymous_id() -> Result<String, EngineError> {
    Ok(b64url_encode(&crate::random::bytes::<16>()?))
}

/// True when `payload` names a reserved member.
pub fn names_reserved_claim(payload: &Map<String, Value>) -> bool {
    RESERVED_ANONYMOUS_CLAIMS
        .iter()
        .any(|c| payload.contains_key(*c))
}

/// The base64url header for `key` (minted once per key).
pub fn encoded_header(key: &AnonymousSigningKey) -> String {
    let header = serde_json::json!({
        "alg": key.algorithm().jose_name(),
        "typ": ANONYMOUS_TOKEN_TYP,
        "kid": key.kid(),
    });
    b64url_encode(header.to_string().as_bytes())
}

/// Signs `claims` with `key`, whose encoded header is `header_b64`.
pub fn encode_anonymous_token(
    claims: &AnonymousClaims,
    key: &AnonymousSigningKey,
    header_b64: &str,
) -> Result<String, EngineError> {
    let payload = serde_json::to_vec(&claims.to_json())
        .map_err(|_| EngineError::Crypto("claim serialisation failed"))?;
    let mut token = String::with_capacity(header_b64.len() + payload.len() * 4 / 3 + 100);
    token.push_str(header_b64);
    token.push('.');
    token.push_str(&b64url_encode(&payload));
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    token.push_str(&b64url_encode(&signature));
    if token.len() > MAX_ANONYMOUS_TOKEN_LEN {
        return Err(EngineError::Config(format!(
            "anonymous token would be {} bytes; the limit is {MAX_ANONYMOUS_TOKEN_LEN}",
            token.len()
        )));
    }
    Ok(token)
}

/// Finds anonymous verifying keys by `kid`.
pub trait AnonymousKeyLookup {
    /// The key with this `kid`, if it is one of ours.
    fn anonymous_key(&self, kid: &str) -> Option<&AnonymousVerifyingKey>;
}

/// Time policy for [`verify_anonymous_token`].
#[derive(Debug, Clone, Copy)]
pub struct AnonymousPolicy {
    /// Now, epoch ms.
    pub now_ms: u64,
    /// Longest `exp − iat` accepted, in seconds.
    pub max_lifetime_s: u64,
    /// Skip the time checks: only to read the anonymousId of a genuine but expired token, so
    /// the visitor keeps it (A20). Never to accept a token.
    pub ignore_time: bool,
}

/// Verifies an anonymous token; returns its claims and the `kid` that signed it.
///
/// ```
/// use tessera::fuzzing::{verify_anonymous_token, AnonymousKeyLookup, AnonymousPolicy};
/// use tessera::AnonymousRejection;
/// struct NoKeys;
/// impl AnonymousKeyLookup for NoKeys {
///     fn anonymous_key(&self, _: &str) -> Option<&tessera::AnonymousVerifyingKey> { None }
/// }
/// let policy = AnonymousPolicy { now_ms: 0, max_lifetime_s: 60, ignore_time: false };
/// assert_eq!(verify_anonymous_token("a.b.c", &NoKeys, &policy).unwrap_err(), AnonymousRejection::Malformed);
/// ```
pub fn verify_anonymous_token<'k, K: AnonymousKeyLookup + ?Sized>(
    token: &str,
    keys: &'k K,
    policy: &AnonymousPolicy,
) -> Result<(AnonymousClaims, &'k AnonymousVerifyingKey), AnonymousRejection> {
    use AnonymousRejection::{BadSignature, BadTime, Expired, Malformed, UnknownKey};
    if token.is_empty() || token.len() > MAX_ANONYMOUS_TOKEN_LEN {
        return Err(Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(sig_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Malformed);
    };
    let header_json = b64url_decode(header_b64.as_bytes()).ok_or(Malformed)?;
    // A JOSE header is a JSON object; serde's derived impl would also take an array of the
    // three values (ROB-01, as found for the access-token header).
    if !starts_json_object(&header_json) {
        return Err(Malformed);
    }
    let header: AnonymousHeader<'_> =
        serde_json::from_slice(&header_json).map_err(|_| Malformed)?;
    if header.typ != ANONYMOUS_TOKEN_TYP {
        return Err(Malformed);
    }
    let key = keys.anonymous_key(&header.kid).ok_or(UnknownKey)?;
    if header.alg != key.algorithm().jose_name() {
        return Err(Malformed);
    }
    let signature = b64url_decode(sig_b64.as_bytes()).ok_or(Malformed)?;
    let signed_len = header_b64.len() + 1 + payload_b64.len();
    if !key.verify(&token.as_bytes()[..signed_len], &signature) {
        return Err(BadSignature);
    }
    let payload_json = b64url_decode(payload_b64.as_bytes()).ok_or(Malformed)?;
    let claims: AnonymousClaims = serde_json::from_slice(&payload_json).map_err(|_| Malformed)?;
    if policy.ignore_time {
        return Ok((claims, key));
    }
    let now_s = policy.now_ms / 1000;
    if claims.iat > now_s.saturating_add(IAT_LEEWAY_S)
        || claims.exp < claims.iat
        || claims.exp - claims.iat > policy.max_lifetime_s
    {
        return Err(BadTime);
    }
    if claims.exp.saturating_mul(1000) < policy.now_ms {
        return Err(Expired);
    }
    Ok((claims, key))
}

/// The header of an anonymous token: exactly these members (no `version`, `jku`, `jwk`, …).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AnonymousHeader<'a> {
    #[serde(borrow)]
    alg: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    typ: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    kid: std::borrow::Cow<'a, str>,
}

impl<'de> Deserialize<'de> for AnonymousClaims {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ClaimsVisitor)
    }
}

struct ClaimsVisitor;

impl<'de> Visitor<'de> for ClaimsVisitor {
    type Value = AnonymousClaims;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an anonymous-token claim set")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnonymousClaims, A::Error> {
        let (mut id, mut typ, mut iat, mut exp, mut tid) = (None, None, None, None, None);
        let (mut csrf, mut iss) = (None, None);
        let mut payload = UniqueMap::default();
        while let Some(MemberName(key)) = map.next_key::<MemberName<'de>>()? {
            match key.as_ref() {
                "anonymousId" => once(&mut id, map.next_value::<String>()?, "anonymousId")?,
                "tokenType" => once(&mut typ, map.next_value::<String>()?, "tokenType")?,
                "iat" => once(&mut iat, map.next_value::<u64>()?, "iat")?,
                "exp" => once(&mut exp, map.next_value::<u64>()?, "exp")?,
                "tId" => once(&mut tid, map.next_value::<String>()?, "tId")?,
                "antiCsrfToken" => once(&mut csrf, map.next_value::<String>()?, "antiCsrfToken")?,
                "iss" => once(&mut iss, map.next_value::<String>()?, "iss")?,
                name if RESERVED_ANONYMOUS_CLAIMS.contains(&name) => {
                    // An access-token claim (sub, sessionHandle, …) or nbf/aud/jti: never
                    // part of an anonymous token (ANON-02).
                    return Err(de::Error::custom("claim not allowed in an anonymous token"));
                }
                _ => {
                    let value: Value = map.next_value()?;
                    if payload.0.insert(key.into_owned(), value).is_some() {
                        return Err(de::Error::custom("duplicate claim"));
                    }
                }
            }
        }
        let missing = |n: &'static str| de::Error::missing_field(n);
        let anonymous_id = id.ok_or_else(|| missing("anonymousId"))?;
        if !plausible_anonymous_id(&anonymous_id) {
            return Err(de::Error::custom("anonymousId format"));
        }
        if typ.as_deref() != Some(ANONYMOUS_TOKEN_TYPE) {
            return Err(de::Error::custom("tokenType must be anonymous"));
        }
        Ok(AnonymousClaims {
            anonymous_id,
            iat: iat.ok_or_else(|| missing("iat"))?,
            exp: exp.ok_or_else(|| missing("exp"))?,
            tenant_id: tid.ok_or_else(|| missing("tId"))?,
            anti_csrf_token: csrf,
            iss,
            payload: payload.0,
        })
    }
}
