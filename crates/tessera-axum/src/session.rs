//! The session object and the extractors: [`Session`] (required), `Option<Session>`
//! (optional) and [`Sessions`] (to create sessions at sign-in).

use crate::anonymous::{self, AnonymousSession, AnonymousState};
use crate::changes::ChangeSink;
use crate::config::AntiCsrfMode;
use crate::error::{RejectionKind, SessionRejection};
use crate::transfer::{self, names, CookieValue, SeenCookies, TokenLocation};
use crate::verify::{get_session, VerifyRequest};
use crate::Tessera;
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::request::Parts;
use serde_json::{Map, Value};
use std::sync::{Arc, Mutex, PoisonError};
use tessera::protocol::ANONYMOUS_ID_CLAIM;
use tessera::{AccessTokenClaims, NewSession, SessionError, SessionSummary};

/// What the layer puts in every request's extensions.
#[derive(Clone)]
pub(crate) struct RequestContext {
    pub(crate) tessera: Tessera,
    pub(crate) sink: ChangeSink,
    /// The request's anonymous session, as the layer found or minted it.
    pub(crate) anonymous: AnonymousState,
    /// The session cookies the layer read (one parse per request).
    pub(crate) cookies: SeenCookies,
}

pub(crate) fn context(parts: &Parts) -> Result<RequestContext, SessionRejection> {
    parts
        .extensions
        .get::<RequestContext>()
        .cloned()
        .ok_or(SessionRejection {
            kind: RejectionKind::LayerMissing,
            tessera: None,
        })
}

/// A verified session. As an extractor it requires one: without a session the request is
/// answered 401 (`try refresh token` or `unauthorised`) before the handler runs.
#[derive(Clone)]
pub struct Session(Arc<State>);

struct State {
    tessera: Tessera,
    sink: ChangeSink,
    location: TokenLocation,
    identity: Identity,
    access_token: Mutex<Arc<str>>,
}

/// Who the session is: the verified claims as the core's cache shares them (the hot path,
/// nothing copied), or the summary of a session the core answered for.
pub(crate) enum Identity {
    Claims(Arc<AccessTokenClaims>),
    Summary {
        handle: String,
        user_id: String,
        recipe_user_id: String,
        tenant_id: String,
        anonymous_id: Option<String>,
    },
}

impl From<SessionSummary> for Identity {
    fn from(s: SessionSummary) -> Self {
        Self::Summary {
            anonymous_id: s
                .user_data_in_jwt
                .get(ANONYMOUS_ID_CLAIM)
                .and_then(Value::as_str)
                .map(str::to_owned),
            handle: s.handle,
            user_id: s.user_id,
            recipe_user_id: s.recipe_user_id,
            tenant_id: s.tenant_id,
        }
    }
}

impl Identity {
    fn handle(&self) -> &str {
        match self {
            Self::Claims(c) => &c.session_handle,
            Self::Summary { handle, .. } => handle,
        }
    }

    fn user_id(&self) -> &str {
        match self {
            Self::Claims(c) => &c.sub,
            Self::Summary { user_id, .. } => user_id,
        }
    }

    fn recipe_user_id(&self) -> &str {
        match self {
            Self::Claims(c) => &c.rsub,
            Self::Summary { recipe_user_id, .. } => recipe_user_id,
        }
    }

    fn tenant_id(&self) -> &str {
        match self {
            Self::Claims(c) => &c.tenant_id,
            Self::Summary { tenant_id, .. } => tenant_id,
        }
    }

    fn anonymous_id(&self) -> Option<&str> {
        match self {
            Self::Claims(c) => c
                .user_claims
                .get(ANONYMOUS_ID_CLAIM)
                .and_then(Value::as_str),
            Self::Summary { anonymous_id, .. } => anonymous_id.as_deref(),
        }
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("handle", &self.handle())
            .field("user_id", &self.user_id())
            .finish_non_exhaustive()
    }
}

