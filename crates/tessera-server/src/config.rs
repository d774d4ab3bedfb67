//! Server configuration: command-line flags, the environment variables of the SuperTokens docker
//! image, and a TOML file, in that order of precedence. Every value is validated here; a bad one
//! stops start-up with a message that names the setting and says what is allowed.

use crate::cdi::CdiVersion;
use crate::connections::ConnectionLimits;
use clap::{Args, Parser, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use tessera::SessionConfig;

/// `tessera` command line.
#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version,
    about = "A SuperTokens-compatible session core"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the SuperTokens core HTTP API (CDI 5.4, session and JWT recipes).
    Serve(ServeArgs),
}

/// Flags of `tessera serve`. Each also reads the environment variable shown; flags win over
/// the environment, which wins over the `--config` file.
#[derive(Default, Clone, Args)]
pub struct ServeArgs {
    /// A TOML file with the same settings (snake_case keys, as in the core's config.yaml).
    #[arg(long, env = "TESSERA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1).
    #[arg(long, env = "SUPERTOKENS_HOST")]
    pub host: Option<String>,
    /// Port to listen on (default 3567; 0 picks a free port).
    #[arg(long, env = "SUPERTOKENS_PORT")]
    pub port: Option<String>,
    /// PostgreSQL URL (`postgres://…`); without it a SQLite file is used.
    #[arg(long, env = "POSTGRESQL_CONNECTION_URI")]
    pub database_url: Option<String>,
    /// PostgreSQL schema to keep the tables in (created if missing).
    #[arg(long, env = "POSTGRESQL_TABLE_SCHEMA")]
    pub database_schema: Option<String>,
    /// SQLite file (default `tessera.db`), used when no PostgreSQL URL is given.
    #[arg(long, env = "TESSERA_SQLITE_PATH")]
    pub sqlite_path: Option<PathBuf>,
    /// Comma-separated API keys; when set, every API except /hello and the JWKS needs one.
    #[arg(long, env = "API_KEYS")]
    pub api_keys: Option<String>,
    /// Access-token lifetime in seconds (1 … 86400000, default 3600).
    #[arg(long, env = "ACCESS_TOKEN_VALIDITY")]
    pub access_token_validity: Option<String>,
    /// Session (refresh-token) lifetime in minutes (default 144000).
    #[arg(long, env = "REFRESH_TOKEN_VALIDITY")]
    pub refresh_token_validity: Option<String>,
    /// How long a dynamic signing key signs, in hours (default 168; tests use fractions).
    #[arg(long, env = "ACCESS_TOKEN_DYNAMIC_SIGNING_KEY_UPDATE_INTERVAL")]
    pub access_token_dynamic_signing_key_update_interval: Option<String>,
    /// The refresh-token rotation grace window, in seconds: how long after a promotion the
    /// previous token is a late request rather than theft, and the least time between two
    /// promotions (0 … 300, default 30; 0 is the strict SuperTokens CDI 5.4 behaviour).
    #[arg(long, env = "REFRESH_TOKEN_ROTATION_GRACE_PERIOD")]
    pub refresh_token_rotation_grace_period: Option<String>,
    /// Access-token validity jitter, a fraction from 0 to 0.25 (default 0, off): create and
    /// refresh mint with `validity × (1 − U[0, jitter])` (SuperTokens 12.1).
    #[arg(long, env = "ACCESS_TOKEN_VALIDITY_JITTER")]
    pub access_token_validity_jitter: Option<String>,
    /// Prefix of every API path (e.g. `/auth`).
    #[arg(long, env = "BASE_PATH")]
    pub base_path: Option<String>,
    /// Highest CDI version accepted and assumed when a request names none.
    #[arg(long, env = "SUPERTOKENS_MAX_CDI_VERSION")]
    pub supertokens_max_cdi_version: Option<String>,
    /// Lowest CDI version accepted.
    #[arg(long, env = "SUPERTOKENS_MIN_CDI_VERSION")]
    pub supertokens_min_cdi_version: Option<String>,
    /// Log level: trace, debug, info, warn, error or none (default info). At debug, one line
    /// per request (method, route, status, latency).
    #[arg(long, env = "LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Log format on stderr: `text` (default; colours only on a terminal) or `json` (one JSON
    /// object per line).
    #[arg(long, env = "TESSERA_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Prometheus metrics: `on` (default) or `off`. On, `GET /metrics` answers the text
    /// exposition format (behind the API key when keys are set), unless `--metrics-addr`.
    #[arg(long, env = "TESSERA_METRICS")]
    pub metrics: Option<String>,
    /// Serve `GET /metrics` on this address (`host:port`) instead, without an API key; the
    /// main port then has no `/metrics`. Keep it on a private interface.
    #[arg(long, env = "TESSERA_METRICS_ADDR")]
    pub metrics_addr: Option<String>,
    /// Per-API-key rate limit, `N/s`, `N/m` or `N/h` (default off): past it, 429 with
    /// `Retry-After`.
    #[arg(long, env = "TESSERA_API_KEY_RATE_LIMIT")]
    pub api_key_rate_limit: Option<String>,
    /// Seconds a client may take to send a request's line and headers; also how long an idle
    /// keep-alive connection stays open (default 10; 0.1 … 3600).
    #[arg(long, env = "TESSERA_HEADER_READ_TIMEOUT")]
    pub header_read_timeout: Option<String>,
    /// Seconds from a request's headers to its answer, body included; past it the answer is
    /// 408 (default 30; 0.1 … 3600).
    #[arg(long, env = "TESSERA_REQUEST_TIMEOUT")]
    pub request_timeout: Option<String>,
    /// Connections open at once; more wait, unaccepted (default 10000; 1 … 1000000).
    #[arg(long, env = "TESSERA_MAX_CONNECTIONS")]
    pub max_connections: Option<String>,
    /// Access tokens whose verification each app remembers, so a token seen again skips the
    /// RSA check (default 10000; 0 turns the cache off; at most 1000000). Memory: about
    /// 2 KiB per token, so the default holds about 20 MiB once full (measured by
    /// `scripts/soak.sh`); when full the cache is emptied, not grown.
    #[arg(long, env = "TESSERA_VERIFIED_TOKEN_CACHE")]
    pub verified_token_cache: Option<String>,
    /// Operator static signing key: a PKCS#8 PEM or the core's `<spki>|<pkcs8>` form. Only
    /// this key and the previous keys below verify static-key tokens (a replaced key stops at
    /// once). Prefer `--static-signing-key-file`: a value on the command line is visible to
    /// every local user in the process list.
    #[arg(
        long,
        env = "TESSERA_STATIC_SIGNING_KEY",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub static_signing_key: Option<String>,
    /// A file holding the operator static signing key (same forms); exclusive with
    /// `--static-signing-key`.
    #[arg(long, env = "TESSERA_STATIC_SIGNING_KEY_FILE")]
    pub static_signing_key_file: Option<PathBuf>,
    /// Comma-separated previous operator static keys (same forms): they still verify and stay
    /// in the JWKS during an overlap, but never sign; drop one to reject its tokens.
    #[arg(
        long,
        env = "TESSERA_PREVIOUS_STATIC_SIGNING_KEYS",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub previous_static_signing_keys: Option<String>,
    /// Anonymous-token signing key of the public app: an Ed25519 (or RSA) PKCS#8 PEM, or
    /// `ed25519|<b64 PKCS#8>`. Without it one is generated once and kept in the database.
    #[arg(
        long,
        env = "TESSERA_ANONYMOUS_SIGNING_KEY",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub anonymous_signing_key: Option<String>,
    /// Comma-separated previous anonymous keys (same forms): they still verify, so tokens they
    /// signed keep working and are re-signed; drop one to reject its tokens at once.
    #[arg(
        long,
        env = "TESSERA_PREVIOUS_ANONYMOUS_SIGNING_KEYS",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub previous_anonymous_signing_keys: Option<String>,
    /// Keep the audit trail in the store for this many days (1 … 36500); deleted after. Without
    /// it, audit records go to the log (`tessera::audit` target) and the admin page's
    /// in-memory list only.
    #[arg(long, env = "TESSERA_AUDIT_RETENTION_DAYS")]
    pub audit_retention_days: Option<String>,
    /// Admin key: turns on the admin page at `/dashboard` (at least 20 characters of a-z, A-Z,
    /// 0-9, '=' and '-'). Prefer the environment variable or the config file: a value on the
    /// command line is visible to every local user in the process list.
    #[arg(
        long,
        env = "TESSERA_ADMIN_KEY",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub admin_key: Option<String>,
}

