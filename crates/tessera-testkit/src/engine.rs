//! The engine on a fresh store with a manual clock.

use crate::store::{fresh_store, Backend};
use std::sync::Arc;
use tessera::{ManualClock, SessionConfig, SessionEngine, Store};

/// Where the manual clock starts: a realistic time (November 2023).
pub const START_MS: u64 = 1_700_000_000_000;

/// Settings with short lifetimes, for tests that move the clock.
pub fn test_config() -> SessionConfig {
    SessionConfig {
        access_token_validity_ms: 60_000,
        refresh_token_validity_ms: 3_600_000,
        dynamic_key_update_interval_ms: 24 * 3_600_000,
        key_overlap_ms: 60_000,
        sibling_grace_ms: 30_000,
        issuer: None,
        verified_token_cache: 10_000,
        access_token_validity_jitter_ppm: 0,
    }
}

/// An engine on `store` with `config` and `clock`.
pub async fn engine_on(
    store: Arc<dyn Store>,
    config: SessionConfig,
    clock: Arc<ManualClock>,
) -> SessionEngine {
    SessionEngine::builder(store)
        .config(config)
        .clock(clock)
        .build()
        .await
        .expect("engine")
}

/// A fresh store, a manual clock at [`START_MS`] and an engine with [`test_config`].
pub async fn setup(backend: Backend) -> (SessionEngine, Arc<ManualClock>, Arc<dyn Store>) {
    setup_with(backend, test_config()).await
}

/// [`setup`] with other settings.
pub async fn setup_with(
    backend: Backend,
    config: SessionConfig,
) -> (SessionEngine, Arc<ManualClock>, Arc<dyn Store>) {
    let store = fresh_store(backend).await;
    let clock = Arc::new(ManualClock::new(START_MS));
    let engine = engine_on(Arc::clone(&store), config, Arc::clone(&clock)).await;
    (engine, clock, store)
}
