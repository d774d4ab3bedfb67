//! The audit trail of `tessera serve`: every security event as one structured record. Rules:
//!
//! 1. Every record goes to the `tracing` target `tessera::audit` as fields (filter it with
//!    `TESSERA_LOG=tessera::audit=info`), into an in-memory ring of the last
//!    [`RECENT_CAPACITY`] records (the admin page's list when the store is off), and — when the
//!    operator keeps the audit in the store (`audit_retention_days`) — into
//!    `tessera_audit_event`.
//! 2. Recording never blocks a request: store writes go through a bounded channel
//!    ([`CHANNEL_CAPACITY`]) to one writer task. When the channel is full the record is not
//!    stored (it was still logged), the `audit_records_dropped` counter moves and a warning is
//!    logged at most once a minute.
//! 3. Stored records older than the retention are deleted by a task every hour, in statements
//!    of at most [`tessera::CLEANUP_BATCH`] rows with pauses between them.
//! 4. Records carry no token, token hash, key or secret (see `record`).
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<dyn tessera::Store>) {
//! use tessera_server::audit::{AuditKind, AuditLog, Record};
//! let audit = AuditLog::start(store, Some(30)); // keep 30 days in the store
//! audit.record(Record::new(AuditKind::AppCreated).app("shop"));
//! let sink = audit.sink(); // give it to an engine: SessionEngine::builder(..).events(sink)
//! # let _ = sink; }
//! ```

mod counters;
mod record;

pub use counters::{Counters, COUNTER_NAMES};
pub use record::{now_ms, records_of, AuditKind, Record};

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tessera::{AuditQuery, AuditRow, EventSink, SessionEvent, Store, StoreError};
use tokio::sync::mpsc;

/// Records kept in memory for the admin page.
pub const RECENT_CAPACITY: usize = 500;
/// Records waiting for the store writer at most; more are dropped (counted, warned).
pub const CHANNEL_CAPACITY: usize = 4_096;
/// Most records the writer inserts in one transaction.
const WRITE_BATCH: usize = 256;
/// How often old stored records are deleted.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
/// Shortest pause between two retention statements.
const RETENTION_MIN_PAUSE: Duration = Duration::from_millis(2);
/// Least time between two "records dropped" warnings.
const DROP_WARNING_EVERY_MS: u64 = 60_000;
const DAY_MS: u64 = 86_400_000;

/// Where the admin page's list of records came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordSource {
    /// `tessera_audit_event`.
    Store,
    /// The in-memory ring of this process.
    Memory,
}

