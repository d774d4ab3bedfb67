//! Verifying a session: the local token check, then — only when the token is the first of a
//! new generation, or the caller asks — the database and the lineage rules.

use super::SessionEngine;
use crate::encoding::sha256_hex;
use crate::error::{SessionError, TryRefreshReason, UnauthorisedReason};
use crate::lineage::{Lineage, VerifyDecision};
use crate::session::{VerifiedSession, VerifyOptions};
use crate::session_check::{check_session, SessionCheck};
use crate::store::{LineageUpdate, SessionRow};
use crate::token::access::AccessTokenClaims;
use crate::token::verify::{verify_access_token, VerifyPolicy};
use serde_json::{Map, Value};
use std::sync::Arc;

/// Compare-and-set attempts before giving up on a hot row. Every round of contention lets at
/// least one writer through, so this bounds the number of requests racing on one session
/// (tabs of one browser) that all succeed.
pub(super) const MAX_CAS_ATTEMPTS: usize = 64;

/// What the local paths answer for verified `claims`: [`check_session`]'s verdict, `None` when
/// the row is needed (the async path).
fn answer_locally(
    claims: Arc<AccessTokenClaims>,
    options: VerifyOptions<'_>,
) -> Option<Result<Arc<AccessTokenClaims>, SessionError>> {
    match check_session(&claims, options) {
        Ok(SessionCheck::TokenSuffices) => Some(Ok(claims)),
        Ok(SessionCheck::NeedsRow) => None,
        Err(e) => Some(Err(e)),
    }
}

/// An access token the verified-token cache holds, found by
/// [`SessionEngine::cached_access_token`]: the cache's own copy of the token and its claims,
/// both shared. `Debug` shows neither (the token is a bearer credential).
#[derive(Clone)]
pub struct CachedAccessToken {
    token: Arc<str>,
    claims: Arc<AccessTokenClaims>,
    /// The cache's generation when it was found: a key withdrawn since makes it unusable.
    generation: u64,
}

impl CachedAccessToken {
    /// The token (the cache's copy, equal to the request's bytes).
    pub fn token(&self) -> &Arc<str> {
        &self.token
    }

    /// Its verified claims.
    pub fn claims(&self) -> &Arc<AccessTokenClaims> {
        &self.claims
    }
}

impl std::fmt::Debug for CachedAccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CachedAccessToken(..)")
    }
}

impl SessionEngine {
    pub(super) fn verify_policy(&self) -> VerifyPolicy {
        VerifyPolicy {
            now_ms: self.now(),
            max_lifetime_s: self.inner.config.access_token_validity_ms / 1000,
            ignore_time: false,
        }
    }

    /// The cache, then the full check against the keys held, then the issuer; remembers a
    /// token that passes. No I/O.
    fn check_token(&self, token: &str) -> Result<Arc<AccessTokenClaims>, TryRefreshReason> {
        let policy = self.verify_policy();
        let cached = self.inner.verified.get(token, policy.now_ms);
        if self.inner.config.verified_token_cache > 0 {
            self.emit(&crate::events::SessionEvent::VerifyCache {
                app_id: &self.inner.app_id,
                hit: cached.is_some(),
            });
        }
        if let Some(claims) = cached {
            return Ok(claims);
        }
        let claims = verify_access_token(token, &**self.inner.keys.load(), &policy)?;
        if let Some(iss) = &self.inner.config.issuer {
            if claims.user_claims.get("iss").and_then(Value::as_str) != Some(iss.as_str()) {
                return Err(TryRefreshReason::InvalidToken);
            }
        }
        let claims = Arc::new(claims);
        self.inner.verified.insert(token, Arc::clone(&claims));
        Ok(claims)
    }

