//! Security round 2 (issue 11), operator keys through the real `tessera serve` binary:
//! SEC2-H1 (a replaced static key stops verifying across a restart, on SQLite and PostgreSQL)
//! and SEC2-L9 (key material never printed, also in argument errors).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use base64::Engine as _;
use serde_json::json;
use std::path::Path;
use tessera::{KeyKind, SigningKey};
use tessera_testkit::binary::Server;
use tessera_testkit::cdi::{kids, status, token, verify_body};
use tessera_testkit::{binary, cdi, fresh_schema, skip_postgres, Place};

/// An operator key in the storage form `<spki>|<pkcs8>`.
fn operator_key() -> String {
    SigningKey::generate("s-x".into(), KeyKind::Static, 0, u64::MAX)
        .and_then(|k| k.to_stored())
        .expect("RSA keygen")
}

async fn start(storage: &Place, args: Vec<String>, log: &Path) -> Server {
    let (storage, log) = (storage.clone(), log.to_owned());
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        binary::start(&storage, &args, &log)
    })
    .await
    .expect("start tessera")
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A genuine token's claims with `sub: admin` and a made-up session, signed offline with the
/// leaked key `stored`.
fn forge_admin(genuine: &str, stored: &str) -> String {
    let header = cdi::jwt_header(genuine);
    let mut claims = cdi::jwt_claims(genuine);
    claims["sub"] = "admin".into();
    claims["rsub"] = "admin".into();
    claims["sessionHandle"] = "forged-session".into();
    let kid = header["kid"].as_str().expect("kid").to_owned();
    let key = SigningKey::from_stored(stored, kid, KeyKind::Static, 0, u64::MAX).expect("key");
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let signature = key.sign_rs256(input.as_bytes()).expect("sign");
    format!("{input}.{}", b64url(&signature))
}

async fn verify_status(client: &reqwest::Client, base: &str, at: &str) -> String {
    let v = binary::post(
        client,
        base,
        "/recipe/session/verify",
        &verify_body(at, false),
    )
    .await;
    status(&v).to_owned()
}

async fn jwks(client: &reqwest::Client, base: &str) -> Vec<String> {
    kids(&binary::get(client, base, "/.well-known/jwks.json").await)
}

