//! The session core behind the SDK: the engine in-process, or a remote core over HTTP. The rest
//! of the SDK talks to a `dyn Core` and cannot tell which.

use async_trait::async_trait;
use serde_json::{Map, Value};
use tessera::{
    NewSession, RefreshOptions, Regenerated, SessionEngine, SessionError, SessionInfo,
    SessionTokens, VerifiedSession, VerifyOptions,
};

/// What the SDK needs from a session core. Implemented by [`SessionEngine`] (embedded) and by
/// [`crate::RemoteCore`] (a `tessera serve` or SuperTokens core over HTTP).
#[async_trait]
pub trait Core: Send + Sync + 'static {
    /// Creates a session.
    async fn create_session(&self, new: NewSession) -> Result<SessionTokens, SessionError>;
    /// Verifies an access token (locally, and with the core only when needed).
    async fn verify_session(
        &self,
        access_token: &str,
        options: VerifyOptions<'_>,
    ) -> Result<VerifiedSession, SessionError>;
    /// Answers `verify_session` without I/O when possible (see
    /// [`SessionEngine::verify_session_local`]); `None` sends the caller to the async path.
    fn verify_session_local(
        &self,
        access_token: &str,
        options: VerifyOptions<'_>,
    ) -> Option<Result<VerifiedSession, SessionError>> {
        let _ = (access_token, options);
        None
    }
    /// Rotates a refresh token.
    async fn refresh_session(
        &self,
        refresh_token: &str,
        options: RefreshOptions<'_>,
    ) -> Result<SessionTokens, SessionError>;
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
}

#[async_trait]
impl Core for SessionEngine {
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
    ) -> Option<Result<VerifiedSession, SessionError>> {
        SessionEngine::verify_session_local(self, access_token, options)
    }
    async fn refresh_session(
        &self,
        refresh_token: &str,
        options: RefreshOptions<'_>,
    ) -> Result<SessionTokens, SessionError> {
        SessionEngine::refresh_session(self, refresh_token, options).await
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
}
