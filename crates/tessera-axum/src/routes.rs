//! The SDK's own routes: `POST {base}/session/refresh` and `POST {base}/signout`.

use crate::anonymous::{self, find_anonymous_token, FoundAnonymous};
use crate::changes::ChangeSink;
use crate::config::{AntiCsrfMode, TokenTransfer};
use crate::error::{json_response, RejectionKind, SessionRejection};
use crate::tessera::Tessera;
use crate::transfer::read::{self, CookieRef, RequestTokens};
use crate::transfer::write;
use crate::transfer::{names, TokenLocation};
use crate::verify::{get_session, VerifyRequest};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode};
use std::time::SystemTime;
use tessera::{RefreshOptions, SessionError, UnauthorisedReason};

/// The refresh token of a request and where it came from. Header first (if allowed).
enum FoundRefresh {
    Token(String, TokenLocation),
    Duplicate,
    None,
}

fn find_refresh_token(
    tessera: &Tessera,
    headers: &HeaderMap,
    tokens: &RequestTokens,
) -> FoundRefresh {
    let transfer = tessera.config().transfer;
    if transfer != TokenTransfer::Cookie && !tokens.bearer_is_anonymous() {
        // In header mode an anonymous visitor's refresh slot holds the AnT: not a refresh token.
        // A refresh token has no `kid`: its class is never anonymous.
        if let Some(token) = tokens.bearer(headers) {
            return FoundRefresh::Token(token.to_owned(), TokenLocation::Header);
        }
    }
    if transfer != TokenTransfer::Header {
        let refresh = tokens.refresh_cookie(headers);
        if refresh == CookieRef::Duplicate || tokens.access_cookie(headers) == CookieRef::Duplicate
        {
            return FoundRefresh::Duplicate;
        }
        if let CookieRef::One(token) = refresh {
            if !token.is_empty() {
                return FoundRefresh::Token(token.into_owned(), TokenLocation::Cookie);
            }
        }
    }
    FoundRefresh::None
}

