//! Harness for tests that run the real `tessera serve` binary as a child process: spawn it on a
//! SQLite file or a PostgreSQL schema, read the address from its first stdout line, talk to it
//! over HTTP, and SIGKILL it (only this child, by PID) when asked or when dropped.
//!
//! PostgreSQL is `TESSERA_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`);
//! set `TESSERA_SKIP_POSTGRES=1` to skip PostgreSQL tests locally (ignored when `CI=true`).
#![allow(dead_code)]

use base64::Engine as _;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

/// Settings the binary reads from the environment; cleared so the host cannot leak in.
const ENV_KEYS: &[&str] = &[
    "TESSERA_CONFIG",
    "SUPERTOKENS_HOST",
    "SUPERTOKENS_PORT",
    "POSTGRESQL_CONNECTION_URI",
    "POSTGRESQL_TABLE_SCHEMA",
    "TESSERA_SQLITE_PATH",
    "API_KEYS",
    "ACCESS_TOKEN_VALIDITY",
    "REFRESH_TOKEN_VALIDITY",
    "ACCESS_TOKEN_DYNAMIC_SIGNING_KEY_UPDATE_INTERVAL",
    "REFRESH_TOKEN_ROTATION_GRACE_PERIOD",
    "ACCESS_TOKEN_VALIDITY_JITTER",
    "BASE_PATH",
    "SUPERTOKENS_MAX_CDI_VERSION",
    "SUPERTOKENS_MIN_CDI_VERSION",
    "LOG_LEVEL",
    "TESSERA_STATIC_SIGNING_KEY",
    "TESSERA_HEADER_READ_TIMEOUT",
    "TESSERA_REQUEST_TIMEOUT",
    "TESSERA_MAX_CONNECTIONS",
    "TESSERA_STATIC_SIGNING_KEY_FILE",
    "TESSERA_PREVIOUS_STATIC_SIGNING_KEYS",
    "TESSERA_LOG",
    "TESSERA_ADMIN_KEY",
    "TESSERA_AUDIT_RETENTION_DAYS",
    "TESSERA_LOG_FORMAT",
    "TESSERA_METRICS",
    "TESSERA_METRICS_ADDR",
    "TESSERA_API_KEY_RATE_LIMIT",
];

