//! Prometheus metrics of `tessera serve` (`GET /metrics`, text exposition format). The rules:
//!
//! 1. **Own recorder.** The server keeps its own `PrometheusRecorder` in its state, not the
//!    process-wide `metrics` recorder: two servers in one process (tests) never mix counts, and
//!    an embedding app's own exporter is left alone.
//! 2. **Labels are bounded.** Route templates (the API's path as the core names it, never the
//!    raw request path), status codes, app ids, lineage outcomes and revocation causes. Never a
//!    user id, session handle, token, key or API key.
//! 3. **Engine events are counted by [`MetricsSink`]**, a small [`EventSink`] installed on every
//!    app's engine; it only increments counters (inline, never blocks).
//! 4. **Gauges are read at scrape time**: the pool's state and the age of each app's newest
//!    signing key are set just before rendering, so nothing runs between scrapes.
//! 5. **Off switch.** With `metrics = off` there is no recorder, no sink and no timing; `/metrics`
//!    answers 404.
//!
//! Every metric is listed with its type, labels and meaning in `docs/metrics.md`.
//!
//! ```
//! use tessera_server::metrics::ServerMetrics;
//! let metrics = ServerMetrics::new();
//! metrics.request("/recipe/session", 200);
//! assert!(metrics.render(&[], None).contains("tessera_http_requests_total"));
//! ```

use metrics::{Counter, Histogram, Key, Label, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use std::sync::Arc;
use std::time::Duration;
use tessera::{EventSink, PoolStats, RefreshOutcome, SessionEvent};

/// Latency buckets in seconds (0.5 ms … 5 s).
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// The server's metrics: its recorder and the handle that renders it.
pub struct ServerMetrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for ServerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerMetrics").finish_non_exhaustive()
    }
}

impl Default for ServerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// A session operation timed by [`ServerMetrics::operation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `POST /recipe/session`.
    Create,
    /// `POST /recipe/session/verify`.
    Verify,
    /// `POST /recipe/session/refresh`.
    Refresh,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Verify => "verify",
            Operation::Refresh => "refresh",
        }
    }
}

impl ServerMetrics {
    /// A recorder with latency buckets and every metric described.
    pub fn new() -> Self {
        let builder = PrometheusBuilder::new();
        let builder = match builder.set_buckets(LATENCY_BUCKETS) {
            Ok(b) => b,
            // Only an empty bucket list is refused; ours is not empty.
            Err(_) => PrometheusBuilder::new(),
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let metrics = Self { recorder, handle };
        metrics.describe();
        metrics
    }

    fn describe(&self) {
        let r = &self.recorder;
        let c = |name: &'static str, text: &'static str| {
            r.describe_counter(name.into(), None, text.into());
        };
        c(
            "tessera_http_requests_total",
            "HTTP requests answered, by route template and status.",
        );
        c("tessera_sessions_created_total", "Sessions created.");
        c(
            "tessera_refresh_total",
            "Refreshes answered, by lineage outcome (current, promoted, adopted, reissued, theft).",
        );
        c(
            "tessera_theft_detected_total",
            "Refresh-token reuse detected as theft.",
        );
        c(
            "tessera_sessions_revoked_total",
            "Sessions revoked (each session counted), by cause.",
        );
        c(
            "tessera_anonymous_minted_total",
            "Anonymous (guest) tokens minted.",
        );
        c(
            "tessera_signing_keys_created_total",
            "Signing keys created by this instance.",
        );
        c(
            "tessera_signing_keys_retired_total",
            "Expired signing keys deleted by the clean-up.",
        );
        c(
            "tessera_expired_sessions_removed_total",
            "Expired sessions deleted by the clean-up.",
        );
        c(
            "tessera_verify_cache_total",
            "Verified-token cache lookups, by result (hit, miss).",
        );
        c(
            "tessera_rate_limited_total",
            "Requests refused with 429 by the per-API-key limit.",
        );
        r.describe_histogram(
            "tessera_session_operation_seconds".into(),
            Some(Unit::Seconds),
            "Time to answer create, verify and refresh requests, by operation.".into(),
        );
        r.describe_gauge(
            "tessera_signing_key_age_seconds".into(),
            Some(Unit::Seconds),
            "Age of the newest dynamic signing key, per app.".into(),
        );
        r.describe_gauge(
            "tessera_db_pool_connections".into(),
            None,
            "Database pool connections, by state (in_use, idle) and the pool's maximum (max)."
                .into(),
        );
        c(
            "tessera_db_pool_acquires_total",
            "Connections acquired from the pool for single queries (transactions not counted).",
        );
        r.describe_gauge(
            "tessera_db_pool_acquire_wait_seconds".into(),
            Some(Unit::Seconds),
            "Total time those acquisitions waited for a connection since start (monotonic; \
             divide its rate by the rate of tessera_db_pool_acquires_total for the mean wait)."
                .into(),
        );
    }

    fn counter(&self, name: &'static str, labels: Vec<Label>) -> Counter {
        self.recorder
            .register_counter(&Key::from_parts(name, labels), &METADATA)
    }

    fn histogram(&self, name: &'static str, labels: Vec<Label>) -> Histogram {
        self.recorder
            .register_histogram(&Key::from_parts(name, labels), &METADATA)
    }

    fn gauge(&self, name: &'static str, labels: Vec<Label>, value: f64) {
        self.recorder
            .register_gauge(&Key::from_parts(name, labels), &METADATA)
            .set(value);
    }

    /// Counts one answered request: `route` is a template (`/recipe/session/refresh`, or
    /// `unmatched`), never the raw path.
    pub fn request(&self, route: &'static str, status: u16) {
        self.counter(
            "tessera_http_requests_total",
            vec![
                Label::from_static_parts("route", route),
                Label::new("status", status.to_string()),
            ],
        )
        .increment(1);
    }

    /// Records how long one session operation of `app_id` took.
    pub fn operation(&self, operation: Operation, app_id: &str, elapsed: Duration) {
        self.histogram(
            "tessera_session_operation_seconds",
            vec![
                Label::from_static_parts("operation", operation.as_str()),
                Label::new("app", app_id.to_owned()),
            ],
        )
        .record(elapsed.as_secs_f64());
    }

    /// Counts one request refused by the per-API-key limit.
    pub fn rate_limited(&self) {
        self.counter("tessera_rate_limited_total", Vec::new())
            .increment(1);
    }

    /// The exposition text, after setting the scrape-time gauges: `key_ages` is
    /// `(app id, age of its newest signing key)`, `pool` the store's pool.
    pub fn render(&self, key_ages: &[(String, Duration)], pool: Option<PoolStats>) -> String {
        for (app, age) in key_ages {
            self.gauge(
                "tessera_signing_key_age_seconds",
                vec![Label::new("app", app.clone())],
                age.as_secs_f64(),
            );
        }
        if let Some(pool) = pool {
            for (state, n) in [
                ("in_use", pool.in_use()),
                ("idle", pool.idle),
                ("max", pool.max),
            ] {
                self.gauge(
                    "tessera_db_pool_connections",
                    vec![Label::from_static_parts("state", state)],
                    f64::from(n),
                );
            }
            self.counter("tessera_db_pool_acquires_total", Vec::new())
                .absolute(pool.acquires);
            self.gauge(
                "tessera_db_pool_acquire_wait_seconds",
                Vec::new(),
                pool.acquire_wait.as_secs_f64(),
            );
        }
        self.handle.render()
    }

    /// Drains histogram samples into their buckets (run every few seconds so memory stays
    /// bounded between scrapes).
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }
}

