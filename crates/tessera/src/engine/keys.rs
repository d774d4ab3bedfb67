//! Loading, creating and rotating the engine's signing keys. Keys live in the store so that a
//! restart or a second instance uses the same ones; each instance keeps a parsed snapshot and
//! swaps it whole.

use super::SessionEngine;
use crate::encoding::{b64_decode, b64_encode, sha256_hex};
use crate::error::{EngineError, SessionError};
use crate::keys::jwks::Jwks;
use crate::keys::ring::KeyRing;
use crate::keys::rsa_key::{KeyKind, SigningKey};
use crate::random;
use crate::store::StoredKey;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// An unknown `kid` reloads keys from the store at most this often (JWT-08: a flood of random
/// `kid`s cannot turn into a flood of database reads).
const UNKNOWN_KID_RELOAD_COOLDOWN_MS: u64 = 500;

/// Parses an operator-supplied static key (PKCS#8 PEM or the storage form).
pub(super) fn parse_configured_static_key(
    text: &str,
    now_ms: u64,
) -> Result<SigningKey, EngineError> {
    let text = text.trim();
    let stored = if text.contains("-----BEGIN") {
        let body: String = text
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .join("");
        if !text.contains("BEGIN PRIVATE KEY") {
            return Err(EngineError::Config(
                "static signing key: expected an unencrypted PKCS#8 PEM (BEGIN PRIVATE KEY)".into(),
            ));
        }
        let der = b64_decode(&body).ok_or_else(|| {
            EngineError::Config("static signing key: PEM body is not base64".into())
        })?;
        format!("|{}", b64_encode(&der))
    } else {
        text.to_owned()
    };
    let probe =
        SigningKey::from_stored(&stored, "s-probe".into(), KeyKind::Static, now_ms, u64::MAX)
            .map_err(|e| EngineError::Config(format!("static signing key rejected: {e}")))?;
    let fingerprint = sha256_hex(&b64_encode(probe.verifying().modulus()));
    let kid = format!("s-{}", &fingerprint[..32]);
    SigningKey::from_stored(&stored, kid, KeyKind::Static, now_ms, u64::MAX)
}

/// The generated static keys among stored ones (operator keys left by an earlier version are
/// skipped).
fn generated_static_keys(mut stored: Vec<StoredKey>) -> Vec<StoredKey> {
    stored.retain(|k| !is_operator_kid(&k.kid));
    stored
}

