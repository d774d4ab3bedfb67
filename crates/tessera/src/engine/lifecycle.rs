//! Creating sessions, minting access tokens, and the background clean-up.

use super::devices::{checked_device, DeviceInfo};
use super::SessionEngine;
use crate::error::{EngineError, InputError, SessionError};
use crate::keys::rsa_key::KeyKind;
use crate::protocol::ANONYMOUS_ID_CLAIM;
use crate::random;
use crate::session::{NewSession, SessionSummary, SessionTokens, TokenInfo, PUBLIC};
use crate::store::SessionRow;
use crate::token::access::{contains_protected_claim, strip_sign_in_time, AccessTokenClaims};
use crate::token::anonymous::plausible_anonymous_id;
use crate::token::mint::encode_access_token;
use crate::token::refresh::{mint_refresh_token, RefreshTokenFields};
use serde_json::{Map, Value};
use std::time::Duration;

/// What one clean-up pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// Expired session rows deleted (all apps in the store).
    pub sessions: u64,
    /// Dynamic keys past their verification window deleted (this app).
    pub keys: u64,
}

impl SessionEngine {
    /// Signs `claims` with the key of the given kind and reports the token's times.
    pub(super) async fn mint_access_token(
        &self,
        claims: &AccessTokenClaims,
        use_static_key: bool,
    ) -> Result<TokenInfo, SessionError> {
        let kind = if use_static_key {
            KeyKind::Static
        } else {
            KeyKind::Dynamic
        };
        let key = self.signing_key(kind).await?;
        let token = encode_access_token(claims, &key)?;
        Ok(TokenInfo {
            token,
            expiry: claims.exp.saturating_mul(1000),
            created_time: claims.iat.saturating_mul(1000),
        })
    }

    /// `(iat, exp)` in seconds for a token minted now with the full validity.
    pub(super) fn token_times(&self) -> (u64, u64) {
        let now = self.now();
        let exp = now.saturating_add(self.inner.config.access_token_validity_ms) / 1000;
        (now / 1000, exp)
    }

    /// Token times of a create or refresh mint: an optional validity override (ms, already
    /// checked), shortened by the configured jitter (`validity × (1 − U[0, jitter])`).
    pub(super) fn token_times_for(&self, validity_ms: Option<u64>) -> (u64, u64) {
        let now = self.now();
        let validity = validity_ms.unwrap_or(self.inner.config.access_token_validity_ms);
        let validity = jittered(validity, self.inner.config.access_token_validity_jitter_ppm);
        let exp = now.saturating_add(validity) / 1000;
        (now / 1000, exp)
    }

    /// Checks a CDI 5.6 `accessTokenValidity` override: `0 < v ≤ access_token_validity`.
    pub(super) fn check_validity(
        &self,
        validity_ms: Option<i64>,
    ) -> Result<Option<u64>, SessionError> {
        let Some(v) = validity_ms else {
            return Ok(None);
        };
        let max = self.inner.config.access_token_validity_ms;
        match u64::try_from(v) {
            Ok(v) if v > 0 && v <= max => Ok(Some(v)),
            _ => Err(SessionError::InvalidInput(InputError::Invalid(format!(
                "accessTokenValidity must be greater than 0 and at most the configured \
                 access_token_validity ({max} ms)"
            )))),
        }
    }

    /// Applies the configured issuer to a payload that names none.
    fn with_issuer(&self, mut payload: Map<String, Value>) -> Map<String, Value> {
        if let Some(iss) = &self.inner.config.issuer {
            payload
                .entry("iss")
                .or_insert_with(|| Value::String(iss.clone()));
        }
        payload
    }

    /// Creates a session: one row (with its device row, written together), an access token, a
    /// refresh token and, if asked, an anti-CSRF token. A payload naming a protected claim is
    /// refused before any write.
    pub async fn create_session(&self, new: NewSession) -> Result<SessionTokens, SessionError> {
        self.create_session_on_device(new, DeviceInfo::default())
            .await
    }

    /// [`Self::create_session`] recording the device the sign-in came from (user agent,
    /// client IP; see `super::devices`). Applies the per-user cap first.
    ///
    /// ```no_run
    /// # async fn demo(engine: tessera::SessionEngine) -> Result<(), tessera::SessionError> {
    /// let device = tessera::DeviceInfo {
    ///     user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0".into()),
    ///     ip: Some("203.0.113.7".into()),
    /// };
    /// let created = engine
    ///     .create_session_on_device(tessera::NewSession::for_user("alice"), device)
    ///     .await?;
    /// # let _ = created; Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Self::create_session`]; also [`InputError::Invalid`] for an IP that is not an
    /// address and [`InputError::SessionLimitReached`] when the cap refuses the sign-in.
    pub async fn create_session_on_device(
        &self,
        new: NewSession,
        device: DeviceInfo,
    ) -> Result<SessionTokens, SessionError> {
        self.create_session_on_device_with_validity(new, device, None)
            .await
    }

