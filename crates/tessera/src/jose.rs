//! JOSE pieces the token and key modules share, at the bottom of the engine so that `keys`
//! never imports `token`: the access-token header this engine mints, and the strict JSON
//! reading every token parser uses (member names without allocation, duplicates refused).

use crate::protocol::ACCESS_TOKEN_VERSION;
use serde::de::{self, Deserialize, Deserializer, Visitor};
use std::fmt;

/// Serialises the header for `kid`.
pub(crate) fn header_json(kid: &str) -> String {
    serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": kid, "version": ACCESS_TOKEN_VERSION})
        .to_string()
}

/// True when the first non-whitespace byte opens a JSON object.
pub(crate) fn starts_json_object(json: &[u8]) -> bool {
    json.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// A member name, borrowed from the input when it has no escapes (the hot path allocates
/// nothing for the names of protected claims).
pub(crate) struct MemberName<'de>(pub(crate) std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for MemberName<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MemberName<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(MemberName(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MemberName(std::borrow::Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(MemberName(std::borrow::Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// Stores `value` into `slot`, refusing a second occurrence of the same member.
pub(crate) fn once<T, E: de::Error>(
    slot: &mut Option<T>,
    value: T,
    name: &'static str,
) -> Result<(), E> {
    if slot.replace(value).is_some() {
        return Err(E::custom(format_args!("duplicate claim {name}")));
    }
    Ok(())
}
