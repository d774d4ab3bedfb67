//! Reading a request: one pass over its headers into [`RequestTokens`], which the layer hands
//! to the extractors, so no header is parsed twice in one request (issue 12).
//!
//! The rules, in the order [`RequestTokens::read`] applies them:
//! 1. **`Cookie`**: every `Cookie` header line (one that is not visible ASCII is skipped), split
//!    on `;`; a pair without `=` is skipped; name and value are trimmed, the value unquoted
//!    (`"`), both percent-decoded ([`super::percent_decode`]). A `HeaderValue` never holds a
//!    control byte other than tab, nor DEL (`http` refuses them), so "visible ASCII" is checked
//!    as "ASCII" (`is_ascii`, a word at a time) and the line is read as bytes: a value becomes
//!    `str` only where it is used. The session cookies
//!    (access, refresh, legacy, anonymous) are looked up by exact name; a name seen more than
//!    once is [`CookieRef::Duplicate`] (another domain or path planted a copy, COOK-08).
//! 2. **`Authorization`**: exactly one header, `Bearer ` (case-sensitive) then the token,
//!    trimmed and not empty ([`bearer`]); several headers are ambiguous and give none.
//! 3. **The bearer's `kid` class** ([`KidClass`]): anonymous (`a-…`), dynamic (`d-…`) or
//!    another key, read from the token's header when the token has the shape of an access token
//!    (three dot-separated segments, the last two not empty); a value without that shape is
//!    another scheme's token and has no class.
//! 4. **`st-auth-mode`**: `cookie` or `header` (any case); anything else is no preference.
//! 5. **`rid`**: present and not blank (`rid_in`, the one `rid` check of the SDK).
//!
//! Values are kept as positions in the request's headers: nothing is copied and nothing is
//! allocated unless a cookie value holds a `%` escape. The access-token cookie's bytes are
//! handed to the layer ([`Seen`]), which looks them up in the verified-token cache while it
//! still borrows the headers: a hit keeps the cache's shared copy of the token
//! ([`RequestTokens::settle_access`]), a miss one copy of its own.

use super::names;
use super::wire::{percent_decode, TokenLocation};
use crate::config::TokenTransfer;
use arc_swap::ArcSwapOption;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, COOKIE};
use http::HeaderMap;
use std::borrow::Cow;
use std::sync::Arc;
use tessera::CachedAccessToken;

/// The protocol's request headers, as names ready for lookup (no parsing of the name).
static AUTH_MODE: HeaderName = HeaderName::from_static(names::AUTH_MODE);
static RID: HeaderName = HeaderName::from_static(names::RID);
static ANTI_CSRF: HeaderName = HeaderName::from_static(names::ANTI_CSRF);

/// A cookie looked up by name, its value borrowed when it needs no percent-decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CookieRef<'a> {
    Absent,
    One(Cow<'a, str>),
    /// The name appears more than once (another domain or path planted a copy).
    Duplicate,
}

impl CookieRef<'_> {
    /// True unless the cookie is absent.
    pub(crate) fn is_present(&self) -> bool {
        !matches!(self, Self::Absent)
    }

    /// True for exactly one copy with a non-empty value.
    pub(crate) fn is_one_non_empty(&self) -> bool {
        matches!(self, Self::One(v) if !v.is_empty())
    }
}

/// The class of a token's `kid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KidClass {
    /// An anonymous token's key (`a-…`).
    Anonymous,
    /// A dynamic signing key (`d-…`).
    Dynamic,
    /// Another (static) key.
    Static,
}

impl KidClass {
    fn of(kid: &str) -> Self {
        if kid.starts_with(tessera::protocol::ANONYMOUS_KID_PREFIX) {
            Self::Anonymous
        } else if kid.starts_with(tessera::protocol::DYNAMIC_KID_PREFIX) {
            Self::Dynamic
        } else {
            Self::Static
        }
    }
}

/// Where a value sits in the request: the `n`-th line of its header, bytes `start..end`.
#[derive(Debug, Clone, Copy)]
struct At {
    line: u32,
    start: u32,
    end: u32,
}

impl At {
    /// The value, from the same request's headers. Only the value's bytes are checked again
    /// (as UTF-8; the read pass checked the line), not the whole line.
    fn get<'a>(&self, headers: &'a HeaderMap, name: http::header::HeaderName) -> Option<&'a str> {
        let line = headers.get_all(name).iter().nth(self.line as usize)?;
        let value = line
            .as_bytes()
            .get(self.start as usize..self.end as usize)?;
        std::str::from_utf8(value).ok()
    }
}

