//! What the example binaries share: a shutdown signal for axum's graceful shutdown and the
//! route that serves the supertokens-website browser bundle.
//!
//! ```no_run
//! # async fn run(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
//! axum::serve(listener, app)
//!     .with_graceful_shutdown(tessera_examples::shutdown_signal())
//!     .await
//! # }
//! ```

use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// Resolves on SIGTERM or Ctrl-C; a server given it to `with_graceful_shutdown` then stops
/// accepting and drains its connections.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

/// The browser SDK bundle as JavaScript, or `404` with `missing` (how to provide it).
pub fn sdk_bundle_response(bundle: Option<Bytes>, missing: &'static str) -> Response {
    match bundle {
        Some(bytes) => (
            [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
            bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, missing).into_response(),
    }
}
