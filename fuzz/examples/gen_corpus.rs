//! Writes the committed fuzz fixtures and seed corpora (ROB-01, PRJ-04).
//!
//! ```text
//! cd fuzz
//! cargo run --example gen_corpus -- --keys   # new fixture keys + refresh tokens (rarely)
//! cargo run --example gen_corpus             # seed corpora from the fixtures
//! ```
//!
//! Seeds are deterministic given the fixtures (RS256 signing is deterministic), so running the
//! second command again rewrites identical files.

use std::fs;
use std::path::{Path, PathBuf};
use tessera::fuzzing::{b64url_encode, sha256_hex};
use tessera::fuzzing::{mint_refresh_token, RefreshTokenFields, RefreshTokenKey};
use tessera::{KeyKind, SigningKey};
use tessera_fuzz::{genuine_refresh_tokens, genuine_tokens, jwks_json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn write_keys() {
    let dir = root().join("fixtures");
    fs::create_dir_all(&dir).expect("mkdir");
    for (file, kid, kind) in [
        (
            "dynamic_key.txt",
            tessera_fuzz::DYNAMIC_KID,
            KeyKind::Dynamic,
        ),
        ("static_key.txt", tessera_fuzz::STATIC_KID, KeyKind::Static),
    ] {
        let key = SigningKey::generate(kid.into(), kind, 0, u64::MAX).expect("keygen");
        fs::write(dir.join(file), key.to_stored().expect("stored") + "\n").expect("write");
    }
    let master = RefreshTokenKey::generate().expect("master key");
    fs::write(
        dir.join("refresh_master_key.txt"),
        format!("{}\n", master.as_stored()),
    )
    .expect("write");
    let mut tokens = String::new();
    for fields in [
        RefreshTokenFields {
            session_handle: "4e1b7c9e-0c5d-4c0f-8a55-8d1f9d0b6a21",
            user_id: "user-1",
            tenant_id: "public",
            parent_hash1: None,
            anti_csrf_token: None,
            anonymous_id: None,
        },
        RefreshTokenFields {
            session_handle: "4e1b7c9e-0c5d-4c0f-8a55-8d1f9d0b6a21",
            user_id: "user-1",
            tenant_id: "tenant-1",
            parent_hash1: Some(&sha256_hex("rt-0")),
            anti_csrf_token: Some("b3c1f2a0-9d8e-4f7a-8b6c-5d4e3f2a1b0c"),
            anonymous_id: Some("visitor-0123456789abcdefXYZ"),
        },
    ] {
        tokens.push_str(&mint_refresh_token(&master, fields).expect("mint").token);
        tokens.push('\n');
    }
    fs::write(dir.join("refresh_tokens.txt"), tokens).expect("write");
    println!("fixtures written to {}", dir.display());
}

struct Corpus(PathBuf);

impl Corpus {
    fn new(target: &str) -> Self {
        let dir = root().join("corpus").join(target);
        fs::create_dir_all(&dir).expect("mkdir");
        Corpus(dir)
    }
    fn put(&self, name: &str, bytes: impl AsRef<[u8]>) {
        fs::write(self.0.join(name), bytes).expect("write seed");
    }
}

fn with_mode(mode: u8, rest: &[u8]) -> Vec<u8> {
    let mut v = vec![mode];
    v.extend_from_slice(rest);
    v
}

fn write_corpora() {
    let tokens = genuine_tokens();
    let rts = genuine_refresh_tokens();

    let c = Corpus::new("jws_split_b64");
    for (i, t) in tokens.iter().enumerate() {
        c.put(&format!("genuine-{i}"), t);
    }
    for (name, s) in [
        ("b64-hi", "aGk"),
        ("b64-padded", "aGk="),
        ("b64-trailing-bits", "aGl"),
        ("b64-std-alphabet", "a+/k"),
        ("two-segments", "eyJhbGciOiJub25lIn0.e30"),
        ("four-segments", "a.b.c.d"),
        ("empty-segments", ".."),
    ] {
        c.put(name, s);
    }

    let c = Corpus::new("at_header_claims");
    for (i, t) in tokens.iter().take(3).enumerate() {
        let mut parts = t.split('.');
        let header = tessera::fuzzing::b64url_decode(parts.next().unwrap_or("").as_bytes());
        let payload = tessera::fuzzing::b64url_decode(parts.next().unwrap_or("").as_bytes());
        c.put(&format!("header-{i}"), header.unwrap_or_default());
        c.put(&format!("claims-{i}"), payload.unwrap_or_default());
    }
    c.put(
        "header-extra-jku",
        r#"{"alg":"RS256","typ":"JWT","kid":"d-1","version":"5","jku":"x"}"#,
    );
    c.put(
        "header-dup-alg",
        r#"{"alg":"none","alg":"RS256","typ":"JWT","kid":"d-1","version":"5"}"#,
    );
    c.put("claims-dup-sub", r#"{"sub":"a","sub":"b","exp":1,"iat":0,"sessionHandle":"h","refreshTokenHash1":"r","parentRefreshTokenHash1":null,"antiCsrfToken":null,"tId":"public","rsub":"a"}"#);
    c.put("claims-float-exp", r#"{"sub":"a","exp":1e400,"iat":0,"sessionHandle":"h","refreshTokenHash1":"r","parentRefreshTokenHash1":null,"antiCsrfToken":null,"tId":"public","rsub":"a","x":1.0000000000000002}"#);

    let c = Corpus::new("at_verify");
    for (i, t) in tokens.iter().enumerate() {
        c.put(&format!("raw-genuine-{i}"), with_mode(0, t.as_bytes()));
        c.put(&format!("edit-none-{i}"), [0x80 + i as u8]);
        // Flip a byte of the signature, insert into the payload, delete from the header.
        c.put(&format!("edit-sig-{i}"), [0x80 + i as u8, 0x03, 0x01, b'A']);
        c.put(&format!("edit-ins-{i}"), [0x80 + i as u8, 0x01, 0x00, b'=']);
        c.put(&format!("edit-del-{i}"), [0x80 + i as u8, 0x02, 0x00, 0x05]);
    }
    let alg_none = format!(
        "{}.{}.",
        b64url_encode(br#"{"alg":"none","typ":"JWT","kid":"d-1699999000000","version":"5"}"#),
        tokens[0].split('.').nth(1).unwrap_or("")
    );
    c.put("raw-alg-none", with_mode(0, alg_none.as_bytes()));

    let c = Corpus::new("refresh_token");
    for (i, t) in rts.iter().enumerate() {
        c.put(&format!("raw-genuine-{i}"), with_mode(0, t.as_bytes()));
        c.put(
            &format!("raw-lower-tag-{i}"),
            with_mode(0, t.replace(".V2", ".v2").as_bytes()),
        );
        c.put(&format!("edit-none-{i}"), [0x80 + i as u8]);
        c.put(
            &format!("edit-flip-{i}"),
            [0x80 + i as u8, 0x00, 0x00, b'B'],
        );
    }
    c.put(
        "mint-fields",
        with_mode(0x7f, b"handle\0user\0tenant-1\0parenthash\0csrf"),
    );
    c.put("raw-garbage", with_mode(0, b"a.b.V2"));

    let c = Corpus::new("cookie_header");
    let at = &tokens[1];
    let rt = tessera_axum::transfer::percent_encode(rts[0]);
    c.put(
        "session",
        format!("sAccessToken={at}; sRefreshToken={rt}; other=1"),
    );
    c.put(
        "duplicate",
        format!("sAccessToken={at}\nsAccessToken=planted"),
    );
    // COOK-14's malformed corpus.
    c.put("cook14-no-eq", "sAccessToken; a");
    c.put("cook14-empty-name", "=value; =sAccessToken=x");
    c.put("cook14-nameless-prefixed", "=__Host-sAccessToken=x");
    c.put("cook14-quoted", "sAccessToken=\"abc\"; b=\"\"");
    c.put("cook14-trailing", "a=1;;; ;");
    c.put(
        "cook14-bad-percent",
        "sAccessToken=%zz%4%; s%41ccessToken=y",
    );
    c.put("cook14-utf8", "sAccessToken=\u{e9}\u{2603}; x=%C3%28");
    c.put("cook14-many", "a=1; ".repeat(2000));

    let c = Corpus::new("authorization");
    c.put("bearer", with_mode(0, format!("Bearer {at}").as_bytes()));
    c.put("bearer-lower", with_mode(0, b"bearer abc"));
    c.put("bearer-spaces", with_mode(0, b"Bearer    tok   "));
    c.put("basic", with_mode(0, b"Basic dXNlcjpwYXNz"));
    c.put("two-headers", with_mode(0, b"Bearer a\nBearer b"));
    c.put("bearer-not-jwt", with_mode(0, b"Bearer a.b"));
    c.put(
        "api-key-header",
        with_mode(1, b" fuzz-api-key-0123456789abcdef "),
    );
    c.put(
        "api-key-bearer",
        with_mode(0, b"BEARER fuzz-api-key-0123456789abcdef"),
    );
    c.put(
        "api-key-raw",
        with_mode(0, b"fuzz-api-key-0123456789abcdef"),
    );

    let c = Corpus::new("cdi_body");
    let session_body = r#"{"userId":"u1","enableAntiCsrf":true,"userDataInJWT":{"role":"a"},"userDataInDatabase":{},"useDynamicSigningKey":false}"#;
    let verify_body = format!(
        r#"{{"accessToken":"{at}","antiCsrfToken":"x","doAntiCsrfCheck":true,"enableAntiCsrf":true,"checkDatabase":true}}"#
    );
    let refresh_body = format!(
        r#"{{"refreshToken":"{}","antiCsrfToken":null,"enableAntiCsrf":false,"useDynamicSigningKey":true}}"#,
        rts[1]
    );
    let bodies: [(u8, String); 18] = [
        (0, session_body.into()),
        (1, verify_body),
        (2, refresh_body),
        (3, format!(r#"{{"accessToken":"{at}","userDataInJWT":{{"k":[1,2]}}}}"#)),
        (4, r#"{"userId":"u1","sessionHandles":["a","b"],"revokeAcrossAllTenants":true,"revokeSessionsForLinkedAccounts":false}"#.into()),
        (5, r#"{"sessionHandle":"h","userDataInDatabase":{"a":null}}"#.into()),
        (6, r#"{"sessionHandle":"h","userDataInJWT":{"a":1}}"#.into()),
        (7, r#"{"algorithm":"RS256","jwksDomain":"http://x","payload":{"a":1},"validity":"100","useStaticSigningKey":false}"#.into()),
        (8, r#"{"appId":"some-app"}"#.into()),
        (9, "sessionHandle=public%3Aabc".into()),
        (10, "userId=u1&fetchSessionsForAllLinkedAccounts=true".into()),
        (11, "sessionHandle=h".into()),
        (12, "sessionHandle=h".into()),
        (13, "userId=u1".into()),
        (14, String::new()),
        (15, String::new()),
        (16, String::new()),
        (17, "{}".into()),
    ];
    for (route, body) in bodies {
        c.put(
            &format!("route-{route}"),
            with_mode(route, &with_mode(0, body.as_bytes())),
        );
        c.put(
            &format!("route-{route}-tenant-cdi"),
            with_mode(route, &with_mode(10, body.as_bytes())),
        );
    }
    c.put(
        "nested",
        with_mode(
            0,
            &with_mode(
                0,
                format!("{}{}", "[".repeat(5000), "]".repeat(5000)).as_bytes(),
            ),
        ),
    );
    c.put("dup-keys", with_mode(0, &with_mode(0, br#"{"userId":"a","userId":"b","enableAntiCsrf":false,"userDataInJWT":{},"userDataInDatabase":{}}"#)));
    c.put("wrong-types", with_mode(1, &with_mode(0, br#"{"accessToken":1,"doAntiCsrfCheck":"true","enableAntiCsrf":null,"checkDatabase":0}"#)));
    c.put(
        "not-utf8",
        with_mode(0, &with_mode(0, b"{\"userId\":\"\xff\"}")),
    );

    let c = Corpus::new("jwks_roundtrip");
    c.put("published", jwks_json());
    c.put("empty", r#"{"keys":[]}"#);
    c.put(
        "weak-e",
        r#"{"keys":[{"kty":"RSA","kid":"k","n":"AQAB","e":"Aw","alg":"RS256","use":"sig"}]}"#,
    );
    c.put(
        "not-rs256",
        r#"{"keys":[{"kty":"EC","kid":"k","n":"","e":"","alg":"ES256","use":"sig"}]}"#,
    );

    let c = Corpus::new("config_toml");
    c.put("full", "host = \"localhost\"\nport = 3567\napi_keys = [\"aaaaaaaaaaaaaaaaaaaaaaaa\", \"bbbbbbbbbbbbbbbbbbbbbbbbbbbb\"]\naccess_token_validity = 3600\nrefresh_token_validity = 144000\naccess_token_dynamic_signing_key_update_interval = 168\nrefresh_token_rotation_grace_period = 30\nbase_path = \"/auth/\"\nsupertokens_max_cdi_version = \"5.4\"\nlog_level = \"debug\"\n");
    c.put("postgres", "postgresql_connection_uri = \"postgres://u:secret@h:5432/db?password=x\"\npostgresql_table_schema = \"tessera_1\"\nstatic_signing_key = \"-----BEGIN PRIVATE KEY-----\\nMIIE\\n-----END PRIVATE KEY-----\"\n");
    c.put("bad-values", "port = 70000\naccess_token_validity = 0\nrefresh_token_validity = -1.5\nunknown = { a = 1 }\n");
    c.put("core-config-json", r#"{"access_token_validity":"10","refresh_token_validity":1.5,"api_keys":["cccccccccccccccccccccccc","short"],"access_token_dynamic_signing_key_update_interval":0.0004,"refresh_token_rotation_grace_period":null}"#);
    println!("corpora written to {}", root().join("corpus").display());
}

fn main() {
    if std::env::args().any(|a| a == "--keys") {
        write_keys();
    } else {
        write_corpora();
    }
}
