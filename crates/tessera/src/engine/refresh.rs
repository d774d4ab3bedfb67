//! Refreshing a session and detecting theft. The rules themselves are in [`crate::lineage`];
//! this applies them to the store with compare-and-set updates.

use super::verify::{contention, parse_payload, MAX_CAS_ATTEMPTS};
use super::SessionEngine;
use crate::encoding::sha256_hex;
use crate::error::{SessionError, UnauthorisedReason};
use crate::events::{RefreshOutcome, RevokeCause, SessionEvent};
use crate::lineage::{Lineage, RefreshDecision};
use crate::random;
use crate::session::{RefreshOptions, SessionSummary, SessionTokens, TokenInfo};
use crate::store::LineageUpdate;
use crate::store::SessionRow;
use crate::token::access::{anti_csrf_matches, contains_protected_claim, AccessTokenClaims};
use crate::token::refresh::{
    decode_refresh_token, derive_child, mint_refresh_token, ChildFields, MintedRefreshToken,
    RefreshTokenFields, RefreshTokenPayload,
};

impl SessionEngine {
    /// Exchanges a refresh token for a new access token and a new refresh token.
    ///
    /// Outcomes: [`SessionError::Unauthorised`] for an undecodable token, a wrong anti-CSRF
    /// token or a gone/expired session (nothing changes); [`SessionError::TokenTheft`] for a
    /// rotated-out token, in which case the session is revoked before returning.
    pub async fn refresh_session(
        &self,
        refresh_token: &str,
        options: RefreshOptions<'_>,
    ) -> Result<SessionTokens, SessionError> {
        self.refresh_session_with_validity(refresh_token, options, None)
            .await
    }

    /// [`Self::refresh_session`] with the CDI 5.6 `accessTokenValidity` override (ms).
    ///
    /// # Errors
    /// As [`Self::refresh_session`], and [`SessionError::InvalidInput`] when the override is
    /// not in `1..=access_token_validity` ms (checked before the token is looked at).
    pub async fn refresh_session_with_validity(
        &self,
        refresh_token: &str,
        options: RefreshOptions<'_>,
        access_token_validity_ms: Option<i64>,
    ) -> Result<SessionTokens, SessionError> {
        self.refresh_checked(refresh_token, options, access_token_validity_ms, false)
            .await
    }

    /// The rotation. `device_proven`: the caller verified a DBSC proof from the session's
    /// bound key; without it a bound session is refused (`DeviceBound`) before anything is
    /// decided, so no refresh token — current, old or stolen — changes it.
    pub(super) async fn refresh_checked(
        &self,
        refresh_token: &str,
        options: RefreshOptions<'_>,
        access_token_validity_ms: Option<i64>,
        device_proven: bool,
    ) -> Result<SessionTokens, SessionError> {
        let validity = self.check_validity(access_token_validity_ms)?;
        let unauthorised = |r| Err(SessionError::Unauthorised(r));
        let Some(payload) = decode_refresh_token(&self.inner.refresh_key, refresh_token) else {
            return unauthorised(UnauthorisedReason::InvalidRefreshToken);
        };
        // Checked only when enabled and the token carries one (the core's rule).
        if options.enable_anti_csrf
            && payload.anti_csrf_token.is_some()
            && !anti_csrf_matches(payload.anti_csrf_token.as_deref(), options.anti_csrf_token)
        {
            return unauthorised(UnauthorisedReason::AntiCsrfMismatch);
        }
        let hash1 = sha256_hex(refresh_token);
        let presented = sha256_hex(&hash1);
        let parent = payload
            .parent_refresh_token_hash1
            .as_deref()
            .map(sha256_hex);
        let tenant = payload.tenant();
        for _ in 0..MAX_CAS_ATTEMPTS {
            let now = self.now();
            // The row and its DBSC binding in one read; a bound session is refused before
            // anything is decided (a binding goes with its row, so no row means none).
            let read = self
                .inner
                .store
                .get_session_for_refresh(&self.inner.app_id, tenant, &payload.session_handle)
                .await?;
            if !device_proven && read.as_ref().is_some_and(|(_, bound)| *bound) {
                return unauthorised(UnauthorisedReason::DeviceBound);
            }
            let row = self.unless_lapsed(read.map(|(row, _)| row)).await?;
            let Some(row) = row.filter(|r| r.expires_at >= now) else {
                return unauthorised(UnauthorisedReason::SessionMissingOrExpired);
            };
            let use_static_key = options.use_static_key.unwrap_or(row.use_static_key);
            let lineage = Lineage {
                current: &row.refresh_token_hash2,
                prev: row.prev_refresh_token_hash2.as_deref(),
                rotated_at_ms: row.refresh_token_rotated_at,
            };
            let decision = lineage.decide_refresh(
                &presented,
                parent.as_deref(),
                now,
                self.inner.config.sibling_grace_ms,
            );
            let user_claims = parse_payload(&row.jwt_user_payload);
            if contains_protected_claim(&user_claims) {
                return unauthorised(UnauthorisedReason::ProtectedClaimInPayload);
            }
            let update = match decision {
                RefreshDecision::Promote => Some(LineageUpdate {
                    expected_current: &row.refresh_token_hash2,
                    current: &presented,
                    prev: Some(&row.refresh_token_hash2),
                    rotated_at: Some(now),
                    expires_at: now.saturating_add(self.inner.config.refresh_token_validity_ms),
                    use_static_key,
                }),
                RefreshDecision::Current
                | RefreshDecision::ChildInWindow
                | RefreshDecision::LateParent => None,
                RefreshDecision::Theft(reason) => {
                    let deleted = self
                        .inner
                        .store
                        .delete_sessions(
                            &row.app_id,
                            &[(row.tenant_id.clone(), row.session_handle.clone())],
                        )
                        .await?;
                    tracing::warn!(
                        session = %row.session_handle,
                        revoked = !deleted.is_empty(),
                        ?reason,
                        "refresh token reuse: token theft detected, session revoked"
                    );
                    self.emit(&SessionEvent::TheftDetected {
                        app_id: &row.app_id,
                        tenant_id: &row.tenant_id,
                        session_handle: &row.session_handle,
                        user_id: &row.user_id,
                        reason,
                    });
                    self.report_revoked(deleted, RevokeCause::Theft);
                    return Err(SessionError::TokenTheft {
                        session_handle: row.session_handle,
                        user_id: row.user_id.clone(),
                        recipe_user_id: row.user_id,
                        reason,
                    });
                }
            };
            // The id the session was created with, in every child (SEC2-H2); sessions from
            // before it was carried take it from the stored payload.
            let anonymous_id = payload.anonymous_id.as_deref().or_else(|| {
                user_claims
                    .get(crate::protocol::ANONYMOUS_ID_CLAIM)
                    .and_then(serde_json::Value::as_str)
            });
            let answer = self.answer_token(
                refresh_token,
                &payload,
                &row,
                anonymous_id,
                decision,
                options.enable_anti_csrf,
            )?;
            match update {
                Some(update) if !self.apply_lineage(&row, &update).await? => continue,
                Some(_) => {}
                None if use_static_key != row.use_static_key => {
                    self.inner
                        .store
                        .set_use_static_key(
                            &row.app_id,
                            &row.tenant_id,
                            &row.session_handle,
                            use_static_key,
                        )
                        .await?;
                }
                None => {}
            }

            self.emit(&SessionEvent::Refreshed {
                app_id: &row.app_id,
                session_handle: &row.session_handle,
                outcome: RefreshOutcome::from(&decision),
            });
            let auth_time = self.note_refresh(&row).await?;
            let (iat, exp) = self.token_times_for(validity);
            let claims = AccessTokenClaims {
                sub: row.user_id.clone(),
                exp,
                iat,
                session_handle: row.session_handle.clone(),
                refresh_token_hash1: answer.token.hash1.clone(),
                parent_refresh_token_hash1: Some(answer.parent_hash1),
                anti_csrf_token: answer.anti_csrf.clone(),
                tenant_id: row.tenant_id.clone(),
                rsub: row.user_id.clone(),
                auth_time,
                user_claims,
            };
            let access_token = self.mint_access_token(&claims, use_static_key).await?;
            return Ok(SessionTokens {
                session: SessionSummary {
                    handle: row.session_handle,
                    user_id: row.user_id.clone(),
                    recipe_user_id: row.user_id,
                    user_data_in_jwt: claims.user_claims,
                    tenant_id: row.tenant_id,
                },
                access_token,
                refresh_token: TokenInfo {
                    token: answer.token.token,
                    expiry: now.saturating_add(self.inner.config.refresh_token_validity_ms),
                    created_time: now,
                },
                anti_csrf_token: answer.anti_csrf,
            });
        }
        Err(contention())
    }
}