/// True for the `kid` of an operator-supplied static key (`s-` and 32 hex digits of the public
/// key's fingerprint); generated static keys are `s-<uuid>` and never match.
fn is_operator_kid(kid: &str) -> bool {
    kid.strip_prefix("s-")
        .is_some_and(|fp| fp.len() == 32 && fp.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl SessionEngine {
    /// Deletes operator keys an earlier version wrote to the store (SEC2-H1). An operator key
    /// is never stored now: it verifies only while it is configured, as the current key or in
    /// the previous-keys list, so replacing a leaked key withdraws it on restart.
    pub(super) async fn forget_stored_operator_keys(&self) -> Result<(), EngineError> {
        let inner = &self.inner;
        for key in inner.store.static_keys(&inner.app_id).await? {
            if is_operator_kid(&key.kid)
                && inner
                    .store
                    .delete_static_key(&inner.app_id, &key.kid)
                    .await?
            {
                tracing::info!(app = %inner.app_id, kid = %key.kid, "removed a stored operator static key");
            }
        }
        Ok(())
    }

    /// Reloads keys from the store, creating a dynamic key when one is due and a static key
    /// when none exists. Creation is atomic across instances: whoever inserts second finds the
    /// first one's key and uses it.
    pub async fn reload_keys(&self) -> Result<(), EngineError> {
        let _guard = self.inner.key_reload.lock().await;
        self.reload_keys_locked().await
    }

    async fn reload_keys_locked(&self) -> Result<(), EngineError> {
        let inner = &self.inner;
        let timing = inner.config.rotation();
        let now = self.now();
        let since = now
            .saturating_sub(timing.update_interval_ms)
            .saturating_sub(timing.access_token_validity_ms.saturating_mul(2));
        let mut dynamic = inner.store.dynamic_keys(&inner.app_id, since).await?;
        if timing.new_key_due(dynamic.first().map(|k| k.created_at), now) {
            let key = SigningKey::generate(
                format!("{}{now}", crate::protocol::DYNAMIC_KID_PREFIX),
                KeyKind::Dynamic,
                now,
                timing.verify_until(now),
            )?;
            let stored = StoredKey {
                kid: key.kid().to_owned(),
                value: key.to_stored()?,
                created_at: now,
            };
            let inserted = inner
                .store
                .insert_dynamic_key_unless_fresh(
                    &inner.app_id,
                    &stored,
                    timing.fresh_threshold(now),
                )
                .await?;
            if inserted {
                tracing::info!(app = %inner.app_id, kid = %stored.kid, "created dynamic signing key");
                self.emit(&crate::events::SessionEvent::KeyCreated {
                    app_id: &inner.app_id,
                    kid: &stored.kid,
                });
            }
            dynamic = inner.store.dynamic_keys(&inner.app_id, since).await?;
        }
        // With an operator key, exactly that key (signing) and the operator's previous keys
        // (verifying) are static keys: nothing read from the store verifies beside them
        // (SEC2-H1). Without one, the generated static key in the store signs.
        let mut statics = Vec::new();
        if inner.configured_static.is_none() {
            statics = generated_static_keys(inner.store.static_keys(&inner.app_id).await?);
            if statics.is_empty() {
                let key = SigningKey::generate(
                    format!("s-{}", random::uuid_v4()?),
                    KeyKind::Static,
                    now,
                    u64::MAX,
                )?;
                let stored = StoredKey {
                    kid: key.kid().to_owned(),
                    value: key.to_stored()?,
                    created_at: now,
                };
                inner
                    .store
                    .insert_static_key_unless_present(&inner.app_id, &stored)
                    .await?;
                statics = generated_static_keys(inner.store.static_keys(&inner.app_id).await?);
            }
        }

        let old = inner.keys.load();
        let mut replaced = false;
        let mut parse = |k: &StoredKey, kind: KeyKind, until: u64| -> Result<_, EngineError> {
            // Keys are parsed once and kept; a kid whose stored material changed (deleted and
            // re-created by an operator or another instance) is parsed again.
            let reusable = old.key(&k.kid).filter(|existing| {
                existing.to_stored().is_ok_and(|v| {
                    crate::encoding::constant_time_eq(v.as_bytes(), k.value.as_bytes())
                })
            });
            let key = match reusable {
                Some(existing) => Arc::clone(existing),
                None => {
                    replaced |= old.key(&k.kid).is_some();
                    Arc::new(SigningKey::from_stored(
                        &k.value,
                        k.kid.clone(),
                        kind,
                        k.created_at,
                        until,
                    )?)
                }
            };
            Ok(key)
        };
        let dynamic_keys = dynamic
            .iter()
            .map(|k| parse(k, KeyKind::Dynamic, timing.verify_until(k.created_at)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut static_keys = statics
            .iter()
            .map(|k| parse(k, KeyKind::Static, u64::MAX))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(configured) = &inner.configured_static {
            static_keys.push(Arc::clone(configured));
        }
        let ring = KeyRing::new(
            dynamic_keys,
            static_keys,
            inner.configured_static.as_ref().map(|k| k.kid().to_owned()),
        )
        .with_retired(inner.previous_static.clone());
        let withdrawn = replaced || old.kids().any(|kid| !ring.contains(kid));
        inner.keys.store(Arc::new(ring));
        if withdrawn {
            // A token verified under a withdrawn key must not keep passing from the cache.
            inner.verified.clear();
        }
        Ok(())
    }

    /// The key that signs access tokens of this kind now, reloading first if a rotation is
    /// due.
    pub(super) async fn signing_key(&self, kind: KeyKind) -> Result<Arc<SigningKey>, SessionError> {
        let timing = self.inner.config.rotation();
        let now = self.now();
        let due = {
            let ring = self.inner.keys.load();
            timing.new_key_due(ring.newest_dynamic_created(), now)
        };
        if due {
            let _guard = self.inner.key_reload.lock().await;
            let still_due =
                timing.new_key_due(self.inner.keys.load().newest_dynamic_created(), now);
            if still_due {
                self.reload_keys_locked().await?;
            }
        }
        let ring = self.inner.keys.load();
        ring.signing_key(kind, &timing, now)
            .cloned()
            .ok_or(SessionError::Engine(EngineError::Crypto(
                "no signing key available",
            )))
    }

    /// Reloads keys because a token named a `kid` we do not hold; at most once per cooldown.
    /// Returns true if a reload happened.
    pub(super) async fn reload_for_unknown_kid(&self) -> Result<bool, EngineError> {
        let now = self.now();
        let last = self
            .inner
            .last_unknown_kid_reload_ms
            .load(Ordering::Relaxed);
        if now < last.saturating_add(UNKNOWN_KID_RELOAD_COOLDOWN_MS) && last != 0 {
            return Ok(false);
        }
        let _guard = self.inner.key_reload.lock().await;
        let last = self
            .inner
            .last_unknown_kid_reload_ms
            .load(Ordering::Relaxed);
        if now < last.saturating_add(UNKNOWN_KID_RELOAD_COOLDOWN_MS) && last != 0 {
            return Ok(false);
        }
        self.inner
            .last_unknown_kid_reload_ms
            .store(now.max(1), Ordering::Relaxed);
        self.reload_keys_locked().await?;
        Ok(true)
    }

    /// The current key snapshot (for JWKS and local verification).
    pub fn key_ring(&self) -> Arc<KeyRing> {
        self.inner.keys.load_full()
    }

    /// The published access-token key set: dynamic keys still verifying, newest first, then
    /// static keys. Anonymous-token keys are not in it (SEC2-L3): a gateway that checks only
    /// signatures against this set cannot be handed an anonymous token; they are in
    /// [`Self::anonymous_jwks`].
    pub fn jwks(&self) -> Jwks {
        self.inner.keys.load().jwks(self.now())
    }

    /// The anonymous-token keys (`kid` `a-…`, current first), published on their own
    /// (`/.well-known/anonymous-jwks.json` on `tessera serve`).
    pub fn anonymous_jwks(&self) -> Jwks {
        Jwks {
            keys: self.inner.anonymous.jwks(),
        }
    }

    /// `Cache-Control: max-age` for the JWKS, in seconds: the time until the next key is due.
    pub fn jwks_max_age_s(&self) -> u64 {
        let ring = self.inner.keys.load();
        self.inner
            .config
            .rotation()
            .jwks_max_age_s(ring.newest_dynamic_created(), self.now())
    }
}