pub fn postgres_url() -> String {
    std::env::var("TESSERA_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// True when PostgreSQL tests should be skipped (only when explicitly asked, never in CI).
pub fn skip_postgres() -> bool {
    let asked = std::env::var("TESSERA_SKIP_POSTGRES").is_ok_and(|v| v == "1");
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    asked && !ci
}

/// A fresh schema name; the test script drops `tessera_srv_%` schemas before runs.
pub fn fresh_schema(tag: &str) -> String {
    format!("tessera_srv_{tag}_{}", uuid::Uuid::new_v4().simple())
}

/// Where the server keeps its data.
#[derive(Debug, Clone)]
pub enum Storage {
    Sqlite(PathBuf),
    Postgres { schema: String },
}

impl Storage {
    fn args(&self) -> Vec<String> {
        match self {
            Storage::Sqlite(path) => vec!["--sqlite-path".into(), path.display().to_string()],
            Storage::Postgres { schema } => vec![
                "--database-url".into(),
                postgres_url(),
                "--database-schema".into(),
                schema.clone(),
            ],
        }
    }
}

/// A `tessera serve` child process, spawned but maybe not yet listening.
pub struct Spawned {
    child: Option<Child>,
    stdout: Option<BufReader<ChildStdout>>,
    log: PathBuf,
}

/// A listening `tessera serve` child. Dropping it SIGKILLs and reaps the child.
pub struct Server {
    child: Child,
    /// Kept open so a late write to stdout never hits a closed pipe.
    _stdout: BufReader<ChildStdout>,
    pub base: String,
    pub log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `tessera serve` on 127.0.0.1 with a free port; `log` receives its stderr (appended,
/// so one file can hold several lives of a server).
pub fn spawn(storage: &Storage, extra: &[&str], log: &Path) -> Spawned {
    spawn_with_env(storage, extra, &[], log)
}

/// [`spawn`] with some of the binary's environment variables set (e.g. `TESSERA_LOG`).
pub fn spawn_with_env(
    storage: &Storage,
    extra: &[&str],
    env: &[(&str, &str)],
    log: &Path,
) -> Spawned {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    for k in ENV_KEYS {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied());
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open server log");
    cmd.args([
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--log-level",
        "warn",
    ])
    .args(storage.args())
    .args(extra)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(stderr);
    let mut child = cmd.spawn().expect("spawn tessera");
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    Spawned {
        child: Some(child),
        stdout: Some(stdout),
        log: log.to_owned(),
    }
}

impl Spawned {
    /// Waits for the "listening" line (blocking) and returns the running server.
    pub fn ready(mut self) -> Server {
        let mut child = self.child.take().expect("child");
        let mut stdout = self.stdout.take().expect("stdout");
        let log = self.log.clone();
        let mut line = String::new();
        let n = stdout.read_line(&mut line).unwrap_or(0);
        if n == 0 || !line.starts_with("tessera listening on http://127.0.0.1:") {
            let _ = child.kill();
            let status = child.wait();
            panic!(
                "tessera did not start ({status:?}); stdout {line:?}; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        let base = line
            .split_whitespace()
            .nth(3)
            .expect("address")
            .trim_end_matches('/')
            .to_owned();
        Server {
            child,
            _stdout: stdout,
            base,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL (`Child::kill`) and reap this child only.
    pub fn sigkill(mut self) {
        self.child.kill().expect("SIGKILL tessera");
        let status = self.child.wait().expect("reap tessera");
        assert!(!status.success(), "{status:?}");
    }

    /// The server's stderr so far (for failure messages).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Starts the server and waits until it listens (blocking; use from `spawn_blocking` or
/// accept blocking a worker for the few ms of start-up).
pub fn start(storage: &Storage, extra: &[&str], log: &Path) -> Server {
    spawn(storage, extra, log).ready()
}

/// A client with a bounded per-request time, so a killed server never hangs a test.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(8)
        .build()
        .expect("client")
}

/// POST `path` with `body` as supertokens-node 24 sends it; transport errors are returned.
pub async fn try_post(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    body: &Value,
) -> Result<Value, reqwest::Error> {
    let resp = client
        .post(format!("{base}{path}"))
        .header("cdi-version", "5.4")
        .header("rid", "session")
        .header("content-type", "application/json; charset=utf-8")
        .body(body.to_string())
        .send()
        .await?;
    let status = resp.status();
    let text = resp.text().await?;
    assert!(status.is_success(), "POST {path}: HTTP {status}: {text}");
    Ok(serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("POST {path}: not JSON ({e}): {text}")))
}

/// GET `path`; transport errors are returned.
pub async fn try_get(
    client: &reqwest::Client,
    base: &str,
    path: &str,
) -> Result<Value, reqwest::Error> {
    let resp = client
        .get(format!("{base}{path}"))
        .header("cdi-version", "5.4")
        .send()
        .await?;
    let status = resp.status();
    let text = resp.text().await?;
    assert!(status.is_success(), "GET {path}: HTTP {status}: {text}");
    Ok(
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {text}")),
    )
}

pub async fn post(client: &reqwest::Client, base: &str, path: &str, body: &Value) -> Value {
    try_post(client, base, path, body)
        .await
        .unwrap_or_else(|e| panic!("POST {base}{path}: {e}"))
}

pub async fn get(client: &reqwest::Client, base: &str, path: &str) -> Value {
    try_get(client, base, path)
        .await
        .unwrap_or_else(|e| panic!("GET {base}{path}: {e}"))
}

pub fn create_body(user: &str) -> Value {
    json!({"userId": user, "userDataInJWT": {"u": user}, "userDataInDatabase": {},
           "enableAntiCsrf": false, "useDynamicSigningKey": true})
}

pub fn refresh_body(rt: &str) -> Value {
    json!({"refreshToken": rt, "enableAntiCsrf": false, "useDynamicSigningKey": true})
}

pub fn verify_body(at: &str, check_database: bool) -> Value {
    json!({"accessToken": at, "doAntiCsrfCheck": false, "enableAntiCsrf": false,
           "checkDatabase": check_database})
}

pub fn status(v: &Value) -> &str {
    v["status"].as_str().unwrap_or("")
}

pub fn token(v: &Value, field: &str) -> String {
    v[field]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no {field}.token in {v}"))
        .to_owned()
}

pub fn handle(v: &Value) -> String {
    v["session"]["handle"]
        .as_str()
        .unwrap_or_else(|| panic!("no session.handle in {v}"))
        .to_owned()
}

/// The `kid` values of a JWKS document, in order.
pub fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap_or_else(|| panic!("no keys in {jwks}"))
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

/// The JOSE header of a JWT.
pub fn jwt_header(jwt: &str) -> Value {
    let head = jwt.split('.').next().expect("header");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(head)
        .expect("base64url header");
    serde_json::from_slice(&bytes).expect("JSON header")
}

/// The claims of a JWT (not verified; for looking at lineage claims only).
pub fn jwt_claims(jwt: &str) -> Value {
    let body = jwt.split('.').nth(1).expect("payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON payload")
}

/// A small xorshift64* generator, seeded explicitly so a failing run can be replayed.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// A seed from `TESSERA_TEST_SEED` if set, else from the clock.
    pub fn seed_from_env_or_time() -> u64 {
        if let Some(seed) = std::env::var("TESSERA_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
        {
            return seed;
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .as_nanos() as u64;
        nanos ^ (u64::from(std::process::id()) << 32)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}
