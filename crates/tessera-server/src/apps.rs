//! The apps this core serves: app id → session engine with the app's own settings. The default
//! app `public` exists from start-up; others are created by `PUT /recipe/multitenancy/app/v2`.
//! An app's config overrides are kept in the store, so a restart or a second instance on the
//! same database knows the app; instances re-read an app's overrides every few seconds.

use crate::config::{apply_app_settings, AppSettings, ConfigError, APP_KEYS};
use crate::error::ApiError;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tessera::{EngineError, EventSink, NoEvents, SessionEngine, Store, PUBLIC};

/// How often an instance re-reads an app's stored overrides (another instance may change them).
const RECHECK: Duration = Duration::from_secs(5);
/// Expired-session clean-up interval (the core's 12 h).
const CLEANUP_EVERY: Duration = Duration::from_secs(12 * 3600);

/// One app: its engine and the settings it was built with.
pub struct AppEntry {
    /// The app's session engine.
    pub engine: SessionEngine,
    /// Its settings.
    pub settings: AppSettings,
    overrides: BTreeMap<String, String>,
    /// When the stored app was created (`None`: `public` without stored settings). A removed
    /// and re-created app has a new time, so instances drop the engine of the old one.
    created_at: Option<u64>,
    checked_at: Mutex<Instant>,
    cleanup: tokio::task::JoinHandle<()>,
}

impl Drop for AppEntry {
    fn drop(&mut self) {
        self.cleanup.abort();
    }
}

impl std::fmt::Debug for AppEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppEntry")
            .field("app_id", &self.engine.app_id())
            .finish_non_exhaustive()
    }
}

/// Keys the operator configured for the public app.
#[derive(Clone, Default)]
pub struct OperatorKeys {
    /// Static access-token signing key.
    pub static_signing_key: Option<String>,
    /// Previous static keys that still verify (never sign).
    pub previous_static_signing_keys: Vec<String>,
    /// Anonymous-token signing key.
    pub anonymous_signing_key: Option<String>,
    /// Previous anonymous keys that still verify.
    pub previous_anonymous_signing_keys: Vec<String>,
}

/// The registry of apps.
pub struct AppRegistry {
    store: Arc<dyn Store>,
    base: AppSettings,
    keys: OperatorKeys,
    apps: RwLock<HashMap<String, Arc<AppEntry>>>,
    build: tokio::sync::Mutex<()>,
    events: Arc<dyn EventSink>,
}

impl std::fmt::Debug for AppRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppRegistry").finish_non_exhaustive()
    }
}

/// Why an app could not be loaded at start-up.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The engine could not start (storage, keys or settings).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Stored settings are invalid.
    #[error("stored settings of app: {0}")]
    Config(#[from] ConfigError),
}

fn parse_overrides(json: &str) -> BTreeMap<String, String> {
    serde_json::from_str(json).unwrap_or_default()
}

impl AppRegistry {
    /// Opens the registry on `store` and loads the public app (with its stored overrides).
    /// `keys` are the operator's keys of the public app; events go nowhere.
    pub async fn new(
        store: Arc<dyn Store>,
        base: AppSettings,
        keys: OperatorKeys,
    ) -> Result<Self, RegistryError> {
        Self::with_events(store, base, keys, Arc::new(NoEvents)).await
    }