/// `POST {base}/session/refresh`. Success: 200 `{}` with new tokens and `front-token`.
/// Failure: 401 with every token cleared and `front-token: remove` — except an anti-CSRF
/// failure, which clears nothing so that a cross-site POST cannot sign the user out (RT-13).
pub(crate) async fn refresh(
    tessera: &Tessera,
    sink: &ChangeSink,
    headers: &HeaderMap,
    tokens: &RequestTokens,
) -> Response {
    let config = tessera.config();
    let unauthorised = |clear: bool| {
        if clear {
            sink.with(|c| write::clear_all(c, config));
        }
        SessionRejection::new(tessera, RejectionKind::Unauthorised).into_response()
    };
    // A21, A23: a session that ends here leaves an anonymous one behind, in this response.
    // It keeps the anonymousId only with proof (SEC2-H2): the refresh token's, else an access
    // token that fully verifies (signature, time, live session).
    let cleared_to_anonymous = |rejection: SessionRejection, proven: Option<String>| async move {
        sink.with(|c| write::clear_all(c, config));
        let proven = match proven {
            Some(id) => Some(id),
            None => match tokens.access_cookie(headers) {
                CookieRef::One(at) => anonymous::fully_verified_anonymous_id(tessera, &at).await,
                _ => None,
            },
        };
        anonymous::replace_cleared_session(tessera, sink, headers, tokens, proven).await;
        rejection.into_response()
    };
    let (token, location) = match find_refresh_token(tessera, headers, tokens) {
        FoundRefresh::Token(t, l) => (t, l),
        FoundRefresh::None if config.anonymous_sessions() => {
            return refresh_without_refresh_token(tessera, sink, headers, tokens).await
        }
        // Clear only for a request that could be the SDK's own: a cross-site form POST carries
        // no Lax cookies and cannot add `rid`, and answering it with clearing cookies would
        // sign the victim out (CSRF-11, RT-13).
        FoundRefresh::None => return unauthorised(from_our_frontend(headers, tokens)),
        FoundRefresh::Duplicate => {
            if let Some(older) = &config.older_cookie_domain {
                sink.with(|c| {
                    for (name, path) in [
                        (names::ACCESS_COOKIE, config.access_token_path.as_str()),
                        (names::REFRESH_COOKIE, config.refresh_path.as_str()),
                    ] {
                        let v = write::set_cookie(
                            config,
                            name,
                            "",
                            path,
                            SystemTime::UNIX_EPOCH,
                            Some(older),
                        );
                        c.set_cookie(&format!("{name}@older"), v);
                    }
                });
            }
            // Which copy is genuine cannot be told: refuse deterministically (COOK-08).
            return unauthorised(true);
        }
    };
    let from_cookie = location == TokenLocation::Cookie;
    if from_cookie && config.anti_csrf == AntiCsrfMode::ViaCustomHeader && !tokens.rid {
        return unauthorised(false);
    }
    let options = RefreshOptions {
        anti_csrf_token: read::anti_csrf(headers),
        enable_anti_csrf: from_cookie && config.anti_csrf == AntiCsrfMode::ViaToken,
        use_static_key: Some(!config.use_dynamic_signing_key),
    };
    let outcome = tessera
        .core()
        .refresh_session_or_anonymous_id(&token, options)
        .await
        .map_err(|f| (f.error, f.anonymous_id));
    match outcome {
        Ok(issued) => {
            sink.with(|c| {
                let other_had_token = match location {
                    TokenLocation::Header => tokens.refresh_cookie(headers).is_present(),
                    TokenLocation::Cookie => tokens.has_bearer(),
                };
                if other_had_token {
                    write::clear(c, config, location.other());
                }
                write::write_access_token(
                    c,
                    config,
                    location,
                    &issued.session.user_id,
                    &issued.access_token,
                );
                write::write_refresh_token(c, config, location, &issued.refresh_token);
                if let Some(csrf) = &issued.anti_csrf_token {
                    c.set_header(names::ANTI_CSRF, Some(csrf), true);
                }
                if tokens.legacy_cookie(headers).is_present() {
                    write::clear_legacy(c, config);
                }
            });
            crate::metrics::refresh_route("refreshed");
            json_response(StatusCode::OK, &serde_json::json!({}))
        }
        Err((
            SessionError::TokenTheft {
                session_handle,
                user_id,
                ..
            },
            proven,
        )) => {
            tracing::warn!(session = %session_handle, "token theft detected at refresh");
            crate::metrics::refresh_route("theft");
            let rejection = SessionRejection::new(
                tessera,
                RejectionKind::TokenTheft {
                    session_handle,
                    user_id,
                },
            );
            cleared_to_anonymous(rejection, proven).await
        }
        Err((SessionError::Engine(e), _)) => {
            // An outage must not sign everyone out: no clearing on 5xx (RT-15).
            tracing::error!(error = %e, "refresh failed");
            crate::metrics::refresh_route("error");
            SessionRejection::new(tessera, RejectionKind::Internal).into_response()
        }
        // DBSC: a device-bound session refreshes only with a proof from its key. 401 without
        // clearing anything: the session stays intact for the real device (issue 14).
        // Only the access-token cookie goes (the refresh token stays): a DBSC browser then
        // refreshes its bound session before its next request, e.g. after a payload change
        // rewrote the cookie with the long lifetime.
        Err((SessionError::Unauthorised(UnauthorisedReason::DeviceBound), _)) => {
            sink.with(|c| write::expire_access_cookie(c, config));
            unauthorised(false)
        }
        // VIA_TOKEN: a missing or wrong anti-CSRF token clears nothing either (RT-13).
        Err((SessionError::Unauthorised(UnauthorisedReason::AntiCsrfMismatch), _)) => {
            crate::metrics::refresh_route("anti_csrf");
            unauthorised(false)
        }
        Err((_, proven)) if config.anonymous_sessions() => {
            crate::metrics::refresh_route("unauthorised");
            let rejection = SessionRejection::new(tessera, RejectionKind::Unauthorised);
            cleared_to_anonymous(rejection, proven).await
        }
        Err(_) => {
            crate::metrics::refresh_route("unauthorised");
            unauthorised(true)
        }
    }
}

/// True when a request can be the front end's own: it carries the custom `rid` header (every
/// browser-SDK refresh does; a cross-site page cannot add it without passing CORS) or one of
/// the session cookies.
fn from_our_frontend(headers: &HeaderMap, tokens: &RequestTokens) -> bool {
    tokens.rid
        || tokens.access_cookie(headers).is_present()
        || tokens.refresh_cookie(headers).is_present()
}