/// Never prints the API keys, the static signing key or a database password (ROB-05).
impl std::fmt::Debug for ServeArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |v: &Option<String>| v.as_ref().map(|_| "..");
        f.debug_struct("ServeArgs")
            .field("config", &self.config)
            .field("host", &self.host)
            .field("port", &self.port)
            .field(
                "database_url",
                &self.database_url.as_deref().map(mask_password),
            )
            .field("database_schema", &self.database_schema)
            .field("sqlite_path", &self.sqlite_path)
            .field("log_format", &self.log_format)
            .field("metrics", &self.metrics)
            .field("metrics_addr", &self.metrics_addr)
            .field("api_key_rate_limit", &self.api_key_rate_limit)
            .field("verified_token_cache", &self.verified_token_cache)
            .field("api_keys", &set(&self.api_keys))
            .field("static_signing_key", &set(&self.static_signing_key))
            .field("static_signing_key_file", &self.static_signing_key_file)
            .field(
                "previous_static_signing_keys",
                &set(&self.previous_static_signing_keys),
            )
            .field("anonymous_signing_key", &set(&self.anonymous_signing_key))
            .field(
                "previous_anonymous_signing_keys",
                &set(&self.previous_anonymous_signing_keys),
            )
            .field("audit_retention_days", &self.audit_retention_days)
            .field("admin_key", &set(&self.admin_key))
            .finish_non_exhaustive()
    }
}

/// Where sessions and keys are stored.
#[derive(Clone, PartialEq, Eq)]
pub enum Storage {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database, optionally in one schema.
    Postgres {
        /// Connection URL (may hold a password; never printed whole).
        url: String,
        /// Schema for the tables.
        schema: Option<String>,
    },
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Storage {
    /// A one-line description for logs, with any password masked.
    pub fn describe(&self) -> String {
        match self {
            Storage::Sqlite(path) => format!("SQLite file {}", path.display()),
            Storage::Postgres { url, schema } => {
                let masked = mask_password(url);
                match schema {
                    Some(s) => format!("PostgreSQL {masked} (schema {s})"),
                    None => format!("PostgreSQL {masked}"),
                }
            }
        }
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<url>".into();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some((auth, host)) => (Some(auth), host),
        None => (None, rest),
    };
    // Drop the query string: it may carry a password too.
    let host = host.split('?').next().unwrap_or_default();
    match auth {
        Some(auth) => {
            let user = auth.split(':').next().unwrap_or_default();
            if auth.contains(':') {
                format!("{scheme}://{user}:***@{host}")
            } else {
                format!("{scheme}://{user}@{host}")
            }
        }
        None => format!("{scheme}://{host}"),
    }
}

/// Session settings an app may override (the core's per-app `coreConfig`). The defaults are
/// the engine's, including the 30 s rotation grace window: tabs that refresh at once are never
/// reported as theft (see `crates/tessera/src/lineage.rs`); a grace of 0 restores strict CDI 5.4.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct AppSettings {
    /// Engine settings.
    pub session: SessionConfig,
    /// API keys; `None` means no key is needed.
    pub api_keys: Option<Vec<String>>,
    /// Device, lifetime and cap settings (issue 15; all off by default).
    pub devices: tessera::DeviceConfig,
    /// `recent_token_reuse_behaviour = UNAUTHORISED` (CDI 5.6; config file only): a reuse of a
    /// recent token (subtype other than `STALE_LINEAGE`) is answered `UNAUTHORISED` instead of
    /// `TOKEN_THEFT_DETECTED`. The session is revoked either way.
    pub recent_token_reuse_unauthorised: bool,
}

