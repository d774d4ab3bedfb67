//! The embedded default: SQLite through sqlx, WAL journal, `synchronous=NORMAL` and a busy
//! timeout (sqlx sets none of these; without them a peer store stalled for seconds).

use crate::error::StoreError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::path::Path;
use std::time::Duration;

/// A SQLite-backed [`crate::Store`].
///
/// ```no_run
/// # async fn demo() -> Result<(), tessera::StoreError> {
/// let store = tessera::SqliteStore::open("tessera.db").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
    pub(crate) waits: std::sync::Arc<super::AcquireWaits>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and runs the migrations.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        // No ping before handing out a connection: an in-process SQLite connection does not go
        // stale, and the ping is one more round trip to the connection's worker thread on every
        // query (sqlx still pings each connection when it comes back to the pool).
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        Self::migrated(pool).await
    }

    /// A private in-memory database (one connection, so every query sees the same data). For
    /// tests and throw-away runs only: everything is lost when the store is dropped.
    pub async fn in_memory() -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .in_memory(true)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        Self::migrated(pool).await
    }

    async fn migrated(pool: SqlitePool) -> Result<Self, StoreError> {
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Self {
            pool,
            waits: std::sync::Arc::default(),
        })
    }

    /// The underlying pool (for tests that count rows or writes).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

impl SqliteStore {
    /// A connection from the pool, the wait counted for [`crate::PoolStats`].
    pub(crate) async fn acquire_timed(
        &self,
    ) -> Result<sqlx::pool::PoolConnection<sqlx::Sqlite>, sqlx::Error> {
        let started = std::time::Instant::now();
        let conn = self.pool.acquire().await;
        self.waits.record(started.elapsed());
        conn
    }
}

/// Most expired sessions one SQLite clean-up statement deletes. The statement holds the
/// database's single write lock throughout; at about 80 µs a row at 1 M rows (1,000 rows took
/// ~80 ms), 250 rows keep it near 20 ms.
pub const SQLITE_CLEANUP_BATCH: u64 = 250;

super::sql::impl_sql_store!(
    SqliteStore,
    None::<&'static str>,
    super::sql::SESSION_WITH_DEVICE_SQLITE,
    true,
    SQLITE_CLEANUP_BATCH
);
super::devices::impl_device_store!(SqliteStore);
super::audit::impl_audit_store!(SqliteStore);
super::dbsc::impl_dbsc_store!(SqliteStore);
