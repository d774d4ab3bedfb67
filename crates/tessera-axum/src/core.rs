//! The session core behind the SDK: the engine in-process, or a remote core over HTTP. The rest
//! of the SDK talks to a `dyn SessionCore` and cannot tell which.

use async_trait::async_trait;
use serde_json::{Map, Value};
use std::sync::Arc;
use tessera::{
    AccessTokenClaims, AnonymousRejection, CachedAccessToken, DbscBinding, DbscError, Device,
    DeviceInfo, DevicePage, MintAnonymous, MintError, MintedAnonymous, NewSession, RefreshOptions,
    Regenerated, SessionEngine, SessionError, SessionInfo, SessionTokens, UnauthorisedReason,
    VerifiedAnonymous, VerifiedSession, VerifyOptions,
};

/// A session verified without I/O by [`SessionCore::verify_session_local`].
#[derive(Debug, Clone)]
pub enum Verified {
    /// The verified claims as the core's verified-token cache shares them (nothing copied).
    Cached(Arc<AccessTokenClaims>),
    /// A verification of its own (a core without a shared cache).
    Checked(VerifiedSession),
}

impl Verified {
    /// The verified session as an owned [`VerifiedSession`] (copies cached claims that are
    /// still shared).
    ///
    /// ```
    /// # fn demo(claims: std::sync::Arc<tessera::AccessTokenClaims>) {
    /// let session = tessera_axum::Verified::Cached(claims).into_session();
    /// assert!(session.access_token.is_none());
    /// # }
    /// ```
    pub fn into_session(self) -> VerifiedSession {
        match self {
            Self::Cached(claims) => {
                VerifiedSession::from_claims(Arc::unwrap_or_clone(claims), None)
            }
            Self::Checked(session) => session,
        }
    }
}

/// How [`SessionCore::mint_anonymous_local`] answered.
#[derive(Debug)]
pub enum LocalMint {
    /// Minted (or refused) without I/O.
    Done(Result<MintedAnonymous, SessionError>),
    /// This core mints with I/O: the request, handed back for [`SessionCore::mint_anonymous`].
    NeedsIo(MintAnonymous),
}

