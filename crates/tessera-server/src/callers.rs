//! Who may call the core (SEC2-L1). A core is called by backends (supertokens-node,
//! supertokens-python, `tessera-axum`'s remote client), never by browsers; with no API key (the
//! default) a browser that can reach the core could otherwise revoke sessions with a
//! cross-site form. The rules, checked in this order:
//!
//! 1. **No browser.** A request with an `Origin` header, or with `Sec-Fetch-Site` other than
//!    `none` (a URL typed into the address bar), comes from a web page: `403`. Backend HTTP
//!    clients send neither.
//! 2. **JSON bodies only.** A request whose API reads a JSON body must say
//!    `Content-Type: application/json` (any parameters, any case): `415` otherwise, so a form or
//!    `text/plain` body never reaches an endpoint (CSRF-02, ROB-03).
//!
//! ```
//! use axum::http::{HeaderMap, HeaderValue};
//! use tessera_server::callers::{from_browser, is_json};
//! let mut headers = HeaderMap::new();
//! headers.insert("content-type", HeaderValue::from_static("application/json; charset=utf-8"));
//! assert!(!from_browser(&headers) && is_json(&headers));
//! headers.insert("origin", HeaderValue::from_static("https://evil.test"));
//! assert!(from_browser(&headers));
//! ```

use axum::http::{header, HeaderMap};

/// True when the request was sent by a browser on behalf of a web page: it carries `Origin`,
/// or a `Sec-Fetch-Site` other than `none`.
pub fn from_browser(headers: &HeaderMap) -> bool {
    headers.contains_key(header::ORIGIN)
        || headers
            .get_all("sec-fetch-site")
            .iter()
            .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"none"))
}

/// True when `Content-Type` is `application/json`, with or without parameters.
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn browsers_and_json() {
        assert!(!from_browser(&with(&[])));
        assert!(!from_browser(&with(&[("sec-fetch-site", "none")])));
        for site in ["cross-site", "same-site", "same-origin", "x"] {
            assert!(from_browser(&with(&[("sec-fetch-site", site)])), "{site}");
        }
        assert!(from_browser(&with(&[("origin", "null")])));
        assert!(is_json(&with(&[("content-type", "application/json")])));
        assert!(is_json(&with(&[(
            "content-type",
            "Application/JSON ; charset=UTF-8"
        )])));
        for t in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
            "",
        ] {
            assert!(!is_json(&with(&[("content-type", t)])), "{t}");
        }
        assert!(!is_json(&with(&[])));
    }
}
