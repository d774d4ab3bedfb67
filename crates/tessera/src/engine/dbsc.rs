//! Device Bound Session Credentials on the store: challenges, registration (binding a device
//! key to a session or a guest), and the refresh that needs a proof from the bound key. The
//! proof and challenge rules themselves are in [`crate::dbsc`].
//!
//! Challenges are stateless (an HMAC'd nonce, session and expiry: minting one writes
//! nothing, so one can ride ahead on any response) and single-use through the store's
//! used-set, whose primary key makes the first use win on every instance sharing a
//! PostgreSQL database.

use super::SessionEngine;
use crate::dbsc::DbscError;
use crate::dbsc::{verify_proof, ChallengeKey, DbscAlgorithm, DevicePublicKey, VerifiedProof};
use crate::encoding::{b64_decode, b64_encode, hex};
use crate::error::{EngineError, SessionError, UnauthorisedReason};
use crate::random;
use crate::session::{RefreshOptions, SessionTokens};
use crate::store::{DbscBinding, Store};
use crate::token::refresh::decode_refresh_token;

/// How long a challenge may be answered, in ms (5 minutes).
pub const DBSC_CHALLENGE_TTL_MS: u64 = 5 * 60 * 1000;

/// The guest namespace of challenges (guests have no session handle).
const GUEST_TENANT: &str = "\u{0}guest";

pub(super) async fn load_challenge_key(
    store: &dyn Store,
    app_id: &str,
    now: u64,
) -> Result<ChallengeKey, EngineError> {
    let candidate = b64_encode(&random::bytes::<32>()?);
    let stored = store
        .get_or_insert_key_value(app_id, "dbsc_challenge_key", &candidate, now)
        .await?;
    let bytes = b64_decode(&stored).ok_or(EngineError::Corrupt("dbsc challenge key"))?;
    Ok(ChallengeKey::from_bytes(&bytes))
}

/// A DBSC session identifier: `s` and 32 hex digits (starting with a letter, it is an
/// RFC 9651 token as well as a string, however the browser echoes it).
fn new_dbsc_session_id() -> Result<String, EngineError> {
    Ok(format!("s{}", hex(&random::bytes::<16>()?)))
}

fn bound_key(binding: &DbscBinding) -> Result<DevicePublicKey, DbscError> {
    let alg = DbscAlgorithm::parse(&binding.algorithm)
        .ok_or(EngineError::Corrupt("dbsc binding algorithm"))?;
    DevicePublicKey::from_jwk(alg, &binding.public_jwk)
        .map_err(|_| EngineError::Corrupt("dbsc binding key").into())
}

impl SessionEngine {
    /// A fresh challenge for a session (`Secure-Session-Registration` / `-Challenge`). Writes
    /// nothing; valid for [`DBSC_CHALLENGE_TTL_MS`], once.
    ///
    /// # Errors
    /// When the OS RNG fails.
    pub fn dbsc_challenge(&self, tenant_id: &str, handle: &str) -> Result<String, EngineError> {
        self.inner.dbsc_key.mint(
            &self.inner.app_id,
            tenant_id,
            handle,
            self.now(),
            DBSC_CHALLENGE_TTL_MS,
        )
    }

    /// [`Self::dbsc_challenge`] for a guest (an anonymous session, by anonymousId).
    ///
    /// # Errors
    /// When the OS RNG fails.
    pub fn dbsc_guest_challenge(&self, anonymous_id: &str) -> Result<String, EngineError> {
        self.dbsc_challenge(GUEST_TENANT, anonymous_id)
    }

    /// Checks `proof.jti` is an outstanding challenge of this session and spends it.
    async fn spend_challenge(
        &self,
        proof: &VerifiedProof,
        tenant_id: &str,
        handle: &str,
    ) -> Result<(), DbscError> {
        let opened = self.inner.dbsc_key.open(
            &proof.jti,
            &self.inner.app_id,
            tenant_id,
            handle,
            self.now(),
        )?;
        let fresh = self
            .inner
            .store
            .use_dbsc_challenge(&self.inner.app_id, &opened.nonce, opened.expires_at)
            .await?;
        if !fresh {
            return Err(crate::dbsc::ChallengeRejection::Replayed.into());
        }
        Ok(())
    }

    /// Registration: verifies `proof` (its own `jwk`, `jti` = a challenge of this session),
    /// then binds the key to the live session. Registering again with the same key answers
    /// the stored binding; another key is refused (a session is bound once).
    ///
    /// ```no_run
    /// # async fn demo(engine: tessera::SessionEngine, proof: &str) -> Result<(), tessera::DbscError> {
    /// let binding = engine.dbsc_register("public", "handle-1", proof).await?;
    /// assert_eq!(binding.algorithm, "ES256");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`DbscError::Proof`], [`DbscError::Challenge`], [`DbscError::SessionGone`],
    /// [`DbscError::AlreadyBound`], or a store failure.
    pub async fn dbsc_register(
        &self,
        tenant_id: &str,
        handle: &str,
        proof: &str,
    ) -> Result<DbscBinding, DbscError> {
        let verified = verify_proof(proof, None)?;
        self.spend_challenge(&verified, tenant_id, handle).await?;
        let now = self.now();
        let wanted = DbscBinding {
            app_id: self.inner.app_id.clone(),
            tenant_id: tenant_id.to_owned(),
            session_handle: handle.to_owned(),
            dbsc_session_id: new_dbsc_session_id()?,
            jwk_thumbprint: verified.key.thumbprint(),
            public_jwk: verified.key.canonical_jwk().to_owned(),
            algorithm: verified.key.algorithm().as_str().to_owned(),
            bound_at: now,
        };
        let stored = self
            .inner
            .store
            .bind_dbsc_key(&wanted, now)
            .await?
            .ok_or(DbscError::SessionGone)?;
        if stored.jwk_thumbprint != wanted.jwk_thumbprint {
            return Err(DbscError::AlreadyBound);
        }
        tracing::info!(session = %handle, "session bound to a device key (DBSC)");
        Ok(stored)
    }