/// Prints how many API keys there are, never the keys (ROB-05).
impl std::fmt::Debug for AppSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppSettings")
            .field("session", &self.session)
            .field("api_keys", &self.api_keys.as_ref().map(Vec::len))
            .field("devices", &self.devices)
            .field(
                "recent_token_reuse_unauthorised",
                &self.recent_token_reuse_unauthorised,
            )
            .finish()
    }
}

/// How log lines are written on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable text, coloured only when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The resolved, validated configuration of `tessera serve`. `Debug` never prints the static
/// signing key or the API keys.
#[derive(Clone)]
pub struct ServerConfig {
    /// Listen address.
    pub host: String,
    /// Listen port.
    pub port: u16,
    /// Store.
    pub storage: Storage,
    /// Settings of the public app (and the base of every other app).
    pub app: AppSettings,
    /// Path prefix of every API (`""` or `/something`).
    pub base_path: String,
    /// Highest CDI version accepted.
    pub max_cdi: Option<CdiVersion>,
    /// Lowest CDI version accepted.
    pub min_cdi: Option<CdiVersion>,
    /// `tracing` filter directive.
    pub log_level: String,
    /// Connection cap and client deadlines (SEC2-M4).
    pub limits: ConnectionLimits,
    /// Operator static signing key.
    pub static_signing_key: Option<String>,
    /// Previous operator static keys that still verify (never sign).
    pub previous_static_signing_keys: Vec<String>,
    /// Operator anonymous-token signing key (public app).
    pub anonymous_signing_key: Option<String>,
    /// Previous anonymous keys that still verify (public app).
    pub previous_anonymous_signing_keys: Vec<String>,
    /// Notes for the log once logging is up (e.g. ignored config-file keys).
    pub warnings: Vec<String>,
    /// Days the audit trail is kept in the store (`None`: not stored).
    pub audit_retention_days: Option<u32>,
    /// The admin page's key (`None`: no admin page).
    pub admin_key: Option<String>,
    /// Log format on stderr.
    pub log_format: LogFormat,
    /// Prometheus metrics on (default) or off.
    pub metrics: bool,
    /// A separate listener for `GET /metrics` (no API key there, none on the main port).
    pub metrics_addr: Option<String>,
    /// Per-API-key rate limit (off by default).
    pub api_key_rate_limit: Option<crate::limit::RateLimit>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("storage", &self.storage)
            .field("app", &self.app)
            .field("base_path", &self.base_path)
            .field("max_cdi", &self.max_cdi)
            .field("min_cdi", &self.min_cdi)
            .field("log_level", &self.log_level)
            .field("limits", &self.limits)
            .field(
                "static_signing_key",
                &self.static_signing_key.as_ref().map(|_| ".."),
            )
            .field(
                "previous_static_signing_keys",
                &self.previous_static_signing_keys.len(),
            )
            .field(
                "anonymous_signing_key",
                &self.anonymous_signing_key.as_ref().map(|_| ".."),
            )
            .field(
                "previous_anonymous_signing_keys",
                &self.previous_anonymous_signing_keys.len(),
            )
            .field("warnings", &self.warnings)
            .field("audit_retention_days", &self.audit_retention_days)
            .field("admin_key", &self.admin_key.as_ref().map(|_| ".."))
            .field("log_format", &self.log_format)
            .field("metrics", &self.metrics)
            .field("metrics_addr", &self.metrics_addr)
            .field("api_key_rate_limit", &self.api_key_rate_limit)
            .finish()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 3567,
            storage: Storage::Sqlite(PathBuf::from("tessera.db")),
            app: AppSettings::default(),
            base_path: String::new(),
            max_cdi: None,
            min_cdi: None,
            log_level: "info".into(),
            limits: ConnectionLimits::default(),
            static_signing_key: None,
            previous_static_signing_keys: Vec::new(),
            anonymous_signing_key: None,
            previous_anonymous_signing_keys: Vec::new(),
            warnings: Vec::new(),
            audit_retention_days: None,
            admin_key: None,
            log_format: LogFormat::Text,
            metrics: true,
            metrics_addr: None,
            api_key_rate_limit: None,
        }
    }
}

/// A configuration value was refused; the text names the setting and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Where a message names the refused value.
const GOT: &str = "; got '";

impl ConfigError {
    /// The message without the refused value: what an API caller is answered, so input is never
    /// echoed back (SEC2-INFO).
    pub fn without_value(&self) -> &str {
        self.0.split_once(GOT).map_or(&self.0, |(head, _)| head)
    }
}

fn bad(setting: &str, env: Option<&str>, allowed: &str, got: &str) -> ConfigError {
    let name = match env {
        Some(env) => format!("{setting} ({env})"),
        None => setting.to_owned(),
    };
    ConfigError(format!("invalid {name}: {allowed}{GOT}{got}'"))
}

/// Settings as text, keyed by their config-file name.
type Raw = BTreeMap<String, String>;

/// Keys the TOML file may hold.
const FILE_KEYS: &[&str] = &[
    "host",
    "port",
    "database_url",
    "postgresql_connection_uri",
    "database_schema",
    "postgresql_table_schema",
    "sqlite_path",
    "api_keys",
    "access_token_validity",
    "refresh_token_validity",
    "access_token_dynamic_signing_key_update_interval",
    "access_token_signing_key_update_interval",
    "refresh_token_rotation_grace_period",
    "access_token_validity_jitter",
    "recent_token_reuse_behaviour",
    "base_path",
    "supertokens_max_cdi_version",
    "supertokens_min_cdi_version",
    "log_level",
    "log_format",
    "metrics",
    "metrics_addr",
    "api_key_rate_limit",
    "header_read_timeout",
    "request_timeout",
    "max_connections",
    "verified_token_cache",
    "static_signing_key",
    "static_signing_key_file",
    "previous_static_signing_keys",
    "anonymous_signing_key",
    "previous_anonymous_signing_keys",
    "session_idle_timeout",
    "session_absolute_lifetime",
    "session_last_active_update_interval",
    "max_sessions_per_user",
    "session_cap_policy",
    "session_sign_in_time_claim",
    "audit_retention_days",
    "admin_key",
];

