//! Claim validators: checks on the access-token payload that answer 403 with the protocol's
//! `claimValidationErrors` body when they fail.

use serde::Serialize;
use serde_json::{Map, Value};

/// One failed validation, as sent to the browser.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClaimError {
    /// The validator id.
    pub id: String,
    /// Why it failed; left out of the body when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Value>,
}

/// A check on the access-token payload.
///
/// ```
/// use serde_json::{json, Map, Value};
/// use tessera_axum::ClaimValidator;
///
/// struct IsAdmin;
/// impl ClaimValidator for IsAdmin {
///     fn id(&self) -> &str { "is-admin" }
///     fn validate(&self, payload: &Map<String, Value>) -> Result<(), Option<Value>> {
///         match payload.get("role") {
///             Some(r) if r == "admin" => Ok(()),
///             other => Err(Some(json!({"message": "wrong value", "expectedValue": "admin",
///                                      "actualValue": other}))),
///         }
///     }
/// }
/// ```
pub trait ClaimValidator: Send + Sync + 'static {
    /// Identifies the validator in error bodies.
    fn id(&self) -> &str;
    /// `Ok` when the payload passes; `Err(reason)` otherwise.
    fn validate(&self, payload: &Map<String, Value>) -> Result<(), Option<Value>>;
}

/// Runs validators; returns every failure.
pub(crate) fn run(
    validators: &[std::sync::Arc<dyn ClaimValidator>],
    payload: &Map<String, Value>,
) -> Vec<ClaimError> {
    validators
        .iter()
        .filter_map(|v| {
            v.validate(payload).err().map(|reason| ClaimError {
                id: v.id().to_owned(),
                reason,
            })
        })
        .collect()
}