/// What the SDK needs from a session core. Implemented by [`SessionEngine`] (embedded) and by
/// [`crate::RemoteCore`] (a `tessera serve` or SuperTokens core over HTTP).
///
/// Two operations have a synchronous attempt for the hot path beside the async whole:
/// [`Self::verify_session_local`] (then [`Self::verify_session`]) and
/// [`Self::mint_anonymous_local`] (then [`Self::mint_anonymous`]).
#[async_trait]
pub trait SessionCore: Send + Sync + 'static {
    /// Creates a session.
    async fn create_session(&self, new: NewSession) -> Result<SessionTokens, SessionError>;
    /// Verifies an access token (locally, and with the core only when needed).
    async fn verify_session(
        &self,
        access_token: &str,
        options: VerifyOptions<'_>,
    ) -> Result<VerifiedSession, SessionError>;
    /// Answers [`Self::verify_session`] without I/O when possible: the same checks (see
    /// [`tessera::check_session`]), the same answer. `None` sends the caller to the async
    /// path (an unknown `kid`, a token with a parent, a database check). The SDK calls this
    /// on every request; the default always answers `None`.
    fn verify_session_local(
        &self,
        access_token: &str,
        options: VerifyOptions<'_>,
    ) -> Option<Result<Verified, SessionError>> {
        let _ = (access_token, options);
        None
    }
    /// The verified-token cache's entry for `access_token` (the request's bytes, not yet
    /// checked as UTF-8): a probe with no other check and no event, which the layer runs while
    /// it still borrows the request's headers. `None` (the default: a core without a shared
    /// cache) leaves the request to [`Self::verify_session_local`].
    fn cached_access_token(&self, access_token: &[u8]) -> Option<CachedAccessToken> {
        let _ = access_token;
        None
    }
    /// [`Self::verify_session_local`] for a token [`Self::cached_access_token`] found.
    fn verify_cached_session(
        &self,
        cached: &CachedAccessToken,
        options: VerifyOptions<'_>,
    ) -> Option<Result<Verified, SessionError>> {
        let _ = (cached, options);
        None
    }
    /// Rotates a refresh token.
    async fn refresh_session(
        &self,
        refresh_token: &str,
        options: RefreshOptions<'_>,
    ) -> Result<SessionTokens, SessionError>;
    /// [`SessionCore::refresh_session`] for the SDK's refresh route: a failure that ends the session
    /// (unauthorised other than an anti-CSRF mismatch, or theft) also reports the anonymousId
    /// that the presented refresh token carries, when it is genuine (SEC2-H2). Holding the
    /// refresh token is the proof that lets the visitor keep the id; an access token alone
    /// never is. A remote core answers it in its refresh response (`anonymousId`).
    async fn refresh_session_or_anonymous_id(
        &self,
        refresh_token: &str,
        options: RefreshOptions<'_>,
    ) -> Result<SessionTokens, RefreshFailure>;
    /// Re-issues an access token with a new payload.
    async fn regenerate_access_token(
        &self,
        access_token: &str,
        payload: Option<Map<String, Value>>,
    ) -> Result<Regenerated, SessionError>;
    /// Revokes one session; true if it existed.
    async fn revoke_session(&self, handle: &str) -> Result<bool, SessionError>;
    /// Revokes every session of a user (all tenants when `tenant_id` is `None`).
    async fn revoke_all_sessions_for_user(
        &self,
        user_id: &str,
        tenant_id: Option<&str>,
    ) -> Result<Vec<String>, SessionError>;
    /// Handles of a user's live sessions.
    async fn session_handles_for_user(
        &self,
        user_id: &str,
        tenant_id: Option<&str>,
    ) -> Result<Vec<String>, SessionError>;
    /// The stored state of a session.
    async fn get_session_info(&self, handle: &str) -> Result<SessionInfo, SessionError>;
    /// Replaces a session's server-side data.
    async fn update_session_data(&self, handle: &str, data: &Value) -> Result<(), SessionError>;
    /// Replaces a session's stored access-token payload.
    async fn update_access_token_payload(
        &self,
        handle: &str,
        payload: &Map<String, Value>,
    ) -> Result<(), SessionError>;

    /// Verifies an anonymous token without I/O (A7, A10).
    fn verify_anonymous(&self, token: &str) -> Result<VerifiedAnonymous, AnonymousRejection>;
    /// [`Self::verify_anonymous`] from the core's verified-token cache alone, for a token
    /// given as the request's bytes; `None` (the default: a core without a shared cache) sends
    /// the caller to [`Self::verify_anonymous`].
    fn cached_anonymous(&self, token: &[u8]) -> Option<VerifiedAnonymous> {
        let _ = token;
        None
    }
    /// The anonymousId of a genuine anonymous token, even an expired one (A20).
    fn readable_anonymous_id(&self, token: &str) -> Option<String>;
    /// Mints an anonymous token without I/O when this core holds the key; otherwise hands the
    /// request back ([`LocalMint::NeedsIo`]) for [`Self::mint_anonymous`]. The default hands
    /// it back.
    fn mint_anonymous_local(&self, request: MintAnonymous) -> LocalMint {
        LocalMint::NeedsIo(request)
    }
    /// Mints an anonymous token, with I/O when needed (a remote core: over HTTP, B5). No
    /// database write either way. The default answers with [`Self::mint_anonymous_local`].
    async fn mint_anonymous(
        &self,
        request: MintAnonymous,
    ) -> Result<MintedAnonymous, SessionError> {
        match self.mint_anonymous_local(request) {
            LocalMint::Done(result) => result,
            LocalMint::NeedsIo(_) => Err(unsupported("minting anonymous tokens")),
        }
    }
    /// Refetches anonymous verifying keys after an unknown `kid` (remote cores); true when the
    /// key set changed. Embedded cores know their keys and answer false.
    async fn refresh_anonymous_keys(&self) -> bool {
        false
    }

    /// [`SessionCore::create_session`] recording the device of the sign-in (issue 15). The default
    /// drops the device (a core without the extension).
    async fn create_session_on_device(
        &self,
        new: NewSession,
        device: DeviceInfo,
    ) -> Result<SessionTokens, SessionError> {
        let _ = device;
        self.create_session(new).await
    }
    /// A user's sessions with their devices, most recently active first.
    async fn list_devices(
        &self,
        user_id: &str,
        current: Option<&str>,
        page: DevicePage,
    ) -> Result<Vec<Device>, SessionError> {
        let _ = (user_id, current, page);
        Err(unsupported("listing devices"))
    }
    /// Revokes a session of `user_id`; false when it is not one ("not found").
    async fn revoke_device(&self, user_id: &str, handle: &str) -> Result<bool, SessionError> {
        let _ = (user_id, handle);
        Err(unsupported("revoking a device"))
    }
    /// Revokes every other session of the user of `current_handle`.
    async fn revoke_other_devices(
        &self,
        current_handle: &str,
    ) -> Result<Vec<String>, SessionError> {
        let _ = current_handle;
        Err(unsupported("signing out other devices"))
    }
    /// Sets the sign-in time to now and re-issues the access token.
    async fn renew_sign_in_time(&self, access_token: &str) -> Result<Regenerated, SessionError> {
        let _ = access_token;
        Err(unsupported("renewing the sign-in time"))
    }

    /// A DBSC challenge for a session (issue 14). Embedded: an HMAC, no I/O.
    async fn dbsc_challenge(&self, tenant_id: &str, handle: &str) -> Result<String, SessionError> {
        let _ = (tenant_id, handle);
        Err(unsupported("device-bound sessions"))
    }
    /// A DBSC challenge for a guest without I/O, when this core can mint one (`None`: no
    /// offer at guest mint).
    fn dbsc_guest_challenge_local(&self, anonymous_id: &str) -> Option<String> {
        let _ = anonymous_id;
        None
    }
    /// DBSC registration: verifies the proof and binds its key to the session.
    async fn dbsc_register(
        &self,
        tenant_id: &str,
        handle: &str,
        proof: &str,
    ) -> Result<DbscBinding, DbscError> {
        let _ = (tenant_id, handle, proof);
        Err(DbscError::Session(unsupported("device-bound sessions")))
    }
    /// DBSC registration of a guest (by anonymousId), kept until `expires_at` (epoch ms).
    async fn dbsc_register_guest(
        &self,
        anonymous_id: &str,
        proof: &str,
        expires_at: u64,
    ) -> Result<DbscBinding, DbscError> {
        let _ = (anonymous_id, proof, expires_at);
        Err(DbscError::Session(unsupported("device-bound guests")))
    }
    /// Carries a bound guest's key to the session it signed in to.
    async fn dbsc_carry_guest(
        &self,
        anonymous_id: &str,
        tenant_id: &str,
        handle: &str,
    ) -> Result<Option<DbscBinding>, SessionError> {
        let _ = (anonymous_id, tenant_id, handle);
        Ok(None)
    }
    /// The DBSC refresh (see [`SessionEngine::dbsc_refresh_session`]).
    async fn dbsc_refresh_session(
        &self,
        refresh_token: &str,
        options: RefreshOptions<'_>,
        proof: Option<&str>,
    ) -> Result<(SessionTokens, DbscBinding), DbscError> {
        let _ = (refresh_token, options, proof);
        Err(DbscError::NotBound)
    }
}