fn engine_error(
    tessera: &Tessera,
    sink: &ChangeSink,
    e: SessionError,
    location: TokenLocation,
) -> SessionRejection {
    let kind = match e {
        SessionError::Unauthorised(_) => {
            sink.with(|c| transfer::clear(c, tessera.config(), location));
            RejectionKind::Unauthorised
        }
        SessionError::TryRefreshToken(_) => RejectionKind::TryRefreshToken,
        SessionError::TokenTheft { .. } => RejectionKind::Unauthorised,
        SessionError::InvalidInput(e) => {
            tracing::warn!(error = %e, "session input refused");
            RejectionKind::Internal
        }
        // The core failed (or failed in a way this SDK does not know yet).
        e => {
            tracing::error!(error = %e, "session core failed");
            RejectionKind::Internal
        }
    };
    SessionRejection::new(tessera, kind)
}

impl Session {
    pub(crate) fn new(
        tessera: Tessera,
        sink: ChangeSink,
        location: TokenLocation,
        identity: Identity,
        access_token: Arc<str>,
    ) -> Self {
        Self(Arc::new(State {
            tessera,
            sink,
            location,
            identity,
            access_token: Mutex::new(access_token),
        }))
    }

    /// The user id (`sub`).
    pub fn user_id(&self) -> &str {
        self.0.identity.user_id()
    }

    /// The visitor's permanent anonymousId, a protected claim of the access token (A6, A8):
    /// present when the session was created with anonymous sessions on.
    pub fn anonymous_id(&self) -> Option<&str> {
        self.0.identity.anonymous_id()
    }

    /// Always false: a `Session` is signed in (see [`crate::AnySession`]) (A12).
    pub fn is_anonymous(&self) -> bool {
        false
    }

    /// The recipe user id (`rsub`).
    pub fn recipe_user_id(&self) -> &str {
        self.0.identity.recipe_user_id()
    }

    /// The session handle.
    pub fn handle(&self) -> &str {
        self.0.identity.handle()
    }

    /// The tenant.
    pub fn tenant_id(&self) -> &str {
        self.0.identity.tenant_id()
    }

    /// How the request carried its tokens.
    pub fn token_location(&self) -> TokenLocation {
        self.0.location
    }

    /// The current access token (after any replacement in this request).
    pub fn access_token(&self) -> String {
        self.0
            .access_token
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .to_string()
    }

