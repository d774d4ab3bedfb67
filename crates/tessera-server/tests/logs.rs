//! Logs of `tessera serve` (issue 13), from the real binary with stderr on a file (not a
//! terminal): `--log-format json` writes one JSON object per line; neither format writes ANSI
//! escapes to a non-terminal; `debug` adds one line per request with method, route template,
//! status and latency and no query value, user id, token or API key; `info` has no per-request
//! line.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use tessera_testkit::binary;
use tessera_testkit::cdi::{create_body, refresh_body, token, verify_body};

const KEY: &str = "logs-test-key-0123456789abc";
const USER: &str = "log-private-user-4711";

/// Runs the server with `args`, sends a create, a verify, a refresh and a query with the user
/// id, stops it and returns its stderr and the tokens it handed out.
async fn run_and_log(args: &[&str]) -> (String, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let mut cmd = binary::command();
    cmd.args([
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--api-keys",
        KEY,
    ])
    .arg("--sqlite-path")
    .arg(dir.path().join("core.db"))
    .args(args)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(std::fs::File::create(&log).unwrap());
    let mut child = cmd.spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let base = line
        .split_whitespace()
        .nth(3)
        .unwrap()
        .trim_end_matches('/')
        .to_owned();

    let c = binary::client();
    let post = |path: &str, body: Value| {
        c.post(format!("{base}{path}"))
            .header("api-key", KEY)
            .header("cdi-version", "5.4")
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let created: Value = post("/recipe/session", create_body(USER))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let at = token(&created, "accessToken");
    let rt = token(&created, "refreshToken");
    let verify = verify_body(&at, false);
    assert_eq!(
        post("/recipe/session/verify", verify)
            .await
            .unwrap()
            .status(),
        200
    );
    let refresh = refresh_body(&rt);
    assert_eq!(
        post("/recipe/session/refresh", refresh)
            .await
            .unwrap()
            .status(),
        200
    );
    let r = c
        .get(format!("{base}/recipe/session/user?userId={USER}"))
        .header("api-key", KEY)
        .header("cdi-version", "5.4")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A refused request is logged too, by its template.
    let r = c
        .get(format!("{base}/recipe/session/user?userId={USER}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    (text, vec![at, rt])
}

fn assert_private(text: &str, tokens: &[String]) {
    assert!(
        !text.contains('\u{1b}'),
        "ANSI escape in a non-terminal log:\n{text}"
    );
    // User ids belong in the audit trail (its own target, `tessera::audit`) and nowhere else:
    // request lines and every other record stay free of them.
    let outside_audit: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains("tessera::audit"))
        .collect();
    assert!(
        text.lines()
            .any(|l| l.contains("tessera::audit") && l.contains(USER)),
        "the audit record of the sign-in names its user:\n{text}"
    );
    assert!(
        !outside_audit.iter().any(|l| l.contains(USER)),
        "user id outside the audit trail:\n{text}"
    );
    assert!(!text.contains(KEY), "API key in the log:\n{text}");
    for t in tokens {
        // Any 24-character piece of a token (its signature or payload) counts.
        let chars: Vec<char> = t.chars().collect();
        for w in chars.windows(24).step_by(8) {
            let piece: String = w.iter().collect();
            assert!(!text.contains(&piece), "token piece in the log:\n{text}");
        }
    }
}

#[tokio::test]
async fn json_format_writes_one_object_per_line_and_one_request_line_at_debug() {
    let (text, tokens) = run_and_log(&["--log-format", "json", "--log-level", "debug"]).await;
    assert_private(&text, &tokens);
    let mut requests = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v.is_object(), "{line}");
        if v["target"] == "tessera::request" {
            requests.push(v["fields"].clone());
        }
    }
    let routes: Vec<(String, u64)> = requests
        .iter()
        .map(|f| {
            (
                f["route"].as_str().unwrap().to_owned(),
                f["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        routes,
        [
            ("/recipe/session".to_owned(), 200),
            ("/recipe/session/verify".to_owned(), 200),
            ("/recipe/session/refresh".to_owned(), 200),
            ("/recipe/session/user".to_owned(), 200),
            ("/recipe/session/user".to_owned(), 401),
        ]
    );
    for f in &requests {
        assert!(f["method"].is_string() && f["latency_us"].is_u64(), "{f}");
    }
}

#[tokio::test]
async fn text_format_has_no_colours_off_a_terminal_and_no_request_lines_at_info() {
    let (info, tokens) = run_and_log(&["--log-level", "info"]).await;
    assert_private(&info, &tokens);
    assert!(info.contains("tessera serve started"), "{info}");
    assert!(!info.contains("tessera::request"), "{info}");
    let (debug, tokens) = run_and_log(&["--log-format", "text", "--log-level", "debug"]).await;
    assert_private(&debug, &tokens);
    let lines = debug
        .lines()
        .filter(|l| l.contains("tessera::request"))
        .count();
    assert_eq!(lines, 5, "{debug}");
    assert!(debug.contains("/recipe/session/refresh"), "{debug}");
}
