//! Anonymous sessions in the SDK: every visitor without a signed-in session gets one, carried
//! by an anonymous token (AnT) and costing no database row.
//!
//! What happens, and where:
//! - **The layer** (A7, A13) looks at every request that is not one of the SDK's routes. If it
//!   carries an access token, nothing anonymous happens (A7; an expired one is refreshed as
//!   usual, A22). Otherwise it verifies the AnT it finds; a missing, forged, expired or
//!   wrong-key AnT is replaced by a new one (A10), keeping the anonymousId when a genuine token
//!   states it (A20). An AnT past half its lifetime, or signed by a previous key, is re-signed
//!   with the same anonymousId. With the feature off, an AnT that arrives is cleared (A18).
//! - **Extractors**: [`AnySession`] sees the signed-in session or the anonymous one;
//!   [`crate::Session`] still requires a signed-in session and answers an anonymous visitor 401
//!   `unauthorised` (A14).
//! - **Sign-in** ([`crate::Sessions`]): the new access token carries the visitor's anonymousId
//!   (A15), the AnT is removed in the same response, and the [`crate::Tessera::with_sign_in_hook`]
//!   hook receives the anonymous session first so the app can move its data (A3, B3).
//! - **Unauthorised and theft** (A21, A23): the cleared session is replaced by an anonymous one
//!   with the same anonymousId in the same response, before any error handler runs.
//! - **Sign-out** (A5): a new AnT with the same anonymousId (or a new one, B1).
//!
//! Transport (A11, A16, B4): in cookie mode the AnT has its own HttpOnly cookie
//! ([`crate::Config::anonymous_cookie_name`]), never the access-token cookie. In header mode it
//! travels in `st-access-token` **and** `st-refresh-token`: the stock browser SDK sends
//! `Authorization` only when it holds both, and sends the refresh slot to the refresh route, so
//! the AnT reaches both. It is told apart from real tokens by its `kid` (`a-…`); each verifier
//! rejects the other's tokens. The `front-token` of an anonymous session has no `uid` and its
//! payload holds `anonymousId` and `tokenType: "anonymous"` (A17).
//!
//! anonymousId is an identifier, never an authoriser (ANON-04..06): it is stable across
//! sign-in (A6), so whatever the app moves from the guest into the user at sign-in must then be
//! reachable only through the signed-in session (empty the guest copy when moving it), and
//! guest data must be low-sensitivity: anyone holding the AnT sees it.

use crate::changes::{ChangeSink, ResponseChanges};
use crate::config::{AntiCsrfMode, Config, TokenTransfer};
use crate::core::LocalMint;
use crate::error::{RejectionKind, SessionRejection};
use crate::session::{RequestContext, Session};
use crate::transfer::{self, names, CookieRef, SeenCookies, SharedCookie, TokenLocation};
use crate::verify::{get_session, VerifyRequest};
use crate::Tessera;
use axum::extract::FromRequestParts;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::request::Parts;
use http::{HeaderMap, Method};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tessera::protocol::ANONYMOUS_ID_CLAIM;
use tessera::{
    plausible_anonymous_id, AnonymousClaims, MintAnonymous, MintedAnonymous, SessionError,
};

/// An anonymous session: a visitor who has not signed in.
#[derive(Clone)]
pub struct AnonymousSession {
    claims: Arc<AnonymousClaims>,
    location: TokenLocation,
    tessera: Tessera,
    sink: ChangeSink,
}

impl std::fmt::Debug for AnonymousSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnonymousSession")
            .field("anonymous_id", &self.claims.anonymous_id)
            .finish_non_exhaustive()
    }
}

impl AnonymousSession {
    /// The permanent visitor id (A6).
    pub fn anonymous_id(&self) -> &str {
        &self.claims.anonymous_id
    }

    /// Always true (A12).
    pub fn is_anonymous(&self) -> bool {
        true
    }

    /// The tenant.
    pub fn tenant_id(&self) -> &str {
        &self.claims.tenant_id
    }

    /// The app's small payload.
    pub fn payload(&self) -> &Map<String, Value> {
        &self.claims.payload
    }

    /// Where the token travels.
    pub fn token_location(&self) -> TokenLocation {
        self.location
    }

