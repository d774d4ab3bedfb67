//! The core's JSON input rules (its `InputParser`): a body must be a JSON object; required
//! fields must be present with the right JSON type; optional fields may be absent, but an
//! explicit `null` is refused like a wrong type. Every refusal is a 400 with the core's text.

use crate::error::ApiError;
use serde_json::{Map, Value};

/// A parsed JSON request body.
#[derive(Debug)]
pub struct JsonInput(Map<String, Value>);

fn invalid(field: &str) -> ApiError {
    ApiError::BadRequest(format!("Field name '{field}' is invalid in JSON input"))
}

impl JsonInput {
    /// Parses a body; anything but a JSON object is `Invalid Json Input`.
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            _ => Err(ApiError::BadRequest("Invalid Json Input".into())),
        }
    }

    /// True when the field is present (even as `null`).
    pub fn has(&self, field: &str) -> bool {
        self.0.contains_key(field)
    }

    /// A required string.
    pub fn string(&self, field: &str) -> Result<String, ApiError> {
        self.opt_string(field)?.ok_or_else(|| invalid(field))
    }

    /// An optional string: absent is `None`; `null` or another type is refused.
    pub fn opt_string(&self, field: &str) -> Result<Option<String>, ApiError> {
        match self.0.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(field)),
        }
    }

    /// A required boolean (a JSON `true`/`false`, never a string).
    pub fn bool(&self, field: &str) -> Result<bool, ApiError> {
        self.opt_bool(field)?.ok_or_else(|| invalid(field))
    }

    /// An optional boolean.
    pub fn opt_bool(&self, field: &str) -> Result<Option<bool>, ApiError> {
        match self.0.get(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(invalid(field)),
        }
    }

    /// A required JSON object.
    pub fn object(&self, field: &str) -> Result<Map<String, Value>, ApiError> {
        self.opt_object(field)?.ok_or_else(|| invalid(field))
    }

    /// An optional JSON object.
    pub fn opt_object(&self, field: &str) -> Result<Option<Map<String, Value>>, ApiError> {
        match self.0.get(field) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m.clone())),
            Some(_) => Err(invalid(field)),
        }
    }

    /// A required integer: a JSON integer or a string holding one (Gson's `getAsLong`).
    pub fn long(&self, field: &str) -> Result<i64, ApiError> {
        match self.0.get(field) {
            Some(Value::Number(n)) => n.as_i64().ok_or_else(|| invalid(field)),
            Some(Value::String(s)) => s.trim().parse().map_err(|_| invalid(field)),
            _ => Err(invalid(field)),
        }
    }

    /// An optional array of strings.
    pub fn opt_string_array(&self, field: &str) -> Result<Option<Vec<String>>, ApiError> {
        match self.0.get(field) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| match i {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(invalid(field)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(invalid(field)),
        }
    }
}

/// Query parameters of a GET request.
#[derive(Debug, Default)]
pub struct QueryInput(Vec<(String, String)>);

impl QueryInput {
    /// Parses the query string of `uri` (an unparsable one reads as empty).
    pub fn from_uri(uri: &axum::http::Uri) -> Self {
        let pairs = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map(|q| q.0)
            .unwrap_or_default();
        Self(pairs)
    }

    /// An optional parameter (first occurrence).
    pub fn opt(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == field)
            .map(|(_, v)| v.as_str())
    }

    /// A required parameter: `Field name '<f>' is missing in GET request`.
    pub fn required(&self, field: &str) -> Result<&str, ApiError> {
        self.opt(field).ok_or_else(|| {
            ApiError::BadRequest(format!("Field name '{field}' is missing in GET request"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(e: ApiError) -> String {
        match e {
            ApiError::BadRequest(m) => m,
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn core_rules() {
        assert_eq!(
            msg(JsonInput::parse(b"[1]").unwrap_err()),
            "Invalid Json Input"
        );
        assert_eq!(
            msg(JsonInput::parse(b"").unwrap_err()),
            "Invalid Json Input"
        );
        let i = JsonInput::parse(br#"{"a":"x","b":null,"c":true,"d":"5","e":{}}"#).unwrap();
        assert_eq!(i.string("a").unwrap(), "x");
        assert_eq!(
            msg(i.opt_string("b").unwrap_err()),
            "Field name 'b' is invalid in JSON input"
        );
        assert!(i.opt_string("zz").unwrap().is_none());
        assert!(i.bool("c").unwrap());
        assert!(i.bool("d").is_err());
        assert_eq!(i.long("d").unwrap(), 5);
        assert!(i.object("e").unwrap().is_empty());
        assert!(i.object("a").is_err());
        assert!(i.opt_bool("b").is_err());
    }
}
