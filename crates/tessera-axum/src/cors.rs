//! The request headers a cross-origin browser app needs to be allowed to send, and the ones the
//! SDK needs it to read.

/// Request headers to list in `Access-Control-Allow-Headers`: `rid`, `fdi-version`,
/// `anti-csrf`, `authorization`, `st-auth-mode` (add `content-type` for JSON bodies).
///
/// ```
/// assert!(tessera_axum::cors::ALLOWED_REQUEST_HEADERS.contains(&"st-auth-mode"));
/// ```
pub const ALLOWED_REQUEST_HEADERS: &[&str] = &[
    "rid",
    "fdi-version",
    "anti-csrf",
    "authorization",
    "st-auth-mode",
];

/// Response headers the SDK adds to `Access-Control-Expose-Headers` itself when it sets them.
pub const EXPOSED_RESPONSE_HEADERS: &[&str] = &[
    "front-token",
    "anti-csrf",
    "st-access-token",
    "st-refresh-token",
];