/// The refresh route without a refresh token, anonymous sessions on. A visitor with a valid
/// anonymous token gets 401 `unauthorised` and keeps it: the browser SDK then hands the app
/// the 401 after exactly one refresh call, with no loop and the same anonymousId (A14). A
/// visitor with none (a first visit: the browser SDK refreshes before its first request) gets
/// one and a 200, so the SDK sees a session (A2, A17).
async fn refresh_without_refresh_token(
    tessera: &Tessera,
    sink: &ChangeSink,
    headers: &HeaderMap,
    tokens: &RequestTokens,
) -> Response {
    let config = tessera.config();
    match find_anonymous_token(tessera, headers, tokens) {
        FoundAnonymous::Token(token, _) => {
            if let Ok(verified) = tessera.core().verify_anonymous(&token) {
                sink.with(|c| write::keep_anonymous(c, &verified.claims));
                return SessionRejection::new(tessera, RejectionKind::Unauthorised).into_response();
            }
        }
        // Tossed copies of other visitors' tokens (SEC2-L5): nothing is minted or cleared.
        FoundAnonymous::Ambiguous => {
            return SessionRejection::new(tessera, RejectionKind::Unauthorised).into_response()
        }
        FoundAnonymous::None => {}
    }
    // Minting (and clearing) only for the front end's own calls: a cross-site form POST here
    // must not replace the visitor's anonymous session (CSRF-11, CSRF-17).
    if !from_our_frontend(headers, tokens) {
        return SessionRejection::new(tessera, RejectionKind::Unauthorised).into_response();
    }
    // An access token without a refresh token keeps its anonymousId only if it fully
    // verifies: an expired or revoked one may be stolen (SEC2-H2).
    let proven = match tokens.access_cookie(headers) {
        CookieRef::One(at) => {
            sink.with(|c| write::clear_all(c, config));
            anonymous::fully_verified_anonymous_id(tessera, &at).await
        }
        _ => None,
    };
    anonymous::replace_cleared_session(tessera, sink, headers, tokens, proven).await;
    json_response(StatusCode::OK, &serde_json::json!({}))
}

/// `POST {base}/signout`: needs a session (claims are not checked), revokes it, clears the
/// request's transfer method, answers 200 `{"status":"OK"}`.
pub(crate) async fn signout(
    tessera: &Tessera,
    sink: &ChangeSink,
    method: &Method,
    headers: &HeaderMap,
    tokens: &RequestTokens,
) -> Response {
    let request = VerifyRequest {
        skip_claims: true,
        ..VerifyRequest::default()
    };
    let config = tessera.config();
    let ok = || json_response(StatusCode::OK, &serde_json::json!({"status": "OK"}));
    if config.anonymous_sessions() && !tokens.has_access_token(config.transfer) {
        // Only an anonymous session (or none): nothing to revoke; the visitor keeps (or gets)
        // an anonymous session (A5) — gets one only from the front end's own call: a
        // cross-site form POST carries no Lax cookie, and a new AnT in its answer would
        // replace the visitor's identity (CSRF-11, SEC2-L4).
        let keeps = match find_anonymous_token(tessera, headers, tokens) {
            FoundAnonymous::Token(t, _) => tessera.core().verify_anonymous(&t).is_ok(),
            FoundAnonymous::Ambiguous => true,
            FoundAnonymous::None => false,
        };
        if !keeps && from_our_frontend(headers, tokens) {
            anonymous::replace_cleared_session(tessera, sink, headers, tokens, None).await;
        }
        return ok();
    }
    let session = match get_session(tessera, sink, method, headers, tokens, true, request).await {
        Ok(Some(session)) => session,
        Ok(None) => {
            return SessionRejection::new(tessera, RejectionKind::Unauthorised).into_response()
        }
        Err(rejection) => return rejection.into_response(),
    };
    match session.revoke_existing().await {
        Ok(existed) => {
            if config.anonymous_sessions() {
                // A5, A6: a new anonymous session with the same anonymousId (B1: a new one).
                // The id is kept only if the session was live until now: a revoked session's
                // access token, still within its lifetime, proves nothing (SEC2-H2).
                let keep = if config.rotates_anonymous_id_on_sign_out() || !existed {
                    None
                } else {
                    session.anonymous_id().map(str::to_owned)
                };
                anonymous::sign_out_to_anonymous(tessera, sink, tokens, keep).await;
            }
            ok()
        }
        Err(rejection) => rejection.into_response(),
    }
}
