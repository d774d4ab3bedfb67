//! The protocol's names and numbers that more than one module (and the SDKs) need: claim names
//! (the engine-owned ones among them),
//! `kid` classes, the token version, the clock leeway. Constants only, at the bottom of the
//! engine, so that nothing here imports anything.
//!
//! ```
//! use tessera::protocol::{ANONYMOUS_KID_PREFIX, DYNAMIC_KID_PREFIX};
//! assert!("d-1700000000000".starts_with(DYNAMIC_KID_PREFIX));
//! assert!(!"d-1700000000000".starts_with(ANONYMOUS_KID_PREFIX));
//! ```

/// The access-token `version` header value this engine mints and accepts.
pub const ACCESS_TOKEN_VERSION: &str = "5";

/// The claim that carries the visitor id, in anonymous tokens and in access tokens.
pub const ANONYMOUS_ID_CLAIM: &str = "anonymousId";

/// Prefix of every dynamic (rotating) signing key's `kid`.
pub const DYNAMIC_KID_PREFIX: &str = "d-";

/// Prefix of every anonymous-key `kid`.
pub const ANONYMOUS_KID_PREFIX: &str = "a-";

/// How far in the future `iat` may be (clock skew between instances), in seconds.
pub const IAT_LEEWAY_S: u64 = 60;

/// Claims the engine owns. A payload update naming one of them is refused; a token lacking one
/// of the required ones is rejected.
pub const PROTECTED_CLAIMS: &[&str] = &[
    "sub",
    "exp",
    "iat",
    "sessionHandle",
    "refreshTokenHash1",
    "parentRefreshTokenHash1",
    "antiCsrfToken",
    "tId",
    "rsub",
];

/// The sign-in time claim (OIDC `auth_time`, epoch seconds), owned by the engine.
pub const SIGN_IN_TIME_CLAIM: &str = "auth_time";
