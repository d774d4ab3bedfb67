//! Security events (issue 13): each engine operation reports exactly the events the rules in
//! `crates/tessera/src/events.rs` name, and nothing else, on SQLite.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::{Arc, Mutex};
use tessera::{
    EventSink, ManualClock, NewSession, RefreshOptions, RevokeCause, SessionEngine, SessionError,
    SessionEvent, VerifyOptions,
};
use tessera_testkit::engine::test_config;
use tessera_testkit::{fresh_store, Backend};

/// Each event as one line of text, so a test compares what happened in order.
#[derive(Default)]
struct Recorded(Mutex<Vec<String>>);

impl EventSink for Recorded {
    fn record(&self, event: &SessionEvent<'_>) {
        let line = match event {
            SessionEvent::SessionCreated { user_id, .. } => format!("created {user_id}"),
            SessionEvent::Refreshed { outcome, .. } => format!("refreshed {}", outcome.as_str()),
            SessionEvent::TheftDetected { user_id, .. } => format!("theft {user_id}"),
            SessionEvent::SessionsRevoked {
                session_handles,
                cause,
                ..
            } => format!("revoked {} {}", session_handles.len(), cause.as_str()),
            SessionEvent::AnonymousMinted { .. } => "minted".into(),
            SessionEvent::KeyCreated { .. } => "key".into(),
            SessionEvent::VerifyCache { hit, .. } => format!("cache {hit}"),
            other => format!("{other:?}"),
        };
        self.0.lock().unwrap().push(line);
    }
}

impl Recorded {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

async fn engine() -> (SessionEngine, Arc<Recorded>, Arc<ManualClock>) {
    let sink = Arc::new(Recorded::default());
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    assert_eq!(test_config().sibling_grace_ms, GRACE_MS);
    let engine = SessionEngine::builder(fresh_store(Backend::Sqlite).await)
        .config(test_config())
        .clock(Arc::clone(&clock) as _)
        .events(Arc::clone(&sink) as _)
        .build()
        .await
        .unwrap();
    (engine, sink, clock)
}

const GRACE_MS: u64 = 30_000;

#[tokio::test]
async fn create_refresh_theft_and_revoke_report_exactly_their_events() {
    let (engine, sink, clock) = engine().await;
    // Building stores the first dynamic key.
    assert!(sink.take().contains(&"key".to_string()));

    let first = engine
        .create_session(NewSession::for_user("ada"))
        .await
        .unwrap();
    assert_eq!(sink.take(), ["created ada"]);

    let next = engine
        .refresh_session(&first.refresh_token.token, RefreshOptions::default())
        .await
        .unwrap();
    assert_eq!(sink.take(), ["refreshed current"]);
    // The child, never rotated before: promoted with one write.
    let promoted = engine
        .refresh_session(&next.refresh_token.token, RefreshOptions::default())
        .await
        .unwrap();
    assert_eq!(sink.take(), ["refreshed promoted"]);
    // The new head's child inside the grace window: adopted, no write.
    engine
        .refresh_session(&promoted.refresh_token.token, RefreshOptions::default())
        .await
        .unwrap();
    assert_eq!(sink.take(), ["refreshed adopted"]);
    // The previous head inside the window: reissued.
    engine
        .refresh_session(&first.refresh_token.token, RefreshOptions::default())
        .await
        .unwrap();
    assert_eq!(sink.take(), ["refreshed reissued"]);

    // The first token again after the window: theft, then the revocation it caused.
    clock.advance_ms(GRACE_MS + 1);
    let theft = engine
        .refresh_session(&first.refresh_token.token, RefreshOptions::default())
        .await;
    assert!(
        matches!(theft, Err(SessionError::TokenTheft { .. })),
        "{theft:?}"
    );
    assert_eq!(sink.take(), ["theft ada", "revoked 1 theft"]);

    // Revoking a session that is already gone reports nothing.
    assert!(!engine.revoke_session(&first.session.handle).await.unwrap());
    assert!(sink.take().is_empty());

    let second = engine
        .create_session(NewSession::for_user("ada"))
        .await
        .unwrap();
    let third = engine
        .create_session(NewSession::for_user("ada"))
        .await
        .unwrap();
    sink.take();
    engine
        .revoke_sessions_because(
            std::slice::from_ref(&second.session.handle),
            RevokeCause::Admin,
        )
        .await
        .unwrap();
    assert_eq!(sink.take(), ["revoked 1 admin"]);
    engine.revoke_session(&third.session.handle).await.unwrap();
    assert_eq!(sink.take(), ["revoked 1 requested"]);
}

#[tokio::test]
async fn verify_reports_cache_misses_then_hits() {
    let (engine, sink, _) = engine().await;
    let created = engine
        .create_session(NewSession::for_user("bo"))
        .await
        .unwrap();
    sink.take();
    let token = &created.access_token.token;
    for _ in 0..2 {
        engine
            .verify_session_local(token, VerifyOptions::default())
            .expect("decided locally")
            .unwrap();
    }
    assert_eq!(sink.take(), ["cache false", "cache true"]);
}