    /// Replaces the payload (≤ 1 KiB, no reserved names): a new AnT with the same anonymousId
    /// is set on the response. An oversize or reserved payload is an `Internal` rejection with
    /// the reason logged — it is a bug in the app, not something the visitor can fix.
    pub async fn set_payload(
        &mut self,
        payload: Map<String, Value>,
    ) -> Result<(), SessionRejection> {
        let request = MintAnonymous {
            anonymous_id: Some(self.claims.anonymous_id.clone()),
            tenant_id: Some(self.claims.tenant_id.clone()),
            payload,
            anti_csrf_token: self.claims.anti_csrf_token.clone(),
            enable_anti_csrf: false,
        };
        let minted = mint(&self.tessera, request).await.map_err(|e| {
            tracing::error!(error = %e, "anonymous payload update failed");
            SessionRejection::new(&self.tessera, RejectionKind::Internal)
        })?;
        let config = self.tessera.config();
        self.sink
            .with(|c| write_anonymous(c, config, self.location, &minted));
        self.claims = Arc::new(minted.claims);
        Ok(())
    }
}

/// A signed-in or an anonymous session: the extractor for routes that serve both (A13, A14).
/// With anonymous sessions on, every visitor has one; with them off, a visitor without a
/// signed-in session gets 401 `unauthorised`.
///
/// ```no_run
/// use tessera_axum::AnySession;
/// async fn whoami(session: AnySession) -> String {
///     match session.user_id() {
///         Some(user) => format!("user {user}"),
///         None => format!("guest {}", session.anonymous_id().unwrap_or("?")),
///     }
/// }
/// ```
#[derive(Clone, Debug)]
pub enum AnySession {
    /// A signed-in session.
    Authenticated(Session),
    /// An anonymous session.
    Anonymous(AnonymousSession),
}

impl AnySession {
    /// True for an anonymous visitor (A12).
    pub fn is_anonymous(&self) -> bool {
        matches!(self, Self::Anonymous(_))
    }

    /// The visitor's anonymousId: always for an anonymous session; for a signed-in one when it
    /// was created with anonymous sessions on (A6, A8).
    pub fn anonymous_id(&self) -> Option<&str> {
        match self {
            Self::Authenticated(s) => s.anonymous_id(),
            Self::Anonymous(a) => Some(a.anonymous_id()),
        }
    }

