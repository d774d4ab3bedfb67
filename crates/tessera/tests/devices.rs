//! Issue 15: devices, sign out others, idle and absolute lifetimes, the per-user cap and the
//! sign-in time claim, on SQLite and PostgreSQL with the manual clock.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use tessera::{
    Clock, DeviceConfig, DeviceInfo, DevicePage, InputError, ManualClock, NewSession, OverCap,
    RefreshOptions, SessionConfig, SessionEngine, SessionError, SessionTokens, Store,
    VerifyOptions,
};
use tessera_testkit::engine::test_config;
use tessera_testkit::{fresh_store, on_both_stores, Backend};

const MINUTE: u64 = 60_000;
const CHROME_LINUX: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like \
                            Gecko) Chrome/120.0.0.0 Safari/537.36";
const FIREFOX_WINDOWS: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0";

async fn setup(
    backend: Backend,
    devices: DeviceConfig,
) -> (SessionEngine, Arc<ManualClock>, Arc<dyn Store>) {
    let store = fresh_store(backend).await;
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let engine = SessionEngine::builder(Arc::clone(&store))
        .config(SessionConfig {
            access_token_validity_ms: 60 * MINUTE,
            refresh_token_validity_ms: 24 * 60 * MINUTE,
            ..test_config()
        })
        .devices(devices)
        .clock(Arc::clone(&clock) as Arc<dyn tessera::Clock>)
        .build()
        .await
        .expect("engine");
    (engine, clock, store)
}

fn device(ua: &str, ip: &str) -> DeviceInfo {
    DeviceInfo {
        user_agent: Some(ua.into()),
        ip: Some(ip.into()),
    }
}

async fn sign_in(engine: &SessionEngine, user: &str, ua: &str) -> SessionTokens {
    engine
        .create_session_on_device(NewSession::for_user(user), device(ua, "203.0.113.7"))
        .await
        .expect("create")
}

async fn refresh(
    engine: &SessionEngine,
    tokens: &SessionTokens,
) -> Result<SessionTokens, SessionError> {
    engine
        .refresh_session(&tokens.refresh_token.token, RefreshOptions::default())
        .await
}

fn db_check() -> VerifyOptions<'static> {
    VerifyOptions {
        check_database: true,
        ..Default::default()
    }
}

async fn last_active(store: &Arc<dyn Store>, handle: &str) -> u64 {
    store
        .get_device("public", "public", handle)
        .await
        .unwrap()
        .expect("device row")
        .last_active_at
}

/// Off by default: the token has exactly the core's claims (SuperTokens SessionTest1).
async fn sign_in_time_claim_is_off_by_default(backend: Backend) {
    let (engine, _clock, _store) = setup(backend, DeviceConfig::default()).await;
    let s = sign_in(&engine, "alice", CHROME_LINUX).await;
    let claims = engine
        .verify_access_token(&s.access_token.token)
        .await
        .unwrap();
    assert_eq!(claims.auth_time, None);
    let s = refresh(&engine, &s).await.unwrap();
    let claims = engine
        .verify_access_token(&s.access_token.token)
        .await
        .unwrap();
    assert_eq!(claims.auth_time, None);
}

