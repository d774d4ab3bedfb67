//! Token transfer: reading tokens from cookies or the `Authorization` header, and writing them
//! back (HttpOnly cookies or `st-*` headers) with the `front-token` the browser SDK keeps as its
//! record of the session.

use crate::changes::ResponseChanges;
use crate::config::Config;
use arc_swap::ArcSwapOption;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use http::header::{AUTHORIZATION, COOKIE};
use http::HeaderMap;
use std::borrow::Cow;
use std::sync::Arc;
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

/// A cookie looked up by name straight in the `Cookie` headers, borrowing its value when it
/// needs no percent-decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CookieRef<'a> {
    Absent,
    One(Cow<'a, str>),
    /// The name appears more than once (another domain or path planted a copy).
    Duplicate,
}

/// Finds one cookie by name without building the whole list; same parsing as
/// [`request_cookies`] followed by [`cookie`] (names and values trimmed, values unquoted, both
/// percent-decoded), but nothing is allocated unless the value holds a `%` escape.
pub(crate) fn find_cookie<'a>(headers: &'a HeaderMap, name: &str) -> CookieRef<'a> {
    let [found] = find_cookies(headers, [name]);
    found
}

/// [`find_cookie`] for several names in one pass over the `Cookie` headers.
pub(crate) fn find_cookies<'a, const N: usize>(
    headers: &'a HeaderMap,
    names: [&str; N],
) -> [CookieRef<'a>; N] {
    let mut found = std::array::from_fn(|_| CookieRef::Absent);
    for line in headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        for pair in cookie_pairs(line) {
            let Some(eq) = memchr::memchr(b'=', pair.as_bytes()) else {
                continue;
            };
            // `=` is ASCII, so both sides are on character boundaries.
            let (n, value) = (pair[..eq].trim(), &pair[eq + 1..]);
            let decoded;
            let n = if memchr::memchr(b'%', n.as_bytes()).is_some() {
                decoded = percent_decode(n);
                decoded.as_str()
            } else {
                n
            };
            for (slot, name) in found.iter_mut().zip(names) {
                if n != name {
                    continue;
                }
                *slot = match slot {
                    CookieRef::Absent => {
                        let value = value.trim().trim_matches('"');
                        CookieRef::One(if memchr::memchr(b'%', value.as_bytes()).is_some() {
                            Cow::Owned(percent_decode(value))
                        } else {
                            Cow::Borrowed(value)
                        })
                    }
                    _ => CookieRef::Duplicate,
                };
            }
        }
    }
    found
}

