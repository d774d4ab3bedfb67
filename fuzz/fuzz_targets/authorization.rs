//! ROB-01 (6): `Authorization` header parsing: the SDK's bearer extraction, its access-token
//! shape check (`kid`), and the server's API-key header forms.
//!
//! The input is split on `\n` into several header values; the first byte chooses whether they
//! go to `Authorization` or `api-key`. Properties: no panic; a bearer token is returned only
//! from exactly one `Authorization: Bearer ` header and is non-empty and trimmed; a `kid` is
//! reported only for three non-empty-tail dot segments; the API key is accepted only when a
//! header carries exactly the configured key (after trimming / the `Bearer ` prefix).
#![no_main]

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tessera_axum::fuzzing::{access_token_kid, bearer};
use tessera_server::api_key::api_key_ok;

const API_KEY: &str = "fuzz-api-key-0123456789abcdef";

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let name = if mode & 1 == 0 {
        AUTHORIZATION.as_str()
    } else {
        "api-key"
    };
    let mut headers = HeaderMap::new();
    let mut values = Vec::new();
    for line in rest.split(|b| *b == b'\n') {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            headers.append(name, v.clone());
            values.push(v);
        }
    }

    let token = bearer(&headers);
    if let Some(t) = &token {
        assert_eq!(name, AUTHORIZATION.as_str());
        assert_eq!(
            values.len(),
            1,
            "bearer token from several Authorization headers"
        );
        assert!(!t.is_empty() && t.trim() == t);
        let raw = values[0].to_str().expect("bearer came from a text header");
        assert!(raw.starts_with("Bearer "));
        if let Some(kid) = access_token_kid(t) {
            let parts: Vec<&str> = t.split('.').collect();
            assert_eq!(parts.len(), 3);
            assert!(!parts[1].is_empty() && !parts[2].is_empty());
            let _ = kid;
        }
    }
    if let Ok(text) = std::str::from_utf8(rest) {
        let _ = access_token_kid(text);
    }

    let keys = [API_KEY.to_owned()];
    if api_key_ok(&headers, Some(&keys)) {
        let carried = values.iter().filter_map(|v| v.to_str().ok()).any(|v| {
            let v = v.trim();
            v == API_KEY
                || (v.len() > 7
                    && v[..7].eq_ignore_ascii_case("bearer ")
                    && v[7..].trim() == API_KEY)
        });
        assert!(carried, "API key accepted without the key");
    }
    assert!(api_key_ok(&headers, None));
});