/// Metadata is recorded, listed newest activity first with labels, the caller's marked,
/// paged; user agents are bounded; a bad IP is refused before any write.
async fn devices_are_recorded_and_listed(backend: Backend) {
    let (engine, clock, store) = setup(backend, DeviceConfig::default()).await;
    let a = sign_in(&engine, "alice", CHROME_LINUX).await;
    clock.advance_ms(MINUTE);
    let b = sign_in(&engine, "alice", FIREFOX_WINDOWS).await;
    sign_in(&engine, "bob", CHROME_LINUX).await;

    let listed = engine
        .list_devices("alice", Some(&a.session.handle), DevicePage::default())
        .await
        .unwrap();
    assert_eq!(listed.len(), 2, "only alice's sessions");
    assert_eq!(listed[0].handle, b.session.handle, "newest activity first");
    assert_eq!(listed[0].label, "Firefox on Windows 10");
    assert_eq!(listed[1].label, "Chrome on Linux");
    assert_eq!(listed[1].user_agent.as_deref(), Some(CHROME_LINUX));
    assert_eq!(listed[1].ip.as_deref(), Some("203.0.113.7"));
    assert!(listed[1].current && !listed[0].current);
    assert_eq!(listed[1].created_at, 1_700_000_000_000);

    // Refreshing a moves it to the top.
    clock.advance_ms(MINUTE);
    refresh(&engine, &a).await.unwrap();
    let listed = engine
        .list_devices("alice", None, DevicePage::default())
        .await
        .unwrap();
    assert_eq!(listed[0].handle, a.session.handle);
    assert_eq!(listed[0].last_active_at, 1_700_000_000_000 + 2 * MINUTE);

    // Paged.
    let page = DevicePage {
        limit: 1,
        offset: 1,
    };
    let second = engine.list_devices("alice", None, page).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].handle, b.session.handle);

    // Bounded user agent, stored as given up to the bound; markup is kept as text.
    let long = format!("<script>alert(1)</script>{}", "é".repeat(600));
    let c = sign_in(&engine, "carol", &long).await;
    let row = store
        .get_device("public", "public", &c.session.handle)
        .await
        .unwrap()
        .unwrap();
    let ua = row.user_agent.unwrap();
    assert!(ua.len() <= tessera::MAX_USER_AGENT_LEN && ua.len() >= 510);
    assert!(long.starts_with(&ua));

    // A bad IP is refused before any write.
    let before = store.count_sessions("public").await.unwrap();
    let bad = engine
        .create_session_on_device(
            NewSession::for_user("dave"),
            device(CHROME_LINUX, "1.2.3.4<b>"),
        )
        .await;
    assert!(matches!(bad, Err(SessionError::InvalidInput(_))), "{bad:?}");
    assert_eq!(store.count_sessions("public").await.unwrap(), before);
}

/// Last-active moves at refresh (at most once per interval), never at verify.
async fn last_active_moves_only_at_refresh(backend: Backend) {
    let devices = DeviceConfig {
        last_active_interval_ms: 5 * MINUTE,
        ..Default::default()
    };
    let (engine, clock, store) = setup(backend, devices).await;
    let t0 = 1_700_000_000_000;
    let s = sign_in(&engine, "alice", CHROME_LINUX).await;
    clock.advance_ms(MINUTE);
    engine
        .verify_session(&s.access_token.token, VerifyOptions::default())
        .await
        .unwrap();
    engine
        .verify_session(&s.access_token.token, db_check())
        .await
        .unwrap();
    assert_eq!(
        last_active(&store, &s.session.handle).await,
        t0,
        "verify writes nothing"
    );
    // Within the interval: no write.
    let s = refresh(&engine, &s).await.unwrap();
    assert_eq!(last_active(&store, &s.session.handle).await, t0);
    // Past it: written.
    clock.advance_ms(5 * MINUTE);
    let s = refresh(&engine, &s).await.unwrap();
    assert_eq!(
        last_active(&store, &s.session.handle).await,
        t0 + 6 * MINUTE
    );
    // The first verify of the new token (promotion) is not activity either.
    clock.advance_ms(MINUTE);
    engine
        .verify_session(&s.access_token.token, VerifyOptions::default())
        .await
        .unwrap();
    assert_eq!(
        last_active(&store, &s.session.handle).await,
        t0 + 6 * MINUTE
    );
}

