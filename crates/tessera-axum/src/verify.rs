//! Finding and verifying the session of a request: token choice (header first, then cookie),
//! the anti-CSRF decision, the core call, and writing back a replacement token.

use crate::anonymous::{is_anonymous_token, replace_cleared_session};
use crate::changes::ChangeSink;
use crate::claims;
use crate::config::{AntiCsrfMode, TokenTransfer};
use crate::core::Verified;
use crate::error::{RejectionKind, SessionRejection};
use crate::session::{Identity, Session};
use crate::transfer::{self, names, SeenCookies, SharedCookie, TokenLocation};
use crate::Tessera;
use http::{HeaderMap, Method};
use std::sync::Arc;
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

/// An access token found in a request: borrowed from the `Authorization` header, or the
/// cookie value the layer kept.
pub(crate) struct FoundToken<'a> {
    pub(crate) token: TokenText<'a>,
    /// The `kid` names a dynamic key (`d-…`).
    pub(crate) dynamic_key: bool,
    pub(crate) location: TokenLocation,
}

/// The text of a found access token, shared without a copy where it can be.
pub(crate) enum TokenText<'a> {
    Borrowed(&'a str),
    Shared(Arc<str>),
}

impl TokenText<'_> {
    fn as_str(&self) -> &str {
        match self {
            Self::Borrowed(s) => s,
            Self::Shared(s) => s,
        }
    }

    /// The token for the [`Session`] (a copy only when borrowed).
    fn into_shared(self) -> Arc<str> {
        match self {
            Self::Borrowed(s) => Arc::from(s),
            Self::Shared(s) => s,
        }
    }
}

/// The access token of a request: `Authorization: Bearer` first, then the cookie.
pub(crate) fn find_access_token<'a>(
    tessera: &Tessera,
    headers: &'a HeaderMap,
    access_cookie: SharedCookie,
) -> Result<Option<FoundToken<'a>>, RejectionKind> {
    let transfer = tessera.config().transfer;
    let dynamic = |token: &str| tessera.kid_memo().dynamic_key(token);
    if transfer != TokenTransfer::Cookie {
        // An anonymous token in the bearer slot (header mode, B4) is not an access token.
        if let Some(token) = transfer::bearer_ref(headers).filter(|t| !is_anonymous_token(t)) {
            if let Some(dynamic_key) = dynamic(token) {
                return Ok(Some(FoundToken {
                    token: TokenText::Borrowed(token),
                    dynamic_key,
                    location: TokenLocation::Header,
                }));
            }
        }
    }
    if transfer != TokenTransfer::Header {
        match access_cookie {
            SharedCookie::One(token) => {
                if let Some(dynamic_key) = dynamic(&token) {
                    return Ok(Some(FoundToken {
                        token: TokenText::Shared(token),
                        dynamic_key,
                        location: TokenLocation::Cookie,
                    }));
                }
            }
            SharedCookie::Duplicate => return Err(RejectionKind::TryRefreshToken),
            SharedCookie::Absent => {}
        }
    }
    Ok(None)
}

/// The access-token cookie and whether a legacy cookie is present: as the layer read them, or
/// read here when it did not.
fn session_cookies(headers: &HeaderMap, cookies: &SeenCookies) -> (SharedCookie, bool) {
    match cookies {
        SeenCookies::Read { access, legacy } => (access.clone(), *legacy),
        SeenCookies::NotRead => {
            let [legacy, access] = transfer::find_cookies(
                headers,
                [names::LEGACY_ID_REFRESH_COOKIE, names::ACCESS_COOKIE],
            );
            (
                SharedCookie::keep(&access),
                transfer::is_legacy_present(&legacy),
            )
        }
    }
}

/// Verifies the session of a request. `Ok(None)` only when `required` is false and there is no
/// token at all.
pub(crate) async fn get_session(
    tessera: &Tessera,
    sink: &ChangeSink,
    method: &Method,
    headers: &HeaderMap,
    cookies: &SeenCookies,
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
    let (access_cookie, legacy) = session_cookies(headers, cookies);
    if legacy {
        return reject(RejectionKind::TryRefreshToken);
    }
    let FoundToken {
        token,
        dynamic_key,
        location,
    } = match find_access_token(tessera, headers, access_cookie) {
        Ok(Some(found)) => found,
        Ok(None) if required => return reject(RejectionKind::Unauthorised),
        Ok(None) => return Ok(None),
        Err(kind) => return reject(kind),
    };
    if dynamic_key != config.use_dynamic_signing_key {
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
    let outcome = match tessera.core().verify_session_local(token.as_str(), options) {
        Some(outcome) => outcome,
        None => tessera
            .core()
            .verify_session(token.as_str(), options)
            .await
            .map(Verified::Checked),
    };
    let verified = match outcome {
        Ok(Verified::Cached(claims)) => {
            // The cached hot path: nothing copied out of the claims.
            let session = Session::new(
                tessera.clone(),
                sink.clone(),
                location,
                Identity::Claims(claims),
                token.into_shared(),
            );
            return check_claims(tessera, session, request);
        }
        Ok(Verified::Checked(v)) => v,
        Err(SessionError::Unauthorised(_)) => {
            sink.with(|c| transfer::clear_all(c, config));
            // A21: the visitor gets an anonymous session in this response, before any handler.
            // The access token failed, so it proves no anonymousId (SEC2-H2).
            replace_cleared_session(tessera, sink, headers, None).await;
            return reject(RejectionKind::Unauthorised);
        }
        Err(SessionError::TryRefreshToken(_) | SessionError::InvalidInput(_)) => {
            return reject(RejectionKind::TryRefreshToken)
        }
        Err(SessionError::TokenTheft { .. }) => {
            sink.with(|c| transfer::clear_all(c, config));
            replace_cleared_session(tessera, sink, headers, None).await;
            return reject(RejectionKind::Unauthorised);
        }
        // The core failed (or failed in a way this SDK does not know yet).
        Err(e) => {
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
            Arc::from(new_token.token.as_str())
        }
        None => token.into_shared(),
    };
    let session = Session::new(
        tessera.clone(),
        sink.clone(),
        location,
        Identity::from(verified.session),
        current_token,
    );
    check_claims(tessera, session, request)
}

/// Runs the global claim validators (unless the request skips them) on a verified session.
fn check_claims(
    tessera: &Tessera,
    session: Session,
    request: VerifyRequest,
) -> Result<Option<Session>, SessionRejection> {
    if !request.skip_claims && !tessera.validators().is_empty() {
        let failures = claims::run(tessera.validators(), &session.access_token_payload());
        if !failures.is_empty() {
            return Err(SessionRejection::new(
                tessera,
                RejectionKind::InvalidClaims(failures),
            ));
        }
    }
    Ok(Some(session))
}
