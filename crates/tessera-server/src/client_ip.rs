//! The client IP of the request being served, for the audit trail and the admin page's sign-in
//! limit. The engine knows no HTTP; the connection loop knows the peer. Rules:
//!
//! 1. Each request's handling runs inside [`scope`] with the TCP peer's address (set in
//!    [`crate::connections`]), so anything called while serving it — the engine, its event
//!    sink — reads it with [`current`] without it being passed along.
//! 2. Outside a request (the clean-up task, start-up) there is none: [`current`] is `None`.
//! 3. It is the TCP peer. Behind a proxy that is the proxy; forwarded headers are not trusted
//!    here (nothing tells which proxies to believe).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::net::{IpAddr, Ipv4Addr};
//! use tessera_server::client_ip;
//! let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
//! assert_eq!(client_ip::current(), None);
//! let seen = client_ip::scope(ip, async { client_ip::current() }).await;
//! assert_eq!(seen, Some(ip));
//! # }
//! ```

use std::future::Future;
use std::net::IpAddr;

tokio::task_local! {
    static CLIENT_IP: IpAddr;
}

/// Runs `future` with `ip` as the current client IP.
pub async fn scope<F: Future>(ip: IpAddr, future: F) -> F::Output {
    CLIENT_IP.scope(ip, future).await
}

/// The client IP of the request being served, if any. IPv4-mapped IPv6 addresses read as IPv4.
pub fn current() -> Option<IpAddr> {
    CLIENT_IP.try_with(|ip| ip.to_canonical()).ok()
}
