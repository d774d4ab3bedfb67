//! Starting and stopping the server: open the store, load the apps, bind, serve until a
//! shutdown signal.

use crate::apps::{AppRegistry, RegistryError};
use crate::audit::AuditLog;
use crate::cdi::CdiPolicy;
use crate::config::{ServerConfig, Storage};
use crate::connections::serve_connections;
use crate::dashboard::auth::Dashboard;
use crate::routes::router;
use crate::state::ServerState;
use std::future::Future;
use std::sync::Arc;
use tessera::{PostgresStore, SqliteStore, Store, StoreError};
use tokio::net::TcpListener;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened.
    #[error("cannot open the store ({0}): {1}")]
    Store(String, StoreError),
    /// The apps could not be loaded.
    #[error("cannot load the apps: {0}")]
    Apps(#[from] RegistryError),
    /// The address could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Bind(String, std::io::Error),
    /// Serving failed.
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

/// Opens the configured store (running migrations).
pub async fn open_store(storage: &Storage) -> Result<Arc<dyn Store>, StartError> {
    let fail = |e| StartError::Store(storage.describe(), e);
    Ok(match storage {
        Storage::Sqlite(path) => Arc::new(SqliteStore::open(path).await.map_err(fail)?),
        Storage::Postgres { url, schema } => Arc::new(
            PostgresStore::connect(url, schema.as_deref())
                .await
                .map_err(fail)?,
        ),
    })
}

/// The shared state of a server on `store` with `config`'s settings.
pub async fn build_state(
    config: &ServerConfig,
    store: Arc<dyn Store>,
) -> Result<Arc<ServerState>, StartError> {
    let audit = AuditLog::start(Arc::clone(&store), config.audit_retention_days);
    let metrics = config
        .metrics
        .then(|| Arc::new(crate::metrics::ServerMetrics::new()));
    let mut sinks: Vec<Arc<dyn tessera::EventSink>> = vec![audit.sink()];
    if let Some(m) = &metrics {
        sinks.push(Arc::new(crate::metrics::MetricsSink(Arc::clone(m))));
    }
    let registry = AppRegistry::with_events(
        store,
        config.app.clone(),
        crate::apps::OperatorKeys {
            static_signing_key: config.static_signing_key.clone(),
            previous_static_signing_keys: config.previous_static_signing_keys.clone(),
            anonymous_signing_key: config.anonymous_signing_key.clone(),
            previous_anonymous_signing_keys: config.previous_anonymous_signing_keys.clone(),
        },
        Arc::new(tessera::EventFanout(sinks)),
    )
    .await?;
    Ok(Arc::new(ServerState {
        registry,
        cdi: CdiPolicy::new(config.max_cdi.clone(), config.min_cdi.clone()),
        base_path: config.base_path.clone(),
        limits: config.limits,
        audit,
        dashboard: config.admin_key.clone().map(Dashboard::new),
        metrics_route: metrics.is_some() && config.metrics_addr.is_none(),
        metrics,
        api_key_limiter: config
            .api_key_rate_limit
            .map(crate::limit::ApiKeyLimiter::new),
    }))
}

/// Serves `state` on `listener` until `shutdown` completes; in-flight requests finish first.
/// Connections are capped and slow clients cut as `state.limits` says
/// ([`crate::connections`]).
///
/// # Errors
///
/// None today (accept errors are logged and retried); the `Result` is kept for callers.
pub async fn serve(
    listener: TcpListener,
    state: Arc<ServerState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let limits = state.limits;
    let upkeep = state.metrics.as_ref().map(|m| {
        let m = Arc::clone(m);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                every.tick().await;
                m.run_upkeep();
            }
        })
    });
    serve_connections(listener, router(state), limits, shutdown).await;
    if let Some(task) = upkeep {
        task.abort();
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; stopping");
}

/// `tessera serve`: open the store, load the apps, listen, print where, serve until a signal.
pub async fn run(config: ServerConfig) -> Result<(), StartError> {
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let store = open_store(&config.storage).await?;
    let state = build_state(&config, store).await?;
    let addr = format!("{}:{}", config.host, config.port);
    let listener = TcpListener::bind(&addr)
        .await
        .map_err(|e| StartError::Bind(addr.clone(), e))?;
    let local = listener.local_addr().map(|a| a.to_string()).unwrap_or(addr);
    let metrics_task = match (&config.metrics_addr, &state.metrics) {
        (Some(addr), Some(_)) => {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| StartError::Bind(addr.clone(), e))?;
            tracing::info!(address = %addr, "metrics listening");
            let router = crate::routes::metrics_router(Arc::clone(&state));
            let limits = state.limits;
            Some(tokio::spawn(serve_connections(
                listener,
                router,
                limits,
                std::future::pending(),
            )))
        }
        _ => None,
    };
    println!(
        "tessera listening on http://{local}{} (store: {})",
        config.base_path,
        config.storage.describe()
    );
    tracing::info!(address = %local, store = %config.storage.describe(), "tessera serve started");
    serve(listener, state, shutdown_signal()).await?;
    if let Some(task) = metrics_task {
        task.abort();
    }
    tracing::info!("tessera serve stopped");
    Ok(())
}
