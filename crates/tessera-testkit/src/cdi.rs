//! CDI request bodies as supertokens-node sends them, and readers of replies and JWTs.

use base64::Engine as _;
use serde_json::{json, Value};

/// The body of `POST /recipe/session` for `user`.
pub fn create_body(user: &str) -> Value {
    json!({"userId": user, "userDataInJWT": {"u": user}, "userDataInDatabase": {},
           "enableAntiCsrf": false, "useDynamicSigningKey": true})
}

/// The body of `POST /recipe/session/refresh`.
pub fn refresh_body(rt: &str) -> Value {
    json!({"refreshToken": rt, "enableAntiCsrf": false, "useDynamicSigningKey": true})
}

/// The body of `POST /recipe/session/verify`.
pub fn verify_body(at: &str, check_database: bool) -> Value {
    json!({"accessToken": at, "doAntiCsrfCheck": false, "enableAntiCsrf": false,
           "checkDatabase": check_database})
}

/// The `status` field of a reply ("" when absent).
pub fn status(v: &Value) -> &str {
    v["status"].as_str().unwrap_or("")
}

/// `v[field].token`, e.g. `token(&reply, "accessToken")`.
pub fn token(v: &Value, field: &str) -> String {
    v[field]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no {field}.token in {v}"))
        .to_owned()
}

/// `v.session.handle`.
pub fn handle(v: &Value) -> String {
    v["session"]["handle"]
        .as_str()
        .unwrap_or_else(|| panic!("no session.handle in {v}"))
        .to_owned()
}

/// The `kid` values of a JWKS document, in order.
pub fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap_or_else(|| panic!("no keys in {jwks}"))
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

/// The JOSE header of a JWT.
pub fn jwt_header(jwt: &str) -> Value {
    jwt_part(jwt, 0, "header")
}

/// The claims of a JWT (not verified; for looking at claims only).
pub fn jwt_claims(jwt: &str) -> Value {
    jwt_part(jwt, 1, "payload")
}

fn jwt_part(jwt: &str, index: usize, what: &str) -> Value {
    let part = jwt
        .split('.')
        .nth(index)
        .unwrap_or_else(|| panic!("no {what}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap_or_else(|e| panic!("base64url {what}: {e}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("JSON {what}: {e}"))
}
