//! PostgreSQL, for deployments where several stateless instances share one database.

use crate::error::StoreError;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::str::FromStr;

/// A PostgreSQL-backed [`crate::Store`].
///
/// ```no_run
/// # async fn demo() -> Result<(), tessera::StoreError> {
/// let store = tessera::PostgresStore::connect("postgres://postgres@127.0.0.1/test", None).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pub(crate) pool: PgPool,
    pub(crate) waits: std::sync::Arc<super::AcquireWaits>,
}

/// Serialises key creation per app across instances (transaction-scoped advisory lock).
const KEY_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext('tessera-keys:' || $1))";

impl PostgresStore {
    /// Connects to `url` and runs the migrations. With `schema`, every table lives in that
    /// schema (created if missing), so several deployments or test runs can share a database.
    pub async fn connect(url: &str, schema: Option<&str>) -> Result<Self, StoreError> {
        let mut options = PgConnectOptions::from_str(url)?;
        if let Some(schema) = schema {
            let bootstrap = PgPoolOptions::new()
                .max_connections(1)
                .connect_with(options.clone())
                .await?;
            let quoted = format!("\"{}\"", schema.replace('"', "\"\""));
            // `CREATE SCHEMA IF NOT EXISTS` is not safe against a concurrent create: two
            // instances starting at once on a new schema would see a unique violation. Take
            // a transaction-scoped advisory lock so the second waits and then finds it.
            let mut tx = bootstrap.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext('tessera-schema:' || $1))")
                .bind(schema)
                .execute(&mut *tx)
                .await?;
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {quoted}"))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            bootstrap.close().await;
            options = options.options([("search_path", schema)]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Self {
            pool,
            waits: std::sync::Arc::default(),
        })
    }

    /// The underlying pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

impl PostgresStore {
    /// A connection from the pool, the wait counted for [`crate::PoolStats`].
    pub(crate) async fn acquire_timed(
        &self,
    ) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, sqlx::Error> {
        let started = std::time::Instant::now();
        let conn = self.pool.acquire().await;
        self.waits.record(started.elapsed());
        conn
    }

    /// The connection to write through: any pooled one (PostgreSQL has no single write
    /// lock to queue for).
    pub(crate) async fn writer(
        &self,
    ) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, sqlx::Error> {
        self.acquire_timed().await
    }

    /// No connection outside the pool.
    pub(crate) fn writer_stats(&self) -> (u32, u32) {
        (0, 0)
    }

    /// A transaction on a writer connection.
    pub(crate) async fn begin_write(
        conn: &mut sqlx::PgConnection,
    ) -> Result<sqlx::Transaction<'_, sqlx::Postgres>, sqlx::Error> {
        sqlx::Connection::begin(conn).await
    }

    /// The session row and its device row in one statement, atomic on its own.
    pub(crate) async fn insert_session_rows(
        &self,
        r: &super::SessionRow,
        d: &super::DeviceRow,
    ) -> Result<(), StoreError> {
        let query = sqlx::query(super::sql::SESSION_WITH_DEVICE_POSTGRES);
        super::sql::bind_device_row!(super::sql::bind_session_row!(query, r), d)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(())
    }
}

super::sql::impl_sql_store!(PostgresStore, Some(KEY_LOCK), super::CLEANUP_BATCH);
super::devices::impl_device_store!(PostgresStore);
super::audit::impl_audit_store!(PostgresStore);
super::dbsc::impl_dbsc_store!(PostgresStore);
