//! Writing tokens into the response: the `Set-Cookie` values, the `st-*` headers and the
//! `front-token`, collected in the request's change sink ([`crate::changes`]) and applied by the
//! layer to whatever response the app returns.

use super::names;
use super::wire::{percent_encode, TokenLocation};
use crate::changes::ResponseChanges;
use crate::config::{Config, DbscPaths};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use std::time::{Duration, SystemTime};
use tessera::AnonymousClaims;
use tessera::MintedAnonymous;
use tessera::TokenInfo;

/// One `Set-Cookie` value: `name=value; Domain; Path; Expires; HttpOnly; Secure; SameSite`.
pub(crate) fn set_cookie(
    config: &Config,
    name: &str,
    value: &str,
    path: &str,
    expires: SystemTime,
    domain: Option<&str>,
) -> String {
    let mut out = format!("{name}={}", percent_encode(value));
    if let Some(domain) = domain {
        out.push_str("; Domain=");
        out.push_str(domain);
    }
    out.push_str("; Path=");
    out.push_str(path);
    out.push_str("; Expires=");
    out.push_str(&httpdate::fmt_http_date(expires));
    out.push_str("; HttpOnly");
    if config.secure {
        out.push_str("; Secure");
    }
    out.push_str("; SameSite=");
    out.push_str(config.same_site.as_str());
    out
}