/// Idle timeout: a session not refreshed for X ends, at refresh and at a database-checked
/// verify; refreshing keeps it alive.
async fn req_06_idle_timeout_ends_idle_sessions(backend: Backend) {
    let devices = DeviceConfig {
        idle_timeout_ms: Some(10 * MINUTE),
        ..Default::default()
    };
    let (engine, clock, store) = setup(backend, devices).await;
    let s = sign_in(&engine, "alice", CHROME_LINUX).await;
    clock.advance_ms(9 * MINUTE);
    let s = refresh(&engine, &s)
        .await
        .expect("active within the idle timeout");
    clock.advance_ms(9 * MINUTE);
    let s = refresh(&engine, &s)
        .await
        .expect("refresh moved last-active");
    clock.advance_ms(10 * MINUTE);
    let verified = engine
        .verify_session(&s.access_token.token, db_check())
        .await;
    assert!(
        matches!(verified, Err(SessionError::Unauthorised(_))),
        "{verified:?}"
    );
    assert_eq!(
        store.count_sessions("public").await.unwrap(),
        0,
        "ended session deleted"
    );
    let refreshed = refresh(&engine, &s).await;
    assert!(
        matches!(refreshed, Err(SessionError::Unauthorised(_))),
        "{refreshed:?}"
    );

    // At refresh too.
    let s = sign_in(&engine, "alice", CHROME_LINUX).await;
    clock.advance_ms(10 * MINUTE);
    let refreshed = refresh(&engine, &s).await;
    assert!(
        matches!(refreshed, Err(SessionError::Unauthorised(_))),
        "{refreshed:?}"
    );
    assert!(engine
        .list_devices("alice", None, DevicePage::default())
        .await
        .unwrap()
        .is_empty());
}

/// Absolute lifetime: a session ends X after sign-in however active.
async fn req_06_absolute_lifetime_ends_active_sessions(backend: Backend) {
    let devices = DeviceConfig {
        absolute_lifetime_ms: Some(30 * MINUTE),
        ..Default::default()
    };
    let (engine, clock, _store) = setup(backend, devices).await;
    let mut s = sign_in(&engine, "alice", CHROME_LINUX).await;
    for _ in 0..5 {
        clock.advance_ms(5 * MINUTE);
        s = refresh(&engine, &s).await.expect("within the lifetime");
    }
    clock.advance_ms(4 * MINUTE);
    engine
        .verify_session(&s.access_token.token, db_check())
        .await
        .unwrap();
    clock.advance_ms(MINUTE);
    let verified = engine
        .verify_session(&s.access_token.token, db_check())
        .await;
    assert!(
        matches!(verified, Err(SessionError::Unauthorised(_))),
        "{verified:?}"
    );
    let refreshed = refresh(&engine, &s).await;
    assert!(
        matches!(refreshed, Err(SessionError::Unauthorised(_))),
        "{refreshed:?}"
    );
}

/// Both lifetimes are off by default: a session idle for most of its refresh validity lives.
async fn lifetimes_are_off_by_default(backend: Backend) {
    let (engine, clock, _store) = setup(backend, DeviceConfig::default()).await;
    let s = sign_in(&engine, "alice", CHROME_LINUX).await;
    clock.advance_ms(20 * 60 * MINUTE);
    let s = refresh(&engine, &s).await.unwrap();
    engine
        .verify_session(&s.access_token.token, VerifyOptions::default())
        .await
        .unwrap();
    clock.advance_ms(20 * 60 * MINUTE);
    refresh(&engine, &s).await.unwrap();
}

/// Cap, first way: the least recently active session makes room.
async fn cap_revokes_least_recently_active(backend: Backend) {
    let devices = DeviceConfig {
        max_sessions_per_user: Some(2),
        ..Default::default()
    };
    let (engine, clock, _store) = setup(backend, devices).await;
    let s1 = sign_in(&engine, "alice", CHROME_LINUX).await;
    clock.advance_ms(MINUTE);
    let s2 = sign_in(&engine, "alice", FIREFOX_WINDOWS).await;
    clock.advance_ms(MINUTE);
    refresh(&engine, &s1).await.unwrap();
    clock.advance_ms(MINUTE);
    let s3 = sign_in(&engine, "alice", CHROME_LINUX).await;
    sign_in(&engine, "bob", CHROME_LINUX).await;
    let mut left: Vec<String> = engine
        .list_devices("alice", None, DevicePage::default())
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.handle)
        .collect();
    left.sort();
    let mut want = vec![s1.session.handle.clone(), s3.session.handle.clone()];
    want.sort();
    assert_eq!(left, want, "s2 was the least recently active");
    let gone = refresh(&engine, &s2).await;
    assert!(matches!(gone, Err(SessionError::Unauthorised(_))));
}