/// Marks an unknown config-file key in the raw map (reported as a warning, otherwise ignored).
const UNKNOWN_PREFIX: &str = "\u{0}unknown:";

/// Reads a TOML config file into text values.
fn read_file(path: &std::path::Path) -> Result<Raw, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
    parse_toml(&text).map_err(|e| ConfigError(format!("config file {}: {e}", path.display())))
}

/// Parses TOML text into text values; unknown keys are kept aside to be reported.
pub fn parse_toml(text: &str) -> Result<BTreeMap<String, String>, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| format!("not valid TOML: {e}"))?;
    let mut raw = Raw::new();
    for (key, value) in table {
        if !FILE_KEYS.contains(&key.as_str()) {
            raw.insert(format!("{UNKNOWN_PREFIX}{key}"), String::new());
            continue;
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|i| match i {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
            _ => return Err(format!("setting '{key}' must be a string or a number")),
        };
        let key = match key.as_str() {
            "postgresql_connection_uri" => "database_url".to_owned(),
            "postgresql_table_schema" => "database_schema".to_owned(),
            "access_token_signing_key_update_interval" => {
                "access_token_dynamic_signing_key_update_interval".to_owned()
            }
            _ => key,
        };
        raw.insert(key, text);
    }
    Ok(raw)
}

impl ServeArgs {
    /// Resolves flags/environment over the config file over defaults, and validates.
    pub fn resolve(&self) -> Result<ServerConfig, ConfigError> {
        let mut raw = match &self.config {
            Some(path) => read_file(path)?,
            None => Raw::new(),
        };
        let flags: [(&str, Option<String>); 30] = [
            ("audit_retention_days", self.audit_retention_days.clone()),
            ("admin_key", self.admin_key.clone()),
            (
                "access_token_validity_jitter",
                self.access_token_validity_jitter.clone(),
            ),
            (
                "refresh_token_rotation_grace_period",
                self.refresh_token_rotation_grace_period.clone(),
            ),
            ("host", self.host.clone()),
            ("port", self.port.clone()),
            ("database_url", self.database_url.clone()),
            ("database_schema", self.database_schema.clone()),
            (
                "sqlite_path",
                self.sqlite_path.as_ref().map(|p| p.display().to_string()),
            ),
            ("api_keys", self.api_keys.clone()),
            ("access_token_validity", self.access_token_validity.clone()),
            (
                "refresh_token_validity",
                self.refresh_token_validity.clone(),
            ),
            (
                "access_token_dynamic_signing_key_update_interval",
                self.access_token_dynamic_signing_key_update_interval
                    .clone(),
            ),
            ("base_path", self.base_path.clone()),
            (
                "supertokens_max_cdi_version",
                self.supertokens_max_cdi_version.clone(),
            ),
            (
                "supertokens_min_cdi_version",
                self.supertokens_min_cdi_version.clone(),
            ),
            ("log_level", self.log_level.clone()),
            ("log_format", self.log_format.clone()),
            ("metrics", self.metrics.clone()),
            ("metrics_addr", self.metrics_addr.clone()),
            ("api_key_rate_limit", self.api_key_rate_limit.clone()),
            ("header_read_timeout", self.header_read_timeout.clone()),
            ("request_timeout", self.request_timeout.clone()),
            ("max_connections", self.max_connections.clone()),
            ("verified_token_cache", self.verified_token_cache.clone()),
            ("static_signing_key", self.static_signing_key.clone()),
            (
                "static_signing_key_file",
                self.static_signing_key_file
                    .as_ref()
                    .map(|p| p.display().to_string()),
            ),
            (
                "previous_static_signing_keys",
                self.previous_static_signing_keys.clone(),
            ),
            ("anonymous_signing_key", self.anonymous_signing_key.clone()),
            (
                "previous_anonymous_signing_keys",
                self.previous_anonymous_signing_keys.clone(),
            ),
        ];
        for (key, value) in flags {
            if let Some(value) = value {
                raw.insert(key.to_owned(), value);
            }
        }
        resolve_raw(&raw)
    }
}

