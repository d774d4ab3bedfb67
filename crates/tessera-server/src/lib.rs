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
pub mod args;
pub mod audit;
pub mod callers;
pub mod cdi;
pub mod client_ip;
pub mod config;
pub mod connections;
pub mod dashboard;
pub mod error;
pub mod input;
pub mod limit;
pub mod logging;
pub mod metrics;
pub mod paths;
pub mod routes;
pub mod server;
pub mod state;

/// Entry points for the `fuzz/` crate (cargo fuzz, ROB-01). Request bodies are fuzzed through
/// the real [`routes::router`]; this module only reaches the crate-private config resolution.
/// Not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    use crate::config::{parse_toml, resolve_raw, ConfigError, ServerConfig};

    /// Resolves config-file text as `tessera serve --config <file>` does, with no flags and no
    /// environment variables on top.
    pub fn resolve_config_toml(text: &str) -> Result<ServerConfig, ConfigError> {
        let raw = parse_toml(text).map_err(ConfigError)?;
        resolve_raw(&raw)
    }
}