fn unsupported(what: &str) -> SessionError {
    SessionError::Engine(tessera::EngineError::Remote(format!(
        "{what} is not supported by this core"
    )))
}

/// A refresh that failed, as [`SessionCore::refresh_session_or_anonymous_id`] reports it.
#[derive(Debug)]
pub struct RefreshFailure {
    /// What went wrong.
    pub error: SessionError,
    /// The anonymousId in the presented refresh token's encrypted payload, when the token is
    /// genuine and the failure ends the session (see [`ends_session`]).
    pub anonymous_id: Option<String>,
}

/// True for the refresh failures after which the visitor is handed an anonymous session:
/// unauthorised (but not an anti-CSRF mismatch, which changes nothing) and theft.
pub fn ends_session(error: &SessionError) -> bool {
    match error {
        SessionError::Unauthorised(reason) => !matches!(
            reason,
            UnauthorisedReason::AntiCsrfMismatch | UnauthorisedReason::DeviceBound
        ),
        SessionError::TokenTheft { .. } => true,
        _ => false,
    }
}

/// Maps a mint failure to the session error the SDK reports.
pub(crate) fn mint_error(e: MintError) -> SessionError {
    match e {
        MintError::InvalidPayload(m) => SessionError::InvalidInput(tessera::InputError::Invalid(m)),
        MintError::NoSigningKey => SessionError::Engine(tessera::EngineError::Config(
            "this core holds no anonymous signing key".into(),
        )),
        MintError::Engine(e) => SessionError::Engine(e),
        // A failure this SDK does not know yet: an engine failure, with its text.
        other => SessionError::Engine(tessera::EngineError::Config(other.to_string())),
    }
}

