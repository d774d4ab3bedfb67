//! Security round 2 (issue 11), operator keys through the real `tessera serve` binary:
//! SEC2-H1 (a replaced static key stops verifying across a restart, on SQLite and PostgreSQL)
//! and SEC2-L9 (key material never printed, also in argument errors).

mod support;

use base64::Engine as _;
use serde_json::json;
use std::path::Path;
use support::{kids, status, token, verify_body, Server, Storage};
use tessera::{KeyKind, SigningKey};

/// An operator key in the storage form `<spki>|<pkcs8>`.
fn operator_key() -> String {
    SigningKey::generate("s-x".into(), KeyKind::Static, 0, u64::MAX)
        .and_then(|k| k.to_stored())
        .expect("RSA keygen")
}

async fn start(storage: &Storage, args: Vec<String>, log: &Path) -> Server {
    let (storage, log) = (storage.clone(), log.to_owned());
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        support::start(&storage, &args, &log)
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
    let header = support::jwt_header(genuine);
    let mut claims = support::jwt_claims(genuine);
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
    let v = support::post(
        client,
        base,
        "/recipe/session/verify",
        &verify_body(at, false),
    )
    .await;
    status(&v).to_owned()
}

async fn jwks(client: &reqwest::Client, base: &str) -> Vec<String> {
    kids(&support::get(client, base, "/.well-known/jwks.json").await)
}

/// SEC2-H1: start with key A, mint a static-key session, forge an admin token with A; restart
/// with key B: both tokens answer TRY_REFRESH_TOKEN and A's kid left the JWKS. Restart with B
/// and `--previous-static-signing-keys A`: they verify again (the explicit overlap); restart
/// with B alone: refused again.
async fn sec2_h1_restart_with_a_new_static_key(storage: Storage) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let client = support::client();
    let (a, b) = (operator_key(), operator_key());
    let key_arg = |k: &str| format!("--static-signing-key={k}");

    let server = start(&storage, vec![key_arg(&a)], &log).await;
    let created = support::post(
        &client,
        &server.base,
        "/recipe/session",
        &json!({"userId": "alice", "userDataInJWT": {}, "userDataInDatabase": {},
                "enableAntiCsrf": false, "useDynamicSigningKey": false}),
    )
    .await;
    let genuine = token(&created, "accessToken");
    let kid_a = support::jwt_header(&genuine)["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let forged = forge_admin(&genuine, &a);
    let verified = support::post(
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
    sec2_h1_restart_with_a_new_static_key(Storage::Sqlite(dir.path().join("t.db"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec2_h1_restart_with_a_new_static_key_postgres() {
    if support::skip_postgres() {
        eprintln!("skipping PostgreSQL (TESSERA_SKIP_POSTGRES=1)");
        return;
    }
    sec2_h1_restart_with_a_new_static_key(Storage::Postgres {
        schema: support::fresh_schema("sec2h1"),
    })
    .await;
}