/// A session cookie as the read pass found it.
#[derive(Debug, Clone, Default)]
enum Slot {
    #[default]
    Absent,
    /// One copy, at this place in the `Cookie` headers (no `%` escape).
    At(At),
    /// One copy, its (decoded) value kept: the access-token cookie, which the session then
    /// shares without a copy, and any value that needed percent-decoding.
    Kept(Arc<str>),
    /// The access-token cookie, found in the verified-token cache: the cache's copy of it.
    Cached(CachedAccessToken),
    Duplicate,
}

impl Slot {
    fn get<'a>(&'a self, headers: &'a HeaderMap) -> CookieRef<'a> {
        match self {
            Self::Absent => CookieRef::Absent,
            Self::At(at) => match at.get(headers, COOKIE) {
                Some(value) => CookieRef::One(Cow::Borrowed(value)),
                None => CookieRef::Absent,
            },
            Self::Kept(value) => CookieRef::One(Cow::Borrowed(value)),
            Self::Cached(cached) => CookieRef::One(Cow::Borrowed(cached.token())),
            Self::Duplicate => CookieRef::Duplicate,
        }
    }
}

/// What one pass over a request's headers found (see the rules at the top of this module).
/// Read by the layer and kept in the request context; an accessor takes the same request's
/// headers to borrow the values from.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestTokens {
    access: Slot,
    refresh: Slot,
    legacy: Slot,
    anonymous: Slot,
    bearer: Option<At>,
    /// The `kid` class of the bearer token, when it has the shape of an access token.
    pub(crate) bearer_class: Option<KidClass>,
    /// The transfer method the browser SDK asked for (`st-auth-mode`).
    pub(crate) auth_mode: Option<TokenLocation>,
    /// The front end's custom `rid` header is present and not blank.
    pub(crate) rid: bool,
}

impl RequestTokens {
    /// One pass over `headers`; `anonymous_cookie` is the configured anonymous cookie name and
    /// `memo` remembers the last token header's `kid` class.
    #[cfg(test)]
    pub(crate) fn read(headers: &HeaderMap, anonymous_cookie: &str, memo: &KidMemo) -> Self {
        let (mut tokens, seen) = Self::read_seeing(headers, anonymous_cookie, memo);
        tokens.settle_access(seen.access, |_| None);
        tokens
    }