    /// Verifies an access token's signature, header, claims and expiry against the keys held,
    /// with no database access. Reloads keys (rate-limited) when the `kid` is unknown.
    pub async fn verify_access_token(
        &self,
        token: &str,
    ) -> Result<AccessTokenClaims, SessionError> {
        let claims = match self.check_token(token) {
            Err(TryRefreshReason::KeyNotFound) if self.reload_for_unknown_kid().await? => {
                self.check_token(token)
            }
            other => other,
        }
        .map_err(SessionError::TryRefreshToken)?;
        Ok((*claims).clone())
    }

    /// Answers [`Self::verify_session`] without any I/O when that is possible: the token
    /// verifies with the keys held and [`check_session`] says the token suffices. `None` means
    /// "needs the async path" (an unknown `kid`, a token with a parent, a database check).
    /// The hot path of an SDK on every request: the verified claims come as the verified-token
    /// cache shares them, nothing copied; [`VerifiedSession::from_claims`] makes a
    /// `VerifiedSession` of them.
    ///
    /// ```no_run
    /// # fn f(engine: &tessera::SessionEngine, at: &str) -> Result<(), tessera::SessionError> {
    /// if let Some(claims) = engine.verify_session_local(at, tessera::VerifyOptions::default()) {
    ///     println!("user {}", claims?.sub);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// `Some(Err(_))`: [`SessionError::TryRefreshToken`] for a token that does not verify or
    /// fails the anti-CSRF check.
    pub fn verify_session_local(
        &self,
        access_token: &str,
        options: VerifyOptions<'_>,
    ) -> Option<Result<Arc<AccessTokenClaims>, SessionError>> {
        if options.check_database {
            // Rule 3 of `check_session` before the token: this path never reads the row.
            return None;
        }
        let claims = match self.check_token(access_token) {
            Err(TryRefreshReason::KeyNotFound) => return None,
            Err(reason) => return Some(Err(SessionError::TryRefreshToken(reason))),
            Ok(claims) => claims,
        };
        answer_locally(claims, options)
    }

    /// The verified-token cache's entry for `token` (the request's bytes, not yet checked as
    /// UTF-8), when it holds exactly that token unexpired: a probe with no event and no other
    /// check, for an SDK that reads the token while it still borrows the request's headers.
    /// [`Self::verify_cached_session`] then answers for it.
    ///
    /// ```no_run
    /// # fn f(engine: &tessera::SessionEngine, cookie: &[u8]) {
    /// if let Some(cached) = engine.cached_access_token(cookie) {
    ///     let _ = engine.verify_cached_session(&cached, tessera::VerifyOptions::default());
    /// }
    /// # }
    /// ```
    pub fn cached_access_token(&self, token: &[u8]) -> Option<CachedAccessToken> {
        let generation = self.inner.verified.generation();
        let (token, claims) = self.inner.verified.get_shared(token, self.now())?;
        Some(CachedAccessToken {
            token,
            claims,
            generation,
        })
    }

    /// [`Self::verify_session_local`] for a token [`Self::cached_access_token`] found: counts
    /// the cache hit, then [`check_session`]. `None` (the async path, which verifies the token
    /// again) also when a signing key was withdrawn since the token was found: a retired key
    /// stops working even for a request already under way.
    ///
    /// ```no_run
    /// # fn f(engine: &tessera::SessionEngine, cached: &tessera::CachedAccessToken) {
    /// match engine.verify_cached_session(cached, tessera::VerifyOptions::default()) {
    ///     Some(Ok(claims)) => println!("user {}", claims.sub),
    ///     Some(Err(_)) => println!("try refresh"),
    ///     None => println!("needs the async path"),
    /// }
    /// # }
    /// ```
    ///
    /// # Errors
    /// `Some(Err(_))`: [`SessionError::TryRefreshToken`] when the anti-CSRF check fails.
    pub fn verify_cached_session(
        &self,
        cached: &CachedAccessToken,
        options: VerifyOptions<'_>,
    ) -> Option<Result<Arc<AccessTokenClaims>, SessionError>> {
        if options.check_database || self.inner.verified.generation() != cached.generation {
            return None;
        }
        self.emit(&crate::events::SessionEvent::VerifyCache {
            app_id: &self.inner.app_id,
            hit: true,
        });
        answer_locally(Arc::clone(&cached.claims), options)
    }

