//! Device Bound Session Credentials (W3C webappsec-dbsc, issue 14) in cookie mode.
//!
//! The exchange, as the SDK runs it:
//! 1. sign-in (or a guest's first anonymous token) answers
//!    `Secure-Session-Registration: (ES256 RS256);path="…";challenge="…"`;
//! 2. the browser `POST`s the registration path with `Secure-Session-Response: <dbsc+jwt>`;
//!    the engine verifies it and binds the key; the answer is 200 with the bound cookie (the
//!    access-token cookie, expiring with its token) and the session configuration JSON;
//! 3. when the bound cookie is gone the browser `POST`s the refresh path with
//!    `Sec-Secure-Session-Id`; without a proof the answer is 403 with
//!    `Secure-Session-Challenge: "…";id="…"`; with one, the same rotation as
//!    `/session/refresh` runs and fresh cookies go out with the next challenge (sent ahead);
//!    a session that ended answers `{"continue": false}`.
//!
//! Header values are read as RFC 9651 structured fields (`sfv`): an sf-string or, as Chrome
//! sends them, a bare token. A bound session's plain `/session/refresh` is refused by the
//! engine (401, nothing cleared). Header mode offers nothing.

use crate::anonymous::{find_anonymous_token, FoundAnonymous};
use crate::changes::ChangeSink;
use crate::config::{Config, DbscPaths};
use crate::error::json_response;
use crate::tessera::Tessera;
use crate::transfer::read::{CookieRef, RequestTokens};
use crate::transfer::write::{
    self, dbsc_challenge_header as challenge_header, write_bound_access_token,
    DBSC_CHALLENGE as CHALLENGE,
};
use crate::transfer::{names, TokenLocation};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::json;
use tessera::DbscBinding;
use tessera::{DbscError, RefreshOptions, SessionError, TokenInfo, VerifyOptions};

/// Proof (request).
pub(crate) const RESPONSE: &str = "secure-session-response";
/// The browser's session identifier (request).
pub(crate) const SESSION_ID: &str = "sec-secure-session-id";

/// Longest session identifier read.
const MAX_SESSION_ID_LEN: usize = 128;

/// One header read as an sf-string or sf-token; `Err` when repeated, too long or not one of
/// those.
fn sf_text(headers: &HeaderMap, name: &str, max: usize) -> Result<Option<String>, ()> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() || value.len() > max + 2 {
        return Err(());
    }
    match sfv::Parser::new(value.as_bytes()).parse::<sfv::Item>() {
        Ok(item) => match &item.bare_item {
            sfv::BareItem::String(s) => Ok(Some(s.as_str().to_owned())),
            sfv::BareItem::Token(t) => Ok(Some(t.as_str().to_owned())),
            _ => Err(()),
        },
        // Chrome echoes identifiers bare even when they are not sf-tokens (a token must start
        // with a letter; `03eb…` does not): accept a bare run of token characters.
        Err(_) => {
            let bytes = value.as_bytes();
            let bare = !bytes.is_empty()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~+/=:".contains(b));
            if bare {
                Ok(value.to_str().ok().map(str::to_owned))
            } else {
                Err(())
            }
        }
    }
}

/// The cookie attributes the session configuration names (as `set_cookie` writes them).
fn cookie_attributes(config: &Config, path: &str) -> String {
    let mut out = String::new();
    if let Some(domain) = &config.cookie_domain {
        out.push_str("Domain=");
        out.push_str(domain);
        out.push_str("; ");
    }
    out.push_str("Path=");
    out.push_str(path);
    out.push_str("; HttpOnly");
    if config.secure {
        out.push_str("; Secure");
    }
    out.push_str("; SameSite=");
    out.push_str(config.same_site.as_str());
    out
}

/// The session configuration JSON (registration and refresh answers).
fn session_config(
    config: &Config,
    paths: &DbscPaths,
    id: &str,
    cookie: &str,
    path: &str,
) -> Response {
    let body = json!({
        "session_identifier": id,
        "refresh_url": paths.refresh,
        "scope": {
            "origin": config.api.serialised,
            "include_site": paths.include_site,
            "scope_specification": [
                {"type": "exclude", "domain": config.api.host, "path": paths.register},
            ],
        },
        "credentials": [{
            "type": "cookie",
            "name": cookie,
            "attributes": cookie_attributes(config, path),
        }],
    });
    let mut response = json_response(StatusCode::OK, &body);
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    response
}