    /// [`Self::read`] without the access-token cookie settled, and what the pass saw of the
    /// session cookies while it borrowed `headers` ([`Seen`]): the layer looks the access token
    /// up in the verified-token cache and then calls [`Self::settle_access`]; the guest plan
    /// uses the anonymous cookie's value instead of finding the line again.
    pub(crate) fn read_seeing<'a>(
        headers: &'a HeaderMap,
        anonymous_cookie: &str,
        memo: &KidMemo,
    ) -> (Self, Seen<'a>) {
        let mut tokens = Self::default();
        let mut seen = Seen::default();
        let wanted = [
            names::ACCESS_COOKIE.as_bytes(),
            names::REFRESH_COOKIE.as_bytes(),
            names::LEGACY_ID_REFRESH_COOKIE.as_bytes(),
            anonymous_cookie.as_bytes(),
        ];
        // One walk over the headers (cheaper than a hashed lookup per name): the `Cookie`
        // lines in order, and the first value of each other header the rules read.
        let (mut cookie_lines, mut authorizations) = (0usize, 0usize);
        let (mut authorization, mut mode, mut rid) = (None, None, None);
        for (name, value) in headers {
            if *name == COOKIE {
                let n = cookie_lines;
                cookie_lines += 1;
                let line = value.as_bytes();
                if !line.is_ascii() {
                    continue;
                }
                for pair in line_pairs(n, line) {
                    tokens.keep(&wanted, pair, &mut seen);
                }
            } else if *name == AUTHORIZATION {
                authorizations += 1;
                authorization.get_or_insert(value);
            } else if *name == AUTH_MODE {
                mode.get_or_insert(value);
            } else if *name == RID {
                rid.get_or_insert(value);
            }
        }
        // Exactly one `Authorization` header (rule 2).
        let bearer = authorization.filter(|_| authorizations == 1);
        if let Some((at, token)) = bearer.and_then(bearer_in) {
            tokens.bearer = Some(at);
            tokens.bearer_class = memo.class(token);
        }
        tokens.auth_mode = mode.and_then(auth_mode_in);
        tokens.rid = rid.is_some_and(rid_in);
        (tokens, seen)
    }

    /// Settles the access-token cookie the pass saw (`seen`: its bytes, one copy with no
    /// escape): the cache's shared copy when `cached` finds it, else a copy of its own (the
    /// `Session` shares it), or nothing when it is not UTF-8 (a line the pass kept is ASCII,
    /// so that does not happen).
    pub(crate) fn settle_access(
        &mut self,
        seen: Option<&[u8]>,
        cached: impl FnOnce(&[u8]) -> Option<CachedAccessToken>,
    ) {
        let Some(bytes) = seen else {
            return;
        };
        self.access = match cached(bytes) {
            Some(hit) => Slot::Cached(hit),
            None => match std::str::from_utf8(bytes) {
                Ok(token) => Slot::Kept(Arc::from(token)),
                Err(_) => Slot::Absent,
            },
        };
    }

    /// Rule 1 for one pair: fills the slot of the session cookie it names (`wanted`: access,
    /// refresh, legacy, anonymous), or marks it duplicated; `seen` follows the access and
    /// anonymous cookies' values while they are kept as positions.
    fn keep<'a>(&mut self, wanted: &[&[u8]; 4], pair: Pair<'a>, seen: &mut Seen<'a>) {
        for (i, name) in wanted.iter().enumerate() {
            if *pair.name != **name {
                continue;
            }
            let slot = match i {
                0 => &mut self.access,
                1 => &mut self.refresh,
                2 => &mut self.legacy,
                _ => &mut self.anonymous,
            };
            *slot = match slot {
                Slot::Absent if pair.needs_decoding() => Slot::Kept(Arc::from(pair.value())),
                Slot::Absent => match pair.value_at() {
                    // The access token: its bytes go to the layer, which settles the slot.
                    Some(at) if i == 0 => {
                        seen.access = Some(pair.raw);
                        Slot::At(at)
                    }
                    Some(at) => {
                        if i == 3 {
                            seen.guest = Some(pair.raw);
                        }
                        Slot::At(at)
                    }
                    None => Slot::Kept(Arc::from(pair.value())),
                },
                _ => {
                    match i {
                        0 => seen.access = None,
                        3 => seen.guest = None,
                        _ => {}
                    }
                    Slot::Duplicate
                }
            };
        }
    }

    /// The access-token cookie.
    pub(crate) fn access_cookie<'a>(&'a self, headers: &'a HeaderMap) -> CookieRef<'a> {
        self.access.get(headers)
    }

    /// The refresh-token cookie.
    pub(crate) fn refresh_cookie<'a>(&'a self, headers: &'a HeaderMap) -> CookieRef<'a> {
        self.refresh.get(headers)
    }

    /// The legacy `sIdRefreshToken` cookie.
    pub(crate) fn legacy_cookie<'a>(&'a self, headers: &'a HeaderMap) -> CookieRef<'a> {
        self.legacy.get(headers)
    }

    /// The anonymous-token cookie.
    pub(crate) fn anonymous_cookie<'a>(&'a self, headers: &'a HeaderMap) -> CookieRef<'a> {
        self.anonymous.get(headers)
    }

    /// The access-token cookie's value as the read pass kept it (shared, not copied).
    pub(crate) fn shared_access_cookie(&self) -> Option<Arc<str>> {
        match &self.access {
            Slot::Kept(value) => Some(Arc::clone(value)),
            Slot::Cached(cached) => Some(Arc::clone(cached.token())),
            _ => None,
        }
    }

    /// The access-token cookie as the verified-token cache holds it, when the layer found it
    /// there.
    pub(crate) fn cached_access_cookie(&self) -> Option<&CachedAccessToken> {
        match &self.access {
            Slot::Cached(cached) => Some(cached),
            _ => None,
        }
    }

    /// True when the access-token cookie is present (once or more).
    pub(crate) fn has_access_cookie(&self) -> bool {
        !matches!(self.access, Slot::Absent)
    }

    /// The bearer token ([`bearer`]).
    pub(crate) fn bearer<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        self.bearer.and_then(|at| at.get(headers, AUTHORIZATION))
    }

    /// True when a bearer token is present.
    pub(crate) fn has_bearer(&self) -> bool {
        self.bearer.is_some()
    }

    /// True when the bearer token is an anonymous token (`kid` `a-…`).
    pub(crate) fn bearer_is_anonymous(&self) -> bool {
        self.bearer_class == Some(KidClass::Anonymous)
    }

    /// True when a bearer token is present and is not an anonymous token (whatever its shape).
    pub(crate) fn bearer_is_not_anonymous(&self) -> bool {
        self.has_bearer() && !self.bearer_is_anonymous()
    }

    /// True when the request carries something in an access-token position under `transfer`
    /// (a bearer token that is not anonymous, or the access-token cookie). Such a request is
    /// signed in, or will refresh; nothing anonymous happens (A7, A22).
    pub(crate) fn has_access_token(&self, transfer: TokenTransfer) -> bool {
        (transfer != TokenTransfer::Cookie && self.bearer_is_not_anonymous())
            || (transfer != TokenTransfer::Header && self.has_access_cookie())
    }
}

