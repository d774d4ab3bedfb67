//! Signing arbitrary JWTs with an app's keys (the core's `POST /recipe/jwt`, JWT recipe).

use super::SessionEngine;
use crate::encoding::b64url_encode;
use crate::error::{EngineError, SessionError};
use crate::keys::rsa_key::KeyKind;
use serde_json::{Map, Value};

impl SessionEngine {
    /// Signs `payload` as an RS256 JWT with header `{alg, typ:"JWT", kid}` (no `version`).
    /// The claims are the payload plus `iat` and `exp` (epoch seconds, `exp = iat +
    /// validity_s`) and `iss = jwks_domain` unless the payload names an `iss`. Signs with the
    /// static key, or with the current dynamic key when `use_static_key` is false.
    ///
    /// ```no_run
    /// # async fn demo(engine: tessera::SessionEngine) -> Result<(), tessera::SessionError> {
    /// let jwt = engine
    ///     .create_jwt(serde_json::Map::new(), 3600, "https://api.example.com", true)
    ///     .await?;
    /// assert_eq!(jwt.split('.').count(), 3);
    /// # Ok(()) }
    /// ```
    pub async fn create_jwt(
        &self,
        payload: Map<String, Value>,
        validity_s: u64,
        jwks_domain: &str,
        use_static_key: bool,
    ) -> Result<String, SessionError> {
        let kind = if use_static_key {
            KeyKind::Static
        } else {
            KeyKind::Dynamic
        };
        let key = self.signing_key(kind).await?;
        let iat = self.now() / 1000;
        let mut claims = payload;
        claims.insert("iat".into(), Value::from(iat));
        claims.insert("exp".into(), Value::from(iat.saturating_add(validity_s)));
        claims
            .entry("iss")
            .or_insert_with(|| Value::String(jwks_domain.to_owned()));
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": key.kid()});
        let body = serde_json::to_vec(&Value::Object(claims))
            .map_err(|_| EngineError::Crypto("claim serialisation failed"))?;
        let mut token = b64url_encode(header.to_string().as_bytes());
        token.push('.');
        token.push_str(&b64url_encode(&body));
        let signature = key.sign_rs256(token.as_bytes())?;
        token.push('.');
        token.push_str(&b64url_encode(&signature));
        Ok(token)
    }
}