/// Counts engine events into [`ServerMetrics`] (see the module rules).
#[derive(Debug, Clone)]
pub struct MetricsSink(pub Arc<ServerMetrics>);

impl EventSink for MetricsSink {
    fn record(&self, event: &SessionEvent<'_>) {
        let m = &self.0;
        let app = |app_id: &str| Label::new("app", app_id.to_owned());
        match *event {
            SessionEvent::SessionCreated { app_id, .. } => m
                .counter("tessera_sessions_created_total", vec![app(app_id)])
                .increment(1),
            SessionEvent::Refreshed {
                app_id, outcome, ..
            } => m
                .counter(
                    "tessera_refresh_total",
                    vec![
                        app(app_id),
                        Label::from_static_parts("outcome", outcome.as_str()),
                    ],
                )
                .increment(1),
            SessionEvent::TheftDetected { app_id, .. } => {
                m.counter("tessera_theft_detected_total", vec![app(app_id)])
                    .increment(1);
                m.counter(
                    "tessera_refresh_total",
                    vec![
                        app(app_id),
                        Label::from_static_parts("outcome", RefreshOutcome::Theft.as_str()),
                    ],
                )
                .increment(1);
            }
            SessionEvent::SessionsRevoked {
                app_id,
                session_handles,
                cause,
                ..
            } => m
                .counter(
                    "tessera_sessions_revoked_total",
                    vec![
                        app(app_id),
                        Label::from_static_parts("cause", cause.as_str()),
                    ],
                )
                .increment(session_handles.len() as u64),
            SessionEvent::AnonymousMinted { app_id } => m
                .counter("tessera_anonymous_minted_total", vec![app(app_id)])
                .increment(1),
            SessionEvent::KeyCreated { app_id, .. } => m
                .counter("tessera_signing_keys_created_total", vec![app(app_id)])
                .increment(1),
            SessionEvent::KeysRetired { app_id, count } => m
                .counter("tessera_signing_keys_retired_total", vec![app(app_id)])
                .increment(count),
            SessionEvent::ExpiredSessionsRemoved { count } => m
                .counter("tessera_expired_sessions_removed_total", Vec::new())
                .increment(count),
            SessionEvent::VerifyCache { app_id, hit } => m
                .counter(
                    "tessera_verify_cache_total",
                    vec![
                        app(app_id),
                        Label::from_static_parts("result", if hit { "hit" } else { "miss" }),
                    ],
                )
                .increment(1),
            _ => {}
        }
    }
}
