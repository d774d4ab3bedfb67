//! The access-token claim set (SuperTokens v5 format) and its strict parser.
//!
//! Protected claims are typed fields; every other top-level member is a custom claim and is
//! kept in [`AccessTokenClaims::user_claims`]. A protected claim of the wrong JSON type is a
//! rejection, never "absent" (JWT-18).

use crate::jose::{once, MemberName};
use crate::protocol::{PROTECTED_CLAIMS, SIGN_IN_TIME_CLAIM};
use crate::token::json::UniqueMap;
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde::Serialize;
use serde_json::{Map, Value};
use std::fmt;

/// The anti-CSRF check: the token's claim and the request's value are both present and equal
/// (compared in constant time).
///
/// ```
/// use tessera::anti_csrf_matches;
/// assert!(anti_csrf_matches(Some("a"), Some("a")));
/// assert!(!anti_csrf_matches(Some("a"), None));
/// assert!(!anti_csrf_matches(None, None));
/// ```
pub fn anti_csrf_matches(claim: Option<&str>, given: Option<&str>) -> bool {
    match (claim, given) {
        (Some(expected), Some(given)) => {
            aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), given.as_bytes())
                .is_ok()
        }
        _ => false,
    }
}

/// Keeps the session's `anonymousId` (A8) across a payload replacement: a new payload may
/// repeat the current value (SDKs send the whole payload back) but never change or add one;
/// the current value is always carried over.
pub fn carry_anonymous_id(
    new_payload: &mut Map<String, Value>,
    current: Option<&Value>,
) -> Result<(), crate::error::InputError> {
    use crate::protocol::ANONYMOUS_ID_CLAIM;
    match (new_payload.get(ANONYMOUS_ID_CLAIM), current) {
        (Some(given), Some(current)) if given == current => {}
        (Some(_), _) => return Err(crate::error::InputError::ProtectedClaim),
        (None, Some(current)) => {
            new_payload.insert(ANONYMOUS_ID_CLAIM.into(), current.clone());
        }
        (None, None) => {}
    }
    Ok(())
}

/// Removes the sign-in time from an app-supplied payload. It is not refused like the other
/// protected claims because SDKs send a session's whole payload back when they merge into it
/// (supertokens-node `mergeIntoAccessTokenPayload`); the engine's value always wins.
///
/// ```
/// let mut p = serde_json::json!({"auth_time": 1, "role": "a"}).as_object().unwrap().clone();
/// tessera::strip_sign_in_time(&mut p);
/// assert_eq!(p.len(), 1);
/// ```
pub fn strip_sign_in_time(payload: &mut Map<String, Value>) {
    payload.remove(SIGN_IN_TIME_CLAIM);
}

/// True when `payload` names a protected claim.
pub fn contains_protected_claim(payload: &Map<String, Value>) -> bool {
    PROTECTED_CLAIMS.iter().any(|c| payload.contains_key(*c))
}

/// The decoded payload of a v5 access token.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccessTokenClaims {
    /// Primary user id.
    pub sub: String,
    /// Expiry, epoch seconds.
    pub exp: u64,
    /// Issue time, epoch seconds.
    pub iat: u64,
    /// The session this token belongs to.
    #[serde(rename = "sessionHandle")]
    pub session_handle: String,
    /// `sha256_hex` of this token's refresh token.
    #[serde(rename = "refreshTokenHash1")]
    pub refresh_token_hash1: String,
    /// `sha256_hex` of the parent refresh token: set only on the first token after a refresh.
    #[serde(rename = "parentRefreshTokenHash1")]
    pub parent_refresh_token_hash1: Option<String>,
    /// The anti-CSRF token when anti-CSRF is enabled for the session.
    #[serde(rename = "antiCsrfToken")]
    pub anti_csrf_token: Option<String>,
    /// Tenant id.
    #[serde(rename = "tId")]
    pub tenant_id: String,
    /// Recipe user id.
    pub rsub: String,
    /// When the user last signed in or re-authenticated, epoch seconds (OIDC `auth_time`;
    /// issue 15). Kept across refresh and regenerate; an app payload cannot set it (see
    /// [`strip_sign_in_time`]). Absent in tokens from before it was carried.
    #[serde(rename = "auth_time", skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<u64>,
    /// Custom claims, merged at the top level.
    #[serde(flatten)]
    pub user_claims: Map<String, Value>,
}

