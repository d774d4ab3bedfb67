//! Session metrics through the [`metrics`] facade, so the app's own exporter (Prometheus,
//! StatsD, OpenTelemetry…) picks them up. The rules:
//!
//! 1. **Same names as `tessera serve`.** [`MetricsSink`] counts the engine's events under the
//!    names and labels `docs/metrics.md` lists (`tessera_refresh_total{app,outcome}`, …).
//! 2. **What the layer does itself** is counted under `tessera_sdk_…` names, so nothing is
//!    counted twice with an embedded engine: anonymous sessions minted by the layer, refresh
//!    route answers by result, and requests refused by the rate limits ([`crate::limit`]).
//! 3. **Cheap on the hot path.** Counter handles are registered once per app at the first
//!    event and kept; a verify-cache hit is one lock-free lookup and one increment. Install the
//!    app's recorder before the first event (before building the engine).
//! 4. Labels are bounded: app ids, outcomes, causes, results. Never a user id, session handle,
//!    token or key.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! let store = Arc::new(tessera::SqliteStore::open("sessions.db").await?);
//! // Install the app's exporter first, e.g. metrics_exporter_prometheus::PrometheusBuilder.
//! let engine = tessera::SessionEngine::builder(store)
//!     .events(Arc::new(tessera_axum::metrics::MetricsSink::new()))
//!     .build()
//!     .await?;
//! # Ok(()) }
//! ```

use metrics::{counter, Counter};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use tessera::{EventSink, RefreshOutcome, RevokeCause, SessionEvent};

const OUTCOMES: [RefreshOutcome; 5] = [
    RefreshOutcome::Current,
    RefreshOutcome::Promoted,
    RefreshOutcome::Adopted,
    RefreshOutcome::Reissued,
    RefreshOutcome::Theft,
];

const CAUSES: [RevokeCause; 7] = [
    RevokeCause::Requested,
    RevokeCause::AllForUser,
    RevokeCause::Device,
    RevokeCause::Admin,
    RevokeCause::Theft,
    RevokeCause::Cap,
    RevokeCause::Lifetime,
];

/// One app's counters, registered once.
struct AppCounters {
    created: Counter,
    refresh: [Counter; 5],
    theft: Counter,
    revoked: [Counter; 7],
    minted: Counter,
    keys_created: Counter,
    keys_retired: Counter,
    cache_hit: Counter,
    cache_miss: Counter,
}

impl AppCounters {
    fn register(app: &str) -> Self {
        let app = app.to_owned();
        Self {
            created: counter!("tessera_sessions_created_total", "app" => app.clone()),
            refresh: OUTCOMES.map(|o| {
                counter!("tessera_refresh_total", "app" => app.clone(), "outcome" => o.as_str())
            }),
            theft: counter!("tessera_theft_detected_total", "app" => app.clone()),
            revoked: CAUSES.map(|c| {
                counter!("tessera_sessions_revoked_total", "app" => app.clone(), "cause" => c.as_str())
            }),
            minted: counter!("tessera_anonymous_minted_total", "app" => app.clone()),
            keys_created: counter!("tessera_signing_keys_created_total", "app" => app.clone()),
            keys_retired: counter!("tessera_signing_keys_retired_total", "app" => app.clone()),
            cache_hit: counter!("tessera_verify_cache_total", "app" => app.clone(), "result" => "hit"),
            cache_miss: counter!("tessera_verify_cache_total", "app" => app, "result" => "miss"),
        }
    }

    fn refresh(&self, outcome: RefreshOutcome) -> Option<&Counter> {
        let i = OUTCOMES.iter().position(|o| *o == outcome)?;
        self.refresh.get(i)
    }

    fn revoked(&self, cause: RevokeCause) -> Option<&Counter> {
        let i = CAUSES.iter().position(|c| *c == cause)?;
        self.revoked.get(i)
    }
}