/// The `;`-separated pairs of one `Cookie` line (as `line.split(';')`, with a SIMD search).
fn cookie_pairs(line: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(line);
    std::iter::from_fn(move || {
        let current = rest?;
        match memchr::memchr(b';', current.as_bytes()) {
            // `;` is ASCII, so both sides are on character boundaries.
            Some(i) => {
                rest = Some(&current[i + 1..]);
                Some(&current[..i])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

/// The session cookies of a request as the layer read them, in its one pass over the `Cookie`
/// headers, handed to the extractors so they do not parse the headers again. The layer is the
/// session boundary: extractors see the cookies as the request reached it.
#[derive(Debug, Clone, Default)]
pub(crate) enum SeenCookies {
    /// The layer did not read the cookies (a bearer access token decided the request, header
    /// transfer, or no layer pass): the extractor reads them itself.
    #[default]
    NotRead,
    /// What the layer found.
    Read {
        /// The access-token cookie.
        access: SharedCookie,
        /// A non-empty legacy `sIdRefreshToken` cookie is present (exactly one copy).
        legacy: bool,
    },
}

/// A cookie value the layer keeps for the extractors.
#[derive(Debug, Clone)]
pub(crate) enum SharedCookie {
    Absent,
    One(Arc<str>),
    Duplicate,
}

impl SharedCookie {
    /// Keeps `found` beyond the request headers' borrow.
    pub(crate) fn keep(found: &CookieRef<'_>) -> Self {
        match found {
            CookieRef::Absent => Self::Absent,
            CookieRef::One(value) => Self::One(Arc::from(value.as_ref())),
            CookieRef::Duplicate => Self::Duplicate,
        }
    }
}

/// True for exactly one non-empty copy of the legacy `sIdRefreshToken` cookie.
pub(crate) fn is_legacy_present(legacy: &CookieRef<'_>) -> bool {
    matches!(legacy, CookieRef::One(v) if !v.is_empty())
}

/// The token of `Authorization: Bearer <token>` (exact, case-sensitive prefix, trimmed). Several
/// `Authorization` headers are ambiguous and give none.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<String> {
    bearer_ref(headers).map(str::to_owned)
}

/// [`bearer`], borrowed from the headers.
pub(crate) fn bearer_ref(headers: &HeaderMap) -> Option<&str> {
    let mut all = headers.get_all(AUTHORIZATION).iter();
    let (Some(value), None) = (all.next(), all.next()) else {
        return None;
    };
    let token = value.to_str().ok()?.strip_prefix("Bearer ")?.trim();
    (!token.is_empty()).then_some(token)
}

/// The `kid` of `token` when it has the shape of an access token (three base64url segments, a
/// header naming a `kid`); `None` otherwise. A bearer value without that shape is another
/// scheme's token and is ignored, not rejected.
pub(crate) fn access_token_kid(token: &str) -> Option<String> {
    with_access_token_kid(token, str::to_owned)
}

/// Runs `f` on the `kid` of `token` (see [`access_token_kid`]) without allocating for the
/// usual small header.
pub(crate) fn with_access_token_kid<R>(token: &str, f: impl FnOnce(&str) -> R) -> Option<R> {
    #[derive(serde::Deserialize)]
    struct Header<'a> {
        #[serde(borrow)]
        kid: Cow<'a, str>,
    }
    let h = access_token_header(token)?;
    let mut buf = [0u8; 256];
    let heap;
    let bytes = match URL_SAFE_NO_PAD.decode_slice(h, &mut buf) {
        Ok(n) => buf.get(..n)?,
        Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
            heap = URL_SAFE_NO_PAD.decode(h).ok()?;
            &heap[..]
        }
        Err(base64::DecodeSliceError::DecodeError(_)) => return None,
    };
    serde_json::from_slice::<Header<'_>>(bytes)
        .ok()
        .map(|h| f(&h.kid))
}

/// The header segment of `token` when it has three segments and the last two are not empty.
fn access_token_header(token: &str) -> Option<&str> {
    // Three searches for `.` that together read the token once (each a vectorised `memchr`):
    // the header ends at the first dot, the payload at the second, and the signature must hold
    // no third.
    let dot = |s: &str| memchr::memchr(b'.', s.as_bytes());
    let first = dot(token)?;
    let (header, rest) = (&token[..first], &token[first + 1..]);
    let second = dot(rest)?;
    let (payload, signature) = (&rest[..second], &rest[second + 1..]);
    (!payload.is_empty() && !signature.is_empty() && dot(signature).is_none()).then_some(header)
}

/// Remembers the last access-token header seen and whether its `kid` names a dynamic key:
/// every token signed with one key has the same header, so parsing it again is wasted work.
#[derive(Debug, Default)]
pub(crate) struct KidMemo(ArcSwapOption<(Box<str>, Option<bool>)>);

impl KidMemo {
    /// `Some(true)` when `token` has the shape of an access token and its `kid` names a dynamic
    /// key (`d-…`), `Some(false)` for another `kid`, `None` without that shape (see
    /// [`access_token_kid`]).
    pub(crate) fn dynamic_key(&self, token: &str) -> Option<bool> {
        let header = access_token_header(token)?;
        if let Some(last) = &*self.0.load() {
            if *last.0 == *header {
                return last.1;
            }
        }
        let dynamic = with_access_token_kid(token, |kid| {
            kid.starts_with(tessera::protocol::DYNAMIC_KID_PREFIX)
        });
        if header.len() <= MAX_MEMO_HEADER {
            self.0.store(Some(Arc::new((header.into(), dynamic))));
        }
        dynamic
    }
}

/// Longer headers are not remembered (real ones are about 100 bytes).
const MAX_MEMO_HEADER: usize = 512;

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
        assert_eq!(
            find_cookie(&h, "sAccessToken"),
            CookieRef::One(Cow::Owned("x+y".into()))
        );
        assert_eq!(find_cookie(&h, "b"), CookieRef::One(Cow::Borrowed("2")));
        assert_eq!(find_cookie(&h, "zz"), CookieRef::Absent);
        h.append(COOKIE, "sAccessToken=other".parse().unwrap());
        let c = request_cookies(&h);
        assert_eq!(cookie(&c, "sAccessToken"), CookieValue::Duplicate);
        assert_eq!(find_cookie(&h, "sAccessToken"), CookieRef::Duplicate);
    }

    #[test]
    fn cookie_lookup_matches_the_full_parse() {
        let lines = [
            "a=1; sAccessToken=x%2By; b=2",
            " sAccessToken = \"quoted\" ",
            "s%41ccessToken=encoded-name; junk; =; sAccessToken",
            "sAccessToken=; sAccessToken=two",
            "sAccessToken=%zz%4",
            "",
        ];
        for line in lines {
            let mut h = HeaderMap::new();
            h.insert(COOKIE, line.parse().unwrap());
            for name in ["sAccessToken", "a", "b", "junk", ""] {
                let full = match cookie(&request_cookies(&h), name) {
                    CookieValue::Absent => CookieRef::Absent,
                    CookieValue::One(v) => CookieRef::One(Cow::Owned(v)),
                    CookieValue::Duplicate => CookieRef::Duplicate,
                };
                let quick = match find_cookie(&h, name) {
                    CookieRef::One(v) => CookieRef::One(Cow::Owned(v.into_owned())),
                    other => other,
                };
                assert_eq!(quick, full, "{line:?} / {name:?}");
            }
        }
    }

    #[test]
    fn kid_memo_answers_like_the_parse() {
        let memo = KidMemo::default();
        let d = URL_SAFE_NO_PAD.encode(r#"{"kid":"d-123","typ":"JWT","alg":"RS256"}"#);
        let s = URL_SAFE_NO_PAD.encode(r#"{"kid":"s-1","typ":"JWT","alg":"RS256"}"#);
        let no_kid = URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT"}"#);
        for _ in 0..2 {
            assert_eq!(memo.dynamic_key(&format!("{d}.p.s")), Some(true));
            assert_eq!(memo.dynamic_key(&format!("{d}.q.t")), Some(true));
            assert_eq!(memo.dynamic_key(&format!("{d}.p.s.x")), None);
            assert_eq!(memo.dynamic_key(&format!("{d}..s")), None);
            assert_eq!(memo.dynamic_key(&format!("{d}.p.")), None);
            assert_eq!(memo.dynamic_key(&format!(".{d}.p")), None);
            assert_eq!(memo.dynamic_key(&format!("{s}.p.s")), Some(false));
            assert_eq!(memo.dynamic_key(&format!("{no_kid}.p.s")), None);
            assert_eq!(memo.dynamic_key(&format!("{no_kid}.p.s")), None);
            assert_eq!(memo.dynamic_key("x"), None);
        }
    }

    #[test]
    fn kid_of_access_tokens() {
        let h = URL_SAFE_NO_PAD.encode(r#"{"kid":"d-123","typ":"JWT","alg":"RS256"}"#);
        assert_eq!(
            access_token_kid(&format!("{h}.p.s")).as_deref(),
            Some("d-123")
        );
        assert_eq!(access_token_kid(&format!("{h}.p")), None);
        assert_eq!(access_token_kid(&format!("{h}..s")), None);
        assert_eq!(access_token_kid("!!.p.s"), None);
        let escaped = URL_SAFE_NO_PAD.encode(r#"{"kid":"s-\u0031"}"#);
        assert_eq!(
            access_token_kid(&format!("{escaped}.p.s")).as_deref(),
            Some("s-1")
        );
        let long = URL_SAFE_NO_PAD.encode(format!(r#"{{"pad":"{}","kid":"k"}}"#, "x".repeat(400)));
        assert_eq!(
            access_token_kid(&format!("{long}.p.s")).as_deref(),
            Some("k")
        );
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
