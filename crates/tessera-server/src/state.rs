//! What every request handler of `tessera serve` shares: the apps, the protocol rules, the
//! limits, the audit trail, the admin page, the metrics. Below the routes and the admin page,
//! which both read it.

use crate::apps::AppRegistry;
use crate::audit::AuditLog;
use crate::cdi::CdiPolicy;
use crate::connections::ConnectionLimits;
use crate::dashboard::auth::Dashboard;
use crate::limit::ApiKeyLimiter;
use crate::metrics::ServerMetrics;
use std::sync::Arc;

/// What every request handler shares.
#[derive(Debug)]
pub struct ServerState {
    /// The apps.
    pub registry: AppRegistry,
    /// `cdi-version` rules.
    pub cdi: CdiPolicy,
    /// Path prefix of every API (`""` or `/x`).
    pub base_path: String,
    /// Connection cap and client deadlines; the request deadline is applied here.
    pub limits: ConnectionLimits,
    /// The audit trail.
    pub audit: Arc<AuditLog>,
    /// The admin page, when an admin key is configured.
    pub dashboard: Option<Dashboard>,
    /// Prometheus metrics (`None`: off).
    pub metrics: Option<Arc<ServerMetrics>>,
    /// True when `/metrics` is served on this router (metrics on, no separate listener).
    pub metrics_route: bool,
    /// The per-API-key rate limit (`None`: off).
    pub api_key_limiter: Option<ApiKeyLimiter>,
}