impl<'de> Deserialize<'de> for AccessTokenClaims {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ClaimsVisitor)
    }
}

struct ClaimsVisitor;

impl<'de> Visitor<'de> for ClaimsVisitor {
    type Value = AccessTokenClaims;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an access-token claim set")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AccessTokenClaims, A::Error> {
        let (mut sub, mut exp, mut iat, mut handle, mut rth1) = (None, None, None, None, None);
        let (mut prth1, mut csrf, mut tid, mut rsub) = (None, None, None, None);
        let mut auth_time = None;
        let mut user = UniqueMap::default();
        while let Some(MemberName(key)) = map.next_key::<MemberName<'de>>()? {
            match key.as_ref() {
                "sub" => once(&mut sub, map.next_value::<String>()?, "sub")?,
                "exp" => once(&mut exp, map.next_value::<u64>()?, "exp")?,
                "iat" => once(&mut iat, map.next_value::<u64>()?, "iat")?,
                "sessionHandle" => once(&mut handle, map.next_value::<String>()?, "sessionHandle")?,
                "refreshTokenHash1" => {
                    once(&mut rth1, map.next_value::<String>()?, "refreshTokenHash1")?
                }
                "parentRefreshTokenHash1" => once(
                    &mut prth1,
                    map.next_value::<Option<String>>()?,
                    "parentRefreshTokenHash1",
                )?,
                "antiCsrfToken" => once(
                    &mut csrf,
                    map.next_value::<Option<String>>()?,
                    "antiCsrfToken",
                )?,
                "tId" => once(&mut tid, map.next_value::<String>()?, "tId")?,
                "rsub" => once(&mut rsub, map.next_value::<String>()?, "rsub")?,
                SIGN_IN_TIME_CLAIM => {
                    once(&mut auth_time, map.next_value::<u64>()?, SIGN_IN_TIME_CLAIM)?
                }
                _ => {
                    let value: Value = map.next_value()?;
                    if user.0.insert(key.into_owned(), value).is_some() {
                        return Err(de::Error::custom("duplicate claim"));
                    }
                }
            }
        }
        let missing = |n: &'static str| de::Error::missing_field(n);
        Ok(AccessTokenClaims {
            sub: sub.ok_or_else(|| missing("sub"))?,
            exp: exp.ok_or_else(|| missing("exp"))?,
            iat: iat.ok_or_else(|| missing("iat"))?,
            session_handle: handle.ok_or_else(|| missing("sessionHandle"))?,
            refresh_token_hash1: rth1.ok_or_else(|| missing("refreshTokenHash1"))?,
            // Always present in a v5 token, possibly null (core-api §5.2).
            parent_refresh_token_hash1: prth1.ok_or_else(|| missing("parentRefreshTokenHash1"))?,
            anti_csrf_token: csrf.ok_or_else(|| missing("antiCsrfToken"))?,
            tenant_id: tid.ok_or_else(|| missing("tId"))?,
            rsub: rsub.ok_or_else(|| missing("rsub"))?,
            auth_time,
            user_claims: user.0,
        })
    }
}

/// The JOSE header of an access token. Exactly the members we issue; anything else
/// (`jku`, `jwk`, `x5u`, `crit`, `zip`, …) is a rejection (JWT-10..13). It must be a JSON
/// object (RFC 7515 §4): serde's derived impl alone would also take a JSON array of the four
/// values (`["RS256","JWT","d-1","5"]`), found by the `at_header_claims` fuzzer (ROB-01).
#[derive(Debug)]
pub(crate) struct AccessTokenHeader<'a> {
    pub alg: std::borrow::Cow<'a, str>,
    pub typ: std::borrow::Cow<'a, str>,
    pub kid: std::borrow::Cow<'a, str>,
    pub version: std::borrow::Cow<'a, str>,
}

/// The members of [`AccessTokenHeader`]; only ever read from a JSON object.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderMembers<'a> {
    #[serde(borrow)]
    alg: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    typ: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    kid: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    version: std::borrow::Cow<'a, str>,
}

