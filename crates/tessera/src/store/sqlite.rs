//! The embedded default: SQLite through sqlx, WAL journal, `synchronous=NORMAL` and a busy
//! timeout (sqlx sets none of these; without them a peer store stalled for seconds).
//!
//! Writes go through one dedicated connection, reads through a pool:
//! 1. SQLite takes one write lock per database. Writers on several pooled connections
//!    collide on it and sleep in SQLite's busy handler (1, 2, 5, 10 … ms), which under a
//!    create load idled the core and stretched p99 past 100 ms. With one writer connection
//!    they queue in async (a fair mutex) instead, and never wait for each other in SQLite.
//! 2. Every statement is a round trip to the connection's worker thread (sqlx runs each
//!    SQLite connection on its own thread), and a pooled connection costs one more, the ping
//!    sqlx sends when it comes back to the pool. The writer is held, not pooled: no ping.
//! 3. The create is one round trip: `BEGIN IMMEDIATE`, the two inserts and `COMMIT` in one
//!    call ([`WriterGuard::execute_in_tx`]). A failed call is rolled back before the writer is
//!    released; a cancelled one (the caller's future dropped mid-call) is rolled back by a
//!    task spawned from the guard's drop, or else by the next writer first thing.
//! 4. Transactions on the writer begin with `BEGIN IMMEDIATE`: the write lock is taken at the
//!    start, so a transaction never fails half-way on a lock another process holds (a
//!    SuperTokens core or a second instance sharing the file); it waits in the busy handler.
//! 5. A writer whose worker thread has ended (sqlx ends it on a panic, or when the rollback of
//!    a dropped transaction fails) would fail every write until a restart. At most once a
//!    second ([`WRITER_CHECK_EVERY`]) the next write pings it first, and a dead one is
//!    replaced by a new connection: one round trip a second under load, none per write.
//! 6. The in-memory store has one connection for everything (a private `:memory:` database
//!    exists per connection), so there the writer is that pool's connection.
//! 7. Creates are group-committed: a create queues its rows, lets the tasks already runnable
//!    queue theirs (one `yield_now`), and whichever create then holds the writer takes the
//!    whole queue and writes it as one `BEGIN IMMEDIATE … COMMIT` in one call
//!    ([`group_sql`], at most [`SQLITE_MAX_GROUP`] creates): one commit (WAL frames, checkpoint
//!    share) and one hand-off to the worker thread for the group instead of per create. A
//!    create whose rows were taken by another waits for its answer instead of the writer.
//! 8. One create never fails or loses another of its group: the group is written by a task of
//!    its own (the caller that took it may be cancelled), a failed group is rolled back and
//!    each create then written alone, so only the failing one gets the error. A create
//!    cancelled before its group is written is left out of it; a group whose callers have all
//!    been cancelled stops as a single cancelled create does (rule 3). A create cancelled
//!    while its group is being written may still be written: a session nobody was told of,
//!    never one reported created that is not.

use crate::error::StoreError;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, SqlitePool};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, Mutex, OwnedMutexGuard};

/// A SQLite-backed [`crate::Store`].
///
/// ```no_run
/// # async fn demo() -> Result<(), tessera::StoreError> {
/// let store = tessera::SqliteStore::open("tessera.db").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Reads, and everything of an in-memory store.
    pub(crate) pool: SqlitePool,
    /// The one connection every write of a file store goes through (rule 1).
    writer: Option<Arc<Mutex<Writer>>>,
    /// Creates waiting for the writer's next group commit (rule 7).
    creates: Arc<std::sync::Mutex<Vec<QueuedCreate>>>,
    pub(crate) waits: Arc<super::AcquireWaits>,
}

/// Most creates one group commit writes (rule 7); a longer queue is written in several calls.
pub const SQLITE_MAX_GROUP: usize = 32;

/// A create waiting in the queue of rule 7: its rows, and where its answer goes.
#[derive(Debug)]
struct QueuedCreate {
    rows: (super::SessionRow, super::DeviceRow),
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// How often the writer's connection is checked before a write (rule 5).
const WRITER_CHECK_EVERY: Duration = Duration::from_secs(1);

/// The writer connection, whether a transaction may be left open on it (rule 3), and what
/// rule 5 needs to check and replace it.
#[derive(Debug)]
struct Writer {
    conn: SqliteConnection,
    open_tx: bool,
    options: SqliteConnectOptions,
    checked: std::time::Instant,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and runs the migrations.
    ///
    /// # Errors
    /// The file cannot be opened or created, or a migration fails.
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
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        let conn = options.connect().await?;
        Ok(Self {
            pool,
            writer: Some(Arc::new(Mutex::new(Writer {
                conn,
                open_tx: false,
                options,
                checked: std::time::Instant::now(),
            }))),
            creates: Arc::default(),
            waits: Arc::default(),
        })
    }

