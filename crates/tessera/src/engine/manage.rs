//! Reading, updating and revoking sessions by handle or user, and regenerating an access token
//! with a new payload.

use super::verify::parse_payload;
use super::SessionEngine;
use crate::error::{InputError, SessionError, TryRefreshReason, UnauthorisedReason};
use crate::events::RevokeCause;
use crate::protocol::ANONYMOUS_ID_CLAIM;
use crate::session::{
    plausible_handle, tenant_of_handle, Regenerated, SessionInfo, SessionSummary,
};
use crate::store::DeletedSession;
use crate::token::access::{
    carry_anonymous_id, contains_protected_claim, strip_sign_in_time, AccessTokenClaims,
};
use crate::token::verify::{verify_access_token, VerifyPolicy};
use serde_json::{Map, Value};

impl SessionEngine {
    /// Replaces the custom claims of the session behind `access_token` and re-issues the token
    /// in place: same `exp`, same lineage hashes, `iat = now`. The token's signature must
    /// verify; an expired token is accepted and gets a database-only update (no new token).
    pub async fn regenerate_access_token(
        &self,
        access_token: &str,
        new_payload: Option<Map<String, Value>>,
    ) -> Result<Regenerated, SessionError> {
        let policy = VerifyPolicy {
            ignore_time: true,
            ..self.verify_policy()
        };
        let keys = self.inner.keys.load_full();
        let claims = match verify_access_token(access_token, &*keys, &policy) {
            Err(TryRefreshReason::KeyNotFound) if self.reload_for_unknown_kid().await? => {
                verify_access_token(access_token, &**self.inner.keys.load(), &policy)
            }
            other => other,
        }
        .map_err(|_| SessionError::Unauthorised(UnauthorisedReason::InvalidAccessToken))?;
        if new_payload.as_ref().is_some_and(contains_protected_claim) {
            return Err(SessionError::InvalidInput(InputError::ProtectedClaim));
        }
        let mut new_payload = new_payload;
        if let Some(payload) = new_payload.as_mut() {
            strip_sign_in_time(payload);
            carry_anonymous_id(payload, claims.user_claims.get(ANONYMOUS_ID_CLAIM))
                .map_err(SessionError::InvalidInput)?;
        }
        let now = self.now();
        let row = self
            .load_row(&claims)
            .await?
            .filter(|r| r.expires_at > now)
            .ok_or(SessionError::Unauthorised(
                UnauthorisedReason::SessionDoesNotExist,
            ))?;
        let payload = new_payload.unwrap_or_else(|| parse_payload(&row.jwt_user_payload));
        let updated = self
            .inner
            .store
            .update_jwt_payload(
                &row.app_id,
                &row.tenant_id,
                &row.session_handle,
                &Value::Object(payload.clone()).to_string(),
                now,
            )
            .await?;
        if !updated {
            return Err(SessionError::Unauthorised(
                UnauthorisedReason::SessionDoesNotExist,
            ));
        }
        let expired = claims.exp.saturating_mul(1000) < now;
        let session = SessionSummary {
            handle: claims.session_handle.clone(),
            user_id: claims.sub.clone(),
            recipe_user_id: claims.rsub.clone(),
            user_data_in_jwt: payload.clone(),
            tenant_id: claims.tenant_id.clone(),
        };
        if expired {
            return Ok(Regenerated {
                session,
                access_token: None,
            });
        }
        let new_claims = AccessTokenClaims {
            iat: (now / 1000).min(claims.exp),
            user_claims: payload,
            ..claims
        };
        let token = self
            .mint_access_token(&new_claims, row.use_static_key)
            .await?;
        Ok(Regenerated {
            session,
            access_token: Some(token),
        })
    }

    /// The stored state of a live session.
    pub async fn get_session_info(&self, handle: &str) -> Result<SessionInfo, SessionError> {
        if !plausible_handle(handle) {
            return Err(SessionError::Unauthorised(
                UnauthorisedReason::SessionDoesNotExist,
            ));
        }
        let now = self.now();
        let row = self
            .inner
            .store
            .get_session(&self.inner.app_id, tenant_of_handle(handle), handle)
            .await?
            .filter(|r| r.expires_at > now)
            .ok_or(SessionError::Unauthorised(
                UnauthorisedReason::SessionDoesNotExist,
            ))?;
        Ok(SessionInfo {
            session_data: serde_json::from_str(&row.session_data).unwrap_or(Value::Null),
            access_token_payload: parse_payload(&row.jwt_user_payload),
            session_handle: row.session_handle,
            user_id: row.user_id.clone(),
            recipe_user_id: row.user_id,
            expiry: row.expires_at,
            time_created: row.created_at,
            tenant_id: row.tenant_id,
        })
    }

    /// Replaces the server-side data of a live session.
    pub async fn update_session_data(
        &self,
        handle: &str,
        data: &Value,
    ) -> Result<(), SessionError> {
        if !plausible_handle(handle) {
            return Err(SessionError::Unauthorised(
                UnauthorisedReason::SessionDoesNotExist,
            ));
        }
        let updated = self
            .inner
            .store
            .update_session_data(
                &self.inner.app_id,
                tenant_of_handle(handle),
                handle,
                &data.to_string(),
                self.now(),
            )
            .await?;
        updated.then_some(()).ok_or(SessionError::Unauthorised(
            UnauthorisedReason::SessionDoesNotExist,
        ))
    }

