//! Anonymous sessions in the SDK: every visitor without a signed-in session gets one, carried
//! by an anonymous token (AnT) and costing no database row. This module holds the layer's guest
//! plan (`plan` without I/O, then `run_now`/`run_later`) and the recovery after
//! unauthorised, theft and sign-out; the guest value ([`AnonymousSession`]) is in
//! `session.rs`, its extractor in `extract.rs`, and the token writes in `transfer/write.rs`.
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
//! - **Sign-in** ([`crate::SignIn`]): the new access token carries the visitor's anonymousId
//!   (A15), the AnT is removed in the same response, and the [`crate::Tessera::with_sign_in_hook`]
//!   hook first receives the guest's id, tenant and payload ([`crate::SigningIn`]) so the app
//!   can move its data (A3, B3).
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

use crate::changes::ChangeSink;
use crate::config::{AntiCsrfMode, Config, TokenTransfer};
use crate::context::AnonymousState;
use crate::core::LocalMint;
use crate::session::mint;
use crate::tessera::Tessera;
use crate::transfer::read::{self, CookieRef, RequestTokens};
use crate::transfer::write;
use crate::transfer::TokenLocation;
use http::{HeaderMap, Method};
use serde_json::Value;
use std::borrow::Cow;
use std::sync::Arc;
use tessera::protocol::ANONYMOUS_ID_CLAIM;
use tessera::SessionError;
use tessera::{plausible_anonymous_id, AnonymousClaims};
use tessera::{MintAnonymous, MintedAnonymous};

pub use crate::session::{AnonymousSession, AnySession};

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

/// The AnT of a request (see [`FoundAnonymous`]), from the layer's read pass.
pub(crate) fn find_anonymous_token<'a>(
    tessera: &Tessera,
    headers: &'a HeaderMap,
    tokens: &'a RequestTokens,
) -> FoundAnonymous<'a> {
    find_seen_anonymous_token(tessera, headers, tokens, None)
}

/// True when the request's AnT is read from its anonymous cookie (B4): the transfer allows
/// cookies and no anonymous bearer token comes first.
fn reads_anonymous_cookie(config: &Config, tokens: &RequestTokens) -> bool {
    let bearer_first = config.transfer != TokenTransfer::Cookie && tokens.bearer_is_anonymous();
    config.transfer != TokenTransfer::Header && !bearer_first
}

/// [`find_anonymous_token`] with the anonymous cookie's bytes as the read pass saw them
/// (`seen`, see [`read::Seen`]): the same answer, without finding the cookie line again.
fn find_seen_anonymous_token<'a>(
    tessera: &Tessera,
    headers: &'a HeaderMap,
    tokens: &'a RequestTokens,
    seen: Option<&'a [u8]>,
) -> FoundAnonymous<'a> {
    let config = tessera.config();
    if config.transfer != TokenTransfer::Cookie && tokens.bearer_is_anonymous() {
        if let Some(token) = tokens.bearer(headers) {
            return FoundAnonymous::Token(Cow::Borrowed(token), TokenLocation::Header);
        }
    }
    if !reads_anonymous_cookie(config, tokens) {
        return FoundAnonymous::None;
    }
    let cookie = match seen.map(std::str::from_utf8) {
        Some(Ok(value)) => CookieRef::One(Cow::Borrowed(value)),
        Some(Err(_)) => CookieRef::Absent,
        None => tokens.anonymous_cookie(headers),
    };
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
    let copies = read::cookie_values(headers, name);
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

