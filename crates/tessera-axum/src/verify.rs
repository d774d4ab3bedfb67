//! The request hot path: finding and verifying the session of a request, top to bottom in one
//! function (`get_session`), from the layer's one read pass over the headers.
//!
//! The rules, in the order they are applied:
//! 1. `OPTIONS` and `TRACE` carry no session (401 `unauthorised` when one is required).
//! 2. A legacy `sIdRefreshToken` cookie (exactly one, not empty): 401 `try refresh token`, so
//!    the browser SDK refreshes and the refresh route clears it.
//! 3. The access token: `Authorization: Bearer` first (unless the transfer is cookie-only),
//!    skipping an anonymous token (B4) and a value without the shape of an access token; then
//!    the access-token cookie (unless header-only). Two copies of the cookie: 401 `try refresh
//!    token` (COOK-08). None: `Ok(None)`, or 401 `unauthorised` when one is required.
//! 4. The token's key kind (dynamic `d-…` or static) must be the configured one: otherwise 401
//!    `try refresh token` (the refresh issues one of the right kind).
//! 5. Anti-CSRF, for a cookie token on every method but GET (or as the caller says):
//!    VIA_CUSTOM_HEADER needs `rid` (401 `try refresh token` without it); VIA_TOKEN hands the
//!    `anti-csrf` header to the core.
//! 6. The core: the verified-token cache first (for the cookie, the layer looked it up while it
//!    read the headers; nothing copied on a hit), then the full check.
//!    Unauthorised or theft clears every token and leaves an anonymous session in the same
//!    response (A21, A23), with no anonymousId kept (a failed token proves none, SEC2-H2).
//!    A promotion writes the new access token into the response.
//! 7. The global claim validators, unless the caller skips them.

use crate::anonymous::replace_cleared_session;
use crate::changes::ChangeSink;
use crate::claims;
use crate::config::{AntiCsrfMode, TokenTransfer};
use crate::core::Verified;
use crate::error::{RejectionKind, SessionRejection};
use crate::session::{Identity, Session};
use crate::tessera::Tessera;
use crate::transfer::read::{self, CookieRef, KidClass, RequestTokens};
use crate::transfer::write;
use crate::transfer::TokenLocation;
use http::{HeaderMap, Method};
use std::borrow::Cow;
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