/// What the read pass saw of the session cookies while it borrowed the headers, each when
/// there is exactly one copy with no escape.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Seen<'a> {
    /// The access-token cookie's bytes (for [`RequestTokens::settle_access`]).
    pub(crate) access: Option<&'a [u8]>,
    /// The anonymous cookie's bytes.
    pub(crate) guest: Option<&'a [u8]>,
}

/// One `name=value` pair of an ASCII `Cookie` line: the (decoded) name and where the raw value
/// is.
struct Pair<'a> {
    name: Cow<'a, [u8]>,
    /// The value trimmed and unquoted, not yet decoded.
    raw: &'a [u8],
    line: usize,
    /// Offset of `raw` in its line.
    start: usize,
    /// The pair holds a `%` somewhere (seen by the search for `;`): only then is the name or
    /// the value searched for escapes.
    escaped: bool,
}

impl<'a> Pair<'a> {
    /// True when the value holds a `%` escape.
    fn needs_decoding(&self) -> bool {
        self.escaped && memchr::memchr(b'%', self.raw).is_some()
    }

    /// The percent-decoded value, borrowed when there is nothing to decode.
    fn value(&self) -> Cow<'a, str> {
        let raw = ascii_str(self.raw);
        if self.needs_decoding() {
            Cow::Owned(percent_decode(raw))
        } else {
            Cow::Borrowed(raw)
        }
    }

    /// The decoded name.
    fn name(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.name)
    }

    fn value_at(&self) -> Option<At> {
        Some(At {
            line: u32::try_from(self.line).ok()?,
            start: u32::try_from(self.start).ok()?,
            end: u32::try_from(self.start + self.raw.len()).ok()?,
        })
    }
}

/// A part of an ASCII line as `str` (always valid UTF-8; empty otherwise, which cannot
/// happen).
fn ascii_str(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or_default()
}

/// The cookie parser (rule 1): every pair of every `Cookie` line, in order.
fn cookie_pairs(headers: &HeaderMap) -> impl Iterator<Item = Pair<'_>> {
    headers
        .get_all(COOKIE)
        .iter()
        .enumerate()
        .map(|(n, v)| (n, v.as_bytes()))
        .filter(|(_, line)| line.is_ascii())
        .flat_map(|(n, line)| line_pairs(n, line))
}

/// The pairs of the `n`-th `Cookie` line (rule 1), already known to be ASCII.
fn line_pairs(n: usize, line: &[u8]) -> impl Iterator<Item = Pair<'_>> {
    split_semicolons(line).filter_map(move |(pair, escaped)| {
        let eq = memchr::memchr(b'=', pair)?;
        let name = pair[..eq].trim_ascii();
        let name = if escaped && memchr::memchr(b'%', name).is_some() {
            Cow::Owned(percent_decode(ascii_str(name)).into_bytes())
        } else {
            Cow::Borrowed(name)
        };
        let raw = trim_quotes(pair[eq + 1..].trim_ascii());
        // `raw` is a sub-slice of `line`: its offset locates it.
        let start = raw.as_ptr() as usize - line.as_ptr() as usize;
        Some(Pair {
            name,
            raw,
            line: n,
            start,
            escaped,
        })
    })
}

/// `value` without its leading and trailing `"` (as `str::trim_matches('"')`).
fn trim_quotes(mut value: &[u8]) -> &[u8] {
    while let [b'"', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b'"'] = value {
        value = rest;
    }
    value
}

/// The `;`-separated pairs of one `Cookie` line (as `line.split(';')`), each with whether it
/// holds a `%`: one vectorised search for both bytes reads the line once, so a pair without
/// escapes (the usual case) is not searched again for them.
fn split_semicolons(line: &[u8]) -> impl Iterator<Item = (&[u8], bool)> {
    let mut rest = Some(line);
    std::iter::from_fn(move || {
        let current = rest?;
        let (mut from, mut escaped) = (0, false);
        loop {
            let found = match escaped {
                false => memchr::memchr2(b';', b'%', &current[from..]),
                true => memchr::memchr(b';', &current[from..]),
            };
            match found.map(|i| from + i) {
                Some(i) if current[i] == b'%' => {
                    escaped = true;
                    from = i + 1;
                }
                Some(i) => {
                    rest = Some(&current[i + 1..]);
                    return Some((&current[..i], escaped));
                }
                None => {
                    rest = None;
                    return Some((current, escaped));
                }
            }
        }
    })
}

/// Every `(name, value)` pair of the `Cookie` headers, decoded (the fuzz target's view).
pub(crate) fn all_cookies(headers: &HeaderMap) -> Vec<(String, String)> {
    cookie_pairs(headers)
        .map(|p| (p.name().into_owned(), p.value().into_owned()))
        .collect()
}