fn status(code: StatusCode) -> Response {
    let mut response = code.into_response();
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    response
}

fn end_session() -> Response {
    let mut response = json_response(StatusCode::OK, &json!({"continue": false}));
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    response
}

fn registration_refused(e: &DbscError) -> Response {
    match e {
        DbscError::Session(SessionError::Engine(err)) => {
            tracing::error!(error = %err, "device-bound registration failed");
            status(StatusCode::INTERNAL_SERVER_ERROR)
        }
        DbscError::SessionGone => status(StatusCode::UNAUTHORIZED),
        other => {
            tracing::info!(reason = %other, "device-bound registration refused");
            status(StatusCode::BAD_REQUEST)
        }
    }
}

/// `POST {base}/session/dbsc/register`.
pub(crate) async fn register(
    tessera: &Tessera,
    sink: &ChangeSink,
    headers: &HeaderMap,
    tokens: &RequestTokens,
) -> Response {
    let config = tessera.config();
    let Some(paths) = &config.dbsc else {
        return status(StatusCode::NOT_FOUND);
    };
    let proof = match sf_text(headers, RESPONSE, tessera::MAX_PROOF_LEN) {
        Ok(Some(proof)) => proof,
        _ => return status(StatusCode::BAD_REQUEST),
    };
    let core = tessera.core();
    if let CookieRef::One(at) = tokens.access_cookie(headers) {
        let verified = match core.verify_session(&at, VerifyOptions::default()).await {
            Ok(v) => v,
            Err(SessionError::Engine(e)) => {
                tracing::error!(error = %e, "device-bound registration failed");
                return status(StatusCode::INTERNAL_SERVER_ERROR);
            }
            Err(_) => return status(StatusCode::UNAUTHORIZED),
        };
        let session = &verified.session;
        let binding = match core
            .dbsc_register(&session.tenant_id, &session.handle, &proof)
            .await
        {
            Ok(b) => b,
            Err(e) => return registration_refused(&e),
        };
        // The bound cookie: the access token the browser holds, now expiring with it.
        let token = verified.access_token.clone().unwrap_or(TokenInfo {
            token: at.into_owned(),
            expiry: verified.access_token_expiry,
            created_time: 0,
        });
        sink.with(|c| {
            write_bound_access_token(c, config, &token);
            if let Some(front) = write::front_token(&session.user_id, &token) {
                c.set_header(names::FRONT_TOKEN, Some(&front), true);
            }
        });
        send_challenge_ahead(tessera, sink, &binding).await;
        return session_config(
            config,
            paths,
            &binding.dbsc_session_id,
            names::ACCESS_COOKIE,
            &config.access_token_path,
        );
    }
    // A guest: bound by anonymousId until its anonymous token expires.
    let token = match find_anonymous_token(tessera, headers, tokens) {
        FoundAnonymous::Token(t, TokenLocation::Cookie) => t,
        _ => return status(StatusCode::UNAUTHORIZED),
    };
    let Ok(verified) = core.verify_anonymous(&token) else {
        return status(StatusCode::UNAUTHORIZED);
    };
    let claims = &verified.claims;
    match core
        .dbsc_register_guest(
            &claims.anonymous_id,
            &proof,
            claims.exp.saturating_mul(1000),
        )
        .await
    {
        Ok(binding) => session_config(
            config,
            paths,
            &binding.dbsc_session_id,
            config.anonymous_cookie_name(),
            "/",
        ),
        Err(e) => registration_refused(&e),
    }
}

async fn send_challenge_ahead(tessera: &Tessera, sink: &ChangeSink, binding: &DbscBinding) {
    if let Ok(challenge) = tessera
        .core()
        .dbsc_challenge(&binding.tenant_id, &binding.session_handle)
        .await
    {
        let value = challenge_header(&challenge, &binding.dbsc_session_id);
        sink.with(|c| c.set_header(CHALLENGE, Some(&value), false));
    }
}