    /// The user id of a signed-in session; `None` for an anonymous one.
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Self::Authenticated(s) => Some(s.user_id()),
            Self::Anonymous(_) => None,
        }
    }

    /// The tenant.
    pub fn tenant_id(&self) -> &str {
        match self {
            Self::Authenticated(s) => s.tenant_id(),
            Self::Anonymous(a) => a.tenant_id(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AnySession {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ctx = crate::session::context(parts)?;
        let tessera = &ctx.tessera;
        let has_access_token = match &ctx.cookies {
            SeenCookies::Read { access, .. } => {
                !matches!(access, SharedCookie::Absent)
                    || has_bearer_access_token(tessera.config(), &parts.headers)
            }
            SeenCookies::NotRead => has_access_token(tessera.config(), &parts.headers),
        };
        if has_access_token {
            let found = get_session(
                tessera,
                &ctx.sink,
                &parts.method,
                &parts.headers,
                &ctx.cookies,
                false,
                VerifyRequest::default(),
            )
            .await?;
            if let Some(session) = found {
                return Ok(Self::Authenticated(session));
            }
        }
        match ctx.anonymous {
            AnonymousState::Present(session) => Ok(Self::Anonymous(session)),
            AnonymousState::AntiCsrfFailed => Err(SessionRejection::new(
                tessera,
                RejectionKind::TryRefreshToken,
            )),
            AnonymousState::None => {
                Err(SessionRejection::new(tessera, RejectionKind::Unauthorised))
            }
        }
    }
}

/// What the layer found out about the request's anonymous session.
#[derive(Clone, Debug, Default)]
pub(crate) enum AnonymousState {
    /// No anonymous session (a signed-in request, the feature off, or an excluded path).
    #[default]
    None,
    /// The visitor's (possibly just minted) anonymous session.
    Present(AnonymousSession),
    /// A genuine AnT, but this state-changing request failed the anti-CSRF check: it is not
    /// usable here, and it is not replaced either (a cross-site request cannot reset the
    /// visitor's identity, CSRF-17).
    AntiCsrfFailed,
}

/// What the layer must do before the app runs.
pub(crate) enum Plan {
    /// Nothing anonymous here.
    Nothing,
    /// Use this (verified, no change needed).
    Ready(AnonymousState),
    /// Mint (A2, A10, renewal), then run the app. `unknown_key`: the request's AnT named a key
    /// this SDK does not know (a remote core may have published it since): refetch and retry
    /// before minting.
    Mint {
        request: MintAnonymous,
        location: TokenLocation,
        unknown_key: bool,
    },
    /// Anonymous sessions are off and the request carries an AnT: clear it (A18).
    Clear(TokenLocation),
}

/// True when carrying out `plan` mints an anonymous token (for the mint rate limit).
pub(crate) fn mints(plan: &Plan) -> bool {
    matches!(plan, Plan::Mint { .. })
}

/// True when the request carries something in an access-token position (the bearer header
/// with a non-anonymous `kid`, or the access-token cookie). Such a request is signed in, or
/// will refresh; nothing anonymous happens (A7, A22).
pub(crate) fn has_access_token(config: &Config, headers: &HeaderMap) -> bool {
    has_bearer_access_token(config, headers)
        || (config.transfer != TokenTransfer::Header
            && !matches!(
                transfer::find_cookie(headers, names::ACCESS_COOKIE),
                CookieRef::Absent
            ))
}

fn has_bearer_access_token(config: &Config, headers: &HeaderMap) -> bool {
    config.transfer != TokenTransfer::Cookie
        && transfer::bearer_ref(headers).is_some_and(|token| !is_anonymous_token(token))
}

/// True when `token`'s header names an anonymous key (`kid` `a-…`).
pub(crate) fn is_anonymous_token(token: &str) -> bool {
    transfer::with_access_token_kid(token, |kid| {
        kid.starts_with(tessera::protocol::ANONYMOUS_KID_PREFIX)
    })
    .unwrap_or(false)
}

/// The AnT of a request, as the layer and the SDK's routes see it.
pub(crate) enum FoundAnonymous<'a> {
    /// None (or none usable).
    None,
    /// A token and where it came from: the bearer header (an `a-` kid), else the anonymous
    /// cookie — among duplicated cookies, the one identity the genuine copies agree on.
    Token(Cow<'a, str>, TokenLocation),
    /// Duplicated anonymous cookies holding genuine tokens of different visitors (a tossed
    /// copy): which one is the visitor's cannot be told, so there is no anonymous identity on
    /// this request and nothing is minted (COOK-08, SEC2-L5).
    Ambiguous,
}

/// The AnT of a request (see [`FoundAnonymous`]).
pub(crate) fn find_anonymous_token<'a>(
    tessera: &Tessera,
    headers: &'a HeaderMap,
) -> FoundAnonymous<'a> {
    let config = tessera.config();
    let cookie = if config.transfer != TokenTransfer::Header {
        transfer::find_cookie(headers, config.anonymous_cookie_name())
    } else {
        CookieRef::Absent
    };
    anonymous_token_from(tessera, headers, cookie)
}

/// The AnT given the request's anonymous cookie (already looked up).
fn anonymous_token_from<'a>(
    tessera: &Tessera,
    headers: &'a HeaderMap,
    cookie: CookieRef<'a>,
) -> FoundAnonymous<'a> {
    let config = tessera.config();
    if config.transfer != TokenTransfer::Cookie {
        if let Some(token) = transfer::bearer_ref(headers) {
            if is_anonymous_token(token) {
                return FoundAnonymous::Token(Cow::Borrowed(token), TokenLocation::Header);
            }
        }
    }
    if config.transfer == TokenTransfer::Header {
        return FoundAnonymous::None;
    }
    match cookie {
        CookieRef::One(token) if !token.is_empty() => {
            FoundAnonymous::Token(token, TokenLocation::Cookie)
        }
        CookieRef::Duplicate => resolve_duplicate_cookies(tessera, headers),
        _ => FoundAnonymous::None,
    }
}

