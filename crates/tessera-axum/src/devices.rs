//! The device of a sign-in (issue 15): the user agent and the client IP that
//! [`crate::SignIn`] records by itself, and the freshness claim of
//! [`crate::Session::require_signed_in_within`].
//!
//! The client IP is the connection's peer address (axum's `ConnectInfo<SocketAddr>`, present
//! when the app serves with `into_make_service_with_connect_info`). `X-Forwarded-For` is read
//! only when that peer is one of the proxies the app named with
//! [`crate::Tessera::with_trusted_proxies`]: the header is walked from the right, skipping
//! trusted proxies, and the first other address is the client. A header from any other hop
//! is ignored, so a client cannot choose the address it is listed with.

use http::HeaderMap;
use std::net::IpAddr;

/// The claim id of the freshness check, for the front end to act on (ask the user to sign in
/// again, then call the app's re-authentication route).
pub const SIGNED_IN_WITHIN_CLAIM_ID: &str = "tessera-auth-time";

/// The client IP: the peer unless it is a trusted proxy, then the nearest untrusted
/// `X-Forwarded-For` hop. `None` without a peer address (a header alone is never believed).
///
/// ```
/// use std::net::IpAddr;
/// use tessera_axum::devices::client_ip;
/// let mut h = http::HeaderMap::new();
/// h.insert("x-forwarded-for", "198.51.100.9, 10.0.0.2".parse().unwrap());
/// let proxy: IpAddr = "10.0.0.1".parse().unwrap();
/// let trusted = ["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()];
/// assert_eq!(client_ip(Some(proxy), &h, &trusted), Some("198.51.100.9".parse().unwrap()));
/// assert_eq!(client_ip(Some(proxy), &h, &[]), Some(proxy), "no trusted proxies: the peer");
/// assert_eq!(client_ip(None, &h, &trusted), None);
/// ```
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = peer?.to_canonical();
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let mut hops = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(text) = value.to_str() else {
            return Some(peer);
        };
        for hop in text.split(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => hops.push(ip.to_canonical()),
                // A malformed list: believe nothing in it.
                Err(_) => return Some(peer),
            }
        }
    }
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        client = hop;
        if !trusted.contains(&hop) {
            break;
        }
    }
    Some(client)
}

/// The `User-Agent` header as text (invalid UTF-8 replaced); the engine bounds its length.
pub(crate) fn user_agent(headers: &HeaderMap) -> Option<String> {
    headers
        .get(http::header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}