    /// Registration of a guest (by anonymousId), kept until `expires_at` (the anonymous
    /// token's expiry). At sign-in [`Self::dbsc_carry_guest`] moves it to the new session.
    ///
    /// # Errors
    /// As [`Self::dbsc_register`].
    pub async fn dbsc_register_guest(
        &self,
        anonymous_id: &str,
        proof: &str,
        expires_at: u64,
    ) -> Result<DbscBinding, DbscError> {
        let verified = verify_proof(proof, None)?;
        self.spend_challenge(&verified, GUEST_TENANT, anonymous_id)
            .await?;
        let wanted = DbscBinding {
            app_id: self.inner.app_id.clone(),
            tenant_id: String::new(),
            session_handle: anonymous_id.to_owned(),
            dbsc_session_id: new_dbsc_session_id()?,
            jwk_thumbprint: verified.key.thumbprint(),
            public_jwk: verified.key.canonical_jwk().to_owned(),
            algorithm: verified.key.algorithm().as_str().to_owned(),
            bound_at: self.now(),
        };
        let stored = self
            .inner
            .store
            .bind_dbsc_guest(&wanted, expires_at)
            .await?;
        if stored.jwk_thumbprint != wanted.jwk_thumbprint {
            return Err(DbscError::AlreadyBound);
        }
        Ok(stored)
    }

    /// The key bound to a session, if any.
    ///
    /// # Errors
    /// A store failure.
    pub async fn dbsc_binding(
        &self,
        tenant_id: &str,
        handle: &str,
    ) -> Result<Option<DbscBinding>, EngineError> {
        Ok(self
            .inner
            .store
            .get_dbsc_binding(&self.inner.app_id, tenant_id, handle)
            .await?)
    }

    /// The live key binding of a guest, if any.
    ///
    /// # Errors
    /// A store failure.
    pub async fn dbsc_guest_binding(
        &self,
        anonymous_id: &str,
    ) -> Result<Option<DbscBinding>, EngineError> {
        Ok(self
            .inner
            .store
            .get_dbsc_guest(&self.inner.app_id, anonymous_id, self.now())
            .await?)
    }

    /// Sign-in of a bound guest: binds the guest's key (and DBSC session identifier) to the
    /// new session. `None` when the guest was not bound.
    ///
    /// # Errors
    /// A store failure.
    pub async fn dbsc_carry_guest(
        &self,
        anonymous_id: &str,
        tenant_id: &str,
        handle: &str,
    ) -> Result<Option<DbscBinding>, EngineError> {
        let now = self.now();
        let Some(guest) = self
            .inner
            .store
            .get_dbsc_guest(&self.inner.app_id, anonymous_id, now)
            .await?
        else {
            return Ok(None);
        };
        let carried = DbscBinding {
            tenant_id: tenant_id.to_owned(),
            session_handle: handle.to_owned(),
            bound_at: now,
            ..guest
        };
        Ok(self.inner.store.bind_dbsc_key(&carried, now).await?)
    }

    /// The session a refresh token belongs to, `(tenant, handle)`, if the token is genuine.
    pub fn refresh_token_session(&self, refresh_token: &str) -> Option<(String, String)> {
        decode_refresh_token(&self.inner.refresh_key, refresh_token)
            .map(|p| (p.tenant().to_owned(), p.session_handle))
    }

    /// The DBSC refresh: without a proof, [`DbscError::NeedsChallenge`] with a fresh
    /// challenge; with one, the proof must be signed by the session's bound key and answer
    /// an outstanding challenge of this session, and then the same rotation as
    /// [`Self::refresh_session`] runs (lineage, theft detection).
    ///
    /// # Errors
    /// [`DbscError::NotBound`] for an unbound session, [`DbscError::SessionGone`] when it
    /// ended (the browser is told `continue: false`), the proof and challenge rejections, and
    /// the rotation's own errors as [`DbscError::Session`].
    pub async fn dbsc_refresh_session(
        &self,
        refresh_token: &str,
        options: RefreshOptions<'_>,
        proof: Option<&str>,
    ) -> Result<(SessionTokens, DbscBinding), DbscError> {
        let (tenant, handle) =
            self.refresh_token_session(refresh_token)
                .ok_or(DbscError::Session(SessionError::Unauthorised(
                    UnauthorisedReason::InvalidRefreshToken,
                )))?;
        let binding = match self.dbsc_binding(&tenant, &handle).await? {
            Some(b) => b,
            None => {
                let live = self
                    .inner
                    .store
                    .get_session(&self.inner.app_id, &tenant, &handle)
                    .await?
                    .is_some_and(|r| r.expires_at >= self.now());
                return Err(if live {
                    DbscError::NotBound
                } else {
                    DbscError::SessionGone
                });
            }
        };
        let Some(proof) = proof else {
            return Err(DbscError::NeedsChallenge {
                challenge: self.dbsc_challenge(&tenant, &handle)?,
                dbsc_session_id: binding.dbsc_session_id,
            });
        };
        let key = bound_key(&binding)?;
        let verified = verify_proof(proof, Some(&key))?;
        self.spend_challenge(&verified, &tenant, &handle).await?;
        let tokens = self
            .refresh_checked(refresh_token, options, None, true)
            .await?;
        Ok((tokens, binding))
    }
}
