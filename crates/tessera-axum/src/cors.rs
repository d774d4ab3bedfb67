//! CORS for a website on another origin than the API: [`layer`] allows exactly that origin, with
//! credentials, and exactly the request headers the protocol needs; the SDK adds
//! `Access-Control-Expose-Headers` itself for the headers it sets.

use crate::config::Config;
use http::{header, HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Request headers to list in `Access-Control-Allow-Headers`: `rid`, `fdi-version`,
/// `anti-csrf`, `authorization`, `st-auth-mode` (add `content-type` for JSON bodies).
///
/// ```
/// assert!(tessera_axum::cors::ALLOWED_REQUEST_HEADERS.contains(&"st-auth-mode"));
/// ```
pub const ALLOWED_REQUEST_HEADERS: &[&str] = &[
    "rid",
    "fdi-version",
    "anti-csrf",
    "authorization",
    "st-auth-mode",
];

/// Response headers the SDK adds to `Access-Control-Expose-Headers` itself when it sets them.
pub const EXPOSED_RESPONSE_HEADERS: &[&str] = &[
    "front-token",
    "anti-csrf",
    "st-access-token",
    "st-refresh-token",
];

/// The CORS layer for `config`'s website: that one origin (never `*`, never another origin —
/// a sibling subdomain cannot add the custom headers, CSRF-04/05), credentials allowed,
/// `GET, POST, PUT, PATCH, DELETE`, and the request headers [`ALLOWED_REQUEST_HEADERS`] plus
/// `content-type`. Put it outside the session layer, so preflights never reach it.
///
/// ```
/// # fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use axum::{routing::get, Router};
/// let config = tessera_axum::Config::builder("https://api.example.com", "https://www.example.com")
///     .build()?;
/// let cors = tessera_axum::cors::layer(&config)?;
/// let app: Router = Router::new().route("/", get(|| async { "ok" })).layer(cors);
/// # Ok(()) }
/// ```
pub fn layer(config: &Config) -> Result<CorsLayer, http::header::InvalidHeaderValue> {
    let mut headers = vec![header::CONTENT_TYPE];
    headers.extend(
        ALLOWED_REQUEST_HEADERS
            .iter()
            .map(|h| HeaderName::from_static(h)),
    );
    Ok(CorsLayer::new()
        .allow_origin(AllowOrigin::exact(HeaderValue::from_str(
            config.website_origin(),
        )?))
        .allow_credentials(true)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers(headers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::post;
    use axum::Router;
    use tower::ServiceExt;

    async fn preflight(origin: &str, headers: &str) -> http::Response<Body> {
        let config = Config::builder("https://api.example.com", "https://www.example.com")
            .build()
            .unwrap();
        let app = Router::new()
            .route("/x", post(|| async { "ok" }))
            .layer(layer(&config).unwrap());
        app.oneshot(
            http::Request::builder()
                .method(Method::OPTIONS)
                .uri("/x")
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", headers)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn csrf04_only_the_website_origin_may_send_the_protocol_headers() {
        let ok = preflight("https://www.example.com", "rid,anti-csrf,st-auth-mode").await;
        let h = ok.headers();
        assert_eq!(h["access-control-allow-origin"], "https://www.example.com");
        assert_eq!(h["access-control-allow-credentials"], "true");
        let allowed = h["access-control-allow-headers"].to_str().unwrap();
        for name in ALLOWED_REQUEST_HEADERS.iter().chain(&["content-type"]) {
            assert!(allowed.contains(name), "{allowed}");
        }
        for evil in ["https://evil.test", "https://sib.example.com", "null"] {
            // tower-http answers with the configured origin whatever is asked; the browser
            // refuses the preflight because it is not the requesting origin.
            let r = preflight(evil, "rid").await;
            let allowed = r.headers().get("access-control-allow-origin");
            assert!(
                allowed.is_none_or(|v| v == "https://www.example.com"),
                "{evil} must not be allowed: {allowed:?}"
            );
        }
    }
}
