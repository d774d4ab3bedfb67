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
//! use tessera_axum::{Config, Session, SessionRejection, SignIn, Tessera};
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
//! async fn login(sign_in: SignIn) -> Result<&'static str, SessionRejection> {
//!     sign_in.create("alice", Default::default(), serde_json::json!({})).await?;
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
//!
//! [`Tessera::wrap`] puts the same layer once around the whole router instead, ready for
//! `axum::serve`: the lowest cost per request.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod anonymous;
mod changes;
pub mod claims;
pub mod config;
mod context;
pub mod core;
pub mod cors;
mod dbsc;
pub mod devices;
pub mod domains;
pub mod error;
mod extract;
pub mod layer;
pub mod limit;
pub mod metrics;
pub mod remote;
mod routes;
pub mod session;
mod signin;
mod tessera;
pub mod transfer;
pub mod verify;

pub use crate::claims::{ClaimError, ClaimValidator};
pub use crate::config::{
    AntiCsrfMode, Config, ConfigBuilder, ConfigError, DbscConfig, SameSite, TokenTransfer,
};
pub use crate::core::{LocalMint, SessionCore, Verified};
pub use crate::error::{ErrorHandler, RejectionKind, SessionRejection};
pub use crate::layer::{SessionLayer, SessionService};
pub use crate::remote::RemoteCore;
pub use crate::session::Session;
pub use crate::session::{AnonymousSession, AnySession};
pub use crate::signin::SignIn;
pub use crate::tessera::{Guest, SignInHook, SigningIn, Tessera};
pub use crate::transfer::TokenLocation;

/// Entry points for the `fuzz/` crate (cargo fuzz, ROB-01): thin wrappers over the
/// crate-private request parsers of [`transfer`]. Not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    use http::HeaderMap;

    /// Every `Cookie` header parsed into percent-decoded `(name, value)` pairs, by the SDK's
    /// one cookie parser.
    pub fn request_cookies(headers: &HeaderMap) -> Vec<(String, String)> {
        crate::transfer::read::all_cookies(headers)
    }

    /// One cookie by name in a parsed list: `Ok(None)` absent, `Ok(Some(v))` exactly once,
    /// `Err(())` duplicated.
    #[allow(clippy::result_unit_err)]
    pub fn cookie(cookies: &[(String, String)], name: &str) -> Result<Option<String>, ()> {
        let mut found = cookies.iter().filter(|(n, _)| n == name);
        match (found.next(), found.next()) {
            (None, _) => Ok(None),
            (Some((_, v)), None) => Ok(Some(v.clone())),
            _ => Err(()),
        }
    }

    /// The lookup by name the SDK's read pass makes; must agree with [`request_cookies`]
    /// followed by [`cookie`].
    #[allow(clippy::result_unit_err)]
    pub fn find_cookie(headers: &HeaderMap, name: &str) -> Result<Option<String>, ()> {
        match crate::transfer::read::find_cookie(headers, name) {
            crate::transfer::read::CookieRef::Absent => Ok(None),
            crate::transfer::read::CookieRef::One(v) => Ok(Some(v.into_owned())),
            crate::transfer::read::CookieRef::Duplicate => Err(()),
        }
    }

    /// The token of a single `Authorization: Bearer <token>` header.
    pub fn bearer(headers: &HeaderMap) -> Option<String> {
        crate::transfer::read::bearer(headers).map(str::to_owned)
    }

    /// The `kid` of a token that has the shape of an access token.
    pub fn access_token_kid(token: &str) -> Option<String> {
        crate::transfer::read::access_token_kid(token)
    }
}

/// The README's Rust examples, compiled as doctests so the documentation keeps working.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
