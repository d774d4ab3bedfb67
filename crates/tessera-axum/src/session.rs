//! The session values an app's handlers hold: [`Session`] (signed in), [`AnonymousSession`]
//! (a guest) and [`AnySession`] (either). Their extractors are in `extract.rs`.

use crate::changes::ChangeSink;
use crate::error::{RejectionKind, SessionRejection};
use crate::tessera::Tessera;
use crate::transfer::write;
use crate::transfer::TokenLocation;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tessera::protocol::ANONYMOUS_ID_CLAIM;
use tessera::AnonymousClaims;
use tessera::{AccessTokenClaims, SessionError, SessionSummary};
use tessera::{MintAnonymous, MintedAnonymous};

/// A verified session. As an extractor it requires one: without a session the request is
/// answered 401 (`try refresh token` or `unauthorised`) before the handler runs.
#[derive(Clone)]
pub struct Session(State);

/// A session's parts, held inline (no allocation of its own per request). Its current access
/// token, which a re-issue replaces for every clone, lives in the request's sink by `id`.
#[derive(Clone)]
struct State {
    tessera: Tessera,
    sink: ChangeSink,
    location: TokenLocation,
    identity: Identity,
    /// Tells this session (and its clones) apart from others in the same request.
    id: u64,
    /// The access token the session was verified (or created) with.
    access_token: Arc<str>,
}

/// Session ids: unique in the process, so a re-issued token reaches exactly the clones of the
/// session it was issued for.
static NEXT_SESSION_ID: AtomicU64 = AtomicU64::new(0);

/// Who the session is: the verified claims as the core's cache shares them (the hot path,
/// nothing copied), or the summary of a session the core answered for.
#[derive(Clone)]
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

pub(crate) fn engine_error(
    tessera: &Tessera,
    sink: &ChangeSink,
    e: SessionError,
    location: TokenLocation,
) -> SessionRejection {
    let kind = match e {
        SessionError::Unauthorised(_) => {
            sink.with(|c| write::clear(c, tessera.config(), location));
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
        Self(State {
            tessera,
            sink,
            location,
            identity,
            id: NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed),
            access_token,
        })
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
        let st = &self.0;
        match st.sink.session_token(st.id) {
            Some(replaced) => replaced.to_string(),
            None => st.access_token.to_string(),
        }
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
    ///
    /// ```no_run
    /// # async fn demo(session: tessera_axum::Session) -> Result<(), tessera_axum::SessionRejection> {
    /// let mut update = serde_json::Map::new();
    /// update.insert("role".into(), serde_json::json!("editor"));
    /// session.merge_into_access_token_payload(update).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// Try-refresh when the access token has expired meanwhile; unauthorised (tokens cleared)
    /// when the session is gone; internal when the core fails.
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
            self.replace_access_token(token);
        }
        Ok(())
    }

    /// Writes a re-issued access token into this response and this session.
    fn replace_access_token(&self, token: tessera::TokenInfo) {
        let st = &self.0;
        st.sink.with(|c| {
            write::write_access_token(
                c,
                st.tessera.config(),
                st.location,
                st.identity.user_id(),
                &token,
            )
        });
        st.sink.set_session_token(st.id, token.token.into());
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
                .with(|c| write::clear(c, st.tessera.config(), st.location));
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
            vec![crate::claims::ClaimError {
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
    ///
    /// ```no_run
    /// # async fn demo(session: tessera_axum::Session) -> Result<(), tessera_axum::SessionRejection> {
    /// let data = session.session_data().await?;
    /// println!("{data}");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// Unauthorised (tokens cleared) when the session is gone; internal when the core fails.
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
    ///
    /// ```no_run
    /// # async fn demo(session: tessera_axum::Session) -> Result<(), tessera_axum::SessionRejection> {
    /// session.update_session_data(&serde_json::json!({"cart": 3})).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Self::session_data`].
    pub async fn update_session_data(&self, data: &Value) -> Result<(), SessionRejection> {
        let st = &self.0;
        st.tessera
            .core()
            .update_session_data(st.identity.handle(), data)
            .await
            .map_err(|e| engine_error(&st.tessera, &st.sink, e, st.location))
    }

    /// Revokes this session and clears its tokens in this response.
    ///
    /// ```no_run
    /// # async fn demo(session: tessera_axum::Session) -> Result<(), tessera_axum::SessionRejection> {
    /// session.revoke().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// Internal when the core fails (nothing is cleared then).
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
            .with(|c| write::clear(c, st.tessera.config(), st.location));
        Ok(existed)
    }
}

/// An anonymous session: a visitor who has not signed in.
#[derive(Clone)]
pub struct AnonymousSession {
    pub(crate) claims: Arc<AnonymousClaims>,
    pub(crate) location: TokenLocation,
    pub(crate) tessera: Tessera,
    pub(crate) sink: ChangeSink,
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
    /// is set on the response.
    ///
    /// ```no_run
    /// # async fn demo(guest: tessera_axum::AnonymousSession) -> Result<(), tessera_axum::SessionRejection> {
    /// let mut guest = guest;
    /// let mut payload = serde_json::Map::new();
    /// payload.insert("cart".into(), serde_json::json!(2));
    /// guest.set_payload(payload).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// An oversize or reserved payload is an `Internal` rejection with the reason logged — it
    /// is a bug in the app, not something the visitor can fix; so is a core that fails to mint.
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
            .with(|c| write::write_anonymous(c, config, self.location, &minted));
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

/// Mints an anonymous token through the core (in-process without I/O when embedded).
pub(crate) async fn mint(
    tessera: &Tessera,
    request: MintAnonymous,
) -> Result<MintedAnonymous, SessionError> {
    tessera.core().mint_anonymous(request).await
}
