//! ROB-01 (5): `Cookie` header parsing (tessera-axum `transfer`), COOK-14's corpus as seeds.
//!
//! The input is split on `\n` into several `Cookie` header values (values `http` refuses are
//! skipped, as a server would never see them). Properties: no panic; a cookie found by name is
//! the value of exactly one pair with that name, and a nameless pair never matches a session
//! cookie; the hot-path lookup (`find_cookie`) agrees with the full parse; percent-decoding
//! inverts percent-encoding; a cookie we set reads back exactly.
#![no_main]

use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tessera_axum::fuzzing::{cookie, find_cookie, request_cookies};
use tessera_axum::transfer::{percent_decode, percent_encode};

const NAMES: &[&str] = &["sAccessToken", "sRefreshToken", "sIdRefreshToken", ""];

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            headers.append(COOKIE, v);
        }
    }
    let cookies = request_cookies(&headers);
    for (name, _) in cookies.iter().take(8) {
        assert_eq!(
            find_cookie(&headers, name),
            cookie(&cookies, name),
            "lookup of {name:?}"
        );
    }
    for name in NAMES {
        assert_eq!(
            find_cookie(&headers, name),
            cookie(&cookies, name),
            "lookup of {name:?}"
        );
        let n = cookies.iter().filter(|(k, _)| k == name).count();
        match cookie(&cookies, name) {
            Ok(None) => assert_eq!(n, 0),
            Ok(Some(v)) => {
                assert_eq!(n, 1);
                assert!(cookies.iter().any(|(k, val)| k == name && *val == v));
            }
            Err(()) => assert!(n >= 2),
        }
    }
    for (name, _) in &cookies {
        assert!(!name.is_empty() || !NAMES[..3].contains(&name.as_str()));
    }

    if let Ok(text) = std::str::from_utf8(data) {
        let encoded = percent_encode(text);
        assert_eq!(
            percent_decode(&encoded),
            text,
            "percent coding does not round-trip"
        );
        let mut ours = HeaderMap::new();
        let line = format!("other=1; sRefreshToken={encoded}; x=\"y\"");
        if let Ok(v) = HeaderValue::from_str(&line) {
            ours.insert(COOKIE, v);
            let parsed = request_cookies(&ours);
            assert_eq!(cookie(&parsed, "sRefreshToken"), Ok(Some(text.to_owned())));
        }
    }
});