    /// Verifies a session (the core's `getSession`, CDI ≤ 5.4 semantics):
    /// 1. the token is verified locally; any failure is try-refresh;
    /// 2. [`check_session`]: the anti-CSRF check, when asked; with no parent hash and no
    ///    database check, that is all (no I/O);
    /// 3. otherwise the row is read: gone means unauthorised; a token whose parent is the head
    ///    promotes its refresh token outside the grace window (see `crate::lineage`); a new
    ///    access token without parent is minted unless the token is of an older generation
    ///    and the stored payload is unchanged.
    pub async fn verify_session(
        &self,
        access_token: &str,
        options: VerifyOptions<'_>,
    ) -> Result<VerifiedSession, SessionError> {
        let claims = self.verify_access_token(access_token).await?;
        if check_session(&claims, options)? == SessionCheck::TokenSuffices {
            return Ok(VerifiedSession::from_claims(claims, None));
        }
        for _ in 0..MAX_CAS_ATTEMPTS {
            let row = self.unless_lapsed(self.load_row(&claims).await?).await?;
            let Some(row) = row else {
                let reason = if options.check_database {
                    UnauthorisedReason::SessionEnded
                } else {
                    UnauthorisedReason::SessionMissing
                };
                return Err(SessionError::Unauthorised(reason));
            };
            let stored_payload = parse_payload(&row.jwt_user_payload);
            let payload_changed = options.check_database && stored_payload != claims.user_claims;
            if claims.parent_refresh_token_hash1.is_none() && !payload_changed {
                return Ok(VerifiedSession::from_claims(claims, None));
            }
            let own = sha256_hex(&claims.refresh_token_hash1);
            let parent = claims.parent_refresh_token_hash1.as_deref().map(sha256_hex);
            let lineage = Lineage {
                current: &row.refresh_token_hash2,
                prev: row.prev_refresh_token_hash2.as_deref(),
                rotated_at_ms: row.refresh_token_rotated_at,
            };
            let now = self.now();
            let decision = lineage.decide_verify(
                &own,
                parent.as_deref(),
                now,
                self.inner.config.sibling_grace_ms,
            );
            let update = match decision {
                VerifyDecision::Promote => Some(LineageUpdate {
                    expected_current: &row.refresh_token_hash2,
                    current: &own,
                    prev: Some(&row.refresh_token_hash2),
                    rotated_at: Some(now),
                    expires_at: now.saturating_add(self.inner.config.refresh_token_validity_ms),
                    use_static_key: row.use_static_key,
                }),
                VerifyDecision::Current | VerifyDecision::ChildInWindow | VerifyDecision::Older => {
                    None
                }
            };
            if let Some(update) = update {
                if !self.apply_lineage(&row, &update).await? {
                    continue;
                }
            }
            if decision == VerifyDecision::Older && !payload_changed {
                return Ok(VerifiedSession::from_claims(claims, None));
            }
            let (iat, exp) = self.token_times();
            let new_claims = AccessTokenClaims {
                exp,
                iat,
                parent_refresh_token_hash1: None,
                user_claims: stored_payload,
                ..claims
            };
            let token = self
                .mint_access_token(&new_claims, row.use_static_key)
                .await?;
            return Ok(VerifiedSession::from_claims(new_claims, Some(token)));
        }
        Err(contention())
    }

