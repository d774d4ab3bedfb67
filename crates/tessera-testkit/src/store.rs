//! Which store a test runs on: a fresh SQLite file or a fresh PostgreSQL schema.
//!
//! PostgreSQL is `TESSERA_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`).
//! Each test gets its own schema (`tessera_test_…`, dropped by `scripts/test.sh` before runs),
//! so runs never collide. If PostgreSQL is unreachable the test fails; `TESSERA_SKIP_POSTGRES=1`
//! skips PostgreSQL tests on a machine without it, and is ignored when `CI=true`: in CI they
//! never skip.

use std::path::PathBuf;
use std::sync::Arc;
use tessera::{PostgresStore, SqliteStore, Store};

const UNREACHABLE: &str =
    "PostgreSQL must be reachable (set TESSERA_SKIP_POSTGRES=1 to skip locally)";

/// Which store a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server the tests use.
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

/// A fresh schema name, `tessera_test_<tag>_<uuid>`.
pub fn fresh_schema(tag: &str) -> String {
    format!("tessera_test_{tag}_{}", uuid::Uuid::new_v4().simple())
}

/// Where a test's data lives; [`Place::open`] gives a new connection to the same data, and
/// [`Place::serve_args`] the `tessera serve` arguments that point at it.
#[derive(Debug, Clone)]
pub enum Place {
    Sqlite(PathBuf),
    Postgres { schema: String },
}

impl Place {
    /// A new, empty place: a SQLite file in the temp directory or a new PostgreSQL schema.
    pub fn fresh(backend: Backend) -> Self {
        let id = uuid::Uuid::new_v4().simple();
        match backend {
            Backend::Sqlite => {
                Place::Sqlite(std::env::temp_dir().join(format!("tessera-test-{id}.db")))
            }
            Backend::Postgres => Place::Postgres {
                schema: format!("tessera_test_{id}"),
            },
        }
    }

    /// A new connection (pool) to this place's data.
    pub async fn open(&self) -> Arc<dyn Store> {
        match self {
            Place::Sqlite(path) => Arc::new(SqliteStore::open(path).await.expect("open sqlite")),
            Place::Postgres { schema } => Arc::new(
                PostgresStore::connect(&postgres_url(), Some(schema))
                    .await
                    .expect(UNREACHABLE),
            ),
        }
    }

    /// The arguments of `tessera serve` for this place.
    pub fn serve_args(&self) -> Vec<String> {
        match self {
            Place::Sqlite(path) => vec!["--sqlite-path".into(), path.display().to_string()],
            Place::Postgres { schema } => vec![
                "--database-url".into(),
                postgres_url(),
                "--database-schema".into(),
                schema.clone(),
            ],
        }
    }
}

/// A fresh, empty store of the given kind.
pub async fn fresh_store(backend: Backend) -> Arc<dyn Store> {
    Place::fresh(backend).open().await
}

/// Two independent connections (as two instances would have) to one fresh database.
pub async fn fresh_store_pair(backend: Backend) -> (Arc<dyn Store>, Arc<dyn Store>) {
    let place = Place::fresh(backend);
    (place.open().await, place.open().await)
}
