//! The SQLite store's writer connection (store/sqlite.rs): a create that fails or is cancelled
//! half-way leaves no transaction open on it — the next create goes through, and another
//! connection (another process sharing the file) gets the write lock — and never leaves half
//! of a session (a session row without its device row, or the reverse).
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
    let mut other = store.pool().acquire().await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *other)
        .await
        .unwrap();
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