    /// Verifies a session with CDI 5.6 semantics: stateless, it never writes and never mints.
    /// 1. the token is verified locally; any failure is try-refresh;
    /// 2. the anti-CSRF check, when asked ([`check_session`]);
    /// 3. without a database check, that is all (no I/O), whatever the token's parent;
    /// 4. with it, the row must exist, and the token's own refresh token or its parent must be
    ///    the head or the previous head (`crate::lineage`), else unauthorised
    ///    `rotated-out token branch; refresh required`;
    /// 5. `payload_update_available` (database check only) says whether the stored payload
    ///    differs from the token's: the client picks it up at its next refresh.
    ///
    /// ```no_run
    /// # async fn f(engine: tessera::SessionEngine, at: &str) -> Result<(), tessera::SessionError> {
    /// let options = tessera::VerifyOptions { check_database: true, ..Default::default() };
    /// let v = engine.verify_session_stateless(at, options).await?;
    /// assert!(v.session.access_token.is_none());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`SessionError::TryRefreshToken`] for a token that does not verify or fails the
    /// anti-CSRF check; [`SessionError::Unauthorised`] for a missing row or a rotated-out
    /// branch; [`SessionError::Engine`] when storage fails.
    pub async fn verify_session_stateless(
        &self,
        access_token: &str,
        options: VerifyOptions<'_>,
    ) -> Result<StatelessVerified, SessionError> {
        let claims = self.verify_access_token(access_token).await?;
        // Rules 1 and 3 of `check_session`: a parent alone does not send this to the row.
        check_session(&claims, options)?;
        if !options.check_database {
            return Ok(StatelessVerified {
                session: VerifiedSession::from_claims(claims, None),
                payload_update_available: None,
            });
        }
        let row = self
            .load_row(&claims)
            .await?
            .ok_or(SessionError::Unauthorised(UnauthorisedReason::SessionEnded))?;
        let own = sha256_hex(&claims.refresh_token_hash1);
        let parent = claims.parent_refresh_token_hash1.as_deref().map(sha256_hex);
        let lineage = Lineage {
            current: &row.refresh_token_hash2,
            prev: row.prev_refresh_token_hash2.as_deref(),
            rotated_at_ms: row.refresh_token_rotated_at,
        };
        if !lineage.is_known(&own, parent.as_deref()) {
            return Err(SessionError::Unauthorised(
                UnauthorisedReason::RotatedOutBranch,
            ));
        }
        let payload_update_available = parse_payload(&row.jwt_user_payload) != claims.user_claims;
        Ok(StatelessVerified {
            session: VerifiedSession::from_claims(claims, None),
            payload_update_available: Some(payload_update_available),
        })
    }

    /// Writes a lineage update decided on `row`; false (after yielding) when another request
    /// moved the lineage first, so the caller decides again on fresh state.
    pub(super) async fn apply_lineage(
        &self,
        row: &SessionRow,
        update: &LineageUpdate<'_>,
    ) -> Result<bool, SessionError> {
        let applied = self
            .inner
            .store
            .update_lineage(&row.app_id, &row.tenant_id, &row.session_handle, update)
            .await?;
        if !applied {
            tokio::task::yield_now().await;
        }
        Ok(applied)
    }

    pub(super) async fn load_row(
        &self,
        claims: &AccessTokenClaims,
    ) -> Result<Option<SessionRow>, SessionError> {
        Ok(self
            .inner
            .store
            .get_session(
                &self.inner.app_id,
                &claims.tenant_id,
                &claims.session_handle,
            )
            .await?)
    }
}

/// The answer of [`SessionEngine::verify_session_stateless`].
#[derive(Debug, Clone, PartialEq)]
pub struct StatelessVerified {
    /// The session as the token describes it; never a new access token.
    pub session: VerifiedSession,
    /// With a database check: the stored payload differs from the token's.
    pub payload_update_available: Option<bool>,
}

/// The error returned when a row keeps changing under us (should not happen in practice).
pub(super) fn contention() -> SessionError {
    SessionError::Engine(crate::error::EngineError::Corrupt(
        "session row changed too often during one operation",
    ))
}

/// Parses stored JSON as an object; anything else reads as empty.
pub(super) fn parse_payload(text: &str) -> Map<String, Value> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}