/// Cap, second way: the sign-in is refused and nothing changes.
async fn cap_refuses_sign_in(backend: Backend) {
    let devices = DeviceConfig {
        max_sessions_per_user: Some(2),
        over_cap: OverCap::RefuseSignIn,
        ..Default::default()
    };
    let (engine, _clock, store) = setup(backend, devices).await;
    sign_in(&engine, "alice", CHROME_LINUX).await;
    sign_in(&engine, "alice", CHROME_LINUX).await;
    let third = engine
        .create_session_on_device(NewSession::for_user("alice"), DeviceInfo::default())
        .await;
    assert!(
        matches!(
            third,
            Err(SessionError::InvalidInput(InputError::SessionLimitReached(
                2
            )))
        ),
        "{third:?}"
    );
    assert_eq!(store.count_sessions("public").await.unwrap(), 2);
    sign_in(&engine, "bob", CHROME_LINUX).await;
}

/// A handle of another user is "not found" and stays live; the owner can revoke it.
async fn revoke_device_checks_ownership(backend: Backend) {
    let (engine, _clock, _store) = setup(backend, DeviceConfig::default()).await;
    let alice = sign_in(&engine, "alice", CHROME_LINUX).await;
    let handle = &alice.session.handle;
    assert!(!engine.revoke_device("bob", handle).await.unwrap());
    engine
        .verify_session(&alice.access_token.token, db_check())
        .await
        .unwrap();
    assert!(!engine
        .revoke_device("alice", "no-such-handle")
        .await
        .unwrap());
    assert!(!engine.revoke_device("alice", "").await.unwrap());
    assert!(!engine.revoke_device("alice", "a\0b").await.unwrap());
    assert!(engine.revoke_device("alice", handle).await.unwrap());
    let gone = engine
        .verify_session(&alice.access_token.token, db_check())
        .await;
    assert!(matches!(gone, Err(SessionError::Unauthorised(_))));
    assert!(
        !engine.revoke_device("alice", handle).await.unwrap(),
        "already gone"
    );
}

/// Sign out everywhere else: every other session of the user (every tenant), not others'.
async fn req_07_revoke_other_devices_keeps_current(backend: Backend) {
    let (engine, _clock, _store) = setup(backend, DeviceConfig::default()).await;
    let mine = sign_in(&engine, "alice", CHROME_LINUX).await;
    let other = sign_in(&engine, "alice", FIREFOX_WINDOWS).await;
    let mut in_tenant = NewSession::for_user("alice");
    in_tenant.tenant_id = "acme".into();
    let tenant = engine.create_session(in_tenant).await.unwrap();
    let bob = sign_in(&engine, "bob", CHROME_LINUX).await;
    let mut revoked = engine
        .revoke_other_devices(&mine.session.handle)
        .await
        .unwrap();
    revoked.sort();
    let mut want = vec![other.session.handle.clone(), tenant.session.handle.clone()];
    want.sort();
    assert_eq!(revoked, want);
    engine
        .verify_session(&mine.access_token.token, db_check())
        .await
        .unwrap();
    engine
        .verify_session(&bob.access_token.token, db_check())
        .await
        .unwrap();
    let gone = refresh(&engine, &other).await;
    assert!(matches!(gone, Err(SessionError::Unauthorised(_))));
    let unknown = engine.revoke_other_devices("no-such-handle").await;
    assert!(matches!(unknown, Err(SessionError::Unauthorised(_))));
}