/// More copies of the anonymous cookie than this are refused without looking at them.
const MAX_ANONYMOUS_COOKIE_COPIES: usize = 8;

/// Several anonymous cookies in one request: a copy tossed from a sibling domain, or one left
/// by a cookie-domain change (SEC2-L5). Never "first or last wins" (COOK-08): the genuine
/// tokens decide. One identity among the valid copies → its newest token; valid copies of
/// different visitors → [`FoundAnonymous::Ambiguous`]; no valid copy → the one expired genuine
/// identity if there is exactly one (kept as for a single expired token, A20), else none — a
/// new session, which is then the only valid copy, so the id does not change on every request.
fn resolve_duplicate_cookies(tessera: &Tessera, headers: &HeaderMap) -> FoundAnonymous<'static> {
    let name = tessera.config().anonymous_cookie_name();
    let copies: Vec<String> = transfer::request_cookies(headers)
        .into_iter()
        .filter(|(n, v)| n == name && !v.is_empty())
        .map(|(_, v)| v)
        .collect();
    if copies.len() > MAX_ANONYMOUS_COOKIE_COPIES {
        tracing::warn!(copies = copies.len(), "too many anonymous cookies: refused");
        return FoundAnonymous::Ambiguous;
    }
    let core = tessera.core();
    let mut best: Option<(&String, Arc<AnonymousClaims>)> = None;
    for copy in &copies {
        let Ok(verified) = core.verify_anonymous(copy) else {
            continue;
        };
        match &best {
            Some((_, seen)) if seen.anonymous_id != verified.claims.anonymous_id => {
                tracing::warn!("anonymous cookies of different visitors in one request: refused");
                return FoundAnonymous::Ambiguous;
            }
            Some((_, seen)) if seen.iat >= verified.claims.iat => {}
            _ => best = Some((copy, verified.claims)),
        }
    }
    if let Some((token, _)) = best {
        return FoundAnonymous::Token(Cow::Owned(token.clone()), TokenLocation::Cookie);
    }
    let mut readable = copies
        .iter()
        .filter_map(|c| core.readable_anonymous_id(c).map(|id| (c, id)));
    match (readable.next(), readable.next()) {
        (Some((token, _)), None) => {
            FoundAnonymous::Token(Cow::Owned(token.clone()), TokenLocation::Cookie)
        }
        _ => FoundAnonymous::None,
    }
}

/// Where new tokens go: the configured method, or for `Any` the `st-auth-mode` the browser SDK
/// sends (header unless it says `cookie`).
pub(crate) fn output_location(config: &Config, headers: &HeaderMap) -> TokenLocation {
    match config.transfer {
        TokenTransfer::Cookie => TokenLocation::Cookie,
        TokenTransfer::Header => TokenLocation::Header,
        TokenTransfer::Any => match auth_mode(headers) {
            Some(location) => location,
            None => TokenLocation::Header,
        },
    }
}

fn auth_mode(headers: &HeaderMap) -> Option<TokenLocation> {
    let mode = headers.get(names::AUTH_MODE)?.to_str().ok()?;
    if mode.eq_ignore_ascii_case("cookie") {
        Some(TokenLocation::Cookie)
    } else if mode.eq_ignore_ascii_case("header") {
        Some(TokenLocation::Header)
    } else {
        None
    }
}

/// Where a new anonymous token goes: as [`output_location`].
pub(crate) fn anonymous_location(config: &Config, headers: &HeaderMap) -> TokenLocation {
    output_location(config, headers)
}

/// A page navigation in `Any` mode carries no `st-auth-mode`, so where the page's SDK keeps
/// tokens is unknown: a token in headers would be thrown away, one in a cookie could split the
/// visitor in two in a header-mode app. Nothing is minted; the page's first API call does it.
/// (With `TokenTransfer::Cookie`, navigations mint cookies.)
fn is_undecided_navigation(config: &Config, headers: &HeaderMap) -> bool {
    config.transfer == TokenTransfer::Any
        && auth_mode(headers).is_none()
        && headers
            .get("sec-fetch-mode")
            .is_some_and(|v| v.as_bytes() == b"navigate")
}