    /// A private in-memory database (one connection, so every query sees the same data). For
    /// tests and throw-away runs only: everything is lost when the store is dropped.
    ///
    /// # Errors
    /// The connection cannot be opened or a migration fails.
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
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Self {
            pool,
            writer: None,
            creates: Arc::default(),
            waits: Arc::default(),
        })
    }

    /// The pool the store reads through (for tests that count rows or write behind the
    /// store's back). Writes of a file store go through a connection of their own.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// A connection to write through: the held writer (rule 1), or a pooled connection for an
/// in-memory store (rule 6).
pub(crate) enum WriterGuard {
    Held(HeldWriter),
    Pooled(sqlx::pool::PoolConnection<sqlx::Sqlite>),
}

/// The locked writer. Dropped with a transaction possibly open (a cancelled
/// [`WriterGuard::execute_in_tx`]), it has a task roll it back (rule 3).
pub(crate) struct HeldWriter(OwnedMutexGuard<Writer>);

impl Drop for HeldWriter {
    fn drop(&mut self) {
        if !self.0.open_tx {
            return;
        }
        // Whoever locks the writer next sees `open_tx` and rolls back first: this task, or a
        // writer queued before it. Without a runtime (shutting down) only the latter.
        let writer = Arc::clone(OwnedMutexGuard::mutex(&self.0));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { writer.lock_owned().await.end_open_tx().await });
        }
    }
}

impl Writer {
    /// Ready for a write: a transaction a cancelled call left open is rolled back (rule 3),
    /// and at most once per [`WRITER_CHECK_EVERY`] a dead connection is replaced (rule 5).
    async fn ready(&mut self) -> Result<(), sqlx::Error> {
        self.end_open_tx().await;
        if self.checked.elapsed() >= WRITER_CHECK_EVERY {
            if sqlx::Connection::ping(&mut self.conn).await.is_err() {
                tracing::warn!("the SQLite writer connection had ended; opening a new one");
                self.conn = self.options.connect().await?;
                self.open_tx = false;
            }
            self.checked = std::time::Instant::now();
        }
        Ok(())
    }

    /// Rolls back a transaction that may be open. "No transaction is active" (the call had
    /// committed, or had not begun) is the expected error and is ignored like any other: a
    /// connection still in a transaction fails its next `BEGIN` loudly.
    async fn end_open_tx(&mut self) {
        if self.open_tx {
            let _ = sqlx::query("ROLLBACK").execute(&mut self.conn).await;
            self.open_tx = false;
        }
    }
}

impl std::ops::Deref for WriterGuard {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        match self {
            Self::Held(w) => &w.0.conn,
            Self::Pooled(conn) => conn,
        }
    }
}

impl std::ops::DerefMut for WriterGuard {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        match self {
            Self::Held(w) => &mut w.0.conn,
            Self::Pooled(conn) => conn,
        }
    }
}

/// A query of `$1`… bound by the caller, on the SQL it is given.
pub(crate) type Bound<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

