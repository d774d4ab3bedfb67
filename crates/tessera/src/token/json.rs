//! Strict JSON objects: a member name may appear once. serde_json's own `Map` keeps the last of
//! duplicate members silently; a token whose checking parser and consuming parser disagree on
//! which `alg`/`sub`/`exp` counts is the attack (JWT-24), so every object we read from a token
//! goes through [`UniqueMap`].

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// A JSON object whose member names were unique in the input.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UniqueMap(pub Map<String, Value>);

impl<'de> Deserialize<'de> for UniqueMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = UniqueMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UniqueMap, A::Error> {
                let mut out = Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    let value: Value = map.next_value()?;
                    if out.insert(key, value).is_some() {
                        return Err(de::Error::custom("duplicate member name"));
                    }
                }
                Ok(UniqueMap(out))
            }
        }
        deserializer.deserialize_map(V)
    }
}

/// Parses `bytes` as one JSON object with unique member names.
pub fn parse_unique_object(bytes: &[u8]) -> Option<Map<String, Value>> {
    serde_json::from_slice::<UniqueMap>(bytes).ok().map(|m| m.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_24_duplicate_members_are_rejected() {
        assert!(parse_unique_object(br#"{"a":1,"b":2}"#).is_some());
        assert!(parse_unique_object(br#"{"a":1,"a":2}"#).is_none());
        assert!(
            parse_unique_object(br#"{"a":1,"\u0061":2}"#).is_none(),
            "escaped duplicate"
        );
        assert!(parse_unique_object(br#"[1]"#).is_none(), "not an object");
        assert!(
            parse_unique_object(b"{\"a\":1} x").is_none(),
            "trailing garbage"
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse_unique_object(deep.as_bytes()).is_none());
    }
}