/// `POST {base}/session/refresh/dbsc`.
pub(crate) async fn refresh(
    tessera: &Tessera,
    sink: &ChangeSink,
    headers: &HeaderMap,
    tokens: &RequestTokens,
) -> Response {
    let config = tessera.config();
    let Some(paths) = &config.dbsc else {
        return status(StatusCode::NOT_FOUND);
    };
    let (Ok(claimed_id), Ok(proof)) = (
        sf_text(headers, SESSION_ID, MAX_SESSION_ID_LEN),
        sf_text(headers, RESPONSE, tessera::MAX_PROOF_LEN),
    ) else {
        return status(StatusCode::BAD_REQUEST);
    };
    // The session is the refresh token's; without one (signed out, cookies cleared) the
    // browser's bound session is over.
    let CookieRef::One(refresh_token) = tokens.refresh_cookie(headers) else {
        return end_session();
    };
    let options = || RefreshOptions {
        // The proof is the request's authentication: a cross-site request cannot make one.
        anti_csrf_token: None,
        enable_anti_csrf: false,
        use_static_key: Some(!config.use_dynamic_signing_key),
    };
    let core = tessera.core();
    let challenge = |challenge: String, id: String| {
        if claimed_id.as_deref().is_some_and(|claimed| claimed != id) {
            // The browser asks about a bound session that is not this refresh token's.
            return end_session();
        }
        let mut response = status(StatusCode::FORBIDDEN);
        if let Ok(v) = HeaderValue::from_str(&challenge_header(&challenge, &id)) {
            response.headers_mut().insert(CHALLENGE, v);
        }
        response
    };
    let outcome = core
        .dbsc_refresh_session(&refresh_token, options(), proof.as_deref())
        .await;
    match outcome {
        Ok((tokens, binding)) => {
            sink.with(|c| {
                if let Some(front) =
                    write::front_token(&tokens.session.user_id, &tokens.access_token)
                {
                    c.set_header(names::FRONT_TOKEN, Some(&front), true);
                }
                write_bound_access_token(c, config, &tokens.access_token);
                write::write_refresh_token(c, config, TokenLocation::Cookie, &tokens.refresh_token);
                if let Some(csrf) = &tokens.anti_csrf_token {
                    c.set_header(names::ANTI_CSRF, Some(csrf), true);
                }
            });
            send_challenge_ahead(tessera, sink, &binding).await;
            session_config(
                config,
                paths,
                &binding.dbsc_session_id,
                names::ACCESS_COOKIE,
                &config.access_token_path,
            )
        }
        Err(DbscError::NeedsChallenge {
            challenge: c,
            dbsc_session_id,
        }) => challenge(c, dbsc_session_id),
        // A stale, replayed or foreign challenge, or a proof that does not verify: a new
        // challenge (the device retries; anyone without the key never gets further).
        Err(e @ (DbscError::Proof(_) | DbscError::Challenge(_))) => {
            tracing::info!(reason = %e, "device-bound refresh proof refused");
            match core
                .dbsc_refresh_session(&refresh_token, options(), None)
                .await
            {
                Err(DbscError::NeedsChallenge {
                    challenge: c,
                    dbsc_session_id,
                }) => challenge(c, dbsc_session_id),
                _ => status(StatusCode::FORBIDDEN),
            }
        }
        Err(DbscError::Session(SessionError::Engine(e))) => {
            tracing::error!(error = %e, "device-bound refresh failed");
            status(StatusCode::INTERNAL_SERVER_ERROR)
        }
        Err(DbscError::Session(SessionError::TokenTheft { session_handle, .. })) => {
            tracing::warn!(session = %session_handle, "token theft detected at device-bound refresh");
            sink.with(|c| write::clear(c, config, TokenLocation::Cookie));
            end_session()
        }
        // Not bound, gone, expired, unauthorised: this bound session is over.
        Err(_) => end_session(),
    }
}
