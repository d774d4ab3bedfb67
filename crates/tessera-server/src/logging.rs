//! Logging on stderr. The rules:
//!
//! 1. `text` (default) or `json` (one JSON object per line, for log collectors).
//! 2. Colours (ANSI escapes) only when stderr is a terminal: a pipe or a file gets plain text.
//! 3. `TESSERA_LOG` (an `EnvFilter` directive) wins over the configured level; sqlx is kept at
//!    `warn` otherwise.
//! 4. At `debug`, one line per request on the `tessera::request` target: method, route
//!    template, status and latency. Never the raw path, the query or a header value (they may
//!    carry user ids or tokens). At `info` there is no per-request line.

use crate::config::LogFormat;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Installs the process-wide subscriber; call once, before anything logs.
///
/// ```no_run
/// use tessera_server::config::LogFormat;
/// tessera_server::logging::init(LogFormat::Json, "info");
/// tracing::info!("started");
/// ```
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_env("TESSERA_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},sqlx=warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}