/// Verifies the session of a request (see the rules at the top of this module). `Ok(None)`
/// only when `required` is false and there is no token at all.
pub(crate) async fn get_session(
    tessera: &Tessera,
    sink: &ChangeSink,
    method: &Method,
    headers: &HeaderMap,
    tokens: &RequestTokens,
    required: bool,
    request: VerifyRequest,
) -> Result<Option<Session>, SessionRejection> {
    let reject = |kind| Err(SessionRejection::new(tessera, kind));
    let none = || {
        if required {
            reject(RejectionKind::Unauthorised)
        } else {
            Ok(None)
        }
    };
    let config = tessera.config();
    // 1. No session on preflights and traces.
    if method == Method::OPTIONS || method == Method::TRACE {
        return none();
    }
    // 2. A legacy cookie: refresh first.
    if tokens.legacy_cookie(headers).is_one_non_empty() {
        return reject(RejectionKind::TryRefreshToken);
    }
    // The access-token cookie as the layer found it in the verified-token cache, if it did.
    let cached_cookie = tokens.cached_access_cookie();
    // 3. The access token: bearer first, then the cookie.
    let bearer = (config.transfer != TokenTransfer::Cookie)
        .then(|| tokens.bearer_class.filter(|c| *c != KidClass::Anonymous))
        .flatten()
        .and_then(|class| Some((Cow::Borrowed(tokens.bearer(headers)?), class)));
    let (token, class, location) = match bearer {
        Some((token, class)) => (token, class, TokenLocation::Header),
        None if config.transfer == TokenTransfer::Header => return none(),
        None => match tokens.access_cookie(headers) {
            CookieRef::Duplicate => return reject(RejectionKind::TryRefreshToken),
            CookieRef::Absent => return none(),
            CookieRef::One(token) => {
                // A token the cache holds has the shape already: only its header is looked at.
                let class = match cached_cookie {
                    Some(_) => tessera.kid_memo().class_of_verified(&token),
                    None => tessera.kid_memo().class(&token),
                };
                match class {
                    Some(class) => (token, class, TokenLocation::Cookie),
                    None => return none(),
                }
            }
        },
    };
    // 4. The key kind the config asks for.
    if (class == KidClass::Dynamic) != config.use_dynamic_signing_key {
        return reject(RejectionKind::TryRefreshToken);
    }
    // 5. Anti-CSRF.
    let do_check = location == TokenLocation::Cookie
        && request.anti_csrf_check.unwrap_or(method != Method::GET);
    if do_check && config.anti_csrf == AntiCsrfMode::ViaCustomHeader && !tokens.rid {
        return reject(RejectionKind::TryRefreshToken);
    }
    // The `anti-csrf` header is looked up only when the check reads it.
    let anti_csrf_check = do_check && config.anti_csrf == AntiCsrfMode::ViaToken;
    let options = VerifyOptions {
        check_database: request.check_database.unwrap_or(config.check_database),
        anti_csrf_check,
        anti_csrf_token: anti_csrf_check.then(|| read::anti_csrf(headers)).flatten(),
    };
    // The token for the `Session`: the cookie value the read pass kept, else a copy.
    let shared = |token: &str| match location {
        TokenLocation::Cookie => tokens
            .shared_access_cookie()
            .unwrap_or_else(|| Arc::from(token)),
        TokenLocation::Header => Arc::from(token),
    };
    // 6. The core: the cache first.
    let core = tessera.core();
    let local = match cached_cookie.filter(|_| location == TokenLocation::Cookie) {
        Some(cached) => core.verify_cached_session(cached, options),
        None => core.verify_session_local(&token, options),
    };
    let outcome = match local {
        Some(outcome) => outcome,
        None => core
            .verify_session(&token, options)
            .await
            .map(Verified::Checked),
    };
    let session = match outcome {
        // The cached hot path: nothing copied out of the claims.
        Ok(Verified::Cached(claims)) => Session::new(
            tessera.clone(),
            sink.clone(),
            location,
            Identity::Claims(claims),
            shared(&token),
        ),
        Ok(Verified::Checked(verified)) => {
            let current_token = match &verified.access_token {
                Some(new_token) => {
                    sink.with(|c| {
                        write::write_access_token(
                            c,
                            config,
                            location,
                            &verified.session.user_id,
                            new_token,
                        )
                    });
                    Arc::from(new_token.token.as_str())
                }
                None => shared(&token),
            };
            Session::new(
                tessera.clone(),
                sink.clone(),
                location,
                Identity::from(verified.session),
                current_token,
            )
        }
        Err(SessionError::Unauthorised(_) | SessionError::TokenTheft { .. }) => {
            sink.with(|c| write::clear_all(c, config));
            replace_cleared_session(tessera, sink, headers, tokens, None).await;
            return reject(RejectionKind::Unauthorised);
        }
        Err(SessionError::TryRefreshToken(_) | SessionError::InvalidInput(_)) => {
            return reject(RejectionKind::TryRefreshToken)
        }
        // The core failed (or failed in a way this SDK does not know yet).
        Err(e) => {
            tracing::error!(error = %e, "session verification failed");
            return reject(RejectionKind::Internal);
        }
    };
    // 7. The claim validators.
    if !request.skip_claims && !tessera.validators().is_empty() {
        let failures = claims::run(tessera.validators(), &session.access_token_payload());
        if !failures.is_empty() {
            return reject(RejectionKind::InvalidClaims(failures));
        }
    }
    Ok(Some(session))
}