/// The access token carries the sign-in time, kept across refresh and regenerate; an app
/// payload cannot set it; renewing it after re-authentication moves it without a new session.
async fn sign_in_time_claim_is_kept_and_renewable(backend: Backend) {
    let devices = DeviceConfig {
        sign_in_time_claim: true,
        ..Default::default()
    };
    let (engine, clock, _store) = setup(backend, devices).await;
    let t0_s = 1_700_000_000;
    let s = sign_in(&engine, "alice", CHROME_LINUX).await;
    let claims = engine
        .verify_access_token(&s.access_token.token)
        .await
        .unwrap();
    assert_eq!(claims.auth_time, Some(t0_s));
    assert!(!claims.user_claims.contains_key("auth_time"));
    assert!(
        !s.session.user_data_in_jwt.contains_key("auth_time"),
        "CDI body unchanged"
    );

    clock.advance_ms(10 * MINUTE);
    let s = refresh(&engine, &s).await.unwrap();
    let claims = engine
        .verify_access_token(&s.access_token.token)
        .await
        .unwrap();
    assert_eq!(claims.auth_time, Some(t0_s), "kept across refresh");
    assert!(!tessera::signed_in_within(
        &claims,
        clock.now_ms(),
        5 * MINUTE
    ));
    assert!(tessera::signed_in_within(
        &claims,
        clock.now_ms(),
        10 * MINUTE
    ));

    // A payload naming it (as SDKs send the whole payload back) does not change it.
    let mut payload = serde_json::Map::new();
    payload.insert("auth_time".into(), serde_json::json!(t0_s + 99_999));
    payload.insert("role".into(), serde_json::json!("admin"));
    let regenerated = engine
        .regenerate_access_token(&s.access_token.token, Some(payload.clone()))
        .await
        .unwrap();
    let token = regenerated.access_token.unwrap().token;
    let claims = engine.verify_access_token(&token).await.unwrap();
    assert_eq!(claims.auth_time, Some(t0_s), "kept across regenerate");
    assert_eq!(
        claims.user_claims.get("role"),
        Some(&serde_json::json!("admin"))
    );
    engine
        .update_access_token_payload(&s.session.handle, &payload)
        .await
        .unwrap();
    let mut new = NewSession::for_user("erin");
    new.access_token_payload = payload;
    let created = engine.create_session(new).await.unwrap();
    let claims = engine
        .verify_access_token(&created.access_token.token)
        .await
        .unwrap();
    assert_eq!(
        claims.auth_time,
        Some(t0_s + 600),
        "the engine's value, not the payload's"
    );

    // Re-authentication renews it on the same session.
    clock.advance_ms(MINUTE);
    let renewed = engine.renew_sign_in_time(&token).await.unwrap();
    assert_eq!(renewed.session.handle, s.session.handle);
    let claims = engine
        .verify_access_token(&renewed.access_token.unwrap().token)
        .await
        .unwrap();
    assert_eq!(claims.auth_time, Some(t0_s + 660));
    assert!(tessera::signed_in_within(&claims, clock.now_ms(), 0));
    clock.advance_ms(MINUTE);
    let s = refresh(&engine, &s).await.unwrap();
    let claims = engine
        .verify_access_token(&s.access_token.token)
        .await
        .unwrap();
    assert_eq!(
        claims.auth_time,
        Some(t0_s + 660),
        "refresh carries the renewed time"
    );
    let listed = engine
        .list_devices("alice", None, DevicePage::default())
        .await
        .unwrap();
    assert_eq!(listed[0].signed_in_at, (t0_s + 660) * 1000);
}

on_both_stores!(
    devices_are_recorded_and_listed,
    last_active_moves_only_at_refresh,
    req_06_idle_timeout_ends_idle_sessions,
    req_06_absolute_lifetime_ends_active_sessions,
    lifetimes_are_off_by_default,
    cap_revokes_least_recently_active,
    cap_refuses_sign_in,
    revoke_device_checks_ownership,
    req_07_revoke_other_devices_keeps_current,
    sign_in_time_claim_is_kept_and_renewable,
    sign_in_time_claim_is_off_by_default,
);
