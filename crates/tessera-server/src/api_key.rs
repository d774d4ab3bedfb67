//! API-key checking: the `api-key` header, or `Authorization: Bearer <key>` or the raw
//! `Authorization` value. Keys are compared after trimming, in constant time: the SHA-256 of the
//! presented key against the SHA-256 of every configured key (so neither a key's content nor its
//! length shows in the timing), every key checked whatever the outcome (ROB-05).

use axum::http::HeaderMap;
use tessera::fuzzing::{constant_time_eq, sha256_hex};

/// True when the request carries one of `keys` (or when no key is configured).
pub fn api_key_ok(headers: &HeaderMap, keys: Option<&[String]>) -> bool {
    let Some(keys) = keys else { return true };
    let presented = presented_key(headers);
    let Some(presented) = presented else {
        return false;
    };
    let presented = sha256_hex(&presented);
    keys.iter().fold(false, |found, k| {
        found | constant_time_eq(sha256_hex(k).as_bytes(), presented.as_bytes())
    })
}

/// The SHA-256 (hex) of the key a request presents, if any: what the per-key rate limit is
/// keyed by, so the key itself is not kept a second time.
pub fn presented_key_hash(headers: &HeaderMap) -> Option<String> {
    presented_key(headers).map(|k| sha256_hex(&k))
}

fn presented_key(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers.get("api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim().to_owned());
    }
    let auth = headers.get("authorization")?.to_str().ok()?.trim();
    let lower = auth.to_ascii_lowercase();
    if lower.starts_with("bearer ") {
        auth.get(7..).map(|k| k.trim().to_owned())
    } else {
        Some(auth.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_forms() {
        let keys = vec![
            "k1k1k1k1k1k1k1k1k1k1k1".to_owned(),
            "k2k2k2k2k2k2k2k2k2k2k2".to_owned(),
        ];
        let mut h = HeaderMap::new();
        assert!(api_key_ok(&h, None));
        assert!(!api_key_ok(&h, Some(&keys)));
        h.insert("api-key", " k2k2k2k2k2k2k2k2k2k2k2 ".parse().unwrap());
        assert!(api_key_ok(&h, Some(&keys)));
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            "BEARER k1k1k1k1k1k1k1k1k1k1k1".parse().unwrap(),
        );
        assert!(api_key_ok(&h, Some(&keys)));
        let mut h = HeaderMap::new();
        h.insert("authorization", "k1k1k1k1k1k1k1k1k1k1k1".parse().unwrap());
        assert!(api_key_ok(&h, Some(&keys)));
        h.insert("authorization", "wrong".parse().unwrap());
        assert!(!api_key_ok(&h, Some(&keys)));
    }
}