    /// [`Self::create_session`] with the CDI 5.6 `accessTokenValidity` override (ms).
    ///
    /// ```no_run
    /// # async fn f(engine: tessera::SessionEngine, new: tessera::NewSession) {
    /// let t = engine.create_session_with_validity(new, Some(60_000)).await;
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`Self::create_session`], and [`SessionError::InvalidInput`] when the override is
    /// not in `1..=access_token_validity` ms (checked before any write).
    pub async fn create_session_with_validity(
        &self,
        new: NewSession,
        access_token_validity_ms: Option<i64>,
    ) -> Result<SessionTokens, SessionError> {
        self.create_session_on_device_with_validity(
            new,
            DeviceInfo::default(),
            access_token_validity_ms,
        )
        .await
    }

    /// Everything a sign-in may bring at once: the device
    /// ([`Self::create_session_on_device`]) and the CDI 5.6 `accessTokenValidity` override
    /// ([`Self::create_session_with_validity`]).
    ///
    /// ```no_run
    /// # async fn f(engine: tessera::SessionEngine) {
    /// let new = tessera::NewSession::for_user("alice");
    /// let t = engine
    ///     .create_session_on_device_with_validity(new, tessera::DeviceInfo::default(), Some(60_000))
    ///     .await;
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`Self::create_session_on_device`] and [`Self::create_session_with_validity`].
    pub async fn create_session_on_device_with_validity(
        &self,
        mut new: NewSession,
        device: DeviceInfo,
        access_token_validity_ms: Option<i64>,
    ) -> Result<SessionTokens, SessionError> {
        let validity = self.check_validity(access_token_validity_ms)?;
        strip_sign_in_time(&mut new.access_token_payload);
        let device = checked_device(device)?;
        if contains_protected_claim(&new.access_token_payload)
            || new.access_token_payload.contains_key(ANONYMOUS_ID_CLAIM)
        {
            return Err(SessionError::InvalidInput(InputError::ProtectedClaim));
        }
        if let Some(id) = &new.anonymous_id {
            if !plausible_anonymous_id(id) {
                return Err(SessionError::InvalidInput(InputError::Invalid(
                    "anonymousId must be 22–64 URL-safe characters".into(),
                )));
            }
        }
        validate_id("userId", &new.user_id)?;
        validate_tenant(&new.tenant_id)?;
        self.make_room_for(&new.user_id).await?;
        let now = self.now();
        let mut handle = random::uuid_v4()?;
        if new.tenant_id != PUBLIC {
            handle = format!("{handle}_{}", new.tenant_id);
        }
        let anti_csrf = if new.enable_anti_csrf {
            Some(random::uuid_v4()?)
        } else {
            None
        };
        let refresh = mint_refresh_token(
            &self.inner.refresh_key,
            RefreshTokenFields {
                session_handle: &handle,
                user_id: &new.user_id,
                tenant_id: &new.tenant_id,
                parent_hash1: None,
                anti_csrf_token: anti_csrf.as_deref(),
                anonymous_id: new.anonymous_id.as_deref(),
            },
        )?;
        let mut payload = self.with_issuer(new.access_token_payload);
        if let Some(id) = new.anonymous_id {
            payload.insert(ANONYMOUS_ID_CLAIM.into(), Value::String(id));
        }
        let (iat, exp) = self.token_times_for(validity);
        let claims = AccessTokenClaims {
            sub: new.user_id.clone(),
            exp,
            iat,
            session_handle: handle.clone(),
            refresh_token_hash1: refresh.hash1.clone(),
            parent_refresh_token_hash1: None,
            anti_csrf_token: anti_csrf.clone(),
            tenant_id: new.tenant_id.clone(),
            rsub: new.user_id.clone(),
            auth_time: self.sign_in_claim(now),
            user_claims: payload,
        };
        let access_token = self.mint_access_token(&claims, new.use_static_key).await?;
        let expires_at = now.saturating_add(self.inner.config.refresh_token_validity_ms);
        let row = SessionRow {
            app_id: self.inner.app_id.clone(),
            tenant_id: new.tenant_id.clone(),
            session_handle: handle.clone(),
            user_id: new.user_id.clone(),
            refresh_token_hash2: refresh.hash2.clone(),
            prev_refresh_token_hash2: None,
            refresh_token_rotated_at: None,
            session_data: new.session_data.to_string(),
            jwt_user_payload: Value::Object(claims.user_claims.clone()).to_string(),
            expires_at,
            created_at: now,
            use_static_key: new.use_static_key,
        };
        let device = Self::device_row(&row, device);
        self.inner
            .store
            .insert_session_with_device(&row, &device)
            .await?;
        self.emit(&crate::events::SessionEvent::SessionCreated {
            app_id: &row.app_id,
            tenant_id: &row.tenant_id,
            session_handle: &row.session_handle,
            user_id: &row.user_id,
        });
        Ok(SessionTokens {
            session: SessionSummary {
                handle,
                user_id: new.user_id.clone(),
                recipe_user_id: new.user_id,
                user_data_in_jwt: claims.user_claims,
                tenant_id: new.tenant_id,
            },
            access_token,
            refresh_token: TokenInfo {
                token: refresh.token,
                expiry: expires_at,
                created_time: now,
            },
            anti_csrf_token: anti_csrf,
        })
    }

    /// Deletes expired sessions and dynamic keys past their verification window. Sessions go
    /// in statements of at most [`crate::Store::cleanup_batch`] rows (PostgreSQL
    /// [`CLEANUP_BATCH`], SQLite fewer) with a pause between them at least as
    /// long as the statement took, so concurrent writers get the lock at least half of the
    /// time however many rows expired (SEC2-L2).
    ///
    /// ```no_run
    /// # async fn demo(engine: tessera::SessionEngine) -> Result<(), tessera::EngineError> {
    /// let report = engine.cleanup().await?;
    /// println!("{} sessions, {} keys removed", report.sessions, report.keys);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// A store failure; what was deleted before it stays deleted.
    pub async fn cleanup(&self) -> Result<CleanupReport, EngineError> {
        let now = self.now();
        let mut sessions = 0;
        let batch = self.inner.store.cleanup_batch();
        loop {
            let started = std::time::Instant::now();
            let deleted = self.inner.store.delete_expired_sessions(now, batch).await?;
            sessions += deleted;
            if deleted < batch {
                break;
            }
            tokio::time::sleep(started.elapsed().max(CLEANUP_MIN_PAUSE)).await;
        }
        self.inner.store.delete_expired_dbsc_challenges(now).await?;
        let timing = self.inner.config.rotation();
        let cutoff = now
            .saturating_sub(timing.update_interval_ms)
            .saturating_sub(timing.access_token_validity_ms.saturating_mul(2));
        let keys = self
            .inner
            .store
            .delete_dynamic_keys_before(&self.inner.app_id, cutoff)
            .await?;
        if sessions > 0 {
            self.emit(&crate::events::SessionEvent::ExpiredSessionsRemoved { count: sessions });
        }
        if keys > 0 {
            self.emit(&crate::events::SessionEvent::KeysRetired {
                app_id: &self.inner.app_id,
                count: keys,
            });
        }
        if sessions > 0 || keys > 0 {
            tracing::info!(sessions, keys, "cleanup removed expired sessions and keys");
        }
        Ok(CleanupReport { sessions, keys })
    }

    /// Runs [`Self::cleanup`] every `every` (the core uses 12 h for sessions) until the
    /// returned handle is aborted or the runtime shuts down. Errors are logged, not fatal.
    pub fn spawn_cleanup(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let engine = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if let Err(e) = engine.cleanup().await {
                    tracing::warn!(error = %e, "session cleanup failed");
                }
            }
        })
    }
}

