//! Finding and verifying the session of a request: token choice (header first, then cookie),
//! the anti-CSRF decision, the core call, and writing back a replacement token.

use crate::changes::ChangeSink;
use crate::claims;
use crate::config::{AntiCsrfMode, TokenTransfer};
use crate::error::{RejectionKind, SessionRejection};
use crate::session::Session;
use crate::transfer::{self, names, CookieValue, TokenLocation};
use crate::Tessera;
use http::{HeaderMap, Method};
use tessera::{SessionError, VerifyOptions};

/// Per-call choices.
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyRequest {
    /// Check the database (default: the config's `check_database`).
    pub check_database: Option<bool>,
    /// Run the anti-CSRF check (default: every method but GET).
    pub anti_csrf_check: Option<bool>,
    /// Run the global claim validators (default true; sign-out turns them off).
    pub skip_claims: bool,
}

/// An access token found in a request.
pub(crate) struct FoundToken {
    pub(crate) token: String,
    pub(crate) kid: String,
    pub(crate) location: TokenLocation,
}

/// The access token of a request: `Authorization: Bearer` first, then the cookie.
pub(crate) fn find_access_token(
    tessera: &Tessera,
    headers: &HeaderMap,
    cookies: &[(String, String)],
) -> Result<Option<FoundToken>, RejectionKind> {
    let transfer = tessera.config().transfer;
    if transfer != TokenTransfer::Cookie {
        if let Some(token) = transfer::bearer(headers) {
            if let Some(kid) = transfer::access_token_kid(&token) {
                let location = TokenLocation::Header;
                return Ok(Some(FoundToken {
                    token,
                    kid,
                    location,
                }));
            }
        }
    }
    if transfer != TokenTransfer::Header {
        match transfer::cookie(cookies, names::ACCESS_COOKIE) {
            CookieValue::One(token) => {
                if let Some(kid) = transfer::access_token_kid(&token) {
                    let location = TokenLocation::Cookie;
                    return Ok(Some(FoundToken {
                        token,
                        kid,
                        location,
                    }));
                }
            }
            CookieValue::Duplicate => return Err(RejectionKind::TryRefreshToken),
            CookieValue::Absent => {}
        }
    }
    Ok(None)
}

/// Verifies the session of a request. `Ok(None)` only when `required` is false and there is no
/// token at all.
pub(crate) async fn get_session(
    tessera: &Tessera,
    sink: &ChangeSink,
    method: &Method,
    headers: &HeaderMap,
    required: bool,
    request: VerifyRequest,
) -> Result<Option<Session>, SessionRejection> {
    let reject = |kind| Err(SessionRejection::new(tessera, kind));
    if method == Method::OPTIONS || method == Method::TRACE {
        return if required {
            reject(RejectionKind::Unauthorised)
        } else {
            Ok(None)
        };
    }
    let config = tessera.config();
    let cookies = transfer::request_cookies(headers);
    if matches!(
        transfer::cookie(&cookies, names::LEGACY_ID_REFRESH_COOKIE),
        CookieValue::One(ref v) if !v.is_empty()
    ) {
        return reject(RejectionKind::TryRefreshToken);
    }
    let FoundToken {
        token,
        kid,
        location,
    } = match find_access_token(tessera, headers, &cookies) {
        Ok(Some(found)) => found,
        Ok(None) if required => return reject(RejectionKind::Unauthorised),
        Ok(None) => return Ok(None),
        Err(kind) => return reject(kind),
    };
    if kid.starts_with("d-") != config.use_dynamic_signing_key {
        return reject(RejectionKind::TryRefreshToken);
    }
    let do_check = location == TokenLocation::Cookie
        && request.anti_csrf_check.unwrap_or(method != Method::GET);
    if do_check && config.anti_csrf == AntiCsrfMode::ViaCustomHeader {
        let has_rid = headers
            .get(names::RID)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| !v.trim().is_empty());
        if !has_rid {
            return reject(RejectionKind::TryRefreshToken);
        }
    }
    let via_token = do_check && config.anti_csrf == AntiCsrfMode::ViaToken;
    let anti_csrf_header = headers.get(names::ANTI_CSRF).and_then(|v| v.to_str().ok());
    let options = VerifyOptions {
        check_database: request.check_database.unwrap_or(config.check_database),
        anti_csrf_check: via_token,
        anti_csrf_token: anti_csrf_header,
    };
    let outcome = match tessera.core().verify_session_local(&token, options) {
        Some(outcome) => outcome,
        None => tessera.core().verify_session(&token, options).await,
    };
    let verified = match outcome {
        Ok(v) => v,
        Err(SessionError::Unauthorised(_)) => {
            sink.with(|c| transfer::clear_all(c, config));
            return reject(RejectionKind::Unauthorised);
        }
        Err(SessionError::TryRefreshToken(_) | SessionError::InvalidInput(_)) => {
            return reject(RejectionKind::TryRefreshToken)
        }
        Err(SessionError::TokenTheft { .. }) => return reject(RejectionKind::Unauthorised),
        Err(SessionError::Engine(e)) => {
            tracing::error!(error = %e, "session verification failed");
            return reject(RejectionKind::Internal);
        }
    };
    let current_token = match &verified.access_token {
        Some(new_token) => {
            sink.with(|c| {
                transfer::write_access_token(
                    c,
                    config,
                    location,
                    &verified.session.user_id,
                    new_token,
                )
            });
            new_token.token.clone()
        }
        None => token,
    };
    let session = Session::new(
        tessera.clone(),
        sink.clone(),
        location,
        verified,
        current_token,
    );
    if !request.skip_claims && !tessera.validators().is_empty() {
        let failures = claims::run(tessera.validators(), &session.access_token_payload());
        if !failures.is_empty() {
            return reject(RejectionKind::InvalidClaims(failures));
        }
    }
    Ok(Some(session))
}