/// The refresh token a refresh answers, with what its access token needs.
struct Answer {
    token: MintedRefreshToken,
    /// hash1 of the answered token's parent.
    parent_hash1: String,
    anti_csrf: Option<String>,
}

impl SessionEngine {
    /// The refresh token answered for `decision` (see [`RefreshDecision::answer_generation`]):
    /// with a grace window the presented token itself, its derived child or grandchild; with
    /// none, a random child.
    fn answer_token(
        &self,
        presented: &str,
        payload: &RefreshTokenPayload,
        row: &SessionRow,
        anonymous_id: Option<&str>,
        decision: RefreshDecision,
        enable_anti_csrf: bool,
    ) -> Result<Answer, SessionError> {
        let hash1 = sha256_hex(presented);
        let key = &self.inner.refresh_key;
        if self.inner.config.sibling_grace_ms == 0 {
            let anti_csrf = if enable_anti_csrf {
                Some(random::uuid_v4()?)
            } else {
                None
            };
            let token = mint_refresh_token(
                key,
                RefreshTokenFields {
                    session_handle: &row.session_handle,
                    user_id: &row.user_id,
                    tenant_id: &row.tenant_id,
                    parent_hash1: Some(&hash1),
                    anti_csrf_token: anti_csrf.as_deref(),
                    anonymous_id,
                },
            )?;
            return Ok(Answer {
                token,
                parent_hash1: hash1,
                anti_csrf,
            });
        }
        let fields = ChildFields {
            session_handle: &row.session_handle,
            user_id: &row.user_id,
            tenant_id: &row.tenant_id,
            anonymous_id,
            with_anti_csrf: enable_anti_csrf,
        };
        match decision.answer_generation() {
            Some(0) => Ok(Answer {
                token: MintedRefreshToken {
                    token: presented.to_owned(),
                    hash2: sha256_hex(&hash1),
                    hash1,
                    anti_csrf_token: payload.anti_csrf_token.clone(),
                },
                parent_hash1: payload
                    .parent_refresh_token_hash1
                    .clone()
                    .unwrap_or_default(),
                anti_csrf: payload.anti_csrf_token.clone(),
            }),
            Some(1) => {
                let token = derive_child(key, &hash1, fields)?;
                Ok(Answer {
                    anti_csrf: token.anti_csrf_token.clone(),
                    token,
                    parent_hash1: hash1,
                })
            }
            _ => {
                let child = derive_child(key, &hash1, fields)?;
                let token = derive_child(key, &child.hash1, fields)?;
                Ok(Answer {
                    anti_csrf: token.anti_csrf_token.clone(),
                    token,
                    parent_hash1: child.hash1,
                })
            }
        }
    }
}
