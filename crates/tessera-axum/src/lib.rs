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
//! let config = Config::builder("http://localhost:8080", "http://localhost:8080").build()?;
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

mod changes;
pub mod claims;
pub mod config;
pub mod core;
pub mod cors;
pub mod domains;
pub mod error;
pub mod layer;
pub mod remote;
mod routes;
pub mod session;
mod tessera;
pub mod transfer;
pub mod verify;

pub use crate::claims::{ClaimError, ClaimValidator};
pub use crate::config::{
    AntiCsrfMode, Config, ConfigBuilder, ConfigError, SameSite, TokenTransfer,
};
pub use crate::core::Core;
pub use crate::error::{RejectionKind, SessionRejection};
pub use crate::layer::{SessionLayer, SessionService};
pub use crate::remote::RemoteCore;
pub use crate::session::{Session, Sessions};
pub use crate::tessera::{ErrorHandler, Tessera};
pub use crate::transfer::TokenLocation;