pub(crate) fn resolve_raw(raw: &Raw) -> Result<ServerConfig, ConfigError> {
    let mut config = ServerConfig::default();
    let get = |k: &str| raw.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    if let Some(host) = get("host") {
        config.host = if host == "localhost" {
            "127.0.0.1".into()
        } else {
            host.to_owned()
        };
    }
    if let Some(port) = get("port") {
        config.port = port.parse().map_err(|_| {
            bad(
                "port",
                Some("SUPERTOKENS_PORT"),
                "must be an integer from 0 to 65535",
                port,
            )
        })?;
    }
    config.storage = match get("database_url") {
        Some(url) => {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(bad(
                    "database_url",
                    Some("POSTGRESQL_CONNECTION_URI"),
                    "must be a postgres:// or postgresql:// URL",
                    &mask_password(url),
                ));
            }
            let schema = get("database_schema").map(str::to_owned);
            if let Some(s) = &schema {
                let ok = s.len() <= 63 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                if !ok {
                    return Err(bad(
                        "database_schema",
                        Some("POSTGRESQL_TABLE_SCHEMA"),
                        "must be 1 to 63 characters of a-z, A-Z, 0-9 and '_'",
                        s,
                    ));
                }
            }
            Storage::Postgres {
                url: url.to_owned(),
                schema,
            }
        }
        None => Storage::Sqlite(PathBuf::from(get("sqlite_path").unwrap_or("tessera.db"))),
    };
    let overrides: BTreeMap<String, String> = raw
        .iter()
        .filter(|(k, v)| {
            (APP_KEYS.contains(&k.as_str()) || k.as_str() == RECENT_TOKEN_REUSE_BEHAVIOUR)
                && !v.trim().is_empty()
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    config.app = apply_app_settings(&AppSettings::default(), &overrides, true)?;
    if let Some(base) = get("base_path") {
        let trimmed = base.trim_end_matches('/');
        if trimmed.is_empty() {
            config.base_path = String::new();
        } else if !trimmed.starts_with('/') || trimmed.contains(char::is_whitespace) {
            return Err(bad(
                "base_path",
                Some("BASE_PATH"),
                "must start with '/' and contain no spaces",
                base,
            ));
        } else {
            config.base_path = trimmed.to_ascii_lowercase();
        }
    }
    let version = |key: &str, env: &str| -> Result<Option<CdiVersion>, ConfigError> {
        match get(key) {
            None => Ok(None),
            Some(v) => CdiVersion::parse(v)
                .filter(|p| p.parts().len() == 2)
                .map(Some)
                .ok_or_else(|| bad(key, Some(env), "must be a version X.Y such as 5.4", v)),
        }
    };
    config.max_cdi = version("supertokens_max_cdi_version", "SUPERTOKENS_MAX_CDI_VERSION")?;
    config.min_cdi = version("supertokens_min_cdi_version", "SUPERTOKENS_MIN_CDI_VERSION")?;
    if let Some(level) = get("log_level") {
        config.log_level = match level.to_ascii_lowercase().as_str() {
            l @ ("trace" | "debug" | "info" | "warn" | "error") => l.to_owned(),
            "none" | "off" => "off".to_owned(),
            _ => {
                return Err(bad(
                    "log_level",
                    Some("LOG_LEVEL"),
                    "must be one of trace, debug, info, warn, error, none",
                    level,
                ))
            }
        };
    }
    resolve_operating(&get, &mut config)?;
    let seconds = |key: &str, env: &str| -> Result<Option<Duration>, ConfigError> {
        let Some(v) = get(key) else { return Ok(None) };
        v.parse::<f64>()
            .ok()
            .filter(|s| (0.1..=3600.0).contains(s))
            .map(|s| Some(Duration::from_secs_f64(s)))
            .ok_or_else(|| {
                bad(
                    key,
                    Some(env),
                    "must be a number of seconds from 0.1 to 3600",
                    v,
                )
            })
    };
    if let Some(d) = seconds("header_read_timeout", "TESSERA_HEADER_READ_TIMEOUT")? {
        config.limits.header_read_timeout = d;
    }
    if let Some(d) = seconds("request_timeout", "TESSERA_REQUEST_TIMEOUT")? {
        config.limits.request_timeout = d;
    }
    if let Some(v) = get("max_connections") {
        config.limits.max_connections = v
            .parse()
            .ok()
            .filter(|n| (1..=1_000_000).contains(n))
            .ok_or_else(|| {
                bad(
                    "max_connections",
                    Some("TESSERA_MAX_CONNECTIONS"),
                    "must be a whole number from 1 to 1000000",
                    v,
                )
            })?;
    }
    if let Some(v) = get("verified_token_cache") {
        config.app.session.verified_token_cache =
            v.parse().ok().filter(|n| *n <= 1_000_000).ok_or_else(|| {
                bad(
                    "verified_token_cache",
                    Some("TESSERA_VERIFIED_TOKEN_CACHE"),
                    "must be a whole number from 0 to 1000000",
                    v,
                )
            })?;
    }
    config.static_signing_key = match (get("static_signing_key"), get("static_signing_key_file")) {
        (Some(_), Some(_)) => {
            return Err(ConfigError(
                "give the operator static key once: static_signing_key \
                 (TESSERA_STATIC_SIGNING_KEY) or static_signing_key_file \
                 (TESSERA_STATIC_SIGNING_KEY_FILE), not both"
                    .into(),
            ))
        }
        (Some(key), None) => Some(key.to_owned()),
        (None, Some(path)) => Some(read_key_file(path)?),
        (None, None) => None,
    };
    config.previous_static_signing_keys = key_list(get("previous_static_signing_keys"));
    config.anonymous_signing_key = get("anonymous_signing_key").map(str::to_owned);
    config.previous_anonymous_signing_keys = key_list(get("previous_anonymous_signing_keys"));
    if let Some(days) = get("audit_retention_days") {
        config.audit_retention_days = Some(
            days.parse()
                .ok()
                .filter(|d| (1..=36_500).contains(d))
                .ok_or_else(|| {
                    bad(
                        "audit_retention_days",
                        Some("TESSERA_AUDIT_RETENTION_DAYS"),
                        "must be a whole number of days from 1 to 36500",
                        days,
                    )
                })?,
        );
    }
    if let Some(key) = get("admin_key") {
        let ok = key.len() >= 20
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'=' || b == b'-');
        if !ok {
            // Never echo the key.
            return Err(ConfigError(
                "invalid admin_key (TESSERA_ADMIN_KEY): must be at least 20 characters of a-z, \
                 A-Z, 0-9, '=' and '-'"
                    .into(),
            ));
        }
        config.admin_key = Some(key.to_owned());
    }
    config.warnings = raw
        .keys()
        .filter_map(|k| k.strip_prefix(UNKNOWN_PREFIX))
        .map(|k| format!("ignoring unknown config file setting '{k}'"))
        .collect();
    Ok(config)
}

/// Log format, metrics and rate-limit settings (issue 13).
fn resolve_operating<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    config: &mut ServerConfig,
) -> Result<(), ConfigError> {
    if let Some(v) = get("log_format") {
        config.log_format = match v.to_ascii_lowercase().as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            _ => {
                return Err(bad(
                    "log_format",
                    Some("TESSERA_LOG_FORMAT"),
                    "must be text or json",
                    v,
                ))
            }
        };
    }
    if let Some(v) = get("metrics") {
        config.metrics = match v.to_ascii_lowercase().as_str() {
            "on" | "true" => true,
            "off" | "false" => false,
            _ => {
                return Err(bad(
                    "metrics",
                    Some("TESSERA_METRICS"),
                    "must be on or off",
                    v,
                ))
            }
        };
    }
    if let Some(v) = get("metrics_addr") {
        if v.parse::<std::net::SocketAddr>().is_err() {
            return Err(bad(
                "metrics_addr",
                Some("TESSERA_METRICS_ADDR"),
                "must be an IP address and port such as 127.0.0.1:9464",
                v,
            ));
        }
        config.metrics_addr = Some(v.to_owned());
    }
    if let Some(v) = get("api_key_rate_limit") {
        let limit = v.parse().map_err(|allowed| {
            bad(
                "api_key_rate_limit",
                Some("TESSERA_API_KEY_RATE_LIMIT"),
                allowed,
                v,
            )
        })?;
        config.api_key_rate_limit = Some(limit);
    }
    Ok(())
}

