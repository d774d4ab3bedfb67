//! One test-suite for every `Store` implementation: the same assertions on SQLite and
//! PostgreSQL, including the atomicity of compare-and-set and of key creation across two
//! connections (two instances).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use tessera::{LineageUpdate, SessionRow, Store, StoredKey};
use tessera_testkit::{fresh_store, fresh_store_pair, on_both_stores, Backend};

fn row(handle: &str, user: &str, tenant: &str, expires_at: u64) -> SessionRow {
    SessionRow {
        app_id: "public".into(),
        tenant_id: tenant.into(),
        session_handle: handle.into(),
        user_id: user.into(),
        refresh_token_hash2: format!("h2-{handle}"),
        prev_refresh_token_hash2: None,
        refresh_token_rotated_at: None,
        session_data: r#"{"d":1}"#.into(),
        jwt_user_payload: r#"{"p":1}"#.into(),
        expires_at,
        created_at: 1,
        use_static_key: false,
    }
}

async fn sessions_crud(backend: Backend) {
    let store = fresh_store(backend).await;
    let r = row("h1", "alice", "public", 1_000);
    store.insert_session(&r).await.unwrap();
    assert!(
        store.insert_session(&r).await.is_err(),
        "duplicate handle refused"
    );
    assert_eq!(
        store.get_session("public", "public", "h1").await.unwrap(),
        Some(r.clone())
    );
    assert_eq!(
        store.get_session("public", "other", "h1").await.unwrap(),
        None
    );
    assert_eq!(
        store.get_session("app2", "public", "h1").await.unwrap(),
        None,
        "apps are isolated"
    );

    assert!(store
        .update_jwt_payload("public", "public", "h1", r#"{"p":2}"#, 999)
        .await
        .unwrap());
    assert!(
        !store
            .update_jwt_payload("public", "public", "h1", "{}", 1_000)
            .await
            .unwrap(),
        "expired"
    );
    assert!(store
        .update_session_data("public", "public", "h1", r#"{"d":2}"#, 0)
        .await
        .unwrap());
    assert!(!store
        .update_session_data("public", "public", "nope", "{}", 0)
        .await
        .unwrap());
    store
        .set_use_static_key("public", "public", "h1", true)
        .await
        .unwrap();
    let got = store
        .get_session("public", "public", "h1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.jwt_user_payload, r#"{"p":2}"#);
    assert_eq!(got.session_data, r#"{"d":2}"#);
    assert!(got.use_static_key);

    store
        .insert_session(&row("h2", "alice", "acme", 2_000))
        .await
        .unwrap();
    store
        .insert_session(&row("h3", "bob", "public", 2_000))
        .await
        .unwrap();
    let all = store
        .session_handles_for_user("public", None, "alice", 500)
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let acme = store
        .session_handles_for_user("public", Some("acme"), "alice", 500)
        .await
        .unwrap();
    assert_eq!(acme, vec![("acme".to_string(), "h2".to_string())]);
    let live = store
        .session_handles_for_user("public", None, "alice", 1_500)
        .await
        .unwrap();
    assert_eq!(live.len(), 1, "expired rows are not listed");

    let deleted = store
        .delete_sessions(
            "public",
            &[
                ("public".into(), "h1".into()),
                ("public".into(), "nope".into()),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        deleted,
        vec![tessera::DeletedSession {
            session_handle: "h1".into(),
            user_id: "alice".into(),
        }],
        "only sessions that existed, each with its user"
    );
    assert_eq!(store.count_sessions("public").await.unwrap(), 2);
    assert_eq!(
        store.delete_expired_sessions(2_000, 1_000).await.unwrap(),
        2
    );
    assert_eq!(store.count_sessions("public").await.unwrap(), 0);
    store.ping().await.unwrap();
}

async fn lineage_compare_and_set(backend: Backend) {
    let store = fresh_store(backend).await;
    store
        .insert_session(&row("h", "u", "public", 1_000))
        .await
        .unwrap();
    let update = |expected: &'static str| LineageUpdate {
        expected_current: expected,
        current: "h2-next",
        prev: Some("h2-h"),
        rotated_at: Some(5),
        expires_at: 9_000,
        use_static_key: true,
    };
    assert!(!store
        .update_lineage("public", "public", "h", &update("stale"))
        .await
        .unwrap());
    assert!(store
        .update_lineage("public", "public", "h", &update("h2-h"))
        .await
        .unwrap());
    assert!(
        !store
            .update_lineage("public", "public", "h", &update("h2-h"))
            .await
            .unwrap(),
        "second CAS loses"
    );
    let got = store
        .get_session("public", "public", "h")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.refresh_token_hash2, "h2-next");
    assert_eq!(got.prev_refresh_token_hash2.as_deref(), Some("h2-h"));
    assert_eq!(got.refresh_token_rotated_at, Some(5));
    assert_eq!(got.expires_at, 9_000);
}

// Concurrent compare-and-set from two connections: exactly one wins.
async fn lineage_cas_is_atomic_across_instances(backend: Backend) {
    let (a, b) = fresh_store_pair(backend).await;
    a.insert_session(&row("h", "u", "public", 1_000))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store: Arc<dyn Store> = if i % 2 == 0 {
                Arc::clone(&a)
            } else {
                Arc::clone(&b)
            };
            tokio::spawn(async move {
                let current = format!("winner-{i}");
                let u = LineageUpdate {
                    expected_current: "h2-h",
                    current: &current,
                    prev: Some("h2-h"),
                    rotated_at: Some(1),
                    expires_at: 1_000,
                    use_static_key: false,
                };
                loop {
                    match store.update_lineage("public", "public", "h", &u).await {
                        Ok(won) => return won,
                        Err(_) => tokio::task::yield_now().await, // SQLite busy: retry
                    }
                }
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
}

fn key(kid: &str, created: u64) -> StoredKey {
    StoredKey {
        kid: kid.into(),
        value: format!("pub|priv-{kid}"),
        created_at: created,
    }
}

// Two instances starting at the same moment on an empty database agree on one key.
async fn key_creation_is_atomic_across_instances(backend: Backend) {
    let (a, b) = fresh_store_pair(backend).await;
    let tasks: Vec<_> = (0..10u64)
        .map(|i| {
            let store = if i % 2 == 0 {
                Arc::clone(&a)
            } else {
                Arc::clone(&b)
            };
            tokio::spawn(async move {
                let dynamic = loop {
                    match store
                        .insert_dynamic_key_unless_fresh(
                            "public",
                            &key(&format!("d-{}", 1_000 + i), 1_000 + i),
                            500,
                        )
                        .await
                    {
                        Ok(v) => break v,
                        Err(_) => tokio::task::yield_now().await,
                    }
                };
                let static_ = loop {
                    match store
                        .insert_static_key_unless_present(
                            "public",
                            &key(&format!("s-{i}"), 1_000 + i),
                        )
                        .await
                    {
                        Ok(v) => break v,
                        Err(_) => tokio::task::yield_now().await,
                    }
                };
                (dynamic, static_)
            })
        })
        .collect();
    let (mut d, mut s) = (0, 0);
    for t in tasks {
        let (di, si) = t.await.unwrap();
        d += usize::from(di);
        s += usize::from(si);
    }
    assert_eq!(
        (d, s),
        (1, 1),
        "exactly one dynamic and one static key inserted"
    );
    assert_eq!(a.dynamic_keys("public", 0).await.unwrap().len(), 1);
    assert_eq!(b.static_keys("public").await.unwrap().len(), 1);
    // A stale key does not block a new one; fresh ones do.
    assert!(!a
        .insert_dynamic_key_unless_fresh("public", &key("d-2000", 2_000), 1_000)
        .await
        .unwrap());
    assert!(a
        .insert_dynamic_key_unless_fresh("public", &key("d-3000", 3_000), 2_500)
        .await
        .unwrap());
    let keys = a.dynamic_keys("public", 0).await.unwrap();
    assert_eq!(keys[0].kid, "d-3000", "newest first");
    assert_eq!(a.dynamic_keys("public", 2_000).await.unwrap().len(), 1);
    assert_eq!(
        a.delete_dynamic_keys_before("public", 3_000).await.unwrap(),
        1
    );
    assert!(a.dynamic_keys("other-app", 0).await.unwrap().is_empty());
}

async fn key_value_first_writer_wins(backend: Backend) {
    let (a, b) = fresh_store_pair(backend).await;
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let store = if i % 2 == 0 {
                Arc::clone(&a)
            } else {
                Arc::clone(&b)
            };
            tokio::spawn(async move {
                loop {
                    match store
                        .get_or_insert_key_value("public", "refresh_token_key", &format!("v{i}"), 1)
                        .await
                    {
                        Ok(v) => return v,
                        Err(_) => tokio::task::yield_now().await,
                    }
                }
            })
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    for t in tasks {
        seen.insert(t.await.unwrap());
    }
    assert_eq!(seen.len(), 1, "every instance reads the same master key");
    let other = a
        .get_or_insert_key_value("app2", "refresh_token_key", "x", 1)
        .await
        .unwrap();
    assert_eq!(other, "x", "per app");
}

/// Issue 16: the create path writes the session and its device row in one call, both or
/// neither; the refresh path reads the row with its DBSC binding in one query.
async fn session_with_device_and_refresh_read(backend: Backend) {
    use tessera::{DbscBinding, DeviceRow};
    let store = fresh_store(backend).await;
    let r = row("hd", "alice", "public", 1_000);
    let device = |ua: &str| DeviceRow {
        app_id: "public".into(),
        tenant_id: "public".into(),
        session_handle: "hd".into(),
        user_agent: Some(ua.into()),
        ip: Some("203.0.113.7".into()),
        created_at: 1,
        last_active_at: 1,
        signed_in_at: 1,
    };
    store
        .insert_session_with_device(&r, &device("first"))
        .await
        .unwrap();
    assert_eq!(
        store.get_session("public", "public", "hd").await.unwrap(),
        Some(r.clone())
    );
    assert_eq!(
        store.get_device("public", "public", "hd").await.unwrap(),
        Some(device("first"))
    );
    let mut again = r.clone();
    again.user_id = "mallory".into();
    assert!(
        store
            .insert_session_with_device(&again, &device("second"))
            .await
            .is_err(),
        "duplicate handle refused"
    );
    assert_eq!(
        store.get_device("public", "public", "hd").await.unwrap(),
        Some(device("first")),
        "a refused create writes no device row"
    );

    assert_eq!(
        store
            .get_session_for_refresh("public", "public", "hd")
            .await
            .unwrap(),
        Some((r.clone(), false))
    );
    assert_eq!(
        store
            .get_session_for_refresh("public", "public", "nope")
            .await
            .unwrap(),
        None
    );
    let binding = DbscBinding {
        app_id: "public".into(),
        tenant_id: "public".into(),
        session_handle: "hd".into(),
        dbsc_session_id: "dbsc-1".into(),
        jwk_thumbprint: "t".into(),
        public_jwk: "{}".into(),
        algorithm: "ES256".into(),
        bound_at: 5,
    };
    assert_eq!(
        store.bind_dbsc_key(&binding, 10).await.unwrap(),
        Some(binding.clone())
    );
    assert_eq!(
        store
            .get_session_for_refresh("public", "public", "hd")
            .await
            .unwrap(),
        Some((r, true))
    );
}

on_both_stores!(
    sessions_crud,
    lineage_compare_and_set,
    lineage_cas_is_atomic_across_instances,
    key_creation_is_atomic_across_instances,
    key_value_first_writer_wins,
    session_with_device_and_refresh_read,
);