impl<'de: 'a, 'a> Deserialize<'de> for AccessTokenHeader<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectOnly<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for ObjectOnly<'a> {
            type Value = AccessTokenHeader<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JOSE header object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let m = HeaderMembers::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(AccessTokenHeader {
                    alg: m.alg,
                    typ: m.typ,
                    kid: m.kid,
                    version: m.version,
                })
            }
        }
        deserializer.deserialize_map(ObjectOnly(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Value {
        serde_json::json!({
            "sub": "u", "exp": 10, "iat": 1, "sessionHandle": "h", "refreshTokenHash1": "r",
            "parentRefreshTokenHash1": null, "antiCsrfToken": null, "tId": "public", "rsub": "u",
            "key": "value"
        })
    }

    #[test]
    fn v5_claims_round_trip_with_nulls_serialised() {
        let claims: AccessTokenClaims = serde_json::from_value(base()).unwrap();
        let text = serde_json::to_value(&claims).unwrap();
        assert_eq!(text, base());
        assert_eq!(
            text.as_object().unwrap().len(),
            10,
            "V5 with one custom claim has 10"
        );
    }

    #[test]
    fn jwt_18_wrongly_typed_time_claims_are_rejections() {
        for bad in [
            serde_json::json!("10"),
            serde_json::json!(true),
            serde_json::json!(null),
            serde_json::json!([10]),
            serde_json::json!({"a": 1}),
            serde_json::json!(-5),
            serde_json::json!(10.5),
        ] {
            let mut v = base();
            v["exp"] = bad.clone();
            assert!(
                serde_json::from_value::<AccessTokenClaims>(v).is_err(),
                "exp={bad}"
            );
        }
        let mut v = base();
        v.as_object_mut().unwrap().remove("exp");
        assert!(
            serde_json::from_value::<AccessTokenClaims>(v).is_err(),
            "exp missing"
        );
        let text = base().to_string().replace("\"exp\":10", "\"exp\":1e400");
        assert!(
            serde_json::from_str::<AccessTokenClaims>(&text).is_err(),
            "1e400"
        );
        let text = base()
            .to_string()
            .replace("\"exp\":10", "\"exp\":18446744073709551616");
        assert!(
            serde_json::from_str::<AccessTokenClaims>(&text).is_err(),
            "2^64"
        );
    }

    #[test]
    fn jwt_24_duplicate_protected_or_custom_claims_are_rejected() {
        let text = base().to_string();
        let dup_sub = text.replacen('{', "{\"sub\":\"admin\",", 1);
        assert!(serde_json::from_str::<AccessTokenClaims>(&dup_sub).is_err());
        let dup_custom = text.replacen('{', "{\"key\":\"x\",", 1);
        assert!(serde_json::from_str::<AccessTokenClaims>(&dup_custom).is_err());
    }

    #[test]
    fn wrong_claim_types_are_rejected() {
        for (name, bad) in [
            ("sub", serde_json::json!(5)),
            ("sessionHandle", serde_json::json!(null)),
            ("tId", serde_json::json!(["public"])),
            ("rsub", serde_json::json!({})),
            ("parentRefreshTokenHash1", serde_json::json!(1)),
            ("antiCsrfToken", serde_json::json!(false)),
        ] {
            let mut v = base();
            v[name] = bad;
            assert!(
                serde_json::from_value::<AccessTokenClaims>(v).is_err(),
                "{name}"
            );
        }
    }

    #[test]
    fn rob01_header_must_be_a_json_object() {
        fn parse(t: &str) -> Result<String, serde_json::Error> {
            serde_json::from_str::<AccessTokenHeader<'_>>(t).map(|h| h.kid.into_owned())
        }
        let ok = parse(r#"{"alg":"RS256","typ":"JWT","kid":"d-1","version":"5"}"#);
        assert_eq!(ok.unwrap(), "d-1");
        // Found by the at_header_claims fuzzer: the derived impl took the array form.
        assert!(parse(r#"["RS256","JWT","d-1","5"]"#).is_err());
        assert!(
            parse(r#"{"alg":"RS256","alg":"RS256","typ":"JWT","kid":"d","version":"5"}"#).is_err()
        );
        assert!(parse(r#"{"alg":"RS256","typ":"JWT","kid":"d","version":"5","jku":"x"}"#).is_err());
    }

    #[test]
    fn protected_claims_are_detected() {
        let mut m = Map::new();
        m.insert("role".into(), Value::from("admin"));
        assert!(!contains_protected_claim(&m));
        m.insert("rsub".into(), Value::from("x"));
        assert!(contains_protected_claim(&m));
    }
}