pub use crate::store::CLEANUP_BATCH;

/// Shortest pause between two clean-up statements.
const CLEANUP_MIN_PAUSE: Duration = Duration::from_millis(2);

/// Longest user id / tenant id accepted (the core's column widths).
const MAX_USER_ID_LEN: usize = 128;
const MAX_TENANT_ID_LEN: usize = 64;

fn validate_id(name: &str, value: &str) -> Result<(), SessionError> {
    if value.is_empty() || value.len() > MAX_USER_ID_LEN || value.contains('\0') {
        return Err(SessionError::InvalidInput(InputError::Invalid(format!(
            "{name} must be 1 to {MAX_USER_ID_LEN} bytes without NUL"
        ))));
    }
    Ok(())
}

/// Tenant ids are `[a-z0-9-]+` (the core's path rule), at most 64 bytes.
pub(super) fn validate_tenant(tenant: &str) -> Result<(), SessionError> {
    let ok = !tenant.is_empty()
        && tenant.len() <= MAX_TENANT_ID_LEN
        && tenant
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(SessionError::InvalidInput(InputError::Invalid(
            "tenantId must match [a-z0-9-]+ and be at most 64 bytes".into(),
        )))
    }
}

/// `validity × (1 − U[0, ppm/10⁶])`, uniform in whole milliseconds; 0 ppm is the validity.
fn jittered(validity_ms: u64, ppm: u32) -> u64 {
    if ppm == 0 {
        return validity_ms;
    }
    let span = u128::from(validity_ms) * u128::from(ppm) / 1_000_000;
    // A failed OS generator only costs the jitter, never the mint.
    let draw = random::bytes::<8>().map(u64::from_le_bytes).unwrap_or(0);
    let cut = u128::from(draw) % (span + 1);
    validity_ms - u64::try_from(cut).unwrap_or(0)
}