#[async_trait]
impl SessionCore for SessionEngine {
    async fn create_session(&self, new: NewSession) -> Result<SessionTokens, SessionError> {
        SessionEngine::create_session(self, new).await
    }
    async fn verify_session(
        &self,
        access_token: &str,
        options: VerifyOptions<'_>,
    ) -> Result<VerifiedSession, SessionError> {
        SessionEngine::verify_session(self, access_token, options).await
    }
    fn verify_session_local(
        &self,
        access_token: &str,
        options: VerifyOptions<'_>,
    ) -> Option<Result<Verified, SessionError>> {
        SessionEngine::verify_session_local(self, access_token, options)
            .map(|r| r.map(Verified::Cached))
    }
    fn cached_access_token(&self, access_token: &[u8]) -> Option<CachedAccessToken> {
        SessionEngine::cached_access_token(self, access_token)
    }
    fn verify_cached_session(
        &self,
        cached: &CachedAccessToken,
        options: VerifyOptions<'_>,
    ) -> Option<Result<Verified, SessionError>> {
        SessionEngine::verify_cached_session(self, cached, options).map(|r| r.map(Verified::Cached))
    }
    async fn refresh_session(
        &self,
        refresh_token: &str,
        options: RefreshOptions<'_>,
    ) -> Result<SessionTokens, SessionError> {
        SessionEngine::refresh_session(self, refresh_token, options).await
    }
    async fn refresh_session_or_anonymous_id(
        &self,
        refresh_token: &str,
        options: RefreshOptions<'_>,
    ) -> Result<SessionTokens, RefreshFailure> {
        SessionEngine::refresh_session(self, refresh_token, options)
            .await
            .map_err(|error| RefreshFailure {
                anonymous_id: ends_session(&error)
                    .then(|| self.refresh_token_anonymous_id(refresh_token))
                    .flatten(),
                error,
            })
    }
    async fn regenerate_access_token(
        &self,
        access_token: &str,
        payload: Option<Map<String, Value>>,
    ) -> Result<Regenerated, SessionError> {
        SessionEngine::regenerate_access_token(self, access_token, payload).await
    }
    async fn revoke_session(&self, handle: &str) -> Result<bool, SessionError> {
        SessionEngine::revoke_session(self, handle).await
    }
    async fn create_session_on_device(
        &self,
        new: NewSession,
        device: DeviceInfo,
    ) -> Result<SessionTokens, SessionError> {
        SessionEngine::create_session_on_device(self, new, device).await
    }
    async fn list_devices(
        &self,
        user_id: &str,
        current: Option<&str>,
        page: DevicePage,
    ) -> Result<Vec<Device>, SessionError> {
        SessionEngine::list_devices(self, user_id, current, page).await
    }
    async fn revoke_device(&self, user_id: &str, handle: &str) -> Result<bool, SessionError> {
        SessionEngine::revoke_device(self, user_id, handle).await
    }
    async fn revoke_other_devices(
        &self,
        current_handle: &str,
    ) -> Result<Vec<String>, SessionError> {
        SessionEngine::revoke_other_devices(self, current_handle).await
    }
    async fn renew_sign_in_time(&self, access_token: &str) -> Result<Regenerated, SessionError> {
        SessionEngine::renew_sign_in_time(self, access_token).await
    }
    async fn revoke_all_sessions_for_user(
        &self,
        user_id: &str,
        tenant_id: Option<&str>,
    ) -> Result<Vec<String>, SessionError> {
        SessionEngine::revoke_all_sessions_for_user(self, user_id, tenant_id).await
    }
    async fn session_handles_for_user(
        &self,
        user_id: &str,
        tenant_id: Option<&str>,
    ) -> Result<Vec<String>, SessionError> {
        SessionEngine::session_handles_for_user(self, user_id, tenant_id).await
    }
    async fn get_session_info(&self, handle: &str) -> Result<SessionInfo, SessionError> {
        SessionEngine::get_session_info(self, handle).await
    }
    async fn update_session_data(&self, handle: &str, data: &Value) -> Result<(), SessionError> {
        SessionEngine::update_session_data(self, handle, data).await
    }
    async fn update_access_token_payload(
        &self,
        handle: &str,
        payload: &Map<String, Value>,
    ) -> Result<(), SessionError> {
        SessionEngine::update_access_token_payload(self, handle, payload).await
    }
    fn verify_anonymous(&self, token: &str) -> Result<VerifiedAnonymous, AnonymousRejection> {
        SessionEngine::verify_anonymous(self, token)
    }
    fn cached_anonymous(&self, token: &[u8]) -> Option<VerifiedAnonymous> {
        SessionEngine::cached_anonymous(self, token)
    }
    fn readable_anonymous_id(&self, token: &str) -> Option<String> {
        SessionEngine::readable_anonymous_id(self, token)
    }
    fn mint_anonymous_local(&self, request: MintAnonymous) -> LocalMint {
        LocalMint::Done(SessionEngine::mint_anonymous(self, request).map_err(mint_error))
    }
    async fn dbsc_challenge(&self, tenant_id: &str, handle: &str) -> Result<String, SessionError> {
        Ok(SessionEngine::dbsc_challenge(self, tenant_id, handle)?)
    }
    fn dbsc_guest_challenge_local(&self, anonymous_id: &str) -> Option<String> {
        SessionEngine::dbsc_guest_challenge(self, anonymous_id).ok()
    }
    async fn dbsc_register(
        &self,
        tenant_id: &str,
        handle: &str,
        proof: &str,
    ) -> Result<DbscBinding, DbscError> {
        SessionEngine::dbsc_register(self, tenant_id, handle, proof).await
    }
    async fn dbsc_register_guest(
        &self,
        anonymous_id: &str,
        proof: &str,
        expires_at: u64,
    ) -> Result<DbscBinding, DbscError> {
        SessionEngine::dbsc_register_guest(self, anonymous_id, proof, expires_at).await
    }
    async fn dbsc_carry_guest(
        &self,
        anonymous_id: &str,
        tenant_id: &str,
        handle: &str,
    ) -> Result<Option<DbscBinding>, SessionError> {
        Ok(SessionEngine::dbsc_carry_guest(self, anonymous_id, tenant_id, handle).await?)
    }
    async fn dbsc_refresh_session(
        &self,
        refresh_token: &str,
        options: RefreshOptions<'_>,
        proof: Option<&str>,
    ) -> Result<(SessionTokens, DbscBinding), DbscError> {
        SessionEngine::dbsc_refresh_session(self, refresh_token, options, proof).await
    }
}
