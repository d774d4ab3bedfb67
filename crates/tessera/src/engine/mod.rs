//! [`SessionEngine`]: create, verify, refresh, regenerate, read, update and revoke sessions for
//! one app, on any [`Store`].

mod jwt;
mod keys;
mod lifecycle;
pub use lifecycle::CleanupReport;
mod manage;
mod refresh;
mod verify;

use crate::clock::{Clock, SystemClock};
use crate::config::SessionConfig;
use crate::error::EngineError;
use crate::keys::ring::KeyRing;
use crate::keys::rsa_key::SigningKey;
use crate::session::PUBLIC;
use crate::store::Store;
use crate::token::refresh::RefreshTokenKey;
use arc_swap::ArcSwap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// The session engine of one app. Cheap to clone; clones share keys and store.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use tessera::{NewSession, SessionEngine, SqliteStore, VerifyOptions};
///
/// let store = Arc::new(SqliteStore::open("tessera.db").await?);
/// let engine = SessionEngine::builder(store).build().await?;
/// let created = engine.create_session(NewSession::for_user("alice")).await?;
/// let verified = engine
///     .verify_session(&created.access_token.token, VerifyOptions::default())
///     .await?;
/// assert_eq!(verified.session.user_id, "alice");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SessionEngine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SessionEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionEngine")
            .field("app_id", &self.inner.app_id)
            .finish_non_exhaustive()
    }
}

struct Inner {
    app_id: String,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: SessionConfig,
    keys: ArcSwap<KeyRing>,
    key_reload: tokio::sync::Mutex<()>,
    last_unknown_kid_reload_ms: AtomicU64,
    configured_static: Option<Arc<SigningKey>>,
    refresh_key: RefreshTokenKey,
    verified: crate::token::cache::VerifiedTokenCache,
}

/// Builds a [`SessionEngine`].
pub struct EngineBuilder {
    store: Arc<dyn Store>,
    app_id: String,
    config: SessionConfig,
    clock: Arc<dyn Clock>,
    static_key: Option<String>,
}

impl EngineBuilder {
    /// The app this engine serves (default `public`).
    pub fn app_id(mut self, app_id: impl Into<String>) -> Self {
        self.app_id = app_id.into();
        self
    }

    /// Session settings.
    pub fn config(mut self, config: SessionConfig) -> Self {
        self.config = config;
        self
    }

    /// The clock (tests pass a [`crate::ManualClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// An operator-supplied static signing key: an unencrypted PKCS#8 RSA key (≥ 2048 bits,
    /// e = 65537) as PEM, or in the core's storage form `<b64 SPKI>|<b64 PKCS#8>`. Its `kid`
    /// is derived from the public key, so every instance given the same key agrees on it.
    pub fn static_signing_key(mut self, key: impl Into<String>) -> Self {
        self.static_key = Some(key.into());
        self
    }

    /// Loads (creating where missing) the signing keys and the refresh-token master key.
    pub async fn build(self) -> Result<SessionEngine, EngineError> {
        self.config.validate()?;
        let now = self.clock.now_ms();
        let configured_static = match &self.static_key {
            Some(text) => Some(Arc::new(keys::parse_configured_static_key(text, now)?)),
            None => None,
        };
        let candidate = RefreshTokenKey::generate()?;
        let stored = self
            .store
            .get_or_insert_key_value(
                &self.app_id,
                "refresh_token_key",
                candidate.as_stored(),
                now,
            )
            .await?;
        let refresh_key = RefreshTokenKey::from_stored(&stored)?;
        let verified =
            crate::token::cache::VerifiedTokenCache::new(self.config.verified_token_cache);
        let engine = SessionEngine {
            inner: Arc::new(Inner {
                app_id: self.app_id,
                store: self.store,
                clock: self.clock,
                config: self.config,
                keys: ArcSwap::from_pointee(KeyRing::default()),
                key_reload: tokio::sync::Mutex::new(()),
                last_unknown_kid_reload_ms: AtomicU64::new(0),
                configured_static,
                refresh_key,
                verified,
            }),
        };
        engine.install_configured_static_key().await?;
        engine.reload_keys().await?;
        Ok(engine)
    }
}

impl SessionEngine {
    /// Starts building an engine on `store`.
    pub fn builder(store: Arc<dyn Store>) -> EngineBuilder {
        EngineBuilder {
            store,
            app_id: PUBLIC.into(),
            config: SessionConfig::default(),
            clock: Arc::new(SystemClock),
            static_key: None,
        }
    }

    /// The app id.
    pub fn app_id(&self) -> &str {
        &self.inner.app_id
    }

    /// The settings.
    pub fn config(&self) -> &SessionConfig {
        &self.inner.config
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    fn now(&self) -> u64 {
        self.inner.clock.now_ms()
    }
}
