//! Token transfer: reading tokens from cookies or the `Authorization` header, and writing them
//! back (HttpOnly cookies or `st-*` headers) with the `front-token` the browser SDK keeps as its
//! record of the session.

use crate::changes::ResponseChanges;
use crate::config::Config;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use http::header::{AUTHORIZATION, COOKIE};
use http::HeaderMap;
use std::time::{Duration, SystemTime};
use tessera::TokenInfo;

/// Cookie and header names of the protocol.
pub mod names {
    /// Access-token cookie.
    pub const ACCESS_COOKIE: &str = "sAccessToken";
    /// Refresh-token cookie (path: the refresh route).
    pub const REFRESH_COOKIE: &str = "sRefreshToken";
    /// Legacy cookie, only ever cleared.
    pub const LEGACY_ID_REFRESH_COOKIE: &str = "sIdRefreshToken";
    /// Access token in header mode.
    pub const ACCESS_HEADER: &str = "st-access-token";
    /// Refresh token in header mode.
    pub const REFRESH_HEADER: &str = "st-refresh-token";
    /// Session state for the browser SDK.
    pub const FRONT_TOKEN: &str = "front-token";
    /// Anti-CSRF token (VIA_TOKEN).
    pub const ANTI_CSRF: &str = "anti-csrf";
    /// Transfer mode requested by the browser SDK.
    pub const AUTH_MODE: &str = "st-auth-mode";
    /// Custom header for VIA_CUSTOM_HEADER.
    pub const RID: &str = "rid";
}

/// Where a token came from, or goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenLocation {
    /// Cookies.
    Cookie,
    /// Headers.
    Header,
}

/// A cookie looked up by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CookieValue {
    Absent,
    One(String),
    /// The name appears more than once (another domain or path planted a copy).
    Duplicate,
}

/// Parses every `Cookie` header into percent-decoded `(name, value)` pairs.
pub(crate) fn request_cookies(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            let value = value.trim().trim_matches('"');
            Some((percent_decode(name.trim()), percent_decode(value)))
        })
        .collect()
}

/// Finds one cookie by name, telling duplicates apart.
pub(crate) fn cookie(cookies: &[(String, String)], name: &str) -> CookieValue {
    let mut found = cookies.iter().filter(|(n, _)| n == name);
    match (found.next(), found.next()) {
        (None, _) => CookieValue::Absent,
        (Some((_, v)), None) => CookieValue::One(v.clone()),
        (Some(_), Some(_)) => CookieValue::Duplicate,
    }
}

/// The token of `Authorization: Bearer <token>` (exact, case-sensitive prefix, trimmed). Several
/// `Authorization` headers are ambiguous and give none.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<String> {
    let mut all = headers.get_all(AUTHORIZATION).iter();
    let (Some(value), None) = (all.next(), all.next()) else {
        return None;
    };
    let token = value.to_str().ok()?.strip_prefix("Bearer ")?.trim();
    (!token.is_empty()).then(|| token.to_owned())
}

/// The `kid` of `token` when it has the shape of an access token (three base64url segments, a
/// header naming a `kid`); `None` otherwise. A bearer value without that shape is another
/// scheme's token and is ignored, not rejected.
pub(crate) fn access_token_kid(token: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Header {
        kid: String,
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if p.is_empty() || s.is_empty() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(h).ok()?;
    serde_json::from_slice::<Header>(&bytes).ok().map(|h| h.kid)
}

/// Percent-encodes a cookie value like JavaScript's `encodeURIComponent`.
///
/// ```
/// assert_eq!(tessera_axum::transfer::percent_encode("a+b/c="), "a%2Bb%2Fc%3D");
/// ```
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes of a cookie value; malformed escapes are kept as they are.
pub fn percent_decode(value: &str) -> String {
    if !value.contains('%') {
        return value.to_owned();
    }
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 3 <= bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

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
            let cookie = set_cookie(
                config,
                names::ACCESS_COOKIE,
                &access_token.token,
                &config.access_token_path,
                SystemTime::now() + ONE_YEAR,
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
                let c = set_cookie(
                    config,
                    name,
                    "",
                    path,
                    epoch(),
                    config.cookie_domain.as_deref(),
                );
                changes.set_cookie(name, c);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_coding_round_trips_refresh_tokens() {
        let rt = "ab+/cd==.0f.V2";
        let enc = percent_encode(rt);
        assert_eq!(enc, "ab%2B%2Fcd%3D%3D.0f.V2");
        assert_eq!(percent_decode(&enc), rt);
        assert_eq!(
            percent_decode("%zz%4"),
            "%zz%4",
            "malformed escapes are kept"
        );
        assert_eq!(percent_decode("%41"), "A");
    }

    #[test]
    fn cookies_parse_and_duplicates_are_seen() {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, "a=1; sAccessToken=x%2By; b=2".parse().unwrap());
        let c = request_cookies(&h);
        assert_eq!(cookie(&c, "sAccessToken"), CookieValue::One("x+y".into()));
        assert_eq!(cookie(&c, "zz"), CookieValue::Absent);
        h.append(COOKIE, "sAccessToken=other".parse().unwrap());
        let c = request_cookies(&h);
        assert_eq!(cookie(&c, "sAccessToken"), CookieValue::Duplicate);
    }

    #[test]
    fn bearer_is_exact() {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, "Bearer  tok ".parse().unwrap());
        assert_eq!(bearer(&h).as_deref(), Some("tok"));
        h.insert(AUTHORIZATION, "bearer tok".parse().unwrap());
        assert_eq!(bearer(&h), None);
        h.insert(AUTHORIZATION, "Basic dXNlcg==".parse().unwrap());
        assert_eq!(bearer(&h), None);
        h.insert(AUTHORIZATION, "Bearer a".parse().unwrap());
        h.append(AUTHORIZATION, "Bearer b".parse().unwrap());
        assert_eq!(bearer(&h), None, "two Authorization headers are ambiguous");
    }

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
