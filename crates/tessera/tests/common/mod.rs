//! Shared test harness: real SQLite files and real PostgreSQL schemas, a manual clock, and a
//! macro that runs one scenario against both stores.
//!
//! PostgreSQL is `TESSERA_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`).
//! Each test gets its own schema, so runs never collide. If PostgreSQL is unreachable the
//! test fails; set `TESSERA_SKIP_POSTGRES=1` to skip on a machine without it (never in CI).
#![allow(dead_code)]

use std::sync::Arc;
use tessera::{ManualClock, PostgresStore, SessionConfig, SessionEngine, SqliteStore, Store};

/// Which store a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn postgres_url() -> String {
    std::env::var("TESSERA_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// True when PostgreSQL tests should be skipped (only when explicitly asked, never in CI).
pub fn skip_postgres() -> bool {
    let asked = std::env::var("TESSERA_SKIP_POSTGRES").is_ok_and(|v| v == "1");
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    asked && !ci
}

/// Two independent connections (as two instances would have) to one fresh database.
pub async fn fresh_store_pair(backend: Backend) -> (Arc<dyn Store>, Arc<dyn Store>) {
    match backend {
        Backend::Sqlite => {
            let path =
                std::env::temp_dir().join(format!("tessera-test-{}.db", uuid::Uuid::new_v4()));
            let a = SqliteStore::open(&path).await.expect("open sqlite");
            let b = SqliteStore::open(&path).await.expect("open sqlite");
            (Arc::new(a), Arc::new(b))
        }
        Backend::Postgres => {
            let schema = format!("tessera_test_{}", uuid::Uuid::new_v4().simple());
            let a = PostgresStore::connect(&postgres_url(), Some(&schema))
                .await
                .expect("postgres");
            let b = PostgresStore::connect(&postgres_url(), Some(&schema))
                .await
                .expect("postgres");
            (Arc::new(a), Arc::new(b))
        }
    }
}

/// A fresh, empty store of the given kind.
pub async fn fresh_store(backend: Backend) -> Arc<dyn Store> {
    match backend {
        Backend::Sqlite => {
            let path =
                std::env::temp_dir().join(format!("tessera-test-{}.db", uuid::Uuid::new_v4()));
            Arc::new(SqliteStore::open(&path).await.expect("open sqlite"))
        }
        Backend::Postgres => {
            let schema = format!("tessera_test_{}", uuid::Uuid::new_v4().simple());
            Arc::new(
                PostgresStore::connect(&postgres_url(), Some(&schema))
                    .await
                    .expect("PostgreSQL must be reachable (set TESSERA_SKIP_POSTGRES=1 to skip locally)"),
            )
        }
    }
}

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

/// An engine on `store` with a manual clock starting at a realistic time.
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

/// A fresh store, a manual clock and an engine with [`test_config`].
pub async fn setup(backend: Backend) -> (SessionEngine, Arc<ManualClock>, Arc<dyn Store>) {
    setup_with(backend, test_config()).await
}

pub async fn setup_with(
    backend: Backend,
    config: SessionConfig,
) -> (SessionEngine, Arc<ManualClock>, Arc<dyn Store>) {
    let store = fresh_store(backend).await;
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let engine = engine_on(Arc::clone(&store), config, Arc::clone(&clock)).await;
    (engine, clock, store)
}

/// Runs an `async fn(Backend)` scenario as two tests, `sqlite` and `postgres`.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::common::Backend::Sqlite).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if $crate::common::skip_postgres() {
                        eprintln!("skipping PostgreSQL (TESSERA_SKIP_POSTGRES=1)");
                        return;
                    }
                    super::$name($crate::common::Backend::Postgres).await;
                }
            }
        )*
    };
}
