//! `bench-cleanup`: times the expired-session clean-up of a filled store, statement by statement.
//! Used by `scripts/bench-growth.sh` at 1 M sessions.
//!
//! 1. **The engine's statement, the engine's loop.** Each batch is the store's own
//!    [`Store::delete_expired_sessions`] with [`Store::cleanup_batch`] rows, the call
//!    `SessionEngine::cleanup` makes; between batches it pauses as the engine does (as long as
//!    the statement took, at least 2 ms), and stops at the first batch shorter than a full one.
//!    The loop is restated here only so each statement can be timed; what it runs is the engine's.
//! 2. **`now` comes from the caller** (`--now-ms`), so a store filled with sessions that expire
//!    later can be cleaned as if that time had come.
//! 3. **A concurrent writer is the probe of the write lock.** With `--probe-handle`, a task
//!    updates that live session's data every 5 ms (the store's `update_session_data`, a write a
//!    real server makes), first for 1 s before the clean-up (the baseline), then during it; its
//!    latency is what a request waiting on the clean-up's lock sees. On SQLite a statement holds
//!    the database's single write lock for its whole duration; on PostgreSQL it locks only the
//!    rows it deletes, so the probe (on a row that is not expiring) measures contention, not a
//!    lock wait.
//! 4. **Output** is one line per fact, for the script to parse: `BATCH <n> <rows> <µs>`,
//!    `PROBE <before|during> <µs>`, then `TOTAL rows=<n> batches=<n> wall_us=<µs>`.

use clap::Parser;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera::Store;

/// Flags.
#[derive(Debug, Parser)]
struct Args {
    /// SQLite database file (as `tessera serve --sqlite-path`).
    #[arg(long, conflicts_with = "postgres")]
    sqlite: Option<std::path::PathBuf>,
    /// PostgreSQL URL (as `tessera serve --database-url`).
    #[arg(long, requires = "schema")]
    postgres: Option<String>,
    /// PostgreSQL schema (as `tessera serve --database-schema`).
    #[arg(long)]
    schema: Option<String>,
    /// The clean-up's notion of now, in epoch milliseconds.
    #[arg(long)]
    now_ms: u64,
    /// A live session (public app and tenant) the probe writer updates.
    #[arg(long)]
    probe_handle: Option<String>,
}

/// The engine's shortest pause between two clean-up statements (`CLEANUP_MIN_PAUSE`).
const MIN_PAUSE: Duration = Duration::from_millis(2);
/// How often the probe writes.
const PROBE_EVERY: Duration = Duration::from_millis(5);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let store: Arc<dyn Store> = match (&args.sqlite, &args.postgres) {
        (Some(path), None) => Arc::new(tessera::SqliteStore::open(path).await?),
        (None, Some(url)) => {
            Arc::new(tessera::PostgresStore::connect(url, args.schema.as_deref()).await?)
        }
        _ => return Err("give --sqlite PATH or --postgres URL --schema NAME".into()),
    };

    let during = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let probe = args.probe_handle.clone().map(|handle| {
        let (store, during, stop) = (store.clone(), during.clone(), stop.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let phase = if during.load(Ordering::Relaxed) {
                    "during"
                } else {
                    "before"
                };
                let began = Instant::now();
                let now = args.now_ms;
                let updated = store
                    .update_session_data("public", "public", &handle, "{}", now)
                    .await;
                seen.push((phase, began.elapsed().as_micros(), updated));
                tokio::time::sleep(PROBE_EVERY).await;
            }
            seen
        })
    });
    if probe.is_some() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    during.store(true, Ordering::Relaxed);
    let began = Instant::now();
    let (mut rows, mut batches) = (0u64, 0u64);
    let batch = store.cleanup_batch();
    loop {
        let started = Instant::now();
        let deleted = store.delete_expired_sessions(args.now_ms, batch).await?;
        let took = started.elapsed();
        batches += 1;
        rows += deleted;
        println!("BATCH {batches} {deleted} {}", took.as_micros());
        if deleted < batch {
            break;
        }
        tokio::time::sleep(took.max(MIN_PAUSE)).await;
    }
    let wall = began.elapsed();
    stop.store(true, Ordering::Relaxed);

    if let Some(probe) = probe {
        for (phase, micros, updated) in probe.await? {
            match updated {
                Ok(true) => println!("PROBE {phase} {micros}"),
                Ok(false) => return Err("the probe session is gone or expired".into()),
                Err(e) => return Err(format!("probe write failed: {e}").into()),
            }
        }
    }
    println!(
        "TOTAL rows={rows} batches={batches} wall_us={}",
        wall.as_micros()
    );
    Ok(())
}