/// Longest key file read (an RSA-4096 PKCS#8 PEM is about 3.3 KB).
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// Reads a key file: a regular file of at most [`MAX_KEY_FILE_BYTES`]. The error names the
/// file, never its content.
fn read_key_file(path: &str) -> Result<String, ConfigError> {
    use std::io::Read as _;
    let name = "static_signing_key_file (TESSERA_STATIC_SIGNING_KEY_FILE)";
    let fail = |what: String| ConfigError(format!("invalid {name} {path}: {what}"));
    let file =
        std::fs::File::open(path).map_err(|e| fail(format!("cannot open ({})", e.kind())))?;
    let meta = file
        .metadata()
        .map_err(|e| fail(format!("cannot read ({})", e.kind())))?;
    if !meta.is_file() || meta.len() > MAX_KEY_FILE_BYTES {
        return Err(fail(format!(
            "must be a regular file of at most {MAX_KEY_FILE_BYTES} bytes"
        )));
    }
    let mut text = String::new();
    file.take(MAX_KEY_FILE_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| fail(format!("cannot read ({})", e.kind())))?;
    if text.trim().is_empty() {
        return Err(fail("the file is empty".into()));
    }
    Ok(text)
}

/// A comma-separated list of keys (PEM and the storage forms hold no comma).
fn key_list(value: Option<&str>) -> Vec<String> {
    value
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// How a recent token's reuse is answered at CDI 5.6: a setting of the config file only (as in
/// the reference core), not of an app's `coreConfig`.
const RECENT_TOKEN_REUSE_BEHAVIOUR: &str = "recent_token_reuse_behaviour";

/// Settings an app's `coreConfig` may override.
pub const APP_KEYS: &[&str] = &[
    "access_token_validity",
    "refresh_token_validity",
    "access_token_dynamic_signing_key_update_interval",
    "refresh_token_rotation_grace_period",
    "access_token_validity_jitter",
    "api_keys",
    "session_idle_timeout",
    "session_absolute_lifetime",
    "session_last_active_update_interval",
    "max_sessions_per_user",
    "session_cap_policy",
    "session_sign_in_time_claim",
];

fn env_of(key: &str, with_env: bool) -> Option<&'static str> {
    if !with_env {
        return None;
    }
    Some(match key {
        "access_token_validity" => "ACCESS_TOKEN_VALIDITY",
        "refresh_token_validity" => "REFRESH_TOKEN_VALIDITY",
        "access_token_dynamic_signing_key_update_interval" => {
            "ACCESS_TOKEN_DYNAMIC_SIGNING_KEY_UPDATE_INTERVAL"
        }
        "api_keys" => "API_KEYS",
        "refresh_token_rotation_grace_period" => "REFRESH_TOKEN_ROTATION_GRACE_PERIOD",
        "access_token_validity_jitter" => "ACCESS_TOKEN_VALIDITY_JITTER",
        _ => return None,
    })
}