/// A page navigation in `Any` mode carries no `st-auth-mode`, so where the page's SDK keeps
/// tokens is unknown: a token in headers would be thrown away, one in a cookie could split the
/// visitor in two in a header-mode app. Nothing is minted; the page's first API call does it.
/// (With `TokenTransfer::Cookie`, navigations mint cookies.)
fn is_undecided_navigation(config: &Config, headers: &HeaderMap, tokens: &RequestTokens) -> bool {
    config.transfer == TokenTransfer::Any
        && tokens.auth_mode.is_none()
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

/// Where a new anonymous token goes: where new tokens go ([`read::output_location`]).
pub(crate) fn anonymous_location(config: &Config, tokens: &RequestTokens) -> TokenLocation {
    read::output_location(config.transfer, tokens.auth_mode)
}

/// Decides, without I/O, what the layer does for a request to `path` (A7), from the layer's
/// one read pass (`tokens`, and `seen_guest`, the anonymous cookie's bytes, see
/// [`read::Seen`]); a guest found ready is bound to the request's `sink`. A request that
/// carries an access token needs no anonymous work at all (A7; an expired one is refreshed as
/// usual, A22). A returning guest's cookie is looked up in the verified-token cache while its
/// bytes are still borrowed: a hit is neither checked as UTF-8 nor parsed.
pub(crate) fn plan(
    tessera: &Tessera,
    sink: &ChangeSink,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    tokens: &RequestTokens,
    seen_guest: Option<&[u8]>,
) -> Plan {
    let config = tessera.config();
    if tokens.has_access_token(config.transfer) {
        return Plan::Nothing;
    }
    let core = tessera.core();
    let cached = match seen_guest {
        Some(bytes)
            if config.anonymous_sessions()
                && !bytes.is_empty()
                && reads_anonymous_cookie(config, tokens) =>
        {
            core.cached_anonymous(bytes)
        }
        _ => None,
    };
    let found = match cached {
        Some(_) => None,
        None => Some(find_seen_anonymous_token(
            tessera, headers, tokens, seen_guest,
        )),
    };
    if !config.anonymous_sessions() {
        return match found {
            Some(FoundAnonymous::Token(_, location)) => Plan::Clear(location),
            Some(FoundAnonymous::Ambiguous) => Plan::Clear(TokenLocation::Cookie),
            _ => Plan::Nothing,
        };
    }
    let mints = config.anonymous_mints_on(path)
        && may_mint(method, headers, tokens)
        && !is_undecided_navigation(config, headers, tokens);
    let (verified, token, location) = match (cached, found) {
        (Some(hit), _) => (Ok(hit), None, TokenLocation::Cookie),
        (None, Some(FoundAnonymous::Token(token, location))) => {
            (core.verify_anonymous(&token), Some(token), location)
        }
        (None, Some(FoundAnonymous::Ambiguous)) => return Plan::Ready(AnonymousState::None),
        (None, _) if mints => {
            let location = anonymous_location(config, tokens);
            return Plan::Mint {
                request: mint_request(config, location, None),
                location,
                unknown_key: false,
            };
        }
        (None, _) => return Plan::Nothing,
    };
    match verified {
        Ok(verified) => {
            if location == TokenLocation::Cookie
                && method != Method::GET
                && !anti_csrf_ok(
                    config,
                    headers,
                    tokens,
                    verified.claims.anti_csrf_token.as_deref(),
                )
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
                sink: sink.clone(),
            }))
        }
        Err(rejection) if mints => {
            let keep = token.and_then(|t| core.readable_anonymous_id(&t));
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
fn may_mint(method: &Method, headers: &HeaderMap, tokens: &RequestTokens) -> bool {
    if method == Method::OPTIONS || method == Method::TRACE {
        return false;
    }
    if method == Method::GET || method == Method::HEAD {
        return true;
    }
    tokens.rid
        || matches!(
            headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()),
            Some("same-origin") | Some("none")
        )
}

fn anti_csrf_ok(
    config: &Config,
    headers: &HeaderMap,
    tokens: &RequestTokens,
    claim: Option<&str>,
) -> bool {
    match config.anti_csrf {
        AntiCsrfMode::None => true,
        AntiCsrfMode::ViaCustomHeader => tokens.rid,
        AntiCsrfMode::ViaToken => tessera::anti_csrf_matches(claim, read::anti_csrf(headers)),
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
        Plan::Ready(state) => Ok(state),
        Plan::Clear(location) => {
            sink.with(|c| {
                write::clear_anonymous(c, tessera.config(), location == TokenLocation::Header)
            });
            Ok(AnonymousState::None)
        }
        Plan::Mint {
            request,
            location,
            unknown_key: false,
        } => {
            let new_guest = request.anonymous_id.is_none();
            match tessera.core().mint_anonymous_local(request) {
                LocalMint::Done(result) => {
                    let state = minted_state(tessera, sink, result, location);
                    // Issue 14: a new guest in cookie mode is offered device binding.
                    if let (true, TokenLocation::Cookie, AnonymousState::Present(s)) =
                        (new_guest, location, &state)
                    {
                        offer_dbsc(tessera, sink, s.anonymous_id());
                    }
                    Ok(state)
                }
                LocalMint::NeedsIo(request) => Err(Plan::Mint {
                    request,
                    location,
                    unknown_key: false,
                }),
            }
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
    tokens: &RequestTokens,
) -> AnonymousState {
    let plan = match plan {
        Plan::Mint {
            unknown_key: true, ..
        } if tessera.core().refresh_anonymous_keys().await => {
            match self::plan(tessera, sink, method, path, headers, tokens, None) {
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
            sink.with(|c| write::write_anonymous(c, tessera.config(), location, &minted));
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
    tokens: &RequestTokens,
    proven: Option<String>,
) {
    let config = tessera.config();
    if !config.anonymous_sessions() {
        return;
    }
    let keep = proven.or_else(|| match find_anonymous_token(tessera, headers, tokens) {
        FoundAnonymous::Token(t, _) => tessera.core().readable_anonymous_id(&t),
        _ => None,
    });
    let location = anonymous_location(config, tokens);
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
    tokens: &RequestTokens,
    anonymous_id: Option<String>,
) {
    let config = tessera.config();
    let location = anonymous_location(config, tokens);
    mint_into(
        tessera,
        sink,
        mint_request(config, location, anonymous_id),
        location,
    )
    .await;
}

/// A new guest in cookie mode is offered registration (embedded cores only: no I/O here).
fn offer_dbsc(tessera: &Tessera, sink: &ChangeSink, anonymous_id: &str) {
    let Some(paths) = &tessera.config().dbsc else {
        return;
    };
    if let Some(challenge) = tessera.core().dbsc_guest_challenge_local(anonymous_id) {
        sink.with(|c| write::offer_dbsc_registration(c, paths, &challenge));
    }
}
