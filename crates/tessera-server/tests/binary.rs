//! The `tessera` binary: start-up messages, configuration errors, config file, environment
//! variables, and a clean stop on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary with the host's settings cleared (tessera-testkit's list).
fn tessera() -> Command {
    tessera_testkit::binary::command()
}

fn fails_with(cmd: &mut Command, needles: &[&str]) {
    let out = cmd.output().expect("run tessera");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    for n in needles {
        assert!(err.contains(n), "stderr {err:?} lacks {n:?}");
    }
}

#[test]
fn bad_settings_stop_start_up_with_a_message() {
    fails_with(
        tessera().args(["serve", "--access-token-validity", "0"]),
        &["access_token_validity", "1 to 86400000"],
    );
    fails_with(
        tessera()
            .args(["serve"])
            .env("ACCESS_TOKEN_VALIDITY", "soon"),
        &["ACCESS_TOKEN_VALIDITY", "seconds"],
    );
    fails_with(
        tessera()
            .args(["serve"])
            .env("ACCESS_TOKEN_VALIDITY", "7200")
            .env("REFRESH_TOKEN_VALIDITY", "60"),
        &[
            "REFRESH_TOKEN_VALIDITY",
            "longer than access_token_validity",
        ],
    );
    fails_with(
        tessera().args(["serve"]).env("API_KEYS", "short"),
        &["API_KEYS", "at least 20 characters"],
    );
    fails_with(
        tessera()
            .args(["serve"])
            .env("ACCESS_TOKEN_DYNAMIC_SIGNING_KEY_UPDATE_INTERVAL", "-1"),
        &["ACCESS_TOKEN_DYNAMIC_SIGNING_KEY_UPDATE_INTERVAL", "hours"],
    );
    fails_with(
        tessera().args(["serve", "--database-url", "mysql://u:secret@h/db"]),
        &["POSTGRESQL_CONNECTION_URI", "postgres://"],
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "port = \"http\"\n").unwrap();
    fails_with(
        tessera().args(["serve", "--config"]).arg(&file),
        &["port", "0 to 65535"],
    );
}

struct Running {
    child: Child,
    base: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(cmd: &mut Command) -> Running {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tessera");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert!(
        line.starts_with("tessera listening on http://127.0.0.1:"),
        "{line}"
    );
    assert!(line.contains("store: SQLite file"), "{line}");
    let base = line
        .split_whitespace()
        .nth(3)
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    Running { child, base }
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[tokio::test]
async fn serves_from_a_config_file_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tessera.toml");
    let db = dir.path().join("t.db");
    std::fs::write(
        &file,
        format!(
            "port = 0\naccess_token_validity = 30\nsqlite_path = {:?}\nlog_level = \"warn\"\n",
            db.display().to_string()
        ),
    )
    .unwrap();
    let mut server = start(tessera().args(["serve", "--config"]).arg(&file));
    let client = reqwest::Client::new();
    let hello = client
        .get(format!("{}/hello", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(hello, "Hello");
    let created: serde_json::Value = client
        .post(format!("{}/public/recipe/session", server.base))
        .header("content-type", "application/json")
        .body(r#"{"userId":"u","enableAntiCsrf":false,"userDataInJWT":{},"userDataInDatabase":{}}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let at = &created["accessToken"];
    assert_eq!(
        at["expiry"].as_u64().unwrap() - at["createdTime"].as_u64().unwrap(),
        30_000
    );
    sigterm(&server.child);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(db.exists());
}

#[tokio::test]
async fn flags_override_the_environment_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tessera.toml");
    std::fs::write(&file, "access_token_validity = 30\n").unwrap();
    let server = start(
        tessera()
            .args([
                "serve",
                "--port",
                "0",
                "--access-token-validity",
                "50",
                "--sqlite-path",
            ])
            .arg(dir.path().join("f.db"))
            .arg("--config")
            .arg(&file)
            .env("ACCESS_TOKEN_VALIDITY", "40")
            .env("API_KEYS", "aaaaaaaaaaaaaaaaaaaaaaaaa"),
    );
    let client = reqwest::Client::new();
    let r = client
        .get(format!("{}/apiversion", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let created: serde_json::Value = client
        .post(format!("{}/public/recipe/session", server.base))
        .header("api-key", "aaaaaaaaaaaaaaaaaaaaaaaaa")
        .header("content-type", "application/json")
        .body(r#"{"userId":"u","enableAntiCsrf":false,"userDataInJWT":{},"userDataInDatabase":{}}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let at = &created["accessToken"];
    assert_eq!(
        at["expiry"].as_u64().unwrap() - at["createdTime"].as_u64().unwrap(),
        50_000
    );
}