/// Applies per-app overrides (text values keyed by config name) on top of `base` and
/// validates the result. `with_env` names the environment variable in messages.
pub fn apply_app_settings(
    base: &AppSettings,
    overrides: &BTreeMap<String, String>,
    with_env: bool,
) -> Result<AppSettings, ConfigError> {
    let mut out = base.clone();
    let mut refresh_minutes: Option<f64> = None;
    for (key, value) in overrides {
        let value = value.trim();
        let env = env_of(key, with_env);
        match key.as_str() {
            "access_token_validity" => {
                let secs: u64 = value
                    .parse()
                    .ok()
                    .filter(|s| (1..=86_400_000).contains(s))
                    .ok_or_else(|| {
                        bad(
                            key,
                            env,
                            "must be a whole number of seconds from 1 to 86400000",
                            value,
                        )
                    })?;
                out.session.access_token_validity_ms = secs * 1000;
            }
            "refresh_token_validity" => {
                let minutes: f64 = value
                    .parse()
                    .ok()
                    .filter(|m: &f64| m.is_finite() && *m > 0.0 && *m <= 1e12)
                    .ok_or_else(|| bad(key, env, "must be a positive number of minutes", value))?;
                refresh_minutes = Some(minutes);
                out.session.refresh_token_validity_ms = (minutes * 60_000.0).round() as u64;
            }
            "access_token_dynamic_signing_key_update_interval" => {
                let hours: f64 = value
                    .parse()
                    .ok()
                    .filter(|h: &f64| h.is_finite() && *h >= 0.0001 && *h <= 1e9)
                    .ok_or_else(|| {
                        bad(
                            key,
                            env,
                            "must be a number of hours, at least 0.0001",
                            value,
                        )
                    })?;
                let interval_ms = (hours * 3_600_000.0).round() as u64;
                out.session.dynamic_key_update_interval_ms = interval_ms;
                // A new key is published 60 s before it signs; short test intervals shrink
                // that overlap to a quarter of the interval.
                out.session.key_overlap_ms = 60_000.min(interval_ms / 4);
            }
            "refresh_token_rotation_grace_period" => {
                let secs: u64 = value.parse().ok().filter(|s| *s <= 300).ok_or_else(|| {
                    bad(
                        key,
                        env,
                        "must be a whole number of seconds from 0 to 300",
                        value,
                    )
                })?;
                out.session.sibling_grace_ms = secs * 1000;
            }
            "access_token_validity_jitter" => {
                let fraction: f64 = value
                    .parse()
                    .ok()
                    .filter(|f: &f64| f.is_finite() && (0.0..=0.25).contains(f))
                    .ok_or_else(|| bad(key, env, "must be a number from 0 to 0.25", value))?;
                out.session.access_token_validity_jitter_ppm = (fraction * 1e6).round() as u32;
            }
            "api_keys" => {
                let keys: Vec<String> = value
                    .split(',')
                    .map(|k| k.chars().filter(|c| !c.is_whitespace()).collect::<String>())
                    .filter(|k| !k.is_empty())
                    .collect();
                let ok = !keys.is_empty()
                    && keys.iter().all(|k| {
                        k.len() >= 20
                            && k.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'=' || b == b'-')
                    });
                if !ok {
                    // Never echo the keys themselves.
                    let name = match env {
                        Some(env) => format!("{key} ({env})"),
                        None => key.clone(),
                    };
                    return Err(ConfigError(format!(
                        "invalid {name}: each comma-separated key must be at least 20 characters \
                         of a-z, A-Z, 0-9, '=' and '-'"
                    )));
                }
                out.api_keys = Some(keys);
            }
            // Issue 15: seconds; 0 turns the rule off.
            "session_idle_timeout"
            | "session_absolute_lifetime"
            | "session_last_active_update_interval" => {
                let secs: u64 =
                    value
                        .parse()
                        .ok()
                        .filter(|s| *s <= 86_400_000)
                        .ok_or_else(|| {
                            bad(
                                key,
                                env,
                                "must be a whole number of seconds from 0 to 86400000",
                                value,
                            )
                        })?;
                let ms = secs * 1000;
                let on = (secs > 0).then_some(ms);
                match key.as_str() {
                    "session_idle_timeout" => out.devices.idle_timeout_ms = on,
                    "session_absolute_lifetime" => out.devices.absolute_lifetime_ms = on,
                    _ => out.devices.last_active_interval_ms = ms,
                }
            }
            "max_sessions_per_user" => {
                let cap: u32 = value
                    .parse()
                    .ok()
                    .filter(|n| *n <= 100_000)
                    .ok_or_else(|| {
                        bad(
                            key,
                            env,
                            "must be a whole number from 0 (no cap) to 100000",
                            value,
                        )
                    })?;
                out.devices.max_sessions_per_user = (cap > 0).then_some(cap);
            }
            "session_sign_in_time_claim" => {
                out.devices.sign_in_time_claim = match value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad(key, env, "must be true or false", value)),
                };
            }
            RECENT_TOKEN_REUSE_BEHAVIOUR => {
                out.recent_token_reuse_unauthorised = match value.to_ascii_uppercase().as_str() {
                    "TOKEN_THEFT" => false,
                    "UNAUTHORISED" => true,
                    _ => return Err(bad(key, env, "must be TOKEN_THEFT or UNAUTHORISED", value)),
                };
            }
            "session_cap_policy" => {
                out.devices.over_cap = match value {
                    "revoke_least_recently_active" => tessera::OverCap::RevokeLeastRecentlyActive,
                    "refuse_sign_in" => tessera::OverCap::RefuseSignIn,
                    _ => {
                        return Err(bad(
                            key,
                            env,
                            "must be revoke_least_recently_active or refuse_sign_in",
                            value,
                        ))
                    }
                };
            }
            _ => {}
        }
    }
    if out.session.refresh_token_validity_ms <= out.session.access_token_validity_ms {
        let got = refresh_minutes
            .map(|m| m.to_string())
            .unwrap_or_else(|| (out.session.refresh_token_validity_ms / 60_000).to_string());
        return Err(bad(
            "refresh_token_validity",
            env_of("refresh_token_validity", with_env),
            "must be longer than access_token_validity (refresh_token_validity is in minutes, \
             access_token_validity in seconds)",
            &got,
        ));
    }
    out.session
        .validate()
        .map_err(|e| ConfigError(e.to_string()))?;
    out.devices
        .validate()
        .map_err(|e| ConfigError(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> Raw {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults() {
        let c = resolve_raw(&Raw::new()).unwrap();
        assert_eq!(c.host, "127.0.0.1");
        assert_eq!(c.port, 3567);
        assert_eq!(c.storage, Storage::Sqlite("tessera.db".into()));
        assert_eq!(c.app.session.access_token_validity_ms, 3_600_000);
        assert_eq!(c.app.session.refresh_token_validity_ms, 144_000 * 60_000);
        assert_eq!(c.app.session.sibling_grace_ms, 30_000);
    }

    #[test]
    fn units_follow_the_core() {
        let c = resolve_raw(&raw(&[
            ("access_token_validity", "10"),
            ("refresh_token_validity", "1.5"),
            ("access_token_dynamic_signing_key_update_interval", "2"),
        ]))
        .unwrap();
        assert_eq!(c.app.session.access_token_validity_ms, 10_000);
        assert_eq!(c.app.session.refresh_token_validity_ms, 90_000);
        assert_eq!(c.app.session.dynamic_key_update_interval_ms, 7_200_000);
    }

    #[test]
    fn bad_values_name_the_setting() {
        let e = resolve_raw(&raw(&[("access_token_validity", "abc")])).unwrap_err();
        assert!(e.0.contains("ACCESS_TOKEN_VALIDITY"), "{e}");
        assert!(e.0.contains("1 to 86400000"), "{e}");
        let e = resolve_raw(&raw(&[
            ("access_token_validity", "7200"),
            ("refresh_token_validity", "60"),
        ]))
        .unwrap_err();
        assert!(e.0.contains("REFRESH_TOKEN_VALIDITY"), "{e}");
        let e = resolve_raw(&raw(&[("api_keys", "short")])).unwrap_err();
        assert!(e.0.contains("API_KEYS") && !e.0.contains("short"), "{e}");
        let e = resolve_raw(&raw(&[("port", "70000")])).unwrap_err();
        assert!(e.0.contains("SUPERTOKENS_PORT"), "{e}");
        let e = resolve_raw(&raw(&[("database_url", "mysql://x")])).unwrap_err();
        assert!(e.0.contains("POSTGRESQL_CONNECTION_URI"), "{e}");
        let e = resolve_raw(&raw(&[(
            "access_token_dynamic_signing_key_update_interval",
            "0.00001",
        )]))
        .unwrap_err();
        assert!(e.0.contains("at least 0.0001"), "{e}");
        let e = resolve_raw(&raw(&[("access_token_validity_jitter", "0.3")])).unwrap_err();
        assert!(e.0.contains("ACCESS_TOKEN_VALIDITY_JITTER"), "{e}");
        let c = resolve_raw(&raw(&[("access_token_validity_jitter", "0.05")])).unwrap();
        assert_eq!(c.app.session.access_token_validity_jitter_ppm, 50_000);
        let c = resolve_raw(&raw(&[])).unwrap();
        assert_eq!(
            c.app.session.access_token_validity_jitter_ppm, 0,
            "off by default"
        );
        let e = resolve_raw(&raw(&[("refresh_token_rotation_grace_period", "301")])).unwrap_err();
        assert!(e.0.contains("REFRESH_TOKEN_ROTATION_GRACE_PERIOD"), "{e}");
        let c = resolve_raw(&raw(&[
            ("refresh_token_rotation_grace_period", "0"),
            ("access_token_dynamic_signing_key_update_interval", "0.0004"),
        ]))
        .unwrap();
        assert_eq!(c.app.session.sibling_grace_ms, 0);
        assert_eq!(c.app.session.key_overlap_ms, 360);
    }

    #[test]
    fn rob05_debug_never_prints_api_keys_or_the_static_key() {
        let key = "k3y-k3y-k3y-k3y-k3y-k3y-k3y";
        let pem = "-----BEGIN PRIVATE KEY-----MIIEsecretsecret";
        let mut c = resolve_raw(&raw(&[("api_keys", key), ("static_signing_key", pem)])).unwrap();
        assert_eq!(c.app.api_keys.as_deref(), Some(&[key.to_owned()][..]));
        c.storage = Storage::Postgres {
            url: "postgres://u:pa55word@h/db".into(),
            schema: None,
        };
        let args = ServeArgs {
            api_keys: Some(key.into()),
            static_signing_key: Some(pem.into()),
            database_url: Some("postgres://u:pa55word@h/db".into()),
            ..ServeArgs::default()
        };
        for text in [
            format!("{c:?}"),
            format!("{:?}", c.app),
            format!("{args:?}"),
        ] {
            for secret in [key, "MIIEsecret", "pa55word"] {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
        }
    }

    #[test]
    fn sec2_l9_key_file_errors_name_the_file_only() {
        let dir = std::env::temp_dir();
        let missing = dir.join(format!("tessera-missing-{}.pem", std::process::id()));
        let e = resolve_raw(&raw(&[(
            "static_signing_key_file",
            &missing.display().to_string(),
        )]))
        .unwrap_err();
        assert!(e.0.contains("TESSERA_STATIC_SIGNING_KEY_FILE"), "{e}");
        let e = resolve_raw(&raw(&[("static_signing_key_file", "/dev/zero")])).unwrap_err();
        assert!(e.0.contains("regular file"), "{e}");
        let file = dir.join(format!("tessera-key-{}.pem", std::process::id()));
        std::fs::write(&file, "-----BEGIN PRIVATE KEY-----\nMIIEsecretsecret\n").unwrap();
        let path = file.display().to_string();
        let c = resolve_raw(&raw(&[("static_signing_key_file", &path)])).unwrap();
        assert!(c.static_signing_key.unwrap().contains("MIIEsecretsecret"));
        let e = resolve_raw(&raw(&[
            ("static_signing_key_file", &path),
            ("static_signing_key", "-----BEGIN PRIVATE KEY-----MIIEother"),
        ]))
        .unwrap_err();
        assert!(!e.0.contains("MIIE"), "{e}");
        std::fs::remove_file(&file).unwrap();
    }

    #[test]
    fn audit_and_admin_settings() {
        let c = resolve_raw(&raw(&[])).unwrap();
        assert_eq!(
            (c.audit_retention_days, c.admin_key.is_none()),
            (None, true)
        );
        let key = "adm1n-k3y-adm1n-k3y-0123";
        let c = resolve_raw(&raw(&[("audit_retention_days", "90"), ("admin_key", key)])).unwrap();
        assert_eq!(c.audit_retention_days, Some(90));
        assert_eq!(c.admin_key.as_deref(), Some(key));
        assert!(!format!("{c:?}").contains(key));
        for bad in ["0", "36501", "x", "1.5"] {
            let e = resolve_raw(&raw(&[("audit_retention_days", bad)])).unwrap_err();
            assert!(e.0.contains("TESSERA_AUDIT_RETENTION_DAYS"), "{e}");
        }
        for bad in ["short-key", "has spaces in the admin key!"] {
            let e = resolve_raw(&raw(&[("admin_key", bad)])).unwrap_err();
            assert!(
                e.0.contains("TESSERA_ADMIN_KEY") && !e.0.contains(bad),
                "{e}"
            );
        }
        let args = ServeArgs {
            admin_key: Some(key.into()),
            ..ServeArgs::default()
        };
        assert!(!format!("{args:?}").contains(key));
    }

    #[test]
    fn toml_file_values() {
        let raw = parse_toml(
            "port = 4000\naccess_token_validity = 30\napi_keys = [\"aaaaaaaaaaaaaaaaaaaaaaa\"]\n\
             postgresql_connection_uri = \"postgres://u:p@h/db\"\nunknown = 1\n\
             header_read_timeout = 2\nrequest_timeout = 0.5\nmax_connections = 7\n\
             verified_token_cache = 0\n",
        )
        .unwrap();
        let c = resolve_raw(&raw).unwrap();
        assert_eq!(c.port, 4000);
        assert_eq!(c.app.session.access_token_validity_ms, 30_000);
        assert_eq!(c.app.api_keys.as_deref().map(<[String]>::len), Some(1));
        assert_eq!(c.storage.describe(), "PostgreSQL postgres://u:***@h/db");
        assert_eq!(c.limits.header_read_timeout, Duration::from_secs(2));
        assert_eq!(c.limits.request_timeout, Duration::from_millis(500));
        assert_eq!(c.limits.max_connections, 7);
        assert_eq!(c.app.session.verified_token_cache, 0);
        assert_eq!(
            c.warnings,
            vec!["ignoring unknown config file setting 'unknown'"]
        );
    }
}
