//! Prometheus metrics of `tessera serve` (issue 13), against the real binary: `/metrics` read
//! before and after create, verify, refresh (current, promoted), theft, revoke and anonymous
//! mint, each counter asserted to move by exactly the expected amount and nothing else to
//! move; the exposition parsed with a Prometheus text-format parser; `/metrics` behind the API
//! key, on `--metrics-addr`, and gone with `--metrics off`; the per-API-key limit; on SQLite
//! and PostgreSQL (pool gauges).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;
use tessera_testkit::binary::post;
use tessera_testkit::cdi::{create_body, handle, refresh_body, status, token, verify_body};
use tessera_testkit::{binary, fresh_schema, skip_postgres, Place};

const KEY: &str = "metrics-test-key-0123456789";

fn storage(backend: &str, dir: &tempfile::TempDir) -> Option<Place> {
    match backend {
        "sqlite" => Some(Place::Sqlite(dir.path().join("core.db"))),
        _ if skip_postgres() => None,
        _ => Some(Place::Postgres {
            schema: fresh_schema("metrics"),
        }),
    }
}

async fn start(storage: &Place, extra: &[&str], log: &std::path::Path) -> binary::Server {
    let (storage, log) = (storage.clone(), log.to_owned());
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        binary::start(&storage, &extra, &log)
    })
    .await
    .unwrap()
}

/// A client that sends the API key on every request.
fn keyed_client() -> reqwest::Client {
    let mut headers = HeaderMap::new();
    headers.insert("api-key", HeaderValue::from_static(KEY));
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .default_headers(headers)
        .build()
        .unwrap()
}

/// Every series of a scrape: `name{labels}` → value (histograms: their count).
type Series = BTreeMap<String, f64>;

/// GETs `url`, asserts a 200 in the text exposition format that parses, returns its series.
async fn scrape(client: &reqwest::Client, url: &str) -> Series {
    let resp = client.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 200, "GET {url}");
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = resp.text().await.unwrap();
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("the exposition parses");
    assert!(!parsed.samples.is_empty(), "{text}");
    let mut out = Series::new();
    for s in parsed.samples {
        let value = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(buckets) => {
                buckets.iter().map(|b| b.count).fold(0.0, f64::max)
            }
            prometheus_parse::Value::Summary(_) => panic!("latency must be a histogram: {text}"),
        };
        out.insert(format!("{}{{{}}}", s.metric, s.labels), value);
    }
    out
}

/// The counters (and histogram counts) that moved between two scrapes, by how much.
fn moved(before: &Series, after: &Series) -> BTreeMap<String, f64> {
    after
        .iter()
        .filter(|(k, _)| {
            (k.contains("_total{") || k.starts_with("tessera_session_operation_seconds{"))
                && !k.starts_with("tessera_db_pool_")
        })
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0.0);
            (d != 0.0).then(|| (k.clone(), d))
        })
        .collect()
}

