//! The hot path: from an access-token string to verified claims, with no I/O and no lock.
//!
//! Order of checks (each step runs only if the previous passed):
//! 1. length bound (before any decoding, JWT-27);
//! 2. exactly three segments of strict base64url (JWT-25, JWT-26);
//! 3. header: exactly `{alg, typ, kid, version}`, `alg` = `RS256`, `typ` = `JWT`,
//!    `version` = `5`, unique members (JWT-02, 06, 07, 10–13, 24);
//! 4. `kid` looked up in our own key set, never anywhere else (JWT-08, 09, 20);
//! 5. the RS256 signature over `header.payload` (JWT-03, 04, 14, 17);
//! 6. only then the claims: strictly typed, unique, required present (JWT-18, 24);
//! 7. time: `exp` passed → expired; `iat` in the future, a lifetime longer than allowed, or an
//!    `nbf` (if a payload carries one) that is not an integer at most `now + leeway` →
//!    invalid (JWT-19).

use super::access::{AccessTokenClaims, AccessTokenHeader};
use crate::encoding::b64url_decode;
use crate::error::TryRefreshReason;
use crate::keys::rsa_key::KeyLookup;
use crate::protocol::{ACCESS_TOKEN_VERSION, IAT_LEEWAY_S};

/// Longest access token accepted, in bytes. Longer input is refused before any decoding.
pub const MAX_ACCESS_TOKEN_LEN: usize = 8 * 1024;

/// What verification needs besides the token and the keys.
#[derive(Debug, Clone, Copy)]
pub struct VerifyPolicy {
    /// The current time, epoch ms.
    pub now_ms: u64,
    /// Longest `exp − iat` accepted, in seconds (the configured access-token validity).
    pub max_lifetime_s: u64,
    /// Skip the time checks (step 7): for regenerating a token the caller already verified,
    /// which the core allows after expiry.
    pub ignore_time: bool,
}

/// Verifies `token` against `keys`. Every failure maps to a try-refresh reason: the client
/// cannot repair an access token, only replace it.
///
/// ```
/// # use tessera::{verify_access_token, VerifyPolicy, TryRefreshReason, KeyRing};
/// let keys = KeyRing::default();
/// let policy = VerifyPolicy { now_ms: 0, max_lifetime_s: 3600, ignore_time: false };
/// assert_eq!(
///     verify_access_token("not.a.token", &keys, &policy).unwrap_err(),
///     TryRefreshReason::InvalidToken
/// );
/// ```
pub fn verify_access_token<K: KeyLookup + ?Sized>(
    token: &str,
    keys: &K,
    policy: &VerifyPolicy,
) -> Result<AccessTokenClaims, TryRefreshReason> {
    use TryRefreshReason::{Expired, InvalidToken, KeyNotFound};

    if token.is_empty() || token.len() > MAX_ACCESS_TOKEN_LEN {
        return Err(InvalidToken);
    }
    let bytes = token.as_bytes();
    let mut dots = memchr_dots(bytes);
    let (Some(d1), Some(d2), None) = (dots.next(), dots.next(), dots.next()) else {
        return Err(InvalidToken);
    };
    let (header_b64, payload_b64, sig_b64) = (&bytes[..d1], &bytes[d1 + 1..d2], &bytes[d2 + 1..]);

    // A header byte-identical to one we mint names its key directly; any other encoding of
    // a header is decoded and checked in full.
    let key = match keys.key_for_header(header_b64) {
        Some(key) => key,
        None => {
            let header_json = b64url_decode(header_b64).ok_or(InvalidToken)?;
            let header: AccessTokenHeader<'_> =
                serde_json::from_slice(&header_json).map_err(|_| InvalidToken)?;
            if header.alg != "RS256"
                || header.typ != "JWT"
                || header.version != ACCESS_TOKEN_VERSION
            {
                return Err(InvalidToken);
            }
            keys.verifying_key(&header.kid).ok_or(KeyNotFound)?
        }
    };
    if key.verify_until_ms() < policy.now_ms {
        return Err(KeyNotFound);
    }

    let signature = b64url_decode(sig_b64).ok_or(InvalidToken)?;
    if !key.verify_rs256(&bytes[..d2], &signature) {
        return Err(InvalidToken);
    }

    let payload_json = b64url_decode(payload_b64).ok_or(InvalidToken)?;
    let claims: AccessTokenClaims =
        serde_json::from_slice(&payload_json).map_err(|_| InvalidToken)?;

    if policy.ignore_time {
        return Ok(claims);
    }
    let now_s = policy.now_ms / 1000;
    if claims.iat > now_s.saturating_add(IAT_LEEWAY_S)
        || claims.exp < claims.iat
        || claims.exp - claims.iat > policy.max_lifetime_s
    {
        return Err(InvalidToken);
    }
    if let Some(nbf) = claims.user_claims.get("nbf") {
        if nbf
            .as_u64()
            .is_none_or(|nbf| nbf > now_s.saturating_add(IAT_LEEWAY_S))
        {
            return Err(InvalidToken);
        }
    }
    if claims.exp.saturating_mul(1000) < policy.now_ms {
        return Err(Expired);
    }
    Ok(claims)
}

/// Positions of `.` in the token.
fn memchr_dots(bytes: &[u8]) -> impl Iterator<Item = usize> + '_ {
    bytes
        .iter()
        .enumerate()
        .filter_map(|(i, b)| (*b == b'.').then_some(i))
}