impl WriterGuard {
    /// Runs statements as one transaction. `sql` is them alone, `in_tx_sql` the same between
    /// `BEGIN IMMEDIATE;` and `; COMMIT`; `bind` binds the values to either. On the held
    /// writer it is one round trip (`in_tx_sql`, rule 3), on a pooled connection sqlx's
    /// transaction around `sql`.
    pub(crate) async fn execute_in_tx<'q>(
        &mut self,
        sql: &'static str,
        in_tx_sql: &'static str,
        bind: impl FnOnce(&'q str) -> Bound<'q>,
    ) -> Result<(), StoreError> {
        match self {
            Self::Held(w) => w.write(bind(in_tx_sql)).await?,
            Self::Pooled(conn) => {
                // Dropped before the commit (an error, a cancelled call), it rolls back.
                let mut tx = sqlx::Connection::begin(&mut **conn).await?;
                bind(sql).execute(&mut *tx).await?;
                tx.commit().await?;
            }
        }
        Ok(())
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

    /// The connection to write through (rules 1 and 6), the wait counted like
    /// [`Self::acquire_timed`]'s. A transaction a cancelled call left open is rolled back
    /// first (rule 3); a dead writer is replaced (rule 5).
    pub(crate) async fn writer(&self) -> Result<WriterGuard, sqlx::Error> {
        let started = std::time::Instant::now();
        let guard = match &self.writer {
            Some(writer) => {
                let mut held = Arc::clone(writer).lock_owned().await;
                held.ready().await?;
                WriterGuard::Held(HeldWriter(held))
            }
            None => WriterGuard::Pooled(self.pool.acquire().await?),
        };
        self.waits.record(started.elapsed());
        Ok(guard)
    }

    /// `(size, idle)` of the writer, added to the pool's figures in [`crate::PoolStats`].
    pub(crate) fn writer_stats(&self) -> (u32, u32) {
        match &self.writer {
            Some(writer) => (1, u32::from(writer.try_lock().is_ok())),
            None => (0, 0),
        }
    }

    /// A transaction on the writer: `BEGIN IMMEDIATE` (rule 4).
    pub(crate) async fn begin_write(
        conn: &mut SqliteConnection,
    ) -> Result<sqlx::Transaction<'_, sqlx::Sqlite>, sqlx::Error> {
        sqlx::Connection::begin_with(conn, "BEGIN IMMEDIATE").await
    }

    /// The session row and its device row, both or neither: group-committed with the other
    /// creates queued at the time on a file store (rules 7 and 8), in one transaction of
    /// their own on an in-memory one.
    pub(crate) async fn insert_session_rows(
        &self,
        r: &super::SessionRow,
        d: &super::DeviceRow,
    ) -> Result<(), StoreError> {
        if self.writer.is_none() {
            return self
                .writer()
                .await?
                .execute_in_tx(
                    super::sql::SESSION_WITH_DEVICE_SQLITE,
                    group_sql(1),
                    |sql| bind_rows(sql, [(r, d)]),
                )
                .await;
        }
        let (done, mut answer) = oneshot::channel();
        lock(&self.creates).push(QueuedCreate {
            rows: (r.clone(), d.clone()),
            done,
        });
        tokio::task::yield_now().await;
        let guard = tokio::select! {
            biased;
            answered = &mut answer => return answered.unwrap_or(Err(GROUP_DROPPED)),
            guard = self.writer() => guard?,
        };
        let group = std::mem::take(&mut *lock(&self.creates));
        if let (WriterGuard::Held(writer), false) = (guard, group.is_empty()) {
            tokio::spawn(write_group(writer, group));
        }
        answer.await.unwrap_or(Err(GROUP_DROPPED))
    }
}

/// The answer of a create whose group ended without one (the runtime shutting down).
const GROUP_DROPPED: StoreError = StoreError::Database(sqlx::Error::WorkerCrashed);

/// The queue of rule 7, locked. A panic while it was held left it whole (pushes and takes
/// only), so a poisoned lock is used as it is.
fn lock(
    queue: &std::sync::Mutex<Vec<QueuedCreate>>,
) -> std::sync::MutexGuard<'_, Vec<QueuedCreate>> {
    queue
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Values bound per create in [`group_sql`]: a session row's 10 and a device row's 5.
const ROW_PARAMS: usize = 15;

/// The SQL writing `n` creates (`1..=SQLITE_MAX_GROUP`, [`write_group`] never asks for more)
/// as one transaction in one call: `BEGIN IMMEDIATE`, each create's two inserts with its
/// values at `$(15·i + 1)`… and `COMMIT`. Built once per `n`; sqlx prepares each once per
/// connection.
fn group_sql(n: usize) -> &'static str {
    use super::sql::{SESSION_WITH_DEVICE_SQLITE, SESSION_WITH_DEVICE_SQLITE_IN_TX};
    static SQL: [std::sync::OnceLock<String>; SQLITE_MAX_GROUP + 1] =
        [const { std::sync::OnceLock::new() }; SQLITE_MAX_GROUP + 1];
    if n <= 1 {
        return SESSION_WITH_DEVICE_SQLITE_IN_TX;
    }
    SQL[n].get_or_init(|| {
        let mut sql = String::from("BEGIN IMMEDIATE; ");
        for i in 0..n {
            let mut rest = SESSION_WITH_DEVICE_SQLITE;
            while let Some(at) = rest.find('$') {
                let digits = rest[at + 1..]
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(rest.len() - at - 1);
                let number: usize = rest[at + 1..at + 1 + digits].parse().unwrap_or(0);
                sql.push_str(&rest[..=at]);
                sql.push_str(&(number + ROW_PARAMS * i).to_string());
                rest = &rest[at + 1 + digits..];
            }
            sql.push_str(rest);
            sql.push_str("; ");
        }
        sql.push_str("COMMIT");
        sql
    })
}