/// `base64(JSON{"uid","ate","up"})` for an access token, standard alphabet with padding.
pub(crate) fn front_token(user_id: &str, access_token: &TokenInfo) -> Option<String> {
    let payload = access_token.token.split('.').nth(1)?;
    let up = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let up = std::str::from_utf8(&up).ok()?;
    let uid = serde_json::to_string(user_id).ok()?;
    let json = format!(r#"{{"uid":{uid},"ate":{},"up":{up}}}"#, access_token.expiry);
    Some(STANDARD.encode(json))
}

const ONE_YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

fn epoch() -> SystemTime {
    SystemTime::UNIX_EPOCH
}

/// Removes the cookie `name` at `path`: an empty value that expired at the epoch.
fn expire_cookie(changes: &mut ResponseChanges, config: &Config, name: &str, path: &str) {
    let cookie = set_cookie(
        config,
        name,
        "",
        path,
        epoch(),
        config.cookie_domain.as_deref(),
    );
    changes.set_cookie(name, cookie);
}

/// When the access-token cookie of a device-bound session ends: a tenth of the token's
/// lifetime (at most 10 s) before the token, so a request the browser sends with the cookie
/// still reaches the server before the token expires.
pub(crate) fn access_cookie_expiry(access_token: &TokenInfo) -> SystemTime {
    let lifetime = access_token
        .expiry
        .saturating_sub(access_token.created_time);
    let margin = (lifetime / 10).min(10_000);
    SystemTime::UNIX_EPOCH + Duration::from_millis(access_token.expiry.saturating_sub(margin))
}

/// Writes a new access token (and its front-token) in `location`.
pub(crate) fn write_access_token(
    changes: &mut ResponseChanges,
    config: &Config,
    location: TokenLocation,
    user_id: &str,
    access_token: &TokenInfo,
) {
    if let Some(front) = front_token(user_id, access_token) {
        changes.set_header(names::FRONT_TOKEN, Some(&front), true);
    }
    match location {
        TokenLocation::Cookie => {
            // With DBSC on, every access-token cookie ends shortly before its token: a bound
            // session's browser must find it gone and refresh through DBSC (the plain refresh
            // refuses bound sessions), whichever response wrote it last.
            let expires = if config.dbsc.is_some() {
                access_cookie_expiry(access_token)
            } else {
                SystemTime::now() + ONE_YEAR
            };
            let cookie = set_cookie(
                config,
                names::ACCESS_COOKIE,
                &access_token.token,
                &config.access_token_path,
                expires,
                config.cookie_domain.as_deref(),
            );
            changes.set_cookie(names::ACCESS_COOKIE, cookie);
            if config.expose_access_token_in_cookie_mode {
                changes.set_header(names::ACCESS_HEADER, Some(&access_token.token), true);
            }
        }
        TokenLocation::Header => {
            changes.set_header(names::ACCESS_HEADER, Some(&access_token.token), true);
        }
    }
}

/// Writes a new refresh token in `location`.
pub(crate) fn write_refresh_token(
    changes: &mut ResponseChanges,
    config: &Config,
    location: TokenLocation,
    refresh_token: &TokenInfo,
) {
    match location {
        TokenLocation::Cookie => {
            let expires = epoch() + Duration::from_millis(refresh_token.expiry);
            let cookie = set_cookie(
                config,
                names::REFRESH_COOKIE,
                &refresh_token.token,
                &config.refresh_path,
                expires,
                config.cookie_domain.as_deref(),
            );
            changes.set_cookie(names::REFRESH_COOKIE, cookie);
        }
        TokenLocation::Header => {
            changes.set_header(names::REFRESH_HEADER, Some(&refresh_token.token), true);
        }
    }
}

/// Clears the session from one transfer method (§7.3 of the protocol).
pub(crate) fn clear(changes: &mut ResponseChanges, config: &Config, location: TokenLocation) {
    match location {
        TokenLocation::Cookie => {
            for (name, path) in [
                (names::ACCESS_COOKIE, config.access_token_path.as_str()),
                (names::REFRESH_COOKIE, config.refresh_path.as_str()),
            ] {
                expire_cookie(changes, config, name, path);
            }
            changes.set_header(names::ANTI_CSRF, None, false);
            changes.set_header(names::FRONT_TOKEN, Some("remove"), true);
        }
        TokenLocation::Header => {
            changes.set_header(names::ACCESS_HEADER, Some(""), true);
            changes.set_header(names::REFRESH_HEADER, Some(""), true);
            changes.set_header(names::FRONT_TOKEN, Some("remove"), true);
        }
    }
}

/// Clears both methods.
pub(crate) fn clear_all(changes: &mut ResponseChanges, config: &Config) {
    clear(changes, config, TokenLocation::Cookie);
    clear(changes, config, TokenLocation::Header);
}

/// The access-token cookie of a bound session (DBSC): it expires with its token, so the
/// browser refreshes it through DBSC instead of sending an expired token.
pub(crate) fn write_bound_access_token(
    changes: &mut ResponseChanges,
    config: &Config,
    access_token: &TokenInfo,
) {
    let expires = access_cookie_expiry(access_token);
    let cookie = set_cookie(
        config,
        names::ACCESS_COOKIE,
        &access_token.token,
        &config.access_token_path,
        expires,
        config.cookie_domain.as_deref(),
    );
    changes.set_cookie(names::ACCESS_COOKIE, cookie);
}

/// Removes the access-token cookie only (a bound session's plain refresh was refused).
pub(crate) fn expire_access_cookie(changes: &mut ResponseChanges, config: &Config) {
    expire_cookie(
        changes,
        config,
        names::ACCESS_COOKIE,
        &config.access_token_path,
    );
}

/// Removes the legacy `sIdRefreshToken` cookie.
pub(crate) fn clear_legacy(changes: &mut ResponseChanges, config: &Config) {
    expire_cookie(
        changes,
        config,
        names::LEGACY_ID_REFRESH_COOKIE,
        &config.access_token_path,
    );
}

/// The `front-token` of an anonymous session: `{"ate", "up"}`, no `uid` (A17).
pub(crate) fn anonymous_front_token(claims: &AnonymousClaims) -> Option<String> {
    let up = serde_json::to_string(&claims.to_json()).ok()?;
    let json = format!(r#"{{"ate":{},"up":{up}}}"#, claims.exp.saturating_mul(1000));
    Some(STANDARD.encode(json))
}

/// Writes an AnT in `location` with its front-token (and anti-CSRF token) (A11).
pub(crate) fn write_anonymous(
    changes: &mut ResponseChanges,
    config: &Config,
    location: TokenLocation,
    minted: &MintedAnonymous,
) {
    if let Some(front) = anonymous_front_token(&minted.claims) {
        changes.set_header(names::FRONT_TOKEN, Some(&front), true);
    }
    match location {
        TokenLocation::Cookie => {
            let expires = epoch() + Duration::from_secs(minted.claims.exp);
            let cookie = set_cookie(
                config,
                config.anonymous_cookie_name(),
                &minted.token,
                "/",
                expires,
                config.cookie_domain.as_deref(),
            );
            changes.set_cookie(config.anonymous_cookie_name(), cookie);
            match &minted.claims.anti_csrf_token {
                Some(csrf) => changes.set_header(names::ANTI_CSRF, Some(csrf), true),
                None => changes.set_header(names::ANTI_CSRF, None, false),
            }
        }
        TokenLocation::Header => {
            changes.set_header(names::ACCESS_HEADER, Some(&minted.token), true);
            changes.set_header(names::REFRESH_HEADER, Some(&minted.token), true);
        }
    }
}

/// Re-sends the front-token of an AnT the visitor keeps (the refresh route's 401 for an
/// anonymous visitor must not make the browser SDK forget its session).
pub(crate) fn keep_anonymous(changes: &mut ResponseChanges, claims: &AnonymousClaims) {
    if let Some(front) = anonymous_front_token(claims) {
        changes.set_header(names::FRONT_TOKEN, Some(&front), true);
    }
}

/// Removes the AnT (sign-in A15, feature off A18). In header mode the access/refresh slots
/// are only emptied when `header_slots` is set (they may hold the new signed-in tokens).
pub(crate) fn clear_anonymous(changes: &mut ResponseChanges, config: &Config, header_slots: bool) {
    expire_cookie(changes, config, config.anonymous_cookie_name(), "/");
    if header_slots {
        changes.set_header(names::ACCESS_HEADER, Some(""), true);
        changes.set_header(names::REFRESH_HEADER, Some(""), true);
        changes.set_header(names::FRONT_TOKEN, Some("remove"), true);
    }
}

/// DBSC: the registration offer (response header).
pub(crate) const DBSC_REGISTRATION: &str = "secure-session-registration";
/// DBSC: the challenge (response header).
pub(crate) const DBSC_CHALLENGE: &str = "secure-session-challenge";

/// DBSC: offers the browser registration with `challenge` (`Secure-Session-Registration`).
pub(crate) fn offer_dbsc_registration(
    changes: &mut ResponseChanges,
    paths: &DbscPaths,
    challenge: &str,
) {
    let value = format!(
        r#"(ES256 RS256);path="{}";challenge="{challenge}""#,
        paths.register
    );
    changes.set_header(DBSC_REGISTRATION, Some(&value), false);
}

/// DBSC: the `Secure-Session-Challenge` value for the session `id`.
pub(crate) fn dbsc_challenge_header(challenge: &str, id: &str) -> String {
    format!(r#""{challenge}";id="{id}""#)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_token_is_standard_base64_of_uid_ate_up() {
        let payload = URL_SAFE_NO_PAD.encode(r#"{"sub":"ü","exp":2}"#);
        let at = TokenInfo {
            token: format!("h.{payload}.s"),
            expiry: 2000,
            created_time: 1000,
        };
        let ft = front_token("ü", &at).unwrap();
        let json = String::from_utf8(STANDARD.decode(&ft).unwrap()).unwrap();
        assert_eq!(json, r#"{"uid":"ü","ate":2000,"up":{"sub":"ü","exp":2}}"#);
    }
}
