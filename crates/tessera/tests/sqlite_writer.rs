//! The SQLite store's writer connection (store/sqlite.rs): a create that fails or is cancelled
//! half-way leaves no transaction open on it — the next create goes through, and another
//! connection (another process sharing the file) gets the write lock — and never leaves half
//! of a session (a session row without its device row, or the reverse). Creates queued at once
//! are group-committed: one failing or cancelled never fails or loses another.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;
use tessera::{DeviceRow, DeviceStore, SessionRow, SqliteStore, Store};

fn row(handle: &str) -> SessionRow {
    SessionRow {
        app_id: "public".into(),
        tenant_id: "public".into(),
        session_handle: handle.into(),
        user_id: "alice".into(),
        refresh_token_hash2: format!("h2-{handle}"),
        prev_refresh_token_hash2: None,
        refresh_token_rotated_at: None,
        session_data: "{}".into(),
        jwt_user_payload: "{}".into(),
        expires_at: u64::MAX / 4,
        created_at: 1,
        use_static_key: false,
    }
}

fn device(handle: &str) -> DeviceRow {
    DeviceRow {
        app_id: "public".into(),
        tenant_id: "public".into(),
        session_handle: handle.into(),
        user_agent: Some("ua".into()),
        ip: Some("203.0.113.7".into()),
        created_at: 1,
        last_active_at: 1,
        signed_in_at: 1,
    }
}

async fn open() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("w.db")).await.unwrap();
    (store, dir)
}

/// A connection of the store's pool that holds SQLite's write lock (an open
/// `BEGIN IMMEDIATE`) until `COMMIT`, as another process sharing the file would.
async fn hold_write_lock(store: &SqliteStore) -> sqlx::pool::PoolConnection<sqlx::Sqlite> {
    let mut other = store.pool().acquire().await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *other)
        .await
        .unwrap();
    other
}

/// A write on another connection than the store's writer, as another process would make it;
/// it fails ("database is locked") if the writer still held the write lock after the busy
/// timeout of 10 s.
async fn write_elsewhere(store: &SqliteStore, name: &str) {
    sqlx::query(
        "INSERT INTO key_value (app_id, tenant_id, name, value, created_at_time) \
         VALUES ('public', 'public', $1, 'v', 1)",
    )
    .bind(name)
    .execute(store.pool())
    .await
    .expect("the write lock is free");
}

async fn both_or_neither(store: &SqliteStore, handle: &str) -> bool {
    let session = store.get_session("public", "public", handle).await.unwrap();
    let device = store.get_device("public", "public", handle).await.unwrap();
    assert_eq!(
        session.is_some(),
        device.is_some(),
        "half a session: {handle}"
    );
    session.is_some()
}

#[tokio::test]
async fn a_failed_create_is_rolled_back_and_the_writer_goes_on() {
    let (store, _dir) = open().await;
    store
        .insert_session_with_device(&row("a"), &device("a"))
        .await
        .unwrap();
    // The session insert fails (duplicate key) inside the writer's one-call transaction.
    assert!(store
        .insert_session_with_device(&row("a"), &device("a"))
        .await
        .is_err());
    // Still in that transaction, the writer would refuse the next BEGIN, and hold the lock.
    store
        .insert_session_with_device(&row("b"), &device("b"))
        .await
        .expect("the writer is usable after a failed create");
    write_elsewhere(&store, "after-failure").await;
    assert!(both_or_neither(&store, "a").await);
    assert!(both_or_neither(&store, "b").await);
    assert_eq!(store.count_sessions("public").await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_create_leaves_no_transaction_open() {
    let (store, _dir) = open().await;
    // Another connection holds the write lock, so the create's one call to the writer's
    // thread waits in `BEGIN IMMEDIATE` (the busy handler) while the create is cancelled.
    let mut other = hold_write_lock(&store).await;
    let (r, d) = (row("c"), device("c"));
    let create = store.insert_session_with_device(&r, &d);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), create)
            .await
            .is_err(),
        "the create waits for the lock"
    );
    // Released, the lock goes to the cancelled call's BEGIN, which then finds nobody to
    // answer and stops there: a transaction open on the writer, holding the lock.
    sqlx::query("COMMIT").execute(&mut *other).await.unwrap();
    drop(other);
    // SQLite's busy handler retries at most 100 ms apart: by then the BEGIN has the lock.
    tokio::time::sleep(Duration::from_millis(300)).await;
    write_elsewhere(&store, "after-cancel").await;
    store
        .insert_session_with_device(&row("d"), &device("d"))
        .await
        .expect("the writer is usable after a cancelled create");
    assert!(
        !both_or_neither(&store, "c").await,
        "the cancelled create wrote nothing"
    );
    assert!(both_or_neither(&store, "d").await);
}

/// What one create of [`group_commit_interleavings`] was and how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A new handle: must be answered Ok unless cancelled.
    Fresh,
    /// A handle inserted before the run: must fail (the primary key), and fail alone.
    Taken,
    /// One of two creates of the same new handle, racing: exactly one of the two succeeds.
    Twin,
}