fn mint_request(
    config: &Config,
    location: TokenLocation,
    keep_id: Option<String>,
) -> MintAnonymous {
    MintAnonymous {
        anonymous_id: keep_id,
        enable_anti_csrf: config.anti_csrf == AntiCsrfMode::ViaToken
            && location == TokenLocation::Cookie,
        ..MintAnonymous::default()
    }
}

/// Decides, without I/O, what the layer does for a request to `path` (A7), and hands the
/// session cookies it read to the extractors (one parse of the `Cookie` headers per request).
pub(crate) fn plan(
    tessera: &Tessera,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> (Plan, SeenCookies) {
    let config = tessera.config();
    if has_bearer_access_token(config, headers) {
        return (Plan::Nothing, SeenCookies::NotRead);
    }
    if config.transfer == TokenTransfer::Header {
        let plan = plan_anonymous(tessera, method, path, headers, CookieRef::Absent);
        return (plan, SeenCookies::NotRead);
    }
    // One pass over the cookies for the access-token, legacy and anonymous cookies.
    let [access, legacy, anonymous] = transfer::find_cookies(
        headers,
        [
            names::ACCESS_COOKIE,
            names::LEGACY_ID_REFRESH_COOKIE,
            config.anonymous_cookie_name(),
        ],
    );
    let seen = SeenCookies::Read {
        access: SharedCookie::keep(&access),
        legacy: transfer::is_legacy_present(&legacy),
    };
    if !matches!(access, CookieRef::Absent) {
        return (Plan::Nothing, seen);
    }
    (
        plan_anonymous(tessera, method, path, headers, anonymous),
        seen,
    )
}

/// [`plan`] for a request with no access token, given its anonymous cookie.
fn plan_anonymous(
    tessera: &Tessera,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    anonymous: CookieRef<'_>,
) -> Plan {
    let config = tessera.config();
    if !config.anonymous_sessions() {
        return match anonymous_token_from(tessera, headers, anonymous) {
            FoundAnonymous::Token(_, location) => Plan::Clear(location),
            FoundAnonymous::Ambiguous => Plan::Clear(TokenLocation::Cookie),
            FoundAnonymous::None => Plan::Nothing,
        };
    }
    let found = anonymous_token_from(tessera, headers, anonymous);
    let core = tessera.core();
    let mints = config.anonymous_mints_on(path)
        && may_mint(method, headers)
        && !is_undecided_navigation(config, headers);
    let (token, location) = match found {
        FoundAnonymous::Token(token, location) => (token, location),
        FoundAnonymous::Ambiguous => return Plan::Ready(AnonymousState::None),
        FoundAnonymous::None if mints => {
            let location = anonymous_location(config, headers);
            return Plan::Mint {
                request: mint_request(config, location, None),
                location,
                unknown_key: false,
            };
        }
        FoundAnonymous::None => return Plan::Nothing,
    };
    match core.verify_anonymous(&token) {
        Ok(verified) => {
            if location == TokenLocation::Cookie
                && method != Method::GET
                && !anti_csrf_ok(config, headers, verified.claims.anti_csrf_token.as_deref())
            {
                return Plan::Ready(AnonymousState::AntiCsrfFailed);
            }
            if verified.renew && mints {
                let request = MintAnonymous {
                    anonymous_id: Some(verified.claims.anonymous_id.clone()),
                    tenant_id: Some(verified.claims.tenant_id.clone()),
                    payload: verified.claims.payload.clone(),
                    anti_csrf_token: verified.claims.anti_csrf_token.clone(),
                    enable_anti_csrf: false,
                };
                return Plan::Mint {
                    request,
                    location,
                    unknown_key: false,
                };
            }
            Plan::Ready(AnonymousState::Present(AnonymousSession {
                claims: verified.claims,
                location,
                tessera: tessera.clone(),
                sink: ChangeSink::default(),
            }))
        }
        Err(rejection) if mints => {
            let keep = core.readable_anonymous_id(&token);
            Plan::Mint {
                request: mint_request(config, location, keep),
                location,
                unknown_key: rejection == tessera::AnonymousRejection::UnknownKey,
            }
        }
        Err(_) => Plan::Nothing,
    }
}

/// Whether this request may be answered with a new anonymous session. Not for preflights, and
/// for state-changing methods only when the request is the front end's own (`rid`) or the
/// browser says it is same-origin: a cross-site form POST carries no Lax cookies, and a new
/// AnT in its response would replace the visitor's (identity-reset CSRF, CSRF-17).
fn may_mint(method: &Method, headers: &HeaderMap) -> bool {
    if method == Method::OPTIONS || method == Method::TRACE {
        return false;
    }
    if method == Method::GET || method == Method::HEAD {
        return true;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    header(names::RID).is_some_and(|v| !v.trim().is_empty())
        || matches!(header("sec-fetch-site"), Some("same-origin") | Some("none"))
}

fn anti_csrf_ok(config: &Config, headers: &HeaderMap, claim: Option<&str>) -> bool {
    match config.anti_csrf {
        AntiCsrfMode::None => true,
        AntiCsrfMode::ViaCustomHeader => headers
            .get(names::RID)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| !v.trim().is_empty()),
        AntiCsrfMode::ViaToken => tessera::anti_csrf_matches(
            claim,
            headers.get(names::ANTI_CSRF).and_then(|v| v.to_str().ok()),
        ),
    }
}

/// Carries out a plan without I/O when it can: `Ok(state)` for the app, or `Err(plan)` when
/// the rest needs the async path (a remote core mints over HTTP, or keys must be refetched).
pub(crate) fn run_now(
    tessera: &Tessera,
    sink: &ChangeSink,
    plan: Plan,
) -> Result<AnonymousState, Plan> {
    match plan {
        Plan::Nothing => Ok(AnonymousState::None),
        Plan::Ready(state) => Ok(state.with_sink(sink)),
        Plan::Clear(location) => {
            sink.with(|c| clear_anonymous(c, tessera.config(), location == TokenLocation::Header));
            Ok(AnonymousState::None)
        }
        Plan::Mint {
            request,
            location,
            unknown_key: false,
        } => {
            let new_guest = request.anonymous_id.is_none();
            let result = match tessera.core().mint_anonymous_local(request) {
                LocalMint::Done(result) => result,
                LocalMint::NeedsIo(request) => {
                    return Err(Plan::Mint {
                        request,
                        location,
                        unknown_key: false,
                    })
                }
            };
            let state = minted_state(tessera, sink, result, location);
            // Issue 14: a new guest in cookie mode is offered device binding.
            if let (true, TokenLocation::Cookie, AnonymousState::Present(s)) =
                (new_guest, location, &state)
            {
                crate::dbsc::at_guest_mint(tessera, sink, s.anonymous_id());
            }
            Ok(state)
        }
        retry @ Plan::Mint { .. } => Err(retry),
    }
}

/// The async rest of [`run_now`]: refetches keys after an unknown `kid` (and re-plans), and
/// mints through a remote core.
pub(crate) async fn run_later(
    tessera: &Tessera,
    sink: &ChangeSink,
    plan: Plan,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> AnonymousState {
    let plan = match plan {
        Plan::Mint {
            unknown_key: true, ..
        } if tessera.core().refresh_anonymous_keys().await => {
            match self::plan(tessera, method, path, headers).0 {
                Plan::Mint {
                    request, location, ..
                } => Plan::Mint {
                    request,
                    location,
                    unknown_key: false,
                },
                other => other,
            }
        }
        other => other,
    };
    match plan {
        Plan::Mint {
            request, location, ..
        } => mint_into(tessera, sink, request, location).await,
        other => run_now(tessera, sink, other).unwrap_or_default(),
    }
}

fn minted_state(
    tessera: &Tessera,
    sink: &ChangeSink,
    result: Result<MintedAnonymous, SessionError>,
    location: TokenLocation,
) -> AnonymousState {
    match result {
        Ok(minted) => {
            crate::metrics::layer_minted();
            sink.with(|c| write_anonymous(c, tessera.config(), location, &minted));
            AnonymousState::Present(AnonymousSession {
                claims: Arc::new(minted.claims),
                location,
                tessera: tessera.clone(),
                sink: sink.clone(),
            })
        }
        Err(e) => {
            tracing::error!(error = %e, "anonymous session could not be minted");
            AnonymousState::None
        }
    }
}

/// Mints through the core (in-process without I/O when embedded).
pub(crate) async fn mint(
    tessera: &Tessera,
    request: MintAnonymous,
) -> Result<MintedAnonymous, SessionError> {
    tessera.core().mint_anonymous(request).await
}

/// Runs a [`Plan::Mint`]: mints, writes the token into `sink`, and returns the state the
/// request's extractors see. A failure to mint (a core outage) leaves the request without an
/// anonymous session rather than failing it.
pub(crate) async fn mint_into(
    tessera: &Tessera,
    sink: &ChangeSink,
    request: MintAnonymous,
    location: TokenLocation,
) -> AnonymousState {
    minted_state(tessera, sink, mint(tessera, request).await, location)
}

impl AnonymousState {
    /// Binds a ready state to the request's sink (so payload updates reach the response).
    pub(crate) fn with_sink(self, sink: &ChangeSink) -> Self {
        match self {
            Self::Present(mut s) => {
                s.sink = sink.clone();
                Self::Present(s)
            }
            other => other,
        }
    }
}

/// After "unauthorised" or theft has cleared the session (A21, A23): sets a new anonymous
/// session in the same response. It keeps an anonymousId only with proof (SEC2-H2):
/// `proven`, which the caller read from the session's refresh token or from an access token
/// that fully verified, or else the request's own genuine AnT. An access token that failed to
/// verify (expired, revoked) proves nothing: anyone who stole it would get the visitor's
/// permanent id, so the visitor then starts a new one.
pub(crate) async fn replace_cleared_session(
    tessera: &Tessera,
    sink: &ChangeSink,
    headers: &HeaderMap,
    proven: Option<String>,
) {
    let config = tessera.config();
    if !config.anonymous_sessions() {
        return;
    }
    let keep = proven.or_else(|| match find_anonymous_token(tessera, headers) {
        FoundAnonymous::Token(t, _) => tessera.core().readable_anonymous_id(&t),
        _ => None,
    });
    let location = anonymous_location(config, headers);
    mint_into(
        tessera,
        sink,
        mint_request(config, location, keep),
        location,
    )
    .await;
}

/// The anonymousId of an access token that fully verifies now: signature, time, and a live
/// session in the store (SEC2-H2). An expired token, or one whose session was revoked,
/// proves nothing and gives `None`.
pub(crate) async fn fully_verified_anonymous_id(
    tessera: &Tessera,
    access_token: &str,
) -> Option<String> {
    let options = tessera::VerifyOptions {
        check_database: true,
        anti_csrf_check: false,
        anti_csrf_token: None,
    };
    let verified = tessera
        .core()
        .verify_session(access_token, options)
        .await
        .ok()?;
    verified
        .session
        .user_data_in_jwt
        .get(ANONYMOUS_ID_CLAIM)
        .and_then(Value::as_str)
        .filter(|id| plausible_anonymous_id(id))
        .map(str::to_owned)
}

/// Sign-out (A5): a new anonymous session, keeping `anonymous_id` when given.
pub(crate) async fn sign_out_to_anonymous(
    tessera: &Tessera,
    sink: &ChangeSink,
    headers: &HeaderMap,
    anonymous_id: Option<String>,
) {
    let config = tessera.config();
    let location = anonymous_location(config, headers);
    mint_into(
        tessera,
        sink,
        mint_request(config, location, anonymous_id),
        location,
    )
    .await;
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
            let expires = SystemTime::UNIX_EPOCH + Duration::from_secs(minted.claims.exp);
            let cookie = transfer::set_cookie(
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
    let cookie = transfer::set_cookie(
        config,
        config.anonymous_cookie_name(),
        "",
        "/",
        SystemTime::UNIX_EPOCH,
        config.cookie_domain.as_deref(),
    );
    changes.set_cookie(config.anonymous_cookie_name(), cookie);
    if header_slots {
        changes.set_header(names::ACCESS_HEADER, Some(""), true);
        changes.set_header(names::REFRESH_HEADER, Some(""), true);
        changes.set_header(names::FRONT_TOKEN, Some("remove"), true);
    }
}

/// The anonymous session a request had when it reached the app, for sign-in (A3, B3).
pub(crate) fn current(ctx: &RequestContext) -> Option<AnonymousSession> {
    match &ctx.anonymous {
        AnonymousState::Present(s) => Some(s.clone()),
        _ => None,
    }
}
