//! The SDK's metrics through the `metrics` facade (issue 13): with the app's Prometheus
//! recorder installed and `MetricsSink` on the embedded engine, create, verify (cache miss and
//! hit), refresh (current, promoted, theft), sign-out and the layer's anonymous mint move
//! their counters by exactly the expected amounts, and the exposition parses.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use axum::routing::{get, post};
use axum::Router;
use http::{Method, StatusCode};
use serde_json::{json, Map};
use std::collections::BTreeMap;
use std::sync::Arc;
use tessera::{ManualClock, SessionConfig, SessionEngine, SqliteStore};
use tessera_axum::{AnySession, Config, Session, SessionRejection, SignIn, Tessera};
use tessera_testkit::sdk::{send, App};

type Series = BTreeMap<String, f64>;

fn scrape(handle: &metrics_exporter_prometheus::PrometheusHandle) -> Series {
    let text = handle.render();
    let parsed = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("the exposition parses");
    parsed
        .samples
        .into_iter()
        .filter_map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => {
                Some((format!("{}{{{}}}", s.metric, s.labels), v))
            }
            _ => None,
        })
        .collect()
}

fn moved(before: &Series, after: &Series) -> Series {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0.0);
            (d != 0.0).then(|| (k.clone(), d))
        })
        .collect()
}

fn expect(pairs: &[(&str, f64)]) -> Series {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

async fn app() -> App {
    let clock = Arc::new(ManualClock::starting_now());
    let store = Arc::new(SqliteStore::in_memory().await.unwrap());
    let engine = SessionEngine::builder(store)
        .config(SessionConfig {
            sibling_grace_ms: 0,
            ..SessionConfig::default()
        })
        .clock(clock.clone())
        .events(Arc::new(tessera_axum::metrics::MetricsSink::new()))
        .build()
        .await
        .unwrap();
    let core: Arc<dyn tessera_axum::SessionCore> = Arc::new(engine);
    let config = Config::builder("http://localhost:8080", "http://localhost:8080")
        .allow_plantable_anonymous_cookie(true)
        .build()
        .unwrap();
    let tessera = Tessera::new(config, core.clone());
    async fn login(sign_in: SignIn) -> Result<String, SessionRejection> {
        let s = sign_in.create("ada", Map::new(), json!({})).await?;
        Ok(s.handle().to_owned())
    }
    async fn me(session: Session) -> String {
        session.user_id().to_owned()
    }
    async fn whoami(session: AnySession) -> String {
        session.is_anonymous().to_string()
    }
    let router = Router::new()
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/whoami", get(whoami))
        .route("/public", get(|| async { "ok" }))
        .layer(tessera.layer());
    App {
        router,
        clock,
        core,
        _server: None,
    }
}

#[tokio::test]
async fn engine_events_and_layer_actions_reach_the_apps_exporter() {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .unwrap();
    let app = app().await;
    let mut before = scrape(&handle);

    // The layer mints for a first visit.
    let r = send(&app, Method::GET, "/whoami", &[("st-auth-mode", "cookie")]).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "true"));
    let after = scrape(&handle);
    assert_eq!(
        moved(&before, &after),
        expect(&[
            (r#"tessera_anonymous_minted_total{app="public"}"#, 1.0),
            ("tessera_sdk_anonymous_minted_total{}", 1.0),
        ])
    );
    before = after;

    // Sign in (header mode), then verify twice: a cache miss, then a hit.
    let r = send(&app, Method::POST, "/login", &[("st-auth-mode", "header")]).await;
    assert_eq!(r.status, StatusCode::OK);
    let at = r.header("st-access-token").unwrap().to_owned();
    let rt1 = r.header("st-refresh-token").unwrap().to_owned();
    for _ in 0..2 {
        let r = send(
            &app,
            Method::GET,
            "/me",
            &[("authorization", &format!("Bearer {at}"))],
        )
        .await;
        assert_eq!(r.body, "ada");
    }
    let after = scrape(&handle);
    assert_eq!(
        moved(&before, &after),
        expect(&[
            (r#"tessera_sessions_created_total{app="public"}"#, 1.0),
            (
                r#"tessera_verify_cache_total{app="public",result="miss"}"#,
                1.0
            ),
            (
                r#"tessera_verify_cache_total{app="public",result="hit"}"#,
                1.0
            ),
        ])
    );
    before = after;

    // The same token as a cookie: the layer finds it in the cache while it reads the headers.
    // A route that extracts the session counts one hit; a route behind the layer that never
    // asks for the session counts nothing.
    let cookie = format!("sAccessToken={at}");
    let r = send(&app, Method::GET, "/me", &[("cookie", &cookie)]).await;
    assert_eq!(r.body, "ada");
    let r = send(&app, Method::GET, "/public", &[("cookie", &cookie)]).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "ok"));
    let after = scrape(&handle);
    assert_eq!(
        moved(&before, &after),
        expect(&[(
            r#"tessera_verify_cache_total{app="public",result="hit"}"#,
            1.0
        )])
    );
    before = after;

    // Refresh: current, then promoted.
    let refresh = |rt: String| {
        let app = &app;
        async move {
            let bearer = format!("Bearer {rt}");
            send(
                app,
                Method::POST,
                "/auth/session/refresh",
                &[
                    ("authorization", &bearer),
                    ("rid", "session"),
                    ("st-auth-mode", "header"),
                ],
            )
            .await
        }
    };
    let r = refresh(rt1.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let rt2 = r.header("st-refresh-token").unwrap().to_owned();
    let r = refresh(rt2).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let after = scrape(&handle);
    assert_eq!(
        moved(&before, &after),
        expect(&[
            (
                r#"tessera_refresh_total{app="public",outcome="current"}"#,
                1.0
            ),
            (
                r#"tessera_refresh_total{app="public",outcome="promoted"}"#,
                1.0
            ),
            (r#"tessera_sdk_refresh_total{result="refreshed"}"#, 2.0),
        ])
    );
    before = after;

    // The first token again (grace 0): theft; the session is revoked for it.
    let r = refresh(rt1).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    let after = scrape(&handle);
    let theft = moved(&before, &after);
    for (series, n) in [
        (
            r#"tessera_refresh_total{app="public",outcome="theft"}"#,
            1.0,
        ),
        (r#"tessera_theft_detected_total{app="public"}"#, 1.0),
        (
            r#"tessera_sessions_revoked_total{app="public",cause="theft"}"#,
            1.0,
        ),
        (r#"tessera_sdk_refresh_total{result="theft"}"#, 1.0),
    ] {
        assert_eq!(theft.get(series), Some(&n), "{series}: {theft:?}");
    }
    // Nothing else but the guest session the hand-over may mint (A21).
    for series in theft.keys() {
        assert!(
            series.contains("theft") || series.contains("anonymous_minted"),
            "{series}: {theft:?}"
        );
    }
    // No user id, handle or token in any series.
    let all: String = after.keys().cloned().collect();
    assert!(!all.contains("ada"));
    assert!(!all.contains(&at));
}