/// Binds the rows of a group, in order, to `sql` (from [`group_sql`]).
fn bind_rows<'q>(
    sql: &'q str,
    rows: impl IntoIterator<Item = (&'q super::SessionRow, &'q super::DeviceRow)>,
) -> Bound<'q> {
    rows.into_iter().fold(sqlx::query(sql), |query, (r, d)| {
        super::sql::bind_device_row!(super::sql::bind_session_row!(query, r), d)
    })
}

/// Rule 8: writes a group on the writer its caller took, answering every create of it.
/// Creates cancelled already are left out; the rest go [`SQLITE_MAX_GROUP`] at a time.
async fn write_group(mut writer: HeldWriter, mut group: Vec<QueuedCreate>) {
    group.retain(|c| !c.done.is_closed());
    while !group.is_empty() {
        let rest = group.split_off(group.len().min(SQLITE_MAX_GROUP));
        let (rows, mut done): (Vec<_>, Vec<_>) =
            group.into_iter().map(|c| (c.rows, c.done)).unzip();
        let sql = group_sql(rows.len());
        let pairs = rows.iter().map(|(r, d)| (r, d));
        match writer.write_for(&mut done, bind_rows(sql, pairs)).await {
            None => {}
            Some(Ok(())) => done.into_iter().for_each(|d| {
                let _ = d.send(Ok(()));
            }),
            Some(Err(e)) if rows.len() == 1 => {
                if let Some(d) = done.pop() {
                    let _ = d.send(Err(e));
                }
            }
            // Rolled back: each create alone, so only a failing one fails.
            Some(Err(_)) => {
                let one = group_sql(1);
                for ((r, d), mut answer) in rows.iter().zip(done) {
                    let alone = bind_rows(one, [(r, d)]);
                    if let Some(written) = writer
                        .write_for(std::slice::from_mut(&mut answer), alone)
                        .await
                    {
                        let _ = answer.send(written);
                    }
                }
            }
        }
        group = rest;
    }
}

impl HeldWriter {
    /// [`Self::write`] for the creates answered through `done`: stopped part-way and rolled
    /// back, as a cancelled create is (rule 3), once every one of them has been cancelled
    /// (`None`).
    async fn write_for(
        &mut self,
        done: &mut [oneshot::Sender<Result<(), StoreError>>],
        query: Bound<'_>,
    ) -> Option<Result<(), StoreError>> {
        let all_cancelled = std::future::poll_fn(|cx| {
            if done.iter_mut().all(|d| d.poll_closed(cx).is_ready()) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        });
        let written = tokio::select! {
            biased;
            written = self.write(query) => Some(written),
            () = all_cancelled => None,
        };
        if written.is_none() {
            self.0.end_open_tx().await;
        }
        written
    }

    /// Runs `query`, a whole transaction (`BEGIN IMMEDIATE … COMMIT`), in one call (rule 3):
    /// rolled back on failure, and by the next writer (or the drop) if the call is dropped.
    async fn write(&mut self, query: Bound<'_>) -> Result<(), StoreError> {
        let w = &mut *self.0;
        w.open_tx = true;
        let done = query.execute(&mut w.conn).await;
        match done {
            Ok(_) => w.open_tx = false,
            Err(_) => w.end_open_tx().await,
        }
        done?;
        Ok(())
    }
}

/// Most expired sessions one SQLite clean-up statement deletes. The statement holds the
/// database's single write lock throughout; at about 80 µs a row at 1 M rows (1,000 rows took
/// ~80 ms), 250 rows keep it near 20 ms.
pub const SQLITE_CLEANUP_BATCH: u64 = 250;

super::sql::impl_sql_store!(SqliteStore, None::<&'static str>, SQLITE_CLEANUP_BATCH);
super::devices::impl_device_store!(SqliteStore);
super::audit::impl_audit_store!(SqliteStore);
super::dbsc::impl_dbsc_store!(SqliteStore);
