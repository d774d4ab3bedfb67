//! What a session verification still needs once its access token has verified: the one
//! decision every verifier shares (the engine's `verify_session` with and without I/O, and an
//! SDK's remote core, which verifies locally against the core's keys).
//!
//! Order of checks (each runs only if the previous passed):
//! 1. the anti-CSRF check, when the caller asks for it: the request's anti-CSRF token must
//!    match the token's claim, else try-refresh `AntiCsrfFailed` — before any I/O, so a
//!    mismatch never reaches the database or the core;
//! 2. a token carrying a parent refresh-token hash (the first of a new generation) needs the
//!    session row: the lineage decides whether it promotes (see [`crate::lineage`]);
//! 3. a database check asked by the caller needs the session row;
//! 4. otherwise the token alone verifies the session: no I/O.
//!
//! CDI 5.6 stateless verification applies steps 1, 3 and 4 only (it never promotes, so a
//! parent does not send it to the row).

use crate::error::{SessionError, TryRefreshReason};
use crate::session::VerifyOptions;
use crate::token::access::{anti_csrf_matches, AccessTokenClaims};

/// The answer of [`check_session`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionCheck {
    /// The verified token alone answers: the session is verified without I/O.
    TokenSuffices,
    /// The session row (or the core that holds it) must be read: the token has a parent
    /// refresh-token hash, or a database check was asked.
    NeedsRow,
}

/// Decides, for claims that already verified, whether the session is verified or the row must
/// be read (the rules are listed in the module documentation, in this order).
///
/// ```
/// # fn demo(claims: &tessera::AccessTokenClaims) -> Result<(), tessera::SessionError> {
/// use tessera::{check_session, SessionCheck, VerifyOptions};
/// let options = VerifyOptions { check_database: true, ..VerifyOptions::default() };
/// assert_eq!(check_session(claims, options)?, SessionCheck::NeedsRow);
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`SessionError::TryRefreshToken`] with [`TryRefreshReason::AntiCsrfFailed`] when the
/// anti-CSRF check is asked and the request's token does not match the claim.
#[inline]
pub fn check_session(
    claims: &AccessTokenClaims,
    options: VerifyOptions<'_>,
) -> Result<SessionCheck, SessionError> {
    if options.anti_csrf_check
        && !anti_csrf_matches(claims.anti_csrf_token.as_deref(), options.anti_csrf_token)
    {
        return Err(SessionError::TryRefreshToken(
            TryRefreshReason::AntiCsrfFailed,
        ));
    }
    if claims.parent_refresh_token_hash1.is_some() || options.check_database {
        return Ok(SessionCheck::NeedsRow);
    }
    Ok(SessionCheck::TokenSuffices)
}