/// Every non-empty value of the cookie `name`, decoded (duplicated anonymous cookies).
pub(crate) fn cookie_values(headers: &HeaderMap, name: &str) -> Vec<String> {
    cookie_pairs(headers)
        .filter(|p| *p.name == *name.as_bytes())
        .map(|p| p.value().into_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

/// One cookie by name (rule 1).
pub(crate) fn find_cookie<'a>(headers: &'a HeaderMap, name: &str) -> CookieRef<'a> {
    let mut found = CookieRef::Absent;
    for pair in cookie_pairs(headers).filter(|p| *p.name == *name.as_bytes()) {
        found = match found {
            CookieRef::Absent => CookieRef::One(pair.value()),
            _ => CookieRef::Duplicate,
        };
    }
    found
}

/// The token of `Authorization: Bearer <token>` (rule 2): exact, case-sensitive prefix,
/// trimmed, not empty; several `Authorization` headers are ambiguous and give none.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    bearer_at(headers).map(|(_, token)| token)
}

fn bearer_at(headers: &HeaderMap) -> Option<(At, &str)> {
    let mut all = headers.get_all(AUTHORIZATION).iter();
    let (Some(value), None) = (all.next(), all.next()) else {
        return None;
    };
    bearer_in(value)
}

/// The bearer token of the one `Authorization` header `value`, and where it sits.
fn bearer_in(value: &HeaderValue) -> Option<(At, &str)> {
    let line = value.to_str().ok()?;
    let token = line.strip_prefix("Bearer ")?.trim();
    if token.is_empty() {
        return None;
    }
    let start = token.as_ptr() as usize - line.as_ptr() as usize;
    let at = At {
        line: 0,
        start: u32::try_from(start).ok()?,
        end: u32::try_from(start + token.len()).ok()?,
    };
    Some((at, token))
}

/// `st-auth-mode` (rule 4).
#[cfg(test)] // the read pass finds the value in its walk over the headers
pub(crate) fn auth_mode(headers: &HeaderMap) -> Option<TokenLocation> {
    auth_mode_in(headers.get(&AUTH_MODE)?)
}

/// Rule 4 for the first `st-auth-mode` value.
fn auth_mode_in(value: &HeaderValue) -> Option<TokenLocation> {
    let mode = value.to_str().ok()?;
    if mode.eq_ignore_ascii_case("cookie") {
        Some(TokenLocation::Cookie)
    } else if mode.eq_ignore_ascii_case("header") {
        Some(TokenLocation::Header)
    } else {
        None
    }
}

/// The custom `rid` header is present and not blank (rule 5): what VIA_CUSTOM_HEADER
/// requires, and what tells the front end's own calls apart from a cross-site form.
#[cfg(test)] // the read pass finds the value in its walk over the headers
pub(crate) fn has_rid(headers: &HeaderMap) -> bool {
    headers.get(&RID).is_some_and(rid_in)
}

/// Rule 5 for the first `rid` value.
fn rid_in(value: &HeaderValue) -> bool {
    value.to_str().is_ok_and(|v| !v.trim().is_empty())
}

/// The `anti-csrf` header (VIA_TOKEN).
pub(crate) fn anti_csrf(headers: &HeaderMap) -> Option<&str> {
    headers.get(&ANTI_CSRF).and_then(|v| v.to_str().ok())
}

/// The `kid` of `token` when it has the shape of an access token (three base64url segments, a
/// header naming a `kid`); `None` otherwise. A bearer value without that shape is another
/// scheme's token and is ignored, not rejected.
pub(crate) fn access_token_kid(token: &str) -> Option<String> {
    with_access_token_kid(token, str::to_owned)
}

/// The [`KidClass`] of `token` (see [`access_token_kid`]), without the memo.
pub(crate) fn kid_class(token: &str) -> Option<KidClass> {
    with_access_token_kid(token, KidClass::of)
}