fn expect(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

const CREATED: &str = r#"tessera_sessions_created_total{app="public"}"#;
const CREATE_OK: &str = r#"tessera_http_requests_total{route="/recipe/session",status="200"}"#;
const CREATE_TIME: &str = r#"tessera_session_operation_seconds{app="public",operation="create"}"#;
const REFRESH_OK: &str =
    r#"tessera_http_requests_total{route="/recipe/session/refresh",status="200"}"#;
const REFRESH_TIME: &str = r#"tessera_session_operation_seconds{app="public",operation="refresh"}"#;

async fn every_counter_moves_by_exactly_its_events(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let Some(storage) = storage(backend, &dir) else {
        return;
    };
    let log = dir.path().join("server.log");
    let server = start(
        &storage,
        &[
            "--api-keys",
            KEY,
            "--refresh-token-rotation-grace-period",
            "0",
        ],
        &log,
    )
    .await;
    let base = server.base.clone();
    let metrics = format!("{base}/metrics");

    // Behind the API key: refused without it (as every other API), served with it.
    let plain = binary::client();
    let refused = plain.get(&metrics).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let wrong = plain
        .get(&metrics)
        .header("api-key", "wrong-key-wrong-key-wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    let c = keyed_client();
    let first = scrape(&c, &metrics).await;
    // Scrape-time gauges: the signing key's age and the pool.
    let age = first[r#"tessera_signing_key_age_seconds{app="public"}"#];
    assert!((0.0..600.0).contains(&age), "{age}");
    assert!(first[r#"tessera_db_pool_connections{state="max"}"#] >= 1.0);
    assert!(first.contains_key(r#"tessera_db_pool_connections{state="in_use"}"#));
    assert!(first.contains_key(r#"tessera_db_pool_connections{state="idle"}"#));
    // A scrape moves nothing.
    let mut before = scrape(&c, &metrics).await;
    assert_eq!(moved(&first, &before), BTreeMap::new());

    let step = |name: &'static str, previous: Series, expected: BTreeMap<String, f64>| {
        let c = c.clone();
        let metrics = metrics.clone();
        async move {
            let after = scrape(&c, &metrics).await;
            assert_eq!(moved(&previous, &after), expected, "step: {name}");
            after
        }
    };

    // Create.
    let created = post(&c, &base, "/recipe/session", &create_body("ada")).await;
    assert_eq!(status(&created), "OK");
    // The create's queries acquired connections from the pool, and their wait is counted.
    let pool = scrape(&c, &metrics).await;
    let acquires = "tessera_db_pool_acquires_total{}";
    assert!(pool[acquires] > before[acquires], "{pool:?}");
    assert!(pool["tessera_db_pool_acquire_wait_seconds{}"] >= 0.0);
    before = step(
        "create",
        before,
        expect(&[(CREATED, 1.0), (CREATE_OK, 1.0), (CREATE_TIME, 1.0)]),
    )
    .await;

    // Verify twice: a cache miss, then a hit.
    let at = token(&created, "accessToken");
    for _ in 0..2 {
        let v = post(
            &c,
            &base,
            "/recipe/session/verify",
            &verify_body(&at, false),
        )
        .await;
        assert_eq!(status(&v), "OK", "{v}");
    }
    before = step(
        "verify",
        before,
        expect(&[
            (
                r#"tessera_http_requests_total{route="/recipe/session/verify",status="200"}"#,
                2.0,
            ),
            (
                r#"tessera_session_operation_seconds{app="public",operation="verify"}"#,
                2.0,
            ),
            (
                r#"tessera_verify_cache_total{app="public",result="miss"}"#,
                1.0,
            ),
            (
                r#"tessera_verify_cache_total{app="public",result="hit"}"#,
                1.0,
            ),
        ]),
    )
    .await;

    // Refresh the first token: the head's child answered (current).
    let rt1 = token(&created, "refreshToken");
    let second = post(&c, &base, "/recipe/session/refresh", &refresh_body(&rt1)).await;
    assert_eq!(status(&second), "OK");
    before = step(
        "refresh current",
        before,
        expect(&[
            (
                r#"tessera_refresh_total{app="public",outcome="current"}"#,
                1.0,
            ),
            (REFRESH_OK, 1.0),
            (REFRESH_TIME, 1.0),
        ]),
    )
    .await;

    // The child: promoted.
    let rt2 = token(&second, "refreshToken");
    let third = post(&c, &base, "/recipe/session/refresh", &refresh_body(&rt2)).await;
    assert_eq!(status(&third), "OK");
    before = step(
        "refresh promoted",
        before,
        expect(&[
            (
                r#"tessera_refresh_total{app="public",outcome="promoted"}"#,
                1.0,
            ),
            (REFRESH_OK, 1.0),
            (REFRESH_TIME, 1.0),
        ]),
    )
    .await;

    // The first token again (grace 0): theft, and the session revoked for it.
    let theft = post(&c, &base, "/recipe/session/refresh", &refresh_body(&rt1)).await;
    assert_eq!(status(&theft), "TOKEN_THEFT_DETECTED", "{theft}");
    before = step(
        "theft",
        before,
        expect(&[
            (
                r#"tessera_refresh_total{app="public",outcome="theft"}"#,
                1.0,
            ),
            (r#"tessera_theft_detected_total{app="public"}"#, 1.0),
            (
                r#"tessera_sessions_revoked_total{app="public",cause="theft"}"#,
                1.0,
            ),
            (REFRESH_OK, 1.0),
            (REFRESH_TIME, 1.0),
        ]),
    )
    .await;

    // Revoke: two sessions of a user at once (counted per session), then one by handle.
    let mut handles = Vec::new();
    for _ in 0..3 {
        handles.push(handle(
            &post(&c, &base, "/recipe/session", &create_body("bo")).await,
        ));
    }
    before = step(
        "three creates",
        before,
        expect(&[(CREATED, 3.0), (CREATE_OK, 3.0), (CREATE_TIME, 3.0)]),
    )
    .await;
    let one = post(
        &c,
        &base,
        "/recipe/session/remove",
        &json!({"sessionHandles": [handles[0]]}),
    )
    .await;
    assert_eq!(one["sessionHandlesRevoked"].as_array().unwrap().len(), 1);
    let rest = post(
        &c,
        &base,
        "/recipe/session/remove",
        &json!({"userId": "bo"}),
    )
    .await;
    assert_eq!(rest["sessionHandlesRevoked"].as_array().unwrap().len(), 2);
    let remove_ok = r#"tessera_http_requests_total{route="/recipe/session/remove",status="200"}"#;
    before = step(
        "revoke",
        before,
        expect(&[
            (
                r#"tessera_sessions_revoked_total{app="public",cause="requested"}"#,
                1.0,
            ),
            (
                r#"tessera_sessions_revoked_total{app="public",cause="all_for_user"}"#,
                2.0,
            ),
            (remove_ok, 2.0),
        ]),
    )
    .await;

    // Anonymous mint.
    let minted = post(&c, &base, "/recipe/session/anonymous", &json!({})).await;
    assert_eq!(status(&minted), "OK");
    before = step(
        "mint",
        before,
        expect(&[
            (r#"tessera_anonymous_minted_total{app="public"}"#, 1.0),
            (
                r#"tessera_http_requests_total{route="/recipe/session/anonymous",status="200"}"#,
                1.0,
            ),
        ]),
    )
    .await;

    // Refused requests are counted by their route template and status, never the raw path.
    let r = plain
        .post(format!("{base}/recipe/session?userId=someone"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .get(format!("{base}/recipe/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let after = step(
        "refused",
        before,
        expect(&[
            (
                r#"tessera_http_requests_total{route="/recipe/session",status="401"}"#,
                1.0,
            ),
            (
                r#"tessera_http_requests_total{route="unmatched",status="404"}"#,
                1.0,
            ),
        ]),
    )
    .await;

    // Nothing private in any series: no user id, handle or token.
    let all: String = after.keys().cloned().collect();
    for secret in [
        &at,
        &rt1,
        &rt2,
        &handles[0],
        &"ada".to_owned(),
        &KEY.to_owned(),
    ] {
        assert!(!all.contains(secret.as_str()), "{secret} in the metrics");
    }
    drop(server);
}

#[tokio::test]
async fn sqlite_every_counter_moves_by_exactly_its_events() {
    every_counter_moves_by_exactly_its_events("sqlite").await;
}

#[tokio::test]
async fn postgres_every_counter_moves_by_exactly_its_events() {
    every_counter_moves_by_exactly_its_events("postgres").await;
}

/// A free port on 127.0.0.1 (bound then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn metrics_addr_serves_metrics_apart_and_off_turns_them_off() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Place::Sqlite(dir.path().join("core.db"));
    let log = dir.path().join("server.log");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let server = start(
        &storage,
        &["--api-keys", KEY, "--metrics-addr", &addr],
        &log,
    )
    .await;
    let c = keyed_client();
    post(&c, &server.base, "/recipe/session", &create_body("cy")).await;
    // The separate listener needs no key (keep it on a private interface).
    let apart = scrape(&binary::client(), &format!("http://{addr}/metrics")).await;
    assert_eq!(apart[CREATED], 1.0);
    // The main port has no /metrics then.
    let main = c
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(main.status(), 404);
    drop(server);

    let off = start(&storage, &["--metrics", "off"], &log).await;
    let r = binary::client()
        .get(format!("{}/metrics", off.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let hello = binary::client()
        .get(format!("{}/hello", off.base))
        .send()
        .await
        .unwrap();
    assert_eq!(hello.status(), 200);
}

#[tokio::test]
async fn per_api_key_limit_answers_429_with_retry_after_then_refills() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Place::Sqlite(dir.path().join("core.db"));
    let log = dir.path().join("server.log");
    let other = "metrics-test-key-other-98765";
    let keys = format!("{KEY},{other}");
    let server = start(
        &storage,
        &["--api-keys", &keys, "--api-key-rate-limit", "2/s"],
        &log,
    )
    .await;
    let c = keyed_client();
    let url = format!("{}/recipe/session/user?userId=x", server.base);
    let get = |client: &reqwest::Client| client.get(&url).header("cdi-version", "5.4").send();
    assert_eq!(get(&c).await.unwrap().status(), 200);
    assert_eq!(get(&c).await.unwrap().status(), 200);
    let limited = get(&c).await.unwrap();
    assert_eq!(limited.status(), 429);
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(retry, 1);
    let body: serde_json::Value = limited.json().await.unwrap();
    assert_eq!(body["retryAfterSeconds"], 1);
    // Another key has its own bucket; a wrong key is refused before any bucket.
    let mut h = HeaderMap::new();
    h.insert("api-key", HeaderValue::from_static(other));
    let c2 = reqwest::Client::builder()
        .default_headers(h)
        .build()
        .unwrap();
    assert_eq!(get(&c2).await.unwrap().status(), 200);
    let nokey = binary::client();
    assert_eq!(get(&nokey).await.unwrap().status(), 401);
    // The bucket refills: after half a second one more request passes.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(get(&c).await.unwrap().status(), 200);
    let counted = scrape(&c2, &format!("{}/metrics", server.base)).await;
    assert_eq!(counted["tessera_rate_limited_total{}"], 1.0);
}
