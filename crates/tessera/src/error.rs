//! Error types. Each variant of [`SessionError`] is an outcome the caller must handle
//! differently; the `Display` text of the reasons is the message the SuperTokens core sends for
//! the same outcome, so the HTTP layer can pass it through.

use std::fmt;

/// The outcome of a session operation that did not succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The access token cannot be used as it is; the client should call refresh.
    #[error("try refresh token: {0}")]
    TryRefreshToken(TryRefreshReason),
    /// There is no usable session; the client must sign in again.
    #[error("unauthorised: {0}")]
    Unauthorised(UnauthorisedReason),
    /// A rotated-out refresh token was presented: the session has been revoked.
    #[error("token theft detected for session {session_handle}")]
    TokenTheft {
        /// The session that was revoked.
        session_handle: String,
        /// Its primary user id.
        user_id: String,
        /// Its recipe user id.
        recipe_user_id: String,
        /// Which kind of reuse it was (CDI 5.6 `recentTokenReuseSubtype`).
        reason: crate::lineage::TheftReason,
    },
    /// The caller's input is not acceptable (HTTP 400 class).
    #[error("{0}")]
    InvalidInput(InputError),
    /// Storage or cryptography failed; nothing about the session is implied.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl SessionError {
    /// Storage failures convert through [`EngineError`].
    pub(crate) fn store(e: StoreError) -> Self {
        SessionError::Engine(EngineError::Store(e))
    }
}

impl From<StoreError> for SessionError {
    fn from(e: StoreError) -> Self {
        SessionError::store(e)
    }
}

/// Why an access token must be refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TryRefreshReason {
    /// `exp` is in the past.
    Expired,
    /// The anti-CSRF token was missing or did not match.
    AntiCsrfFailed,
    /// The `kid` names no key we hold (after one reload from the store).
    KeyNotFound,
    /// Malformed token, wrong header, wrong claim types or a bad signature.
    InvalidToken,
}

impl fmt::Display for TryRefreshReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TryRefreshReason::Expired => "Access token expired",
            TryRefreshReason::AntiCsrfFailed => "anti-csrf check failed",
            TryRefreshReason::KeyNotFound => "Key not found",
            TryRefreshReason::InvalidToken => "Invalid JWT",
        })
    }
}

/// Why there is no usable session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnauthorisedReason {
    /// Verify with a database check found no row.
    SessionEnded,
    /// Verify needed the row (promotion path) and it is gone.
    SessionMissing,
    /// Refresh found no live row.
    SessionMissingOrExpired,
    /// Refresh with anti-CSRF enabled and a missing or wrong anti-CSRF token.
    AntiCsrfMismatch,
    /// The refresh token could not be decoded or decrypted.
    InvalidRefreshToken,
    /// Read/update by handle found no live row.
    SessionDoesNotExist,
    /// The token lacks required claims (regenerate).
    InvalidAccessToken,
    /// The stored payload names a protected claim, so no token can be minted (refresh).
    ProtectedClaimInPayload,
    /// CDI 5.6 stateless verify: the token's lineage is neither the head nor the previous head.
    RotatedOutBranch,
    /// The session is bound to a device key (DBSC): it refreshes only with a proof from that
    /// key. Nothing about the session changed.
    DeviceBound,
}

impl fmt::Display for UnauthorisedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UnauthorisedReason::SessionEnded => {
                "Either the session has ended or has been blacklisted"
            }
            UnauthorisedReason::SessionMissing => "Session missing in db",
            UnauthorisedReason::SessionMissingOrExpired => "Session missing in db or has expired",
            UnauthorisedReason::AntiCsrfMismatch => "Anti CSRF token missing, or not matching",
            UnauthorisedReason::InvalidRefreshToken => "Refresh token is invalid",
            UnauthorisedReason::SessionDoesNotExist => "Session does not exist.",
            UnauthorisedReason::ProtectedClaimInPayload => {
                "The user payload contains protected field"
            }
            UnauthorisedReason::RotatedOutBranch => "rotated-out token branch; refresh required",
            UnauthorisedReason::DeviceBound => {
                "The session is bound to a device key; refresh it with a device-bound proof"
            }
            UnauthorisedReason::InvalidAccessToken => {
                "Access token does not contain all the information. Maybe the structure has changed?"
            }
        })
    }
}

/// Input the engine refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// A payload names a claim the engine owns (`sub`, `exp`, `sessionHandle`, …).
    #[error("The user payload contains protected field")]
    ProtectedClaim,
    /// The minted token would exceed the maximum token size.
    #[error(
        "The access token payload is too large: the token would be {0} bytes, the limit is {1}"
    )]
    PayloadTooLarge(usize, usize),
    /// A sign-in would exceed the configured number of sessions per user and the app chose
    /// to refuse it (see [`crate::OverCap`]).
    #[error("The user already has the maximum number of sessions ({0})")]
    SessionLimitReached(u32),
    /// A value is outside what the engine accepts; the text names it.
    #[error("{0}")]
    Invalid(String),
}

/// Storage or cryptography failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The store failed.
    #[error("storage error: {0}")]
    Store(#[from] StoreError),
    /// A cryptographic primitive failed (key generation, signing, the OS RNG).
    #[error("cryptography error: {0}")]
    Crypto(&'static str),
    /// Stored data could not be read back (a corrupt key or payload).
    #[error("corrupt stored data: {0}")]
    Corrupt(&'static str),
    /// The configuration is not usable; the text says what to change.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A remote core could not be reached or answered outside the protocol.
    #[error("remote core: {0}")]
    Remote(String),
}

/// A store operation failed. The message is for logs; it never contains token material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database driver reported an error.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Running migrations failed.
    #[error("migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}