/// SEC2-H1: start with key A, mint a static-key session, forge an admin token with A; restart
/// with key B: both tokens answer TRY_REFRESH_TOKEN and A's kid left the JWKS. Restart with B
/// and `--previous-static-signing-keys A`: they verify again (the explicit overlap); restart
/// with B alone: refused again.
async fn sec2_h1_restart_with_a_new_static_key(storage: Place) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let client = binary::client();
    let (a, b) = (operator_key(), operator_key());
    let key_arg = |k: &str| format!("--static-signing-key={k}");

    let server = start(&storage, vec![key_arg(&a)], &log).await;
    let created = binary::post(
        &client,
        &server.base,
        "/recipe/session",
        &json!({"userId": "alice", "userDataInJWT": {}, "userDataInDatabase": {},
                "enableAntiCsrf": false, "useDynamicSigningKey": false}),
    )
    .await;
    let genuine = token(&created, "accessToken");
    let kid_a = cdi::jwt_header(&genuine)["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let forged = forge_admin(&genuine, &a);
    let verified = binary::post(
        &client,
        &server.base,
        "/recipe/session/verify",
        &verify_body(&forged, false),
    )
    .await;
    assert_eq!(
        verified["session"]["userId"], "admin",
        "the attack works with A: {verified}"
    );
    assert!(jwks(&client, &server.base).await.contains(&kid_a));
    server.sigkill();

    let server = start(&storage, vec![key_arg(&b)], &log).await;
    for at in [&forged, &genuine] {
        assert_eq!(
            verify_status(&client, &server.base, at).await,
            "TRY_REFRESH_TOKEN"
        );
    }
    let kids_b = jwks(&client, &server.base).await;
    assert!(!kids_b.contains(&kid_a), "A is still published: {kids_b:?}");
    server.sigkill();

    let server = start(
        &storage,
        vec![key_arg(&b), format!("--previous-static-signing-keys={a}")],
        &log,
    )
    .await;
    assert_eq!(verify_status(&client, &server.base, &genuine).await, "OK");
    assert!(jwks(&client, &server.base).await.contains(&kid_a));
    server.sigkill();

    let server = start(&storage, vec![key_arg(&b)], &log).await;
    assert_eq!(
        verify_status(&client, &server.base, &forged).await,
        "TRY_REFRESH_TOKEN"
    );
    let log_text = server.log_text();
    server.sigkill();
    for key in [&a, &b] {
        let private = key.split('|').nth(1).unwrap();
        assert!(
            !log_text.contains(&private[..40]),
            "key material in the log"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec2_h1_restart_with_a_new_static_key_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    sec2_h1_restart_with_a_new_static_key(Place::Sqlite(dir.path().join("t.db"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec2_h1_restart_with_a_new_static_key_postgres() {
    if skip_postgres() {
        eprintln!("skipping PostgreSQL (TESSERA_SKIP_POSTGRES=1)");
        return;
    }
    sec2_h1_restart_with_a_new_static_key(Place::Postgres {
        schema: fresh_schema("sec2h1"),
    })
    .await;
}

/// The storage form as an unencrypted PKCS#8 PEM.
fn to_pem(stored: &str) -> String {
    let der = stored.split('|').nth(1).expect("pkcs8");
    let body: Vec<String> = der
        .as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        body.join("\n")
    )
}

/// Runs `tessera` with `args` (no environment settings) and returns its exit code and stderr.
fn run(args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TESSERA") || k.starts_with("SUPERTOKENS") || k == "API_KEYS" {
            cmd.env_remove(k);
        }
    }
    let out = cmd.args(args).output().expect("run tessera");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// SEC2-L9: a key on the command line next to a bad argument — in the space form, the `=`
/// form, as a stray argument, twice — is never echoed: exit 2 and no 12-character piece of the
/// key on stderr. The key file argument is the way that keeps keys off the command line.
#[tokio::test]
async fn sec2_l9_argument_errors_never_print_key_material() {
    let pem = to_pem(&operator_key());
    let eq = format!("--static-signing-key={pem}");
    let cases: Vec<Vec<&str>> = vec![
        vec!["serve", "--static-signing-key", &pem, "--bogus"],
        vec!["serve", "--bogus", "--static-signing-key", &pem],
        vec!["serve", &eq, "--bogus"],
        vec!["serve", &pem],
        vec![
            "serve",
            "--static-signing-key",
            &pem,
            "--static-signing-key",
            &pem,
        ],
        vec!["serve", "--anonymous-signing-key", &pem, "--port"],
        vec!["serve", "--previous-static-signing-keys", &pem, "--nope"],
    ];
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    for args in cases {
        let (code, stderr) = run(&args);
        assert_eq!(code, Some(2), "{stderr}");
        let leaked = body
            .as_bytes()
            .windows(12)
            .find(|w| stderr.contains(std::str::from_utf8(w).unwrap()));
        assert!(leaked.is_none(), "key bytes on stderr: {stderr}");
    }

    // The file form: the key is used (its kid signs static-key sessions), never printed.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("static.pem");
    std::fs::write(&file, &pem).unwrap();
    let storage = Place::Sqlite(dir.path().join("t.db"));
    let log = dir.path().join("server.log");
    let arg = format!("--static-signing-key-file={}", file.display());
    let server = start(&storage, vec![arg.clone()], &log).await;
    let client = binary::client();
    let created = binary::post(
        &client,
        &server.base,
        "/recipe/session",
        &json!({"userId": "u", "userDataInJWT": {}, "userDataInDatabase": {},
                "enableAntiCsrf": false, "useDynamicSigningKey": false}),
    )
    .await;
    let kid = cdi::jwt_header(&token(&created, "accessToken"))["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        kid.starts_with("s-") && kid.len() == 34,
        "operator kid: {kid}"
    );
    assert!(jwks(&client, &server.base).await.contains(&kid));
    server.sigkill();
    // Both forms at once are refused, naming the settings only.
    let (code, stderr) = run(&["serve", &arg, "--static-signing-key", &pem]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("static_signing_key_file"), "{stderr}");
    assert!(!stderr.contains(&body[..40]), "{stderr}");
}