    /// The whole access-token payload, protected claims included.
    pub fn access_token_payload(&self) -> Map<String, Value> {
        let token = self.access_token();
        token
            .split('.')
            .nth(1)
            .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Merges `update` into the custom claims (a `null` value deletes the key; protected
    /// claims are ignored) and re-issues the access token in this response.
    pub async fn merge_into_access_token_payload(
        &self,
        update: Map<String, Value>,
    ) -> Result<(), SessionRejection> {
        let mut payload = self.access_token_payload();
        for key in tessera::protocol::PROTECTED_CLAIMS {
            payload.remove(*key);
        }
        for (key, value) in update {
            if tessera::protocol::PROTECTED_CLAIMS.contains(&key.as_str()) {
                continue;
            }
            if value.is_null() {
                payload.remove(&key);
            } else {
                payload.insert(key, value);
            }
        }
        let st = &self.0;
        let regenerated = st
            .tessera
            .core()
            .regenerate_access_token(&self.access_token(), Some(payload))
            .await
            .map_err(|e| engine_error(&st.tessera, &st.sink, e, st.location))?;
        if let Some(token) = regenerated.access_token {
            st.sink.with(|c| {
                transfer::write_access_token(
                    c,
                    st.tessera.config(),
                    st.location,
                    st.identity.user_id(),
                    &token,
                )
            });
            *st.access_token
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = token.token.into();
        }
        Ok(())
    }

    /// Writes a re-issued access token into this response and this session.
    fn replace_access_token(&self, token: tessera::TokenInfo) {
        let st = &self.0;
        st.sink.with(|c| {
            transfer::write_access_token(
                c,
                st.tessera.config(),
                st.location,
                st.identity.user_id(),
                &token,
            )
        });
        *st.access_token
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = token.token.into();
    }

    /// The user's sessions with their devices (every tenant), most recently active first, this
    /// one marked `current`; the first 50 (see [`Self::devices_page`]).
    ///
    /// ```no_run
    /// # async fn demo(session: tessera_axum::Session) -> Result<(), tessera_axum::SessionRejection> {
    /// for d in session.devices().await? {
    ///     println!("{} {}", d.label, if d.current { "(this device)" } else { "" });
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The core's failure as a rejection (500 for a store failure).
    pub async fn devices(&self) -> Result<Vec<tessera::Device>, SessionRejection> {
        self.devices_page(tessera::DevicePage::default()).await
    }

    /// One page of [`Self::devices`] (at most 100 rows).
    ///
    /// # Errors
    /// As [`Self::devices`].
    pub async fn devices_page(
        &self,
        page: tessera::DevicePage,
    ) -> Result<Vec<tessera::Device>, SessionRejection> {
        let st = &self.0;
        st.tessera
            .core()
            .list_devices(st.identity.user_id(), Some(st.identity.handle()), page)
            .await
            .map_err(|e| engine_error(&st.tessera, &st.sink, e, st.location))
    }

    /// Revokes one of the user's sessions by handle; false ("not found") when the handle is
    /// not a live session of this user. Revoking this very session also clears its tokens.
    ///
    /// # Errors
    /// The core's failure as a rejection.
    pub async fn revoke_device(&self, handle: &str) -> Result<bool, SessionRejection> {
        let st = &self.0;
        let revoked = st
            .tessera
            .core()
            .revoke_device(st.identity.user_id(), handle)
            .await
            .map_err(|e| engine_error(&st.tessera, &st.sink, e, st.location))?;
        if revoked && handle == st.identity.handle() {
            st.sink
                .with(|c| transfer::clear(c, st.tessera.config(), st.location));
        }
        Ok(revoked)
    }

    /// Signs the user out everywhere else: revokes every other session, keeps this one.
    /// Returns the handles revoked.
    ///
    /// # Errors
    /// Unauthorised when this session is gone; the core's failure otherwise.
    pub async fn revoke_other_devices(&self) -> Result<Vec<String>, SessionRejection> {
        let st = &self.0;
        st.tessera
            .core()
            .revoke_other_devices(st.identity.handle())
            .await
            .map_err(|e| engine_error(&st.tessera, &st.sink, e, st.location))
    }

    /// The step-up check before a sensitive action: passes when the user signed in (or
    /// re-authenticated, [`Self::renew_sign_in_time`]) at most `within` ago. Otherwise the
    /// protocol's 403 invalid-claim answer with the claim id
    /// [`crate::devices::SIGNED_IN_WITHIN_CLAIM_ID`] and `maxAgeInSeconds`. Needs an engine
    /// built with `DeviceConfig { sign_in_time_claim: true, .. }`; a token without the claim
    /// is never fresh.
    ///
    /// ```no_run
    /// # async fn demo(session: tessera_axum::Session) -> Result<(), tessera_axum::SessionRejection> {
    /// session.require_signed_in_within(std::time::Duration::from_secs(300))?;
    /// // … change the password …
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The invalid-claim rejection (403) when the sign-in is older than `within`.
    pub fn require_signed_in_within(
        &self,
        within: std::time::Duration,
    ) -> Result<(), SessionRejection> {
        let now_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let payload = self.access_token_payload();
        let signed_in = payload
            .get(tessera::protocol::SIGN_IN_TIME_CLAIM)
            .and_then(Value::as_u64);
        if signed_in.is_some_and(|t| now_s.saturating_sub(t) <= within.as_secs()) {
            return Ok(());
        }
        Err(SessionRejection::invalid_claims(
            &self.0.tessera,
            vec![crate::ClaimError {
                id: crate::devices::SIGNED_IN_WITHIN_CLAIM_ID.into(),
                reason: Some(serde_json::json!({
                    "message": "the sign-in is too old for this action",
                    "maxAgeInSeconds": within.as_secs(),
                    "actualValue": signed_in,
                })),
            }],
        ))
    }

    /// After the user re-authenticated (password asked again, …): sets the session's
    /// sign-in time to now and re-issues the access token in this response; same session.
    ///
    /// # Errors
    /// Try-refresh when the access token has expired; unauthorised when the session is gone.
    pub async fn renew_sign_in_time(&self) -> Result<(), SessionRejection> {
        let st = &self.0;
        let renewed = st
            .tessera
            .core()
            .renew_sign_in_time(&self.access_token())
            .await
            .map_err(|e| engine_error(&st.tessera, &st.sink, e, st.location))?;
        if let Some(token) = renewed.access_token {
            self.replace_access_token(token);
        }
        Ok(())
    }

    /// The server-side session data.
    pub async fn session_data(&self) -> Result<Value, SessionRejection> {
        let st = &self.0;
        st.tessera
            .core()
            .get_session_info(st.identity.handle())
            .await
            .map(|i| i.session_data)
            .map_err(|e| engine_error(&st.tessera, &st.sink, e, st.location))
    }

    /// Replaces the server-side session data.
    pub async fn update_session_data(&self, data: &Value) -> Result<(), SessionRejection> {
        let st = &self.0;
        st.tessera
            .core()
            .update_session_data(st.identity.handle(), data)
            .await
            .map_err(|e| engine_error(&st.tessera, &st.sink, e, st.location))
    }

    /// Revokes this session and clears its tokens in this response.
    pub async fn revoke(&self) -> Result<(), SessionRejection> {
        self.revoke_existing().await.map(|_| ())
    }

    /// [`Self::revoke`], telling whether the session still existed in the core.
    pub(crate) async fn revoke_existing(&self) -> Result<bool, SessionRejection> {
        let st = &self.0;
        let existed = st
            .tessera
            .core()
            .revoke_session(st.identity.handle())
            .await
            .map_err(|e| engine_error(&st.tessera, &st.sink, e, st.location))?;
        st.sink
            .with(|c| transfer::clear(c, st.tessera.config(), st.location));
        Ok(existed)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ctx = context(parts)?;
        let found = get_session(
            &ctx.tessera,
            &ctx.sink,
            &parts.method,
            &parts.headers,
            &ctx.cookies,
            true,
            VerifyRequest::default(),
        )
        .await?;
        found.ok_or_else(|| SessionRejection::new(&ctx.tessera, RejectionKind::Unauthorised))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Session {
    type Rejection = SessionRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        let ctx = context(parts)?;
        get_session(
            &ctx.tessera,
            &ctx.sink,
            &parts.method,
            &parts.headers,
            &ctx.cookies,
            false,
            VerifyRequest::default(),
        )
        .await
    }
}

/// Creates sessions (sign-in). Tokens go out in the transfer method the browser asked for
/// (`st-auth-mode`), with the front-token and, under VIA_TOKEN in cookie mode, `anti-csrf`.
///
/// ```no_run
/// use tessera_axum::{Sessions, SessionRejection};
/// async fn login(sessions: Sessions) -> Result<&'static str, SessionRejection> {
///     sessions.create("user-1", serde_json::Map::new(), serde_json::json!({})).await?;
///     Ok("signed in")
/// }
/// ```
#[derive(Clone)]
pub struct Sessions {
    ctx: RequestContext,
    headers: http::HeaderMap,
    peer: Option<std::net::IpAddr>,
}

impl<S: Send + Sync> FromRequestParts<S> for Sessions {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(Self {
            ctx: context(parts)?,
            headers: parts.headers.clone(),
            peer,
        })
    }
}

impl Sessions {
    /// The SDK handle.
    pub fn tessera(&self) -> &Tessera {
        &self.ctx.tessera
    }

    /// The visitor's anonymous session, if the request had one: what sign-in code reads to
    /// move guest data into the new session (A3). The sign-in hook gets it too (B3).
    pub fn anonymous(&self) -> Option<AnonymousSession> {
        anonymous::current(&self.ctx)
    }

    /// Creates a session for `user_id` in the public tenant.
    pub async fn create(
        &self,
        user_id: &str,
        payload: Map<String, Value>,
        data: Value,
    ) -> Result<Session, SessionRejection> {
        self.create_in_tenant(tessera::PUBLIC, user_id, payload, data)
            .await
    }

    /// Creates a session in a tenant.
    pub async fn create_in_tenant(
        &self,
        tenant_id: &str,
        user_id: &str,
        mut payload: Map<String, Value>,
        data: Value,
    ) -> Result<Session, SessionRejection> {
        let tessera = &self.ctx.tessera;
        let config = tessera.config();
        let location = anonymous::output_location(config, &self.headers);
        for key in tessera::protocol::PROTECTED_CLAIMS {
            payload.remove(*key);
        }
        payload.remove(ANONYMOUS_ID_CLAIM);
        // A3, B3: the app sees the anonymous session before the signed-in one exists; A6, A15:
        // the visitor keeps their anonymousId (a new one if they had none).
        let guest = self.anonymous();
        let anonymous_id = if config.anonymous_sessions() {
            match &guest {
                Some(g) => Some(g.anonymous_id().to_owned()),
                None => Some(
                    tessera::new_anonymous_id()
                        .map_err(|e| engine_error(tessera, &self.ctx.sink, e.into(), location))?,
                ),
            }
        } else {
            None
        };
        if let Some(hook) = tessera.sign_in_hook() {
            hook(crate::tessera::SignIn {
                user_id: user_id.to_owned(),
                tenant_id: tenant_id.to_owned(),
                anonymous: guest.clone(),
            })
            .await?;
        }
        payload
            .entry("iss")
            .or_insert_with(|| Value::String(config.issuer()));
        let new = NewSession {
            anonymous_id,
            tenant_id: tenant_id.to_owned(),
            user_id: user_id.to_owned(),
            access_token_payload: payload,
            session_data: data,
            enable_anti_csrf: config.anti_csrf == AntiCsrfMode::ViaToken
                && location == TokenLocation::Cookie,
            use_static_key: !config.use_dynamic_signing_key,
        };
        // Issue 15: the device of this sign-in, recorded by the SDK itself.
        let device = tessera::DeviceInfo {
            user_agent: crate::devices::user_agent(&self.headers),
            ip: crate::devices::client_ip(self.peer, &self.headers, tessera.trusted_proxies())
                .map(|ip| ip.to_string()),
        };
        let created = tessera
            .core()
            .create_session_on_device(new, device)
            .await
            .map_err(|e| engine_error(tessera, &self.ctx.sink, e, location))?;
        let had_cookie_token = !matches!(
            transfer::cookie(
                &transfer::request_cookies(&self.headers),
                names::ACCESS_COOKIE
            ),
            CookieValue::Absent
        );
        let had_header_token = transfer::bearer(&self.headers).is_some();
        let had_anonymous_cookie = !matches!(
            transfer::cookie(
                &transfer::request_cookies(&self.headers),
                config.anonymous_cookie_name()
            ),
            CookieValue::Absent
        );
        self.ctx.sink.with(|c| {
            match location {
                TokenLocation::Cookie if had_header_token => {
                    transfer::clear(c, config, TokenLocation::Header)
                }
                TokenLocation::Header if had_cookie_token => {
                    transfer::clear(c, config, TokenLocation::Cookie)
                }
                _ => {}
            }
            if guest.is_some() || had_anonymous_cookie {
                anonymous::clear_anonymous(c, config, false);
            }
            transfer::write_access_token(c, config, location, user_id, &created.access_token);
            transfer::write_refresh_token(c, config, location, &created.refresh_token);
            if let Some(csrf) = &created.anti_csrf_token {
                c.set_header(names::ANTI_CSRF, Some(csrf), true);
            }
        });
        // Issue 14: a bound guest stays bound; anyone else is offered registration.
        crate::dbsc::at_sign_in(
            tessera,
            &self.ctx.sink,
            location,
            guest.as_ref().map(|g| g.anonymous_id()),
            &created,
        )
        .await;
        Ok(Session::new(
            tessera.clone(),
            self.ctx.sink.clone(),
            location,
            Identity::from(created.session),
            created.access_token.token.into(),
        ))
    }
}
