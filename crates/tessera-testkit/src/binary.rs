//! The real `tessera serve` binary as a child process: spawn it on a [`Place`], read the
//! address from its first stdout line, talk to it over HTTP, and SIGKILL it (only this child,
//! by PID) when asked or when dropped.
//!
//! For tessera-server's integration tests: cargo builds the package's `tessera` binary next to
//! the test executables' directory before it runs them ([`tessera_bin`]).

use crate::store::Place;
use serde_json::Value;
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

/// The `tessera` binary cargo built for this test run: integration tests run from
/// `target/<profile>/deps/`, the package's binaries sit in `target/<profile>/`.
pub fn tessera_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = profile_dir.join(format!("tessera{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "no {} (run the test from tessera-server, whose tests cargo builds it for)",
        bin.display()
    );
    bin
}

/// A command for the `tessera` binary with none of the settings it reads from the environment,
/// so the host's cannot leak in (a test sets the ones it means with `Command::env`).
pub fn command() -> Command {
    let mut cmd = Command::new(tessera_bin());
    for k in ENV_KEYS {
        cmd.env_remove(k);
    }
    cmd
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
pub fn spawn(place: &Place, extra: &[&str], log: &Path) -> Spawned {
    spawn_with_env(place, extra, &[], log)
}

/// [`spawn`] with some of the binary's environment variables set (e.g. `TESSERA_LOG`).
pub fn spawn_with_env(place: &Place, extra: &[&str], env: &[(&str, &str)], log: &Path) -> Spawned {
    let mut cmd = command();
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
    .args(place.serve_args())
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
pub fn start(place: &Place, extra: &[&str], log: &Path) -> Server {
    spawn(place, extra, log).ready()
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
    let request = client
        .post(format!("{base}{path}"))
        .header("rid", "session")
        .header("content-type", "application/json; charset=utf-8")
        .body(body.to_string());
    read_json("POST", path, request).await
}

/// GET `path`; transport errors are returned.
pub async fn try_get(
    client: &reqwest::Client,
    base: &str,
    path: &str,
) -> Result<Value, reqwest::Error> {
    read_json("GET", path, client.get(format!("{base}{path}"))).await
}

/// Sends `request` with `cdi-version: 5.4` and reads a successful JSON reply.
async fn read_json(
    method: &str,
    path: &str,
    request: reqwest::RequestBuilder,
) -> Result<Value, reqwest::Error> {
    let resp = request.header("cdi-version", "5.4").send().await?;
    let status = resp.status();
    let text = resp.text().await?;
    assert!(
        status.is_success(),
        "{method} {path}: HTTP {status}: {text}"
    );
    Ok(serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}")))
}

/// [`try_post`], panicking on a transport error.
pub async fn post(client: &reqwest::Client, base: &str, path: &str, body: &Value) -> Value {
    try_post(client, base, path, body)
        .await
        .unwrap_or_else(|e| panic!("POST {base}{path}: {e}"))
}

/// [`try_get`], panicking on a transport error.
pub async fn get(client: &reqwest::Client, base: &str, path: &str) -> Value {
    try_get(client, base, path)
        .await
        .unwrap_or_else(|e| panic!("GET {base}{path}: {e}"))
}