    /// Replaces the custom access-token claims stored for a live session. Tokens already
    /// issued keep their claims; the next minted token (refresh, promotion, or a verify with
    /// the database check) carries the new ones.
    pub async fn update_access_token_payload(
        &self,
        handle: &str,
        payload: &Map<String, Value>,
    ) -> Result<(), SessionError> {
        if contains_protected_claim(payload) {
            return Err(SessionError::InvalidInput(InputError::ProtectedClaim));
        }
        if !plausible_handle(handle) {
            return Err(SessionError::Unauthorised(
                UnauthorisedReason::SessionDoesNotExist,
            ));
        }
        let mut payload = payload.clone();
        strip_sign_in_time(&mut payload);
        let current = self
            .inner
            .store
            .get_session(&self.inner.app_id, tenant_of_handle(handle), handle)
            .await?
            .and_then(|row| parse_payload(&row.jwt_user_payload).remove(ANONYMOUS_ID_CLAIM));
        carry_anonymous_id(&mut payload, current.as_ref()).map_err(SessionError::InvalidInput)?;
        let payload = &payload;
        let updated = self
            .inner
            .store
            .update_jwt_payload(
                &self.inner.app_id,
                tenant_of_handle(handle),
                handle,
                &Value::Object(payload.clone()).to_string(),
                self.now(),
            )
            .await?;
        updated.then_some(()).ok_or(SessionError::Unauthorised(
            UnauthorisedReason::SessionDoesNotExist,
        ))
    }

    /// Revokes one session; true if it existed.
    pub async fn revoke_session(&self, handle: &str) -> Result<bool, SessionError> {
        Ok(!self.revoke_sessions(&[handle.to_owned()]).await?.is_empty())
    }

    /// Revokes sessions by handle; returns the handles that existed.
    pub async fn revoke_sessions(&self, handles: &[String]) -> Result<Vec<String>, SessionError> {
        self.revoke_sessions_because(handles, RevokeCause::Requested)
            .await
    }

    /// Revokes sessions by handle and reports `cause` with them (an admin page passes
    /// [`RevokeCause::Admin`]); returns the handles that existed.
    ///
    /// ```no_run
    /// # async fn demo(engine: tessera::SessionEngine, h: String) -> Result<(), tessera::SessionError> {
    /// engine.revoke_sessions_because(&[h], tessera::RevokeCause::Admin).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`SessionError::Engine`] when the store fails.
    pub async fn revoke_sessions_because(
        &self,
        handles: &[String],
        cause: RevokeCause,
    ) -> Result<Vec<String>, SessionError> {
        let keyed: Vec<(String, String)> = handles
            .iter()
            .filter(|h| plausible_handle(h))
            .map(|h| (tenant_of_handle(h).to_owned(), h.clone()))
            .collect();
        let deleted = self
            .inner
            .store
            .delete_sessions(&self.inner.app_id, &keyed)
            .await?;
        Ok(self.report_revoked(deleted, cause))
    }

    /// Handles of a user's live sessions, in one tenant or (`None`) all tenants of the app.
    pub async fn session_handles_for_user(
        &self,
        user_id: &str,
        tenant_id: Option<&str>,
    ) -> Result<Vec<String>, SessionError> {
        if !plausible_handle(user_id) || tenant_id.is_some_and(|t| !plausible_handle(t)) {
            return Ok(Vec::new());
        }
        let found = self
            .inner
            .store
            .session_handles_for_user(&self.inner.app_id, tenant_id, user_id, self.now())
            .await?;
        Ok(found.into_iter().map(|(_, h)| h).collect())
    }

    /// Revokes every live session of a user, in one tenant or all; returns the handles.
    pub async fn revoke_all_sessions_for_user(
        &self,
        user_id: &str,
        tenant_id: Option<&str>,
    ) -> Result<Vec<String>, SessionError> {
        if !plausible_handle(user_id) || tenant_id.is_some_and(|t| !plausible_handle(t)) {
            return Ok(Vec::new());
        }
        let found = self
            .inner
            .store
            .session_handles_for_user(&self.inner.app_id, tenant_id, user_id, self.now())
            .await?;
        let deleted = self
            .inner
            .store
            .delete_sessions(&self.inner.app_id, &found)
            .await?;
        Ok(self.report_revoked(deleted, RevokeCause::AllForUser))
    }
}

impl SessionEngine {
    /// Reports what the store deleted — one [`SessionsRevoked`] per user, so every audit row
    /// names whose session ended, even for a revocation by handle — and returns the handles.
    ///
    /// [`SessionsRevoked`]: crate::events::SessionEvent::SessionsRevoked
    pub(crate) fn report_revoked(
        &self,
        deleted: Vec<DeletedSession>,
        cause: RevokeCause,
    ) -> Vec<String> {
        let mut users: Vec<&str> = Vec::new();
        for d in &deleted {
            if !users.contains(&d.user_id.as_str()) {
                users.push(&d.user_id);
            }
        }
        for user_id in users {
            let handles: Vec<String> = deleted
                .iter()
                .filter(|d| d.user_id == user_id)
                .map(|d| d.session_handle.clone())
                .collect();
            self.emit(&crate::events::SessionEvent::SessionsRevoked {
                app_id: &self.inner.app_id,
                session_handles: &handles,
                user_id: Some(user_id),
                cause,
            });
        }
        deleted.into_iter().map(|d| d.session_handle).collect()
    }
}
