//! # tessera-axum — sessions for axum apps
//!
//! One layer and a few extractors give an axum app SuperTokens-grade sessions that the stock
//! `supertokens-website` browser SDK works with: tokens in HttpOnly cookies or headers, the
//! `front-token` header, anti-CSRF chosen from the domains, SameSite and Secure chosen
//! automatically, and the `/auth/session/refresh` and `/auth/signout` routes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use axum::{routing::{get, post}, Router};
//! use tessera_axum::{Config, Session, SessionRejection, Sessions, Tessera};
//!
//! let store = Arc::new(tessera::SqliteStore::open("sessions.db").await?);
//! let engine = tessera::SessionEngine::builder(store).build().await?;
//! // Secure cookies (browsers accept them on http://localhost): the anonymous-session cookie
//! // can then be `__Host-`, which `build` requires unless the app opts out by name.
//! let config = Config::builder("http://localhost:8080", "http://localhost:8080")
//!     .secure(true)
//!     .build()?;
//! let tessera = Tessera::new(config, Arc::new(engine));
//!
//! async fn login(sessions: Sessions) -> Result<&'static str, SessionRejection> {
//!     sessions.create("alice", Default::default(), serde_json::json!({})).await?;
//!     Ok("ok")
//! }
//! async fn me(session: Session) -> String {
//!     session.user_id().to_owned()
//! }
//! let app: Router = Router::new()
//!     .route("/login", post(login))
//!     .route("/me", get(me))
//!     .layer(tessera.layer());
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod anonymous;
mod changes;
pub mod claims;
pub mod config;
pub mod core;
pub mod cors;
mod dbsc;
pub mod devices;
pub mod domains;
pub mod error;
pub mod layer;
pub mod limit;
pub mod metrics;
pub mod remote;
mod routes;
pub mod session;
mod tessera;
pub mod transfer;
pub mod verify;

pub use crate::anonymous::{AnonymousSession, AnySession};
pub use crate::claims::{ClaimError, ClaimValidator};
pub use crate::config::{
    AntiCsrfMode, Config, ConfigBuilder, ConfigError, DbscConfig, SameSite, TokenTransfer,
};
pub use crate::core::{LocalMint, SessionCore, Verified};
pub use crate::error::{RejectionKind, SessionRejection};
pub use crate::layer::{SessionLayer, SessionService};
pub use crate::remote::RemoteCore;
pub use crate::session::{Session, Sessions};
pub use crate::tessera::{ErrorHandler, SignIn, SignInHook, Tessera};
pub use crate::transfer::TokenLocation;

/// Entry points for the `fuzz/` crate (cargo fuzz, ROB-01): thin wrappers over the
/// crate-private request parsers of [`transfer`]. Not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    use http::HeaderMap;

    /// Every `Cookie` header parsed into percent-decoded `(name, value)` pairs.
    pub fn request_cookies(headers: &HeaderMap) -> Vec<(String, String)> {
        crate::transfer::request_cookies(headers)
    }

    /// One cookie by name: `Ok(None)` absent, `Ok(Some(v))` exactly once, `Err(())` duplicated.
    #[allow(clippy::result_unit_err)]
    pub fn cookie(cookies: &[(String, String)], name: &str) -> Result<Option<String>, ()> {
        match crate::transfer::cookie(cookies, name) {
            crate::transfer::CookieValue::Absent => Ok(None),
            crate::transfer::CookieValue::One(v) => Ok(Some(v)),
            crate::transfer::CookieValue::Duplicate => Err(()),
        }
    }

    /// The hot-path lookup of one cookie straight in the headers; must agree with
    /// [`request_cookies`] followed by [`cookie`].
    #[allow(clippy::result_unit_err)]
    pub fn find_cookie(headers: &HeaderMap, name: &str) -> Result<Option<String>, ()> {
        match crate::transfer::find_cookie(headers, name) {
            crate::transfer::CookieRef::Absent => Ok(None),
            crate::transfer::CookieRef::One(v) => Ok(Some(v.into_owned())),
            crate::transfer::CookieRef::Duplicate => Err(()),
        }
    }

    /// The token of a single `Authorization: Bearer <token>` header.
    pub fn bearer(headers: &HeaderMap) -> Option<String> {
        crate::transfer::bearer(headers)
    }

    /// The `kid` of a token that has the shape of an access token.
    pub fn access_token_kid(token: &str) -> Option<String> {
        crate::transfer::access_token_kid(token)
    }
}

/// The README's Rust examples, compiled as doctests so the documentation keeps working.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
