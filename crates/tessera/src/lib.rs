//! # tessera — the session engine
//!
//! Pure session logic, compatible with the SuperTokens core: v5 RS256 access tokens with `kid`
//! and JWKS, rotating dynamic keys and an optional static key, opaque refresh tokens that
//! rotate on use and expose reuse as theft, and SQLite or PostgreSQL storage behind one
//! [`Store`] trait. No HTTP here: `tessera-server` and `tessera-axum` build on this crate.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use tessera::{NewSession, RefreshOptions, SessionEngine, SqliteStore};
//!
//! let engine = SessionEngine::builder(Arc::new(SqliteStore::open("sessions.db").await?))
//!     .build()
//!     .await?;
//! let tokens = engine.create_session(NewSession::for_user("alice")).await?;
//! let next = engine
//!     .refresh_session(&tokens.refresh_token.token, RefreshOptions::default())
//!     .await?;
//! assert_ne!(next.refresh_token.token, tokens.refresh_token.token);
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod anonymous;
pub mod clock;
pub mod config;
pub mod dbsc;
pub use dbsc::DbscError;
pub mod encoding;
pub mod engine;
pub mod error;
pub mod events;
pub mod jose;
pub mod keys;
pub mod lineage;
pub mod protocol;
pub mod random;
pub mod session;
pub mod session_check;
pub mod store;
pub mod token;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::SessionConfig;
pub use engine::devices::{
    device_label, signed_in_within, Device, DeviceConfig, DeviceInfo, DevicePage, OverCap,
};
pub use engine::{
    CleanupReport, EngineBuilder, SessionEngine, CLEANUP_BATCH, DBSC_CHALLENGE_TTL_MS,
};
pub use error::{
    EngineError, InputError, SessionError, StoreError, TryRefreshReason, UnauthorisedReason,
};
pub use events::{EventSink, RefreshOutcome, RevokeCause, SessionEvent};
pub use keys::jwks::{Jwk, Jwks, VerifyingKeySet};
pub use keys::ring::KeyRing;
pub use keys::rsa_key::{KeyKind, KeyLookup, SigningKey, VerifyingKey};
pub use session::{
    tenant_of_handle, NewSession, RefreshOptions, Regenerated, SessionInfo, SessionSummary,
    SessionTokens, TokenInfo, VerifiedSession, VerifyOptions, PUBLIC,
};
pub use session_check::{check_session, SessionCheck};
pub use store::{
    AuditQuery, AuditRow, AuditStore, PoolStats, PostgresStore, SessionRow, SqliteStore, Store,
};
pub use token::access::AccessTokenClaims;
pub use token::verify::{verify_access_token, VerifyPolicy, MAX_ACCESS_TOKEN_LEN};

/// Entry points for the `fuzz/` crate (cargo fuzz, ROB-01): thin wrappers over crate-private
/// parsers, so the fuzzers run exactly the code verification runs. Not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    use crate::jose::header_json;
    use crate::token::access::AccessTokenHeader;

    /// Deserialises an access-token JOSE header as step 3 of verification does and returns
    /// `[alg, typ, kid, version]` when the JSON is accepted (the value checks come after).
    pub fn parse_access_token_header(json: &[u8]) -> Option<[String; 4]> {
        let h: AccessTokenHeader<'_> = serde_json::from_slice(json).ok()?;
        Some([
            h.alg.into_owned(),
            h.typ.into_owned(),
            h.kid.into_owned(),
            h.version.into_owned(),
        ])
    }

    /// The header JSON this engine mints for `kid`.
    pub fn access_token_header_json(kid: &str) -> String {
        header_json(kid)
    }
}
