//! Accepting connections (SEC2-M4). The rules, in the order a connection meets them:
//!
//! 1. **Cap.** At most [`ConnectionLimits::max_connections`] connections are open at once. The
//!    next one is not accepted until one closes: it waits in the kernel's listen backlog and costs
//!    this process no file descriptor.
//! 2. **Header deadline.** Each request's line and headers must arrive within
//!    [`ConnectionLimits::header_read_timeout`], counted from the moment the server starts
//!    reading them, so an idle keep-alive connection is closed after the same time (hyper's
//!    `header_read_timeout`).
//! 3. **Request deadline.** From its headers to its answer (body read included) a request gets
//!    [`ConnectionLimits::request_timeout`]; past it the answer is `408` and the connection is
//!    closed (applied by the router, see `routes`).
//! 4. **Client IP.** Every request on a connection is served inside
//!    [`crate::client_ip::scope`] with the peer's address, for the audit trail.
//! 5. **Shutdown.** When the shutdown future completes, no new connection is accepted, idle ones
//!    close, and requests in flight finish (each is still bound by its request deadline).
//!
//! ```
//! use std::time::Duration;
//! use tessera_server::connections::ConnectionLimits;
//! let limits = ConnectionLimits::default();
//! assert_eq!(limits.header_read_timeout, Duration::from_secs(10));
//! assert_eq!(limits.request_timeout, Duration::from_secs(30));
//! assert_eq!(limits.max_connections, 10_000);
//! ```

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// How long a client may take and how many may be connected at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time allowed to send a request's line and headers (default 10 s); also how long an idle
    /// keep-alive connection stays open.
    pub header_read_timeout: Duration,
    /// Time allowed from a request's headers to its answer, body included (default 30 s).
    pub request_timeout: Duration,
    /// Connections open at once (default 10,000); more wait unaccepted.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 10_000,
        }
    }
}

/// Serves `router` on `listener` under `limits` until `shutdown` completes, then waits for the
/// open connections to finish their requests.
pub(crate) async fn serve_connections(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Reap finished connection tasks so the set stays as small as the open connections.
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // never closed
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let mut stop = stop_rx.clone();
        connections.spawn(crate::client_ip::scope(peer.ip(), async move {
            let _permit = permit;
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let mut conn = std::pin::pin!(builder.serve_connection(TokioIo::new(stream), service));
            let outcome = tokio::select! {
                outcome = conn.as_mut() => outcome,
                () = async { let _ = stop.wait_for(|stop| *stop).await; } => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = outcome {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while connections.join_next().await.is_some() {}
}

/// An `accept` error: a connection that failed before it was accepted is skipped; anything else
/// (out of file descriptors) is logged and retried after a pause, so the loop never spins.
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "cannot accept a connection; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
