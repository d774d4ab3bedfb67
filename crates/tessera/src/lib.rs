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

// The modules are private: what users need is re-exported flat below (one path to each type),
// the protocol's constants sit in the small public `protocol` module, and `fuzzing` holds the
// hidden entry points of the fuzzers and the engine's own tests.
mod anonymous;
mod clock;
mod config;
mod dbsc;
mod encoding;
mod engine;
mod error;
mod events;
mod jose;
mod keys;
mod lineage;
pub mod protocol;
mod random;
mod session;
mod session_check;
mod store;
mod token;

pub use anonymous::{
    AnonymousConfig, AnonymousSessions, MintAnonymous, MintError, MintedAnonymous,
    VerifiedAnonymous,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::SessionConfig;
pub use dbsc::{
    verify_proof, ChallengeKey, ChallengeRejection, DbscAlgorithm, DbscError, DevicePublicKey,
    OpenedChallenge, ProofRejection, VerifiedProof, MAX_PROOF_LEN,
};
pub use engine::devices::{
    device_label, signed_in_within, Device, DeviceConfig, DeviceInfo, DevicePage, OverCap,
    MAX_PAGE, MAX_USER_AGENT_LEN,
};
pub use engine::{
    CachedAccessToken, CleanupReport, EngineBuilder, SessionEngine, StatelessVerified,
    CLEANUP_BATCH, DBSC_CHALLENGE_TTL_MS,
};
pub use error::{
    EngineError, InputError, SessionError, StoreError, TryRefreshReason, UnauthorisedReason,
};
pub use events::{EventFanout, EventSink, NoEvents, RefreshOutcome, RevokeCause, SessionEvent};
pub use keys::anonymous_key::{AnonymousAlgorithm, AnonymousSigningKey, AnonymousVerifyingKey};
pub use keys::jwks::{Jwk, Jwks, VerifyingKeySet};
pub use keys::ring::KeyRing;
pub use keys::rsa_key::{KeyKind, KeyLookup, SigningKey, VerifyingKey};
pub use lineage::{RefreshDecision, TheftReason};
pub use session::{
    tenant_of_handle, NewSession, RefreshOptions, Regenerated, SessionInfo, SessionSummary,
    SessionTokens, TokenInfo, VerifiedSession, VerifyOptions, PUBLIC,
};
pub use session_check::{check_session, SessionCheck};
pub use store::{
    AuditQuery, AuditRow, AuditStore, DbscBinding, DbscStore, DeletedSession, DeviceListing,
    DeviceRow, DeviceStore, LineageUpdate, PoolStats, PostgresStore, SessionRow, SqliteStore,
    Store, StoredKey, MAX_AUDIT_QUERY, SQLITE_MAX_GROUP,
};
pub use token::access::{anti_csrf_matches, strip_sign_in_time, AccessTokenClaims};
pub use token::anonymous::{
    new_anonymous_id, plausible_anonymous_id, AnonymousClaims, AnonymousRejection,
    MAX_ANONYMOUS_TOKEN_LEN,
};
pub use token::cache::VerifiedTokenCache;
pub use token::refresh::MAX_REFRESH_TOKEN_LEN;
pub use token::verify::{verify_access_token, VerifyPolicy, MAX_ACCESS_TOKEN_LEN};

/// Entry points for the `fuzz/` crate (cargo fuzz, ROB-01) and the engine's own tests: thin
/// wrappers over crate-private parsers, so the fuzzers run exactly the code verification runs,
/// and the token, encoding and lineage internals that tests use to craft inputs. Not part of
/// the API.
#[doc(hidden)]
pub mod fuzzing {
    use crate::jose::header_json;
    use crate::token::access::AccessTokenHeader;

    pub use crate::encoding::{
        b64_decode, b64_encode, b64url_decode, b64url_encode, constant_time_eq, hex, sha256_hex,
    };
    pub use crate::keys::anonymous_key::verify_ed25519;
    pub use crate::lineage::{Lineage, VerifyDecision};
    pub use crate::random::bytes as random_bytes;
    pub use crate::token::anonymous::{
        verify_anonymous_token, AnonymousKeyLookup, AnonymousPolicy,
    };
    pub use crate::token::json::parse_unique_object;
    pub use crate::token::mint::encode_access_token;
    pub use crate::token::refresh::{
        aes_256_gcm_open, decode_refresh_token, derive_child, mint_refresh_token, ChildFields,
        MintedRefreshToken, RefreshTokenFields, RefreshTokenKey,
    };

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