/// The server's audit trail: log target, ring, counters and the optional store writer.
pub struct AuditLog {
    store: Arc<dyn Store>,
    retention_days: Option<u32>,
    started_ms: u64,
    recent: Mutex<VecDeque<AuditRow>>,
    counters: Counters,
    writer: Option<mpsc::Sender<AuditRow>>,
    last_drop_warning_ms: AtomicU64,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("retention_days", &self.retention_days)
            .finish_non_exhaustive()
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl AuditLog {
    /// Starts the audit trail on `store`. With `retention_days`, records are also kept in the
    /// store that long (a writer task and an hourly clean-up task are spawned: call this inside
    /// a Tokio runtime). `None` keeps them in the log and the in-memory ring only.
    pub fn start(store: Arc<dyn Store>, retention_days: Option<u32>) -> Arc<Self> {
        let mut tasks = Vec::new();
        let writer = retention_days.map(|days| {
            let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
            tasks.push(tokio::spawn(write_records(Arc::clone(&store), rx)));
            tasks.push(tokio::spawn(delete_old_records(
                Arc::clone(&store),
                u64::from(days).saturating_mul(DAY_MS),
            )));
            tx
        });
        Arc::new(Self {
            store,
            retention_days,
            started_ms: record::now_ms(),
            recent: Mutex::new(VecDeque::with_capacity(RECENT_CAPACITY)),
            counters: Counters::default(),
            writer,
            last_drop_warning_ms: AtomicU64::new(0),
            tasks,
        })
    }

    /// The event sink to give every engine (`EngineBuilder::events`).
    pub fn sink(self: &Arc<Self>) -> Arc<dyn EventSink> {
        Arc::new(AuditSink(Arc::clone(self)))
    }

    /// Records a server-side fact (an app created or removed, an admin action).
    pub fn record(&self, record: Record) {
        if let Some(kind) = AuditKind::parse(&record.0.kind) {
            self.counters.count_kind(kind);
        }
        self.keep(record.into_row());
    }

    /// True when records are kept in the store.
    pub fn stored(&self) -> bool {
        self.writer.is_some()
    }

    /// How many days stored records are kept (`None`: not stored).
    pub fn retention_days(&self) -> Option<u32> {
        self.retention_days
    }

    /// When this process started recording, epoch ms.
    pub fn started_ms(&self) -> u64 {
        self.started_ms
    }

    /// The live counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The newest records matching `query`: from the store when it keeps them, else from the
    /// in-memory ring.
    ///
    /// # Errors
    /// A store failure.
    pub async fn latest(
        &self,
        query: &AuditQuery,
    ) -> Result<(Vec<AuditRow>, RecordSource), StoreError> {
        if self.stored() {
            return Ok((self.store.audit_events(query).await?, RecordSource::Store));
        }
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let matches = |r: &&AuditRow| {
            query.kind.as_deref().is_none_or(|k| r.kind == k)
                && query
                    .user_id
                    .as_deref()
                    .is_none_or(|u| r.user_id.as_deref() == Some(u))
                && query
                    .app_id
                    .as_deref()
                    .is_none_or(|a| r.app_id.as_deref() == Some(a))
                && query.since_ms.is_none_or(|t| r.at_ms >= t)
                && query.until_ms.is_none_or(|t| r.at_ms < t)
        };
        let rows = recent
            .iter()
            .rev()
            .filter(matches)
            .take(query.effective_limit() as usize)
            .cloned()
            .collect();
        Ok((rows, RecordSource::Memory))
    }

    /// Logs, rings and (when stored) queues one row.
    fn keep(&self, row: AuditRow) {
        record::trace(&row);
        if let Some(writer) = &self.writer {
            if writer.try_send(row.clone()).is_err() {
                self.dropped();
            }
        }
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() >= RECENT_CAPACITY {
            recent.pop_front();
        }
        recent.push_back(row);
    }

    fn dropped(&self) {
        self.counters.add(counters::DROPPED, 1);
        let now = record::now_ms();
        let last = self.last_drop_warning_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= DROP_WARNING_EVERY_MS
            && self
                .last_drop_warning_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                capacity = CHANNEL_CAPACITY,
                "audit store writer is behind: records are logged but not stored (see the \
                 audit_records_dropped counter)"
            );
        }
    }
}

/// The [`EventSink`] half of an [`AuditLog`]: counts every event and records the security
/// events. Called inline by the engine; takes one short lock (the ring) and never waits.
pub struct AuditSink(Arc<AuditLog>);

impl EventSink for AuditSink {
    fn record(&self, event: &SessionEvent<'_>) {
        self.0.counters.count_event(event);
        for record in records_of(event) {
            self.0.keep(record.into_row());
        }
    }
}

/// The store writer: receives records and inserts them in batches until the channel closes.
async fn write_records(store: Arc<dyn Store>, mut rx: mpsc::Receiver<AuditRow>) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    while rx.recv_many(&mut batch, WRITE_BATCH).await > 0 {
        if let Err(e) = store.insert_audit_events(&batch).await {
            tracing::warn!(error = %e, records = batch.len(), "cannot store audit records");
        }
        batch.clear();
    }
}

/// Deletes stored records older than `keep_ms`, every [`RETENTION_EVERY`].
async fn delete_old_records(store: Arc<dyn Store>, keep_ms: u64) {
    let mut tick = tokio::time::interval(RETENTION_EVERY);
    loop {
        tick.tick().await;
        let cutoff = record::now_ms().saturating_sub(keep_ms);
        match delete_records_before(store.as_ref(), cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(records = n, "audit retention removed old records"),
            Err(e) => tracing::warn!(error = %e, "audit retention clean-up failed"),
        }
    }
}

/// Deletes stored records older than `cutoff_ms` in statements of at most
/// [`tessera::CLEANUP_BATCH`] rows, pausing between them at least as long as the statement
/// took (so writers get the database at least half of the time); returns the count.
///
/// ```no_run
/// # async fn demo(store: &dyn tessera::Store) -> Result<(), tessera::StoreError> {
/// let day_ago = 1_700_000_000_000 - 86_400_000;
/// let removed = tessera_server::audit::delete_records_before(store, day_ago).await?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// A store failure; what was deleted before it stays deleted.
pub async fn delete_records_before(store: &dyn Store, cutoff_ms: u64) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let started = std::time::Instant::now();
        let n = store
            .delete_audit_events_before(cutoff_ms, tessera::CLEANUP_BATCH)
            .await?;
        total += n;
        if n < tessera::CLEANUP_BATCH {
            return Ok(total);
        }
        tokio::time::sleep(started.elapsed().max(RETENTION_MIN_PAUSE)).await;
    }
}