/// Counts engine events through the `metrics` facade (see the module rules). Install with
/// `SessionEngine::builder(store).events(Arc::new(MetricsSink::new()))`; combine with other
/// sinks through [`tessera::EventFanout`].
#[derive(Default)]
pub struct MetricsSink {
    /// The first app seen: reached without a lock (the usual single-app case).
    first: OnceLock<(String, AppCounters)>,
    others: RwLock<HashMap<String, Arc<AppCounters>>>,
    expired: OnceLock<Counter>,
}

impl std::fmt::Debug for MetricsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsSink").finish_non_exhaustive()
    }
}

impl MetricsSink {
    /// A sink; counters are registered with the recorder installed at the first event.
    pub fn new() -> Self {
        Self::default()
    }

    fn with_app(&self, app_id: &str, f: impl FnOnce(&AppCounters)) {
        let first = self
            .first
            .get_or_init(|| (app_id.to_owned(), AppCounters::register(app_id)));
        if first.0 == app_id {
            return f(&first.1);
        }
        let found = {
            let others = self.others.read().unwrap_or_else(|e| e.into_inner());
            others.get(app_id).cloned()
        };
        let counters = match found {
            Some(c) => c,
            None => {
                let mut others = self.others.write().unwrap_or_else(|e| e.into_inner());
                Arc::clone(
                    others
                        .entry(app_id.to_owned())
                        .or_insert_with(|| Arc::new(AppCounters::register(app_id))),
                )
            }
        };
        f(&counters);
    }
}

impl EventSink for MetricsSink {
    fn record(&self, event: &SessionEvent<'_>) {
        match *event {
            SessionEvent::VerifyCache { app_id, hit } => self.with_app(app_id, |c| {
                if hit {
                    c.cache_hit.increment(1);
                } else {
                    c.cache_miss.increment(1);
                }
            }),
            SessionEvent::SessionCreated { app_id, .. } => {
                self.with_app(app_id, |c| c.created.increment(1));
            }
            SessionEvent::Refreshed {
                app_id, outcome, ..
            } => self.with_app(app_id, |c| {
                if let Some(counter) = c.refresh(outcome) {
                    counter.increment(1);
                }
            }),
            SessionEvent::TheftDetected { app_id, .. } => self.with_app(app_id, |c| {
                c.theft.increment(1);
                if let Some(counter) = c.refresh(RefreshOutcome::Theft) {
                    counter.increment(1);
                }
            }),
            SessionEvent::SessionsRevoked {
                app_id,
                session_handles,
                cause,
                ..
            } => self.with_app(app_id, |c| {
                if let Some(counter) = c.revoked(cause) {
                    counter.increment(session_handles.len() as u64);
                }
            }),
            SessionEvent::AnonymousMinted { app_id } => {
                self.with_app(app_id, |c| c.minted.increment(1));
            }
            SessionEvent::KeyCreated { app_id, .. } => {
                self.with_app(app_id, |c| c.keys_created.increment(1));
            }
            SessionEvent::KeysRetired { app_id, count } => {
                self.with_app(app_id, |c| c.keys_retired.increment(count));
            }
            SessionEvent::ExpiredSessionsRemoved { count } => self
                .expired
                .get_or_init(|| counter!("tessera_expired_sessions_removed_total"))
                .increment(count),
            _ => {}
        }
    }
}

/// Counts an anonymous session minted by the layer.
pub(crate) fn layer_minted() {
    counter!("tessera_sdk_anonymous_minted_total").increment(1);
}

/// Counts one answer of the SDK's refresh route: `refreshed`, `unauthorised`, `theft`,
/// `anti_csrf` or `error`.
pub(crate) fn refresh_route(result: &'static str) {
    counter!("tessera_sdk_refresh_total", "result" => result).increment(1);
}

/// Counts one request refused by a rate limit (`route`: `refresh` or `anonymous_mint`).
pub(crate) fn rate_limited(route: &'static str) {
    counter!("tessera_sdk_rate_limited_total", "route" => route).increment(1);
}
