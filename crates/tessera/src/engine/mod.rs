//! [`SessionEngine`]: create, verify, refresh, regenerate, read, update and revoke sessions for
//! one app, on any [`Store`].

mod dbsc;
pub mod devices;
mod jwt;
mod keys;
mod lifecycle;
pub use dbsc::DBSC_CHALLENGE_TTL_MS;
pub use lifecycle::{CleanupReport, CLEANUP_BATCH};
pub use verify::{CachedAccessToken, StatelessVerified};
mod manage;
mod refresh;
mod verify;

use crate::anonymous::{
    AnonymousConfig, AnonymousSessions, MintAnonymous, MintError, MintedAnonymous,
    VerifiedAnonymous,
};
use crate::clock::{Clock, SystemClock};
use crate::config::SessionConfig;
use crate::error::EngineError;
use crate::events::{EventSink, NoEvents, SessionEvent};
use crate::keys::anonymous_key::{AnonymousAlgorithm, AnonymousSigningKey};
use crate::keys::ring::KeyRing;
use crate::keys::rsa_key::SigningKey;
use crate::session::PUBLIC;
use crate::store::Store;
use crate::token::anonymous::AnonymousRejection;
use crate::token::refresh::RefreshTokenKey;
use arc_swap::ArcSwap;
use devices::DeviceConfig;
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
    previous_static: Vec<Arc<SigningKey>>,
    refresh_key: RefreshTokenKey,
    verified: crate::token::cache::VerifiedTokenCache,
    anonymous: Arc<AnonymousSessions>,
    devices: DeviceConfig,
    events: Arc<dyn EventSink>,
    dbsc_key: crate::dbsc::ChallengeKey,
}

/// Builds a [`SessionEngine`].
pub struct EngineBuilder {
    store: Arc<dyn Store>,
    app_id: String,
    config: SessionConfig,
    clock: Arc<dyn Clock>,
    static_key: Option<String>,
    previous_static_keys: Vec<String>,
    anonymous: AnonymousSetup,
    devices: DeviceConfig,
    events: Arc<dyn EventSink>,
}

/// How the anonymous-token key is chosen.
#[derive(Default)]
struct AnonymousSetup {
    config: AnonymousConfig,
    algorithm: AnonymousAlgorithm,
    key: Option<String>,
    previous: Vec<String>,
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

    /// Device, lifetime, cap and freshness settings (see `devices`).
    pub fn devices(mut self, devices: DeviceConfig) -> Self {
        self.devices = devices;
        self
    }