/// Runs `f` on the `kid` of `token` (see [`access_token_kid`]) without allocating for the
/// usual small header.
fn with_access_token_kid<R>(token: &str, f: impl FnOnce(&str) -> R) -> Option<R> {
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

/// Remembers the last token header seen and its `kid` class: every token signed with one key
/// has the same header, so parsing it again is wasted work.
#[derive(Debug, Default)]
pub(crate) struct KidMemo(ArcSwapOption<(Box<str>, Option<KidClass>)>);

impl KidMemo {
    /// The [`KidClass`] of `token`, `None` without the shape of an access token (see
    /// [`access_token_kid`]).
    pub(crate) fn class(&self, token: &str) -> Option<KidClass> {
        let last = self.0.load();
        // The usual case: the token starts with the remembered header (which holds no dot)
        // and a dot, so the header's search is skipped; the rest must have the shape (as in
        // `access_token_header`).
        if let Some(last) = &*last {
            let rest = token
                .strip_prefix(&*last.0)
                .and_then(|r| r.strip_prefix('.'));
            if let Some(rest) = rest {
                if let Some(i) = memchr::memchr(b'.', rest.as_bytes()) {
                    let (payload, signature) = (&rest[..i], &rest[i + 1..]);
                    let shaped = !payload.is_empty() && !signature.is_empty();
                    if shaped && memchr::memchr(b'.', signature.as_bytes()).is_none() {
                        return last.1;
                    }
                }
            }
        }
        let header = access_token_header(token)?;
        if let Some(last) = &*last {
            if *last.0 == *header {
                return last.1;
            }
        }
        let class = kid_class(token);
        if header.len() <= MAX_MEMO_HEADER {
            self.0.store(Some(Arc::new((header.into(), class))));
        }
        class
    }

    /// [`Self::class`] of a token that passed verification (so it has the shape): only the
    /// remembered header and the dot after it are compared.
    pub(crate) fn class_of_verified(&self, token: &str) -> Option<KidClass> {
        if let Some(last) = &*self.0.load() {
            let header = last.0.as_bytes();
            let bytes = token.as_bytes();
            if bytes.get(header.len()) == Some(&b'.') && bytes.starts_with(header) {
                return last.1;
            }
        }
        self.class(token)
    }
}

/// Longer headers are not remembered (real ones are about 100 bytes).
const MAX_MEMO_HEADER: usize = 512;

/// Where new tokens go: the configured method, or for `Any` the `st-auth-mode` the browser SDK
/// sent (header unless it says `cookie`).
pub(crate) fn output_location(
    transfer: TokenTransfer,
    auth_mode: Option<TokenLocation>,
) -> TokenLocation {
    match transfer {
        TokenTransfer::Cookie => TokenLocation::Cookie,
        TokenTransfer::Header => TokenLocation::Header,
        TokenTransfer::Any => auth_mode.unwrap_or(TokenLocation::Header),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(headers: &HeaderMap, name: &str) -> CookieRef<'static> {
        match find_cookie(headers, name) {
            CookieRef::One(v) => CookieRef::One(Cow::Owned(v.into_owned())),
            CookieRef::Absent => CookieRef::Absent,
            CookieRef::Duplicate => CookieRef::Duplicate,
        }
    }

    #[test]
    fn cookies_parse_and_duplicates_are_seen() {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, "a=1; sAccessToken=x%2By; b=2".parse().unwrap());
        assert_eq!(
            find_cookie(&h, "sAccessToken"),
            CookieRef::One(Cow::Owned("x+y".into()))
        );
        assert_eq!(find_cookie(&h, "b"), CookieRef::One(Cow::Borrowed("2")));
        assert_eq!(find_cookie(&h, "zz"), CookieRef::Absent);
        let memo = KidMemo::default();
        let tokens = RequestTokens::read(&h, "anon", &memo);
        assert_eq!(
            tokens.access_cookie(&h),
            CookieRef::One(Cow::Owned("x+y".into()))
        );
        h.append(COOKIE, "sAccessToken=other".parse().unwrap());
        assert_eq!(find_cookie(&h, "sAccessToken"), CookieRef::Duplicate);
        let tokens = RequestTokens::read(&h, "anon", &memo);
        assert_eq!(tokens.access_cookie(&h), CookieRef::Duplicate);
    }

    /// The read pass, the lookup by name and the list of all pairs agree (the property the
    /// fuzz target checks on random input).
    #[test]
    fn cookie_lookup_matches_the_full_parse() {
        let lines = [
            "a=1; sAccessToken=x%2By; b=2",
            " sAccessToken = \"quoted\" ",
            "s%41ccessToken=encoded-name; junk; =; sAccessToken",
            "sAccessToken=; sAccessToken=two",
            "sAccessToken=%zz%4",
            "sRefreshToken=r; sIdRefreshToken=l; anon=g",
            "",
            "anon=first",
            "anon=%41",
            "x=1; anon=a.b.c ; y=%42",
        ];
        let memo = KidMemo::default();
        for line in lines {
            let mut h = HeaderMap::new();
            h.insert(COOKIE, line.parse().unwrap());
            h.append(COOKIE, "later=1; anon=second-line".parse().unwrap());
            let all = all_cookies(&h);
            for name in ["sAccessToken", "a", "b", "junk", "", "anon"] {
                let mut found = all.iter().filter(|(n, _)| n == name);
                let full = match (found.next(), found.next()) {
                    (None, _) => CookieRef::Absent,
                    (Some((_, v)), None) => CookieRef::One(Cow::Owned(v.clone())),
                    _ => CookieRef::Duplicate,
                };
                assert_eq!(lookup(&h, name), full, "{line:?} / {name:?}");
            }
            let (mut tokens, seen) = RequestTokens::read_seeing(&h, "anon", &memo);
            if let Some(value) = seen.guest {
                assert_eq!(
                    tokens.anonymous_cookie(&h),
                    CookieRef::One(Cow::Borrowed(ascii_str(value))),
                    "{line:?}"
                );
            }
            // The access token's bytes are handed over exactly when it is one copy with no
            // escape, and settling them (no cache here) gives the same value.
            let handed = seen.access.map(|b| String::from_utf8(b.to_vec()).unwrap());
            match find_cookie(&h, names::ACCESS_COOKIE) {
                CookieRef::One(Cow::Borrowed(value)) => {
                    assert_eq!(handed.as_deref(), Some(value), "{line:?}")
                }
                _ => assert_eq!(handed, None, "{line:?}"),
            }
            tokens.settle_access(seen.access, |_| None);
            for (name, read) in [
                (names::ACCESS_COOKIE, tokens.access_cookie(&h)),
                (names::REFRESH_COOKIE, tokens.refresh_cookie(&h)),
                (names::LEGACY_ID_REFRESH_COOKIE, tokens.legacy_cookie(&h)),
                ("anon", tokens.anonymous_cookie(&h)),
            ] {
                assert_eq!(read, find_cookie(&h, name), "{line:?} / {name:?}");
            }
        }
    }

    /// The guest value the read pass hands the layer is the anonymous cookie's value, and is
    /// handed exactly when that value is kept as a position (one copy, no escape).
    #[test]
    fn the_seen_guest_is_the_anonymous_cookie() {
        let memo = KidMemo::default();
        let cases = [
            ("anon=first", Some("first")),
            ("x=1; anon = \"q\" ; y=%42", Some("q")),
            ("anon=", Some("")),
            ("anon=%41", None),
            ("anon=a; anon=b", None),
            ("other=1", None),
        ];
        for (line, expected) in cases {
            let mut h = HeaderMap::new();
            h.insert(COOKIE, line.parse().unwrap());
            let (tokens, seen) = RequestTokens::read_seeing(&h, "anon", &memo);
            assert_eq!(seen.guest, expected.map(str::as_bytes), "{line:?}");
            if let Some(value) = seen.guest {
                assert_eq!(
                    tokens.anonymous_cookie(&h),
                    CookieRef::One(Cow::Borrowed(ascii_str(value)))
                );
            }
        }
    }

    #[test]
    fn split_semicolons_is_split_with_the_escape_flag() {
        let lines = [
            "",
            ";",
            ";;",
            "a=1",
            "a=1;b=2",
            "a=%41;b=2",
            "a=1;b=%",
            "%;%",
            "a=1;",
            ";a",
            "x%;y;z%%;%w",
            "only%",
            "a=1; b=2;c=%3B",
        ];
        for line in lines {
            let ours: Vec<(&[u8], bool)> = split_semicolons(line.as_bytes()).collect();
            let expected: Vec<(&[u8], bool)> = line
                .split(';')
                .map(|p| (p.as_bytes(), p.contains('%')))
                .collect();
            assert_eq!(ours, expected, "{line:?}");
        }
    }

    /// Token headers naming a dynamic, a static and an anonymous key.
    fn kid_headers() -> (String, String, String) {
        let header = |kid: &str| {
            URL_SAFE_NO_PAD.encode(format!(r#"{{"kid":"{kid}","typ":"JWT","alg":"RS256"}}"#))
        };
        (header("d-123"), header("s-1"), header("a-1"))
    }

    #[test]
    fn kid_memo_answers_like_the_parse() {
        let memo = KidMemo::default();
        let (d, s, a) = kid_headers();
        let no_kid = URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT"}"#);
        for _ in 0..2 {
            assert_eq!(memo.class(&format!("{d}.p.s")), Some(KidClass::Dynamic));
            assert_eq!(memo.class(&format!("{d}.q.t")), Some(KidClass::Dynamic));
            assert_eq!(memo.class(&format!("{d}.p.s.x")), None);
            assert_eq!(memo.class(&format!("{d}..s")), None);
            assert_eq!(memo.class(&format!("{d}.p.")), None);
            assert_eq!(memo.class(&format!(".{d}.p")), None);
            // Right after the memo holds `d`: near misses of its fast path.
            assert_eq!(memo.class(&format!("{d}.p.s")), Some(KidClass::Dynamic));
            assert_eq!(memo.class(&format!("{d}x.p.s")), None, "another header");
            assert_eq!(memo.class(&format!("{d}.p..")), None);
            assert_eq!(memo.class(&format!("{d}.p.s.")), None);
            assert_eq!(memo.class(&format!("{d}..")), None);
            assert_eq!(memo.class(&format!("{d}.")), None);
            assert_eq!(memo.class(&d), None);
            assert_eq!(memo.class(&format!("{d}.p.s")), Some(KidClass::Dynamic));
            assert_eq!(memo.class(&format!("{s}.p.s")), Some(KidClass::Static));
            assert_eq!(memo.class(&format!("{s}.p.s")), Some(KidClass::Static));
            assert_eq!(memo.class(&format!("{s}.p.s")), Some(KidClass::Static));
            assert_eq!(memo.class(&format!("{a}.p.s")), Some(KidClass::Anonymous));
            assert_eq!(memo.class(&format!("{no_kid}.p.s")), None);
            assert_eq!(memo.class(&format!("{no_kid}.p.s")), None);
            assert_eq!(memo.class("x"), None);
        }
    }

    /// For a well-shaped token (what the verified-token cache holds), the header-only answer
    /// is the parse's, whatever the memo held before, including a header that is a prefix of
    /// the token's own.
    #[test]
    fn kid_memo_of_a_verified_token_answers_like_the_parse() {
        let memo = KidMemo::default();
        let (d, s, a) = kid_headers();
        let prefix = &d[..d.len() - 4];
        let headers = [d.as_str(), s.as_str(), a.as_str(), prefix, "x"];
        for before in headers {
            for token_header in headers {
                let _ = memo.class(&format!("{before}.p.s"));
                let token = format!("{token_header}.p.s");
                assert_eq!(
                    memo.class_of_verified(&token),
                    kid_class(&token),
                    "{before} then {token_header}"
                );
            }
        }
    }

    #[test]
    fn trim_quotes_is_trim_matches() {
        for value in ["", "\"", "\"\"", "\"a\"", "a", "\"\"a\"", "a\"b", "\"\"\"x"] {
            assert_eq!(
                trim_quotes(value.as_bytes()),
                value.trim_matches('"').as_bytes(),
                "{value:?}"
            );
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
        let memo = KidMemo::default();
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, "Bearer  tok ".parse().unwrap());
        assert_eq!(bearer(&h), Some("tok"));
        assert_eq!(RequestTokens::read(&h, "a", &memo).bearer(&h), Some("tok"));
        h.insert(AUTHORIZATION, "bearer tok".parse().unwrap());
        assert_eq!(bearer(&h), None);
        h.insert(AUTHORIZATION, "Basic dXNlcg==".parse().unwrap());
        assert_eq!(bearer(&h), None);
        h.insert(AUTHORIZATION, "Bearer a".parse().unwrap());
        h.append(AUTHORIZATION, "Bearer b".parse().unwrap());
        assert_eq!(bearer(&h), None, "two Authorization headers are ambiguous");
        assert_eq!(RequestTokens::read(&h, "a", &memo).bearer(&h), None);
    }

    #[test]
    fn rid_and_auth_mode() {
        let mut h = HeaderMap::new();
        assert!(!has_rid(&h));
        h.insert(names::RID, " ".parse().unwrap());
        assert!(!has_rid(&h), "a blank rid is no rid");
        h.insert(names::RID, "session".parse().unwrap());
        assert!(has_rid(&h));
        h.insert(names::AUTH_MODE, "COOKIE".parse().unwrap());
        assert_eq!(auth_mode(&h), Some(TokenLocation::Cookie));
        h.insert(names::AUTH_MODE, "other".parse().unwrap());
        assert_eq!(auth_mode(&h), None);
    }

    /// The read pass's one walk over the headers answers as the lookups by name do: the first
    /// value of `rid` and `st-auth-mode`, exactly one `Authorization`.
    #[test]
    fn the_read_pass_agrees_with_the_lookups() {
        let memo = KidMemo::default();
        let values = [
            "", " ", "cookie", "HEADER", "x", "Bearer t", "Bearer  ", "s",
        ];
        for first in values {
            for second in [None, Some("cookie"), Some("Bearer u"), Some(" ")] {
                let mut h = HeaderMap::new();
                h.insert("host", "x".parse().unwrap());
                for name in [names::RID, names::AUTH_MODE, "authorization"] {
                    h.append(name, first.parse().unwrap());
                    if let Some(second) = second {
                        h.append(name, second.parse().unwrap());
                    }
                }
                h.append(COOKIE, "a=1".parse().unwrap());
                let tokens = RequestTokens::read(&h, "anon", &memo);
                let case = format!("{first:?} then {second:?}");
                assert_eq!(tokens.rid, has_rid(&h), "{case}");
                assert_eq!(tokens.auth_mode, auth_mode(&h), "{case}");
                assert_eq!(tokens.bearer(&h), bearer(&h), "{case}");
            }
        }
    }
}