/// A small deterministic generator (xorshift64*), so a failing seed can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// Rules 7 and 8 of the store: many creates at once on two worker threads, so they are
/// group-committed (groups above `SQLITE_MAX_GROUP` among them), some failing on a real primary-key
/// violation (a handle already taken, or two creates of one handle in the same group) and
/// some cancelled at a random point. Afterwards every create answered Ok is in the database,
/// whole; no create answered with an error wrote anything; a failure never failed another
/// create (every fresh create that was not cancelled is Ok, and of two twins exactly one);
/// and the writer holds no lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_interleavings() {
    let (store, _dir) = open().await;
    for t in 0..8 {
        let handle = format!("taken-{t}");
        store
            .insert_session_with_device(&row(&handle), &device(&handle))
            .await
            .unwrap();
    }
    let mut expected_rows = 8;
    for seed in 1..=12u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut tasks = Vec::new();
        for i in 0..200 {
            let (kind, handle) = match rng.below(10) {
                0 => (Kind::Taken, format!("taken-{}", rng.below(8))),
                1 => (Kind::Twin, format!("twin-{seed}-{}", rng.below(20))),
                _ => (Kind::Fresh, format!("fresh-{seed}-{i}")),
            };
            // 0: never cancelled; otherwise cancelled after that many yields if not done.
            let cancel_after = if rng.below(4) == 0 {
                1 + rng.below(40)
            } else {
                0
            };
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let (r, d) = (row(&handle), device(&handle));
                let create = store.insert_session_with_device(&r, &d);
                let outcome = if cancel_after == 0 {
                    Some(create.await)
                } else {
                    tokio::select! {
                        outcome = create => Some(outcome),
                        () = async {
                            for _ in 0..cancel_after {
                                tokio::task::yield_now().await;
                            }
                        } => None,
                    }
                };
                (kind, handle, outcome.map(|o| o.is_ok()))
            }));
        }
        let mut twins: std::collections::HashMap<String, (u32, u32)> = Default::default();
        let mut answered = Vec::new();
        for task in tasks {
            answered.push(task.await.unwrap());
        }
        for (kind, handle, ok) in &answered {
            let stored = both_or_neither(&store, handle).await;
            match (kind, ok) {
                (Kind::Taken, Some(true)) => panic!("seed {seed}: {handle} created twice"),
                (_, Some(true)) => assert!(stored, "seed {seed}: {handle} answered Ok, not stored"),
                (Kind::Fresh, Some(false)) => panic!("seed {seed}: {handle} failed"),
                (Kind::Taken, _) => assert!(stored, "seed {seed}: {handle} was deleted"),
                // A twin that failed: its twin may hold the handle; counted below.
                (Kind::Twin, Some(false)) => {}
                // Cancelled: stored or not, but whole (checked above).
                (_, None) => {}
            }
            if *kind == Kind::Twin {
                let e = twins.entry(handle.clone()).or_default();
                match ok {
                    Some(true) => e.0 += 1,
                    Some(false) => e.1 += 1,
                    None => {}
                }
            }
        }
        for (handle, (ok, failed)) in &twins {
            assert!(*ok <= 1, "seed {seed}: {handle} created twice");
            if *failed > 0 {
                assert!(
                    both_or_neither(&store, handle).await,
                    "seed {seed}: {handle} failed with no twin stored"
                );
            }
        }
        // Every stored row is one of a create of this run (or taken before it).
        let mut distinct: Vec<&String> = answered
            .iter()
            .filter(|(kind, _, _)| *kind != Kind::Taken)
            .map(|(_, handle, _)| handle)
            .collect();
        distinct.sort();
        distinct.dedup();
        for handle in distinct {
            if both_or_neither(&store, handle).await {
                expected_rows += 1;
            }
        }
        assert_eq!(
            store.count_sessions("public").await.unwrap(),
            expected_rows,
            "seed {seed}: rows from nowhere"
        );
        write_elsewhere(&store, &format!("after-seed-{seed}")).await;
    }
}

/// Rule 8 of the store with a queue longer than one group: the first `SQLITE_MAX_GROUP` creates are
/// cancelled while their group waits for the write lock (another connection holds it), the
/// ones after them in the queue are still written, and the cancelled ones are not.
#[tokio::test]
async fn a_cancelled_group_does_not_stop_the_ones_queued_after_it() {
    let (store, _dir) = open().await;
    let mut other = hold_write_lock(&store).await;
    let queued = tessera::SQLITE_MAX_GROUP + 8;
    // One thread: every create queues its rows before the first takes the writer.
    let tasks: Vec<_> = (0..queued)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let handle = format!("q-{i}");
                store
                    .insert_session_with_device(&row(&handle), &device(&handle))
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    for task in &tasks[..tessera::SQLITE_MAX_GROUP] {
        task.abort();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    sqlx::query("COMMIT").execute(&mut *other).await.unwrap();
    drop(other);
    for (i, task) in tasks.into_iter().enumerate() {
        let handle = format!("q-{i}");
        if i < tessera::SQLITE_MAX_GROUP {
            assert!(task.await.unwrap_err().is_cancelled());
            assert!(!both_or_neither(&store, &handle).await, "{handle} written");
        } else {
            task.await
                .unwrap()
                .expect("queued after the cancelled group");
            assert!(both_or_neither(&store, &handle).await, "{handle} lost");
        }
    }
    write_elsewhere(&store, "after-group").await;
}