    /// Where security events go (metrics, audit; see `crate::events`). Default: nowhere.
    pub fn events(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.events = sink;
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
    ///
    /// The key lives only in the configuration, never in the store: with it, the static keys
    /// that verify are exactly this one and [`Self::previous_static_signing_keys`]. A key
    /// replaced here (because it leaked) stops verifying at the next start and leaves the JWKS
    /// (SEC2-H1).
    pub fn static_signing_key(mut self, key: impl Into<String>) -> Self {
        self.static_key = Some(key.into());
        self
    }

    /// Previous operator static keys, same forms: during an overlap their tokens still verify
    /// and they stay in the JWKS, but they never sign. Dropping a key from this list rejects
    /// its tokens at the next start.
    ///
    /// ```no_run
    /// # async fn demo(store: std::sync::Arc<dyn tessera::Store>, b_pem: String, a_pem: String)
    /// # -> Result<(), tessera::EngineError> {
    /// let engine = tessera::SessionEngine::builder(store)
    ///     .static_signing_key(b_pem)
    ///     .previous_static_signing_keys(vec![a_pem])
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn previous_static_signing_keys(mut self, keys: Vec<String>) -> Self {
        self.previous_static_keys = keys;
        self
    }

    /// The anonymous-token signing key (A9): an unencrypted PKCS#8 PEM (Ed25519 or RSA) or the
    /// storage form `ed25519|<b64 PKCS#8>`. Without one, a key is generated once per app and
    /// kept in the store, so every instance and restart agrees on it.
    pub fn anonymous_signing_key(mut self, key: impl Into<String>) -> Self {
        self.anonymous.key = Some(key.into());
        self
    }

    /// Previous anonymous keys, same forms: they verify but no longer sign, so tokens they
    /// signed keep working during an overlap and are re-signed with the current key (ANON-11).
    /// Dropping a key from this list rejects its tokens at once.
    pub fn previous_anonymous_keys(mut self, keys: Vec<String>) -> Self {
        self.anonymous.previous = keys;
        self
    }

    /// The algorithm of a generated anonymous key (default EdDSA).
    pub fn anonymous_algorithm(mut self, algorithm: AnonymousAlgorithm) -> Self {
        self.anonymous.algorithm = algorithm;
        self
    }

    /// Anonymous-session settings.
    pub fn anonymous_config(mut self, config: AnonymousConfig) -> Self {
        self.anonymous.config = config;
        self
    }

    /// Loads (creating where missing) the signing keys and the refresh-token master key.
    pub async fn build(self) -> Result<SessionEngine, EngineError> {
        self.config.validate()?;
        self.devices.validate()?;
        let now = self.clock.now_ms();
        let configured_static = match &self.static_key {
            Some(text) => Some(Arc::new(keys::parse_configured_static_key(text, now)?)),
            None => None,
        };
        let previous_static = self
            .previous_static_keys
            .iter()
            .map(|text| {
                keys::parse_configured_static_key(text, now)
                    .map(Arc::new)
                    .map_err(|e| EngineError::Config(format!("previous {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
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
        let dbsc_key = dbsc::load_challenge_key(self.store.as_ref(), &self.app_id, now).await?;
        let verified =
            crate::token::cache::VerifiedTokenCache::new(self.config.verified_token_cache);
        let anonymous = self.anonymous_keys(now).await?;
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
                previous_static,
                refresh_key,
                verified,
                anonymous: Arc::new(anonymous),
                devices: self.devices,
                events: self.events,
                dbsc_key,
            }),
        };
        engine.forget_stored_operator_keys().await?;
        engine.reload_keys().await?;
        engine.refuse_shared_anonymous_key()?;
        Ok(engine)
    }

    async fn anonymous_keys(&self, now: u64) -> Result<AnonymousSessions, EngineError> {
        let setup = &self.anonymous;
        let config_error =
            |e: EngineError| EngineError::Config(format!("anonymous signing key rejected: {e}"));
        let signing = match &setup.key {
            Some(text) => AnonymousSigningKey::parse(text).map_err(config_error)?,
            None => {
                let candidate = AnonymousSigningKey::generate(setup.algorithm)?;
                let stored = self
                    .store
                    .get_or_insert_key_value(
                        &self.app_id,
                        "anonymous_signing_key",
                        &candidate.to_stored()?,
                        now,
                    )
                    .await?;
                AnonymousSigningKey::parse(&stored)?
            }
        };
        let mut previous = Vec::with_capacity(setup.previous.len());
        for text in &setup.previous {
            let key = AnonymousSigningKey::parse(text).map_err(config_error)?;
            if key.kid() != signing.kid() {
                previous.push(
                    key.verifying()
                        .jwk()
                        .to_anonymous()
                        .ok_or(EngineError::Crypto("anonymous key has no JWK"))??,
                );
            }
        }
        AnonymousSessions::new(setup.config.clone(), Some(signing), previous)
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
            previous_static_keys: Vec::new(),
            anonymous: AnonymousSetup::default(),
            devices: DeviceConfig::default(),
            events: Arc::new(NoEvents),
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

    /// The device, lifetime, cap and freshness settings.
    pub fn device_config(&self) -> &DeviceConfig {
        &self.inner.devices
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// Anonymous sessions: minting and verifying anonymous tokens, with no store access.
    pub fn anonymous(&self) -> &Arc<AnonymousSessions> {
        &self.inner.anonymous
    }

    /// Mints an anonymous token now (engine clock). No store access (A1).
    pub fn mint_anonymous(&self, request: MintAnonymous) -> Result<MintedAnonymous, MintError> {
        let minted = self.inner.anonymous.mint(request, self.now())?;
        self.emit(&SessionEvent::AnonymousMinted {
            app_id: &self.inner.app_id,
        });
        Ok(minted)
    }

    /// Reports `event` to the configured [`EventSink`].
    pub(crate) fn emit(&self, event: &SessionEvent<'_>) {
        self.inner.events.record(event);
    }

    /// The configured event sink, for layers that report their own events beside the engine's.
    pub fn event_sink(&self) -> &Arc<dyn EventSink> {
        &self.inner.events
    }

    /// Verifies an anonymous token now (engine clock). No store access (A1).
    pub fn verify_anonymous(&self, token: &str) -> Result<VerifiedAnonymous, AnonymousRejection> {
        self.inner.anonymous.verify(token, self.now())
    }

    /// [`Self::verify_anonymous`] from the verified-token cache alone, for a token given as the
    /// request's bytes (not yet checked as UTF-8): a returning guest's cookie, looked up while
    /// the SDK still borrows the headers. `None` when the cache does not hold it.
    ///
    /// ```no_run
    /// # fn f(engine: &tessera::SessionEngine, cookie: &[u8]) {
    /// if let Some(guest) = engine.cached_anonymous(cookie) {
    ///     println!("visitor {}", guest.claims.anonymous_id);
    /// }
    /// # }
    /// ```
    pub fn cached_anonymous(&self, token: &[u8]) -> Option<VerifiedAnonymous> {
        self.inner.anonymous.verify_cached(token, self.now())
    }

    /// The anonymousId of a genuine anonymous token, even an expired one (A20).
    pub fn readable_anonymous_id(&self, token: &str) -> Option<String> {
        self.inner
            .anonymous
            .readable_anonymous_id(token, self.now())
    }

    /// The anonymousId carried in a genuine refresh token's encrypted payload: proof that the
    /// caller holds that session's refresh token, so a session that ends (revoked, expired,
    /// theft) may leave its visitor id behind (A20, SEC2-H2). Decrypts only; the session need
    /// not exist. `None` for anything that is not our refresh token, or one without an id.
    ///
    /// ```no_run
    /// # async fn demo(engine: tessera::SessionEngine) -> Result<(), tessera::SessionError> {
    /// let mut new = tessera::NewSession::for_user("alice");
    /// new.anonymous_id = Some("visitor-0123456789abcdefXYZ".into());
    /// let created = engine.create_session(new).await?;
    /// let id = engine.refresh_token_anonymous_id(&created.refresh_token.token);
    /// assert_eq!(id.as_deref(), Some("visitor-0123456789abcdefXYZ"));
    /// # Ok(()) }
    /// ```
    pub fn refresh_token_anonymous_id(&self, refresh_token: &str) -> Option<String> {
        crate::token::refresh::decode_refresh_token(&self.inner.refresh_key, refresh_token)?
            .anonymous_id
            .filter(|id| crate::token::anonymous::plausible_anonymous_id(id))
    }

    /// Refuses an anonymous key whose material equals an access-token key (ANON-02).
    fn refuse_shared_anonymous_key(&self) -> Result<(), EngineError> {
        let ring = self.inner.keys.load();
        let anonymous = self.inner.anonymous.fingerprints();
        for kid in ring.kids() {
            if let Some(key) = ring.key(kid) {
                let fp = crate::encoding::sha256_hex(&crate::encoding::b64_encode(
                    key.verifying().modulus(),
                ));
                if anonymous.contains(&fp) {
                    return Err(EngineError::Config(
                        "the anonymous signing key equals an access-token signing key; give \
                         anonymous tokens a key of their own"
                            .into(),
                    ));
                }
            }
        }
        Ok(())
    }

    fn now(&self) -> u64 {
        self.inner.clock.now_ms()
    }
}
