//! # tessera-server — `tessera serve`
//!
//! A drop-in SuperTokens core for the session and JWT recipes: the HTTP API of CDI 5.4 that
//! supertokens-node 24 and supertokens-python call, on the [`tessera`] engine, with SQLite or
//! PostgreSQL storage.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use tessera_server::config::ServerConfig;
//! tessera_server::server::run(ServerConfig::default()).await?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api_key;
pub mod apps;
pub mod cdi;
pub mod config;
pub mod error;
pub mod input;
pub mod paths;
pub mod routes;
pub mod server;
