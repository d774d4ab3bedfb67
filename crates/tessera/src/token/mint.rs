//! Minting access tokens: header and claims serialised once, signed with a key parsed once.

use super::access::AccessTokenClaims;
use super::verify::MAX_ACCESS_TOKEN_LEN;
use crate::encoding::b64url_encode;
use crate::error::{EngineError, InputError, SessionError};
use crate::jose::header_json;
use crate::keys::rsa_key::SigningKey;

/// Serialises and signs `claims` with `key`. Refuses a token longer than
/// [`MAX_ACCESS_TOKEN_LEN`], which verification would reject.
pub fn encode_access_token(
    claims: &AccessTokenClaims,
    key: &SigningKey,
) -> Result<String, SessionError> {
    let header = b64url_encode(header_json(key.kid()).as_bytes());
    let payload = serde_json::to_vec(claims)
        .map_err(|_| EngineError::Crypto("claim serialisation failed"))?;
    let mut token = String::with_capacity(header.len() + payload.len() * 4 / 3 + 360);
    token.push_str(&header);
    token.push('.');
    token.push_str(&b64url_encode(&payload));
    let signature = key.sign_rs256(token.as_bytes())?;
    token.push('.');
    token.push_str(&b64url_encode(&signature));
    if token.len() > MAX_ACCESS_TOKEN_LEN {
        return Err(SessionError::InvalidInput(InputError::PayloadTooLarge(
            token.len(),
            MAX_ACCESS_TOKEN_LEN,
        )));
    }
    Ok(token)
}