    /// [`Self::new`], with every app's engine reporting its events to `events` (metrics and
    /// the audit trail).
    pub async fn with_events(
        store: Arc<dyn Store>,
        base: AppSettings,
        keys: OperatorKeys,
        events: Arc<dyn EventSink>,
    ) -> Result<Self, RegistryError> {
        let registry = Self {
            store,
            base,
            keys,
            apps: RwLock::new(HashMap::new()),
            build: tokio::sync::Mutex::new(()),
            events,
        };
        let (overrides, created_at) = match registry.store.get_app_config(PUBLIC).await {
            Ok(Some((json, created))) => (parse_overrides(&json), Some(created)),
            Ok(None) => (BTreeMap::new(), None),
            Err(e) => return Err(RegistryError::Engine(EngineError::Store(e))),
        };
        let entry = registry.build_entry(PUBLIC, overrides, created_at).await?;
        registry.insert(PUBLIC, entry);
        Ok(registry)
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The ids of the apps this instance has loaded, sorted.
    pub fn loaded_app_ids(&self) -> Vec<String> {
        let apps = self.apps.read().unwrap_or_else(|e| e.into_inner());
        let mut ids: Vec<String> = apps.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// The apps loaded on this instance (for metrics).
    pub fn loaded(&self) -> Vec<Arc<AppEntry>> {
        let apps = self.apps.read().unwrap_or_else(|e| e.into_inner());
        apps.values().cloned().collect()
    }

    fn cached(&self, app_id: &str) -> Option<Arc<AppEntry>> {
        let apps = self.apps.read().unwrap_or_else(|e| e.into_inner());
        apps.get(app_id).cloned()
    }

    fn insert(&self, app_id: &str, entry: Arc<AppEntry>) {
        let mut apps = self.apps.write().unwrap_or_else(|e| e.into_inner());
        apps.insert(app_id.to_owned(), entry);
    }

    async fn build_entry(
        &self,
        app_id: &str,
        overrides: BTreeMap<String, String>,
        created_at: Option<u64>,
    ) -> Result<Arc<AppEntry>, RegistryError> {
        let settings = apply_app_settings(&self.base, &overrides, false)?;
        let mut builder = SessionEngine::builder(Arc::clone(&self.store))
            .app_id(app_id)
            .config(settings.session.clone())
            .devices(settings.devices.clone())
            .events(Arc::clone(&self.events));
        if app_id == PUBLIC {
            if let Some(key) = &self.keys.static_signing_key {
                builder = builder.static_signing_key(key.clone());
            }
            builder = builder
                .previous_static_signing_keys(self.keys.previous_static_signing_keys.clone());
            if let Some(key) = &self.keys.anonymous_signing_key {
                builder = builder.anonymous_signing_key(key.clone());
            }
            builder =
                builder.previous_anonymous_keys(self.keys.previous_anonymous_signing_keys.clone());
        }
        let engine = builder.build().await?;
        let cleanup = engine.spawn_cleanup(CLEANUP_EVERY);
        Ok(Arc::new(AppEntry {
            engine,
            settings,
            overrides,
            created_at,
            checked_at: Mutex::new(Instant::now()),
            cleanup,
        }))
    }

    /// The app, loading it from the store if another instance created it; `None` if it does
    /// not exist.
    pub async fn get(&self, app_id: &str) -> Result<Option<Arc<AppEntry>>, ApiError> {
        if let Some(entry) = self.cached(app_id) {
            let due = {
                let mut checked = entry.checked_at.lock().unwrap_or_else(|e| e.into_inner());
                if checked.elapsed() >= RECHECK {
                    *checked = Instant::now();
                    true
                } else {
                    false
                }
            };
            if !due {
                return Ok(Some(entry));
            }
            return self.reload(app_id, Some(entry)).await;
        }
        self.reload(app_id, None).await
    }

    /// Re-reads an app's stored overrides and rebuilds its engine if they changed.
    async fn reload(
        &self,
        app_id: &str,
        current: Option<Arc<AppEntry>>,
    ) -> Result<Option<Arc<AppEntry>>, ApiError> {
        let stored = self.store.get_app_config(app_id).await?;
        let (overrides, created_at) = match (stored, &current) {
            (Some((json, created)), _) => (parse_overrides(&json), Some(created)),
            (None, Some(entry)) if app_id == PUBLIC => return Ok(Some(Arc::clone(entry))),
            (None, Some(_)) => {
                // Removed (possibly by another instance).
                let mut apps = self.apps.write().unwrap_or_else(|e| e.into_inner());
                apps.remove(app_id);
                return Ok(None);
            }
            (None, None) => return Ok(None),
        };
        let same =
            |entry: &AppEntry| entry.overrides == overrides && entry.created_at == created_at;
        if let Some(entry) = &current {
            if same(entry) {
                return Ok(Some(Arc::clone(entry)));
            }
        }
        let _guard = self.build.lock().await;
        if let Some(entry) = self.cached(app_id) {
            if same(&entry) {
                return Ok(Some(entry));
            }
        }
        match self.build_entry(app_id, overrides, created_at).await {
            Ok(entry) => {
                self.insert(app_id, Arc::clone(&entry));
                Ok(Some(entry))
            }
            Err(e) => {
                tracing::error!(app = %app_id, error = %e, "cannot load app");
                match current {
                    Some(entry) => Ok(Some(entry)),
                    None => Err(ApiError::Internal),
                }
            }
        }
    }

    /// Creates an app or updates its settings from a `coreConfig` object: listed keys are set,
    /// `null` resets a key to the server's value, unknown keys are ignored. Returns true if
    /// the app is new. A bad value is a 400 naming the setting.
    pub async fn create_or_update(
        &self,
        app_id: &str,
        core_config: Option<&Map<String, Value>>,
    ) -> Result<bool, ApiError> {
        let _guard = self.build.lock().await;
        let mut overrides = match self.store.get_app_config(app_id).await? {
            Some((json, _)) => parse_overrides(&json),
            None => self
                .cached(app_id)
                .map(|e| e.overrides.clone())
                .unwrap_or_default(),
        };
        for (key, value) in core_config.into_iter().flatten() {
            let key = match key.as_str() {
                "access_token_signing_key_update_interval" => {
                    "access_token_dynamic_signing_key_update_interval"
                }
                other => other,
            };
            if !APP_KEYS.contains(&key) {
                tracing::debug!(key = %key, "ignoring core config key this server does not use");
                continue;
            }
            let text = match value {
                Value::Null => {
                    overrides.remove(key);
                    continue;
                }
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Array(items) => items
                    .iter()
                    .map(|i| {
                        i.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| i.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            overrides.insert(key.to_owned(), text);
        }
        apply_app_settings(&self.base, &overrides, false)
            .map_err(|e| ApiError::BadRequest(e.without_value().to_owned()))?;
        let json = serde_json::to_string(&overrides).map_err(|_| ApiError::Internal)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let created = self.store.put_app_config(app_id, &json, now).await?;
        let created_at = self
            .store
            .get_app_config(app_id)
            .await?
            .map(|(_, created)| created);
        let created = created && app_id != PUBLIC;
        let entry = self
            .build_entry(app_id, overrides, created_at)
            .await
            .map_err(|e| {
                tracing::error!(app = %app_id, error = %e, "cannot build app");
                ApiError::Internal
            })?;
        self.insert(app_id, entry);
        Ok(created)
    }
}

impl AppRegistry {
    /// Removes an app (never `public`) with its sessions and keys (SEC2-M2); true if it
    /// existed.
    pub async fn remove(&self, app_id: &str) -> Result<bool, ApiError> {
        if app_id == PUBLIC {
            return Ok(false);
        }
        let _guard = self.build.lock().await;
        let stored = self.store.delete_app(app_id).await?;
        let cached = {
            let mut apps = self.apps.write().unwrap_or_else(|e| e.into_inner());
            apps.remove(app_id).is_some()
        };
        Ok(stored || cached)
    }
}
