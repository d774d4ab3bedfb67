//! The SDK's own routes: `POST {base}/session/refresh` and `POST {base}/signout`.

use crate::changes::ChangeSink;
use crate::config::{AntiCsrfMode, TokenTransfer};
use crate::error::{json_response, RejectionKind, SessionRejection};
use crate::transfer::{self, names, CookieValue, TokenLocation};
use crate::verify::{get_session, VerifyRequest};
use crate::Tessera;
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
    cookies: &[(String, String)],
) -> FoundRefresh {
    let transfer = tessera.config().transfer;
    if transfer != TokenTransfer::Cookie {
        if let Some(token) = transfer::bearer(headers) {
            return FoundRefresh::Token(token, TokenLocation::Header);
        }
    }
    if transfer != TokenTransfer::Header {
        let duplicated = [names::REFRESH_COOKIE, names::ACCESS_COOKIE]
            .iter()
            .any(|n| transfer::cookie(cookies, n) == CookieValue::Duplicate);
        if duplicated {
            return FoundRefresh::Duplicate;
        }
        if let CookieValue::One(token) = transfer::cookie(cookies, names::REFRESH_COOKIE) {
            if !token.is_empty() {
                return FoundRefresh::Token(token, TokenLocation::Cookie);
            }
        }
    }
    FoundRefresh::None
}

/// `POST {base}/session/refresh`. Success: 200 `{}` with new tokens and `front-token`.
/// Failure: 401 with every token cleared and `front-token: remove` — except an anti-CSRF
/// failure, which clears nothing so that a cross-site POST cannot sign the user out (RT-13).
pub(crate) async fn refresh(tessera: &Tessera, sink: &ChangeSink, headers: &HeaderMap) -> Response {
    let config = tessera.config();
    let cookies = transfer::request_cookies(headers);
    let unauthorised = |clear: bool| {
        if clear {
            sink.with(|c| transfer::clear_all(c, config));
        }
        SessionRejection::new(tessera, RejectionKind::Unauthorised).into_response()
    };
    let (token, location) = match find_refresh_token(tessera, headers, &cookies) {
        FoundRefresh::Token(t, l) => (t, l),
        FoundRefresh::None => return unauthorised(true),
        FoundRefresh::Duplicate => {
            if let Some(older) = &config.older_cookie_domain {
                sink.with(|c| {
                    for (name, path) in [
                        (names::ACCESS_COOKIE, config.access_token_path.as_str()),
                        (names::REFRESH_COOKIE, config.refresh_path.as_str()),
                    ] {
                        let v = transfer::set_cookie(
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
    if from_cookie && config.anti_csrf == AntiCsrfMode::ViaCustomHeader {
        let has_rid = headers
            .get(names::RID)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| !v.trim().is_empty());
        if !has_rid {
            return unauthorised(false);
        }
    }
    let options = RefreshOptions {
        anti_csrf_token: headers.get(names::ANTI_CSRF).and_then(|v| v.to_str().ok()),
        enable_anti_csrf: from_cookie && config.anti_csrf == AntiCsrfMode::ViaToken,
        use_static_key: Some(!config.use_dynamic_signing_key),
    };
    match tessera.core().refresh_session(&token, options).await {
        Ok(tokens) => {
            sink.with(|c| {
                let other_had_token = match location {
                    TokenLocation::Header => !matches!(
                        transfer::cookie(&cookies, names::REFRESH_COOKIE),
                        CookieValue::Absent
                    ),
                    TokenLocation::Cookie => transfer::bearer(headers).is_some(),
                };
                if other_had_token {
                    let other = match location {
                        TokenLocation::Header => TokenLocation::Cookie,
                        TokenLocation::Cookie => TokenLocation::Header,
                    };
                    transfer::clear(c, config, other);
                }
                transfer::write_access_token(
                    c,
                    config,
                    location,
                    &tokens.session.user_id,
                    &tokens.access_token,
                );
                transfer::write_refresh_token(c, config, location, &tokens.refresh_token);
                if let Some(csrf) = &tokens.anti_csrf_token {
                    c.set_header(names::ANTI_CSRF, Some(csrf), true);
                }
                if !matches!(
                    transfer::cookie(&cookies, names::LEGACY_ID_REFRESH_COOKIE),
                    CookieValue::Absent
                ) {
                    let v = transfer::set_cookie(
                        config,
                        names::LEGACY_ID_REFRESH_COOKIE,
                        "",
                        &config.access_token_path,
                        SystemTime::UNIX_EPOCH,
                        config.cookie_domain.as_deref(),
                    );
                    c.set_cookie(names::LEGACY_ID_REFRESH_COOKIE, v);
                }
            });
            json_response(StatusCode::OK, &serde_json::json!({}))
        }
        Err(SessionError::TokenTheft {
            session_handle,
            user_id,
            ..
        }) => {
            tracing::warn!(session = %session_handle, "token theft detected at refresh");
            sink.with(|c| transfer::clear_all(c, config));
            SessionRejection::new(
                tessera,
                RejectionKind::TokenTheft {
                    session_handle,
                    user_id,
                },
            )
            .into_response()
        }
        Err(SessionError::Engine(e)) => {
            // An outage must not sign everyone out: no clearing on 5xx (RT-15).
            tracing::error!(error = %e, "refresh failed");
            SessionRejection::new(tessera, RejectionKind::Internal).into_response()
        }
        // VIA_TOKEN: a missing or wrong anti-CSRF token clears nothing either (RT-13).
        Err(SessionError::Unauthorised(UnauthorisedReason::AntiCsrfMismatch)) => {
            unauthorised(false)
        }
        Err(_) => unauthorised(true),
    }
}

/// `POST {base}/signout`: needs a session (claims are not checked), revokes it, clears the
/// request's transfer method, answers 200 `{"status":"OK"}`.
pub(crate) async fn signout(
    tessera: &Tessera,
    sink: &ChangeSink,
    method: &Method,
    headers: &HeaderMap,
) -> Response {
    let request = VerifyRequest {
        skip_claims: true,
        ..VerifyRequest::default()
    };
    let session = match get_session(tessera, sink, method, headers, true, request).await {
        Ok(Some(session)) => session,
        Ok(None) => {
            return SessionRejection::new(tessera, RejectionKind::Unauthorised).into_response()
        }
        Err(rejection) => return rejection.into_response(),
    };
    match session.revoke().await {
        Ok(()) => json_response(StatusCode::OK, &serde_json::json!({"status": "OK"})),
        Err(rejection) => rejection.into_response(),
    }
}
