//! Security round 2 (issue 11), the HTTP-server side: one regression test per finding, named by
//! the finding's id (SEC2-M4, SEC2-L1, SEC2-L6, SEC2-INFO) and by the catalogue id where a row
//! fits (security-tests.md). Each test runs the attack over real HTTP against `tessera serve`
//! (the library's server on a real listener, or the binary) and judges it by what the server
//! answers or keeps.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::{Duration, Instant};
use tessera_server::connections::ConnectionLimits;
use tessera_testkit::{both_stores, in_process, Backend, Place};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A server on SQLite with short client deadlines.
async fn start_limited(limits: ConnectionLimits) -> in_process::TestServer {
    let mut config = in_process::config();
    config.limits = limits;
    in_process::start_with(Place::fresh(Backend::Sqlite), config).await
}

fn addr(s: &in_process::TestServer) -> String {
    s.base.trim_start_matches("http://").to_owned()
}

/// Opens a connection and sends `bytes`, then leaves it open.
async fn send_partial(addr: &str, bytes: &[u8]) -> TcpStream {
    let mut c = TcpStream::connect(addr).await.expect("connect");
    c.write_all(bytes).await.expect("write");
    c
}

/// Reads until the server closes the connection (or `limit` passes): what it sent, and when it
/// closed (`None`: still open at `limit`).
async fn read_until_closed(c: &mut TcpStream, limit: Duration) -> (String, Option<Instant>) {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, c.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&got).into(), None),
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (String::from_utf8_lossy(&got).into(), Some(Instant::now()))
            }
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// `GET /hello` on a fresh connection; the time it took.
async fn hello(addr: &str) -> Duration {
    let started = Instant::now();
    let mut c = send_partial(
        addr,
        b"GET /hello HTTP/1.1\r\nHost: core\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (answer, closed) = read_until_closed(&mut c, Duration::from_secs(10)).await;
    assert!(closed.is_some(), "no answer to /hello");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("Hello"), "{answer}");
    started.elapsed()
}

const HALF_HEADERS: &[u8] =
    b"POST /recipe/session/remove HTTP/1.1\r\nHost: core\r\nContent-Type: appl";
const HALF_BODY: &[u8] = b"POST /recipe/session/remove HTTP/1.1\r\nHost: core\r\n\
    Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"userId\": \"u";

// ---- SEC2-M4: read deadlines and a connection cap ----

/// 300 connections with half-sent headers and 50 with half-sent bodies: each is cut at its
/// deadline (headers 1 s, request 2 s here), the half-body ones with a 408, while `/hello`
/// keeps answering on new connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec2_m4_rob03_slow_clients_are_cut_while_hello_keeps_answering() {
    let limits = ConnectionLimits {
        header_read_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(2),
        max_connections: 1_000,
    };
    let s = start_limited(limits).await;
    let a = addr(&s);
    let started = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..300 {
        slow.push((false, send_partial(&a, HALF_HEADERS).await));
    }
    for _ in 0..50 {
        slow.push((true, send_partial(&a, HALF_BODY).await));
    }
    // The slow clients hold no one up.
    for _ in 0..5 {
        let took = hello(&a).await;
        assert!(took < Duration::from_millis(500), "/hello took {took:?}");
    }
    let readers = slow.into_iter().map(|(half_body, mut c)| {
        tokio::spawn(async move {
            let (answer, closed) = read_until_closed(&mut c, Duration::from_secs(6)).await;
            (half_body, answer, closed)
        })
    });
    for reader in readers {
        let (half_body, answer, closed) = reader.await.unwrap();
        let closed = closed.unwrap_or_else(|| panic!("still open after 6 s (body: {half_body})"));
        let after = closed.duration_since(started);
        if half_body {
            assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
            assert!(answer.ends_with("Request timed out"), "{answer}");
            assert!(
                (Duration::from_millis(1_900)..Duration::from_millis(4_500)).contains(&after),
                "half body cut after {after:?}"
            );
        } else {
            assert!(
                !answer.starts_with("HTTP/1.1 200"),
                "half headers answered: {answer}"
            );
            assert!(
                (Duration::from_millis(900)..Duration::from_millis(3_500)).contains(&after),
                "half headers cut after {after:?}"
            );
        }
    }
    assert!(hello(&a).await < Duration::from_millis(500));
    s.stop().await;
}

/// An idle keep-alive connection is closed after the header deadline too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec2_m4_an_idle_keep_alive_connection_is_closed_at_the_header_deadline() {
    let s = start_limited(ConnectionLimits {
        header_read_timeout: Duration::from_secs(1),
        ..ConnectionLimits::default()
    })
    .await;
    let mut c = send_partial(&addr(&s), b"GET /hello HTTP/1.1\r\nHost: core\r\n\r\n").await;
    let started = Instant::now();
    let (answer, closed) = read_until_closed(&mut c, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let after = closed
        .expect("still open after 5 s")
        .duration_since(started);
    assert!(after >= Duration::from_millis(900), "{after:?}");
    s.stop().await;
}

/// With a cap of 3, three silent connections fill the server: a fourth is not served until the
/// header deadline frees a place, then it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec2_m4_rob03_the_connection_cap_holds_new_connections_until_a_place_frees() {
    let s = start_limited(ConnectionLimits {
        header_read_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(2),
        max_connections: 3,
    })
    .await;
    let a = addr(&s);
    let idle = [
        send_partial(&a, b"").await,
        send_partial(&a, b"").await,
        send_partial(&a, b"").await,
    ];
    let started = Instant::now();
    let took = hello(&a).await;
    assert!(
        took >= Duration::from_millis(700),
        "served at once ({took:?}): the cap did not hold"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
    drop(idle);
    assert!(started.elapsed() < Duration::from_secs(4));
    // Once the silent ones are gone, new connections are served at once.
    assert!(hello(&a).await < Duration::from_millis(500));
    s.stop().await;
}

/// The settings are read from the command line and the environment, and a bad value stops
/// start-up with a message that names the setting.
#[test]
fn sec2_m4_limits_are_settings_with_safe_defaults() {
    use tessera_server::config::ServeArgs;
    let defaults = ServeArgs::default().resolve().unwrap().limits;
    assert_eq!(defaults, ConnectionLimits::default());
    assert_eq!(defaults.header_read_timeout, Duration::from_secs(10));
    assert_eq!(defaults.request_timeout, Duration::from_secs(30));
    assert_eq!(defaults.max_connections, 10_000);
    let args = ServeArgs {
        header_read_timeout: Some("1.5".into()),
        request_timeout: Some("4".into()),
        max_connections: Some("25".into()),
        ..ServeArgs::default()
    };
    let limits = args.resolve().unwrap().limits;
    assert_eq!(limits.header_read_timeout, Duration::from_millis(1_500));
    assert_eq!(limits.request_timeout, Duration::from_secs(4));
    assert_eq!(limits.max_connections, 25);
    for (args, env) in [
        (
            ServeArgs {
                header_read_timeout: Some("0".into()),
                ..ServeArgs::default()
            },
            "TESSERA_HEADER_READ_TIMEOUT",
        ),
        (
            ServeArgs {
                request_timeout: Some("never".into()),
                ..ServeArgs::default()
            },
            "TESSERA_REQUEST_TIMEOUT",
        ),
        (
            ServeArgs {
                max_connections: Some("0".into()),
                ..ServeArgs::default()
            },
            "TESSERA_MAX_CONNECTIONS",
        ),
    ] {
        let e = args.resolve().unwrap_err();
        assert!(e.0.contains(env), "{e}");
    }
}

/// The binary reads the header deadline from its flag: a half-sent request is cut after 1 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec2_m4_the_binary_cuts_half_sent_headers() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["serve", "--port", "0", "--header-read-timeout", "1"])
        .arg("--sqlite-path")
        .arg(dir.path().join("t.db"))
        .env_remove("TESSERA_CONFIG")
        .env_remove("API_KEYS")
        .env("LOG_LEVEL", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        line
    })
    .await
    .unwrap();
    let a = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    let mut c = send_partial(&a, HALF_HEADERS).await;
    let started = Instant::now();
    let (_, closed) = read_until_closed(&mut c, Duration::from_secs(5)).await;
    let _ = child.kill();
    let _ = child.wait();
    let after = closed
        .expect("still open after 5 s")
        .duration_since(started);
    assert!(after >= Duration::from_millis(900), "{after:?}");
}

// ---- SEC2-L1: a core is called by backends, never by browsers ----

/// True while the session still exists (read through the API).
async fn alive(s: &in_process::TestServer, handle: &str) -> bool {
    let r = s
        .get(&format!("/recipe/session?sessionHandle={handle}"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.status_field() == "OK"
}

both_stores!(
    sec2_l1_csrf02_csrf15_cross_site_or_non_json_posts_revoke_nothing,
    |backend: Backend| async move {
        let s = in_process::start(backend).await;
        let created = s.create("victim").await;
        let handle = created.json["session"]["handle"]
            .as_str()
            .unwrap()
            .to_owned();
        let body = json!({"sessionHandles": [handle]}).to_string();
        let remove = |content_type: Option<&'static str>,
                      extra: &'static [(&'static str, &'static str)]| {
            let mut req = s
                .client
                .post(format!("{}/recipe/session/remove", s.base))
                .body(body.clone());
            if let Some(t) = content_type {
                req = req.header("content-type", t);
            }
            for (k, v) in extra {
                req = req.header(*k, *v);
            }
            async move {
                let r = req.send().await.unwrap();
                let status = r.status();
                let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
                (status, content_type, r.text().await.unwrap())
            }
        };
        // The attack as reported: a cross-site form with enctype=text/plain.
        const FORM: &[(&str, &str)] = &[
            ("origin", "https://evil.test"),
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "no-cors"),
        ];
        let (status, _, text) = remove(Some("text/plain"), FORM).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
        assert!(alive(&s, &handle).await);
        // A browser sending JSON (a sibling subdomain, a fetch with CORS) is still a browser.
        const BROWSERS: &[&[(&str, &str)]] = &[
            &[("origin", "https://evil.test")],
            &[("origin", "null")],
            &[("sec-fetch-site", "same-site")],
            &[("sec-fetch-site", "cross-site")],
            &[("sec-fetch-site", "same-origin")],
        ];
        for headers in BROWSERS {
            let (status, _, text) = remove(Some("application/json"), headers).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{headers:?}: {text}");
            assert!(!text.contains(&handle), "{text}");
        }
        assert!(alive(&s, &handle).await);
        // Without browser headers, a body that is not declared JSON is refused too.
        for content_type in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            None,
        ] {
            let (status, _, text) = remove(content_type, &[]).await;
            assert_eq!(
                status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{content_type:?}: {text}"
            );
        }
        assert!(alive(&s, &handle).await);
        // Other APIs refuse browsers too, GETs included.
        let r = s
            .raw(
                Method::GET,
                "/.well-known/jwks.json",
                None,
                &[("sec-fetch-site", "cross-site")],
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        // The request exactly as supertokens-node sends it works.
        let (status, _, text) = remove(
            Some("application/json; charset=utf-8"),
            &[("cdi-version", "5.4"), ("rid", "session")],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert!(!alive(&s, &handle).await);
        s.stop().await;
    }
);

// ---- SEC2-L6 (core side): tenant ids in paths ----

fn new_session(user: &str) -> serde_json::Value {
    json!({
        "userId": user,
        "userDataInJWT": {},
        "userDataInDatabase": {},
        "enableAntiCsrf": false,
    })
}

both_stores!(
    sec2_l6_a_tenant_id_never_addresses_an_app_and_is_validated,
    |backend: Backend| async move {
        let s = in_process::start(backend).await;
        let r = s
            .put("/recipe/multitenancy/app/v2", json!({"appId": "y"}))
            .await;
        assert_eq!(r.status_field(), "OK", "{}", r.text);
        let too_long = format!("/{}/recipe/session", "t".repeat(65));
        for path in [
            "/appid-public/appid-y/recipe/session",
            "/appid-y/appid-y/recipe/session",
            "/appid-public/appid-/recipe/session",
            "/t_1/recipe/session",
            "/t.1/recipe/session",
            "/t%2Fx/recipe/session",
            too_long.as_str(),
        ] {
            let r = s.post(path, new_session("u")).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.text);
            assert!(r.text.starts_with("Invalid tenantId"), "{path}: {}", r.text);
            assert!(
                !r.text.contains("appid-y") && !r.text.contains("t_1"),
                "{}",
                r.text
            );
        }
        let r = s
            .get("/appid-public/appid-y/recipe/session/user?userId=u&fetchAcrossAllTenants=false")
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        // Nothing was created, in either app.
        for app in ["", "/appid-y"] {
            let r = s.get(&format!("{app}/recipe/session/user?userId=u")).await;
            assert_eq!(r.json["sessionHandles"], json!([]), "{app}: {}", r.text);
        }
        // Well-formed tenants work, up to 64 characters; upper case reads as lower case.
        let longest = "t".repeat(64);
        for (path, tenant) in [
            (format!("/{longest}/recipe/session"), longest.as_str()),
            ("/Tenant-1/recipe/session".to_owned(), "tenant-1"),
            ("/appid-y/tenant-2/recipe/session".to_owned(), "tenant-2"),
        ] {
            let r = s.post(&path, new_session("u")).await;
            assert_eq!(r.status_field(), "OK", "{path}: {}", r.text);
            assert_eq!(r.json["session"]["tenantId"], tenant, "{}", r.text);
        }
        s.stop().await;
    }
);

// ---- SEC2-INFO (a): error bodies are plain text and repeat no input ----

both_stores!(
    sec2_info_rob06_bad_input_is_answered_in_plain_text_without_echo,
    |backend: Backend| async move {
        let s = in_process::start(backend).await;
        let script = "<script>alert(1)</script>";
        let mut answers = Vec::new();
        // A refused coreConfig value (it used to come back inside a text/html page).
        answers.push(
            s.put(
                "/recipe/multitenancy/app/v2",
                json!({"appId": "x", "coreConfig": {"access_token_validity": script}}),
            )
            .await,
        );
        answers.push(
            s.put(
                "/recipe/multitenancy/app/v2",
                json!({"appId": "x", "coreConfig": {"refresh_token_rotation_grace_period": script}}),
            )
            .await,
        );
        // Broken JSON, a wrong type, a bad tenant, an unknown path, a wrong method.
        answers.push(
            s.raw(
                Method::POST,
                "/recipe/session/verify",
                Some(format!("{{\"accessToken\": \"{script}").into_bytes()),
                &[],
            )
            .await,
        );
        answers.push(
            s.post(
                "/recipe/session/verify",
                json!({"accessToken": {"x": script}}),
            )
            .await,
        );
        answers.push(
            s.post("/%3Cscript%3E/recipe/session", new_session(script))
                .await,
        );
        answers.push(s.get("/%3Cscript%3Ex").await);
        answers.push(
            s.raw(Method::DELETE, "/recipe/session/verify", None, &[])
                .await,
        );
        for r in &answers {
            assert!(r.status.is_client_error(), "{} {}", r.status, r.text);
            assert_eq!(
                r.headers["content-type"], "text/plain; charset=UTF-8",
                "{}",
                r.text
            );
            assert_eq!(r.headers["x-content-type-options"], "nosniff");
            let lower = r.text.to_ascii_lowercase();
            assert!(
                !lower.contains("script") && !lower.contains("alert"),
                "echoed: {}",
                r.text
            );
        }
        assert_eq!(answers[0].status, StatusCode::BAD_REQUEST);
        assert!(
            answers[0].text.contains("access_token_validity"),
            "still says what is wrong: {}",
            answers[0].text
        );
        s.stop().await;
    }
);

// ---- SEC2-INFO (b): listing a user's sessions is bounded ----

both_stores!(
    sec2_info_a_users_session_list_is_capped_at_the_newest_1000,
    |backend: Backend| async move {
        use tessera_server::routes::MAX_LISTED_SESSIONS;
        let s = std::sync::Arc::new(in_process::start(backend).await);
        let handle_of =
            |r: in_process::Reply| r.json["session"]["handle"].as_str().unwrap().to_owned();
        let mut oldest = Vec::new();
        for _ in 0..5 {
            oldest.push(handle_of(s.create("many").await));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let s = std::sync::Arc::clone(&s);
                tokio::spawn(async move {
                    for _ in 0..MAX_LISTED_SESSIONS / 4 {
                        s.create("many").await;
                    }
                })
            })
            .collect();
        for w in workers {
            w.await.unwrap();
        }
        let r = s.get("/recipe/session/user?userId=many").await;
        assert_eq!(r.status_field(), "OK", "{}", r.text);
        let listed: Vec<String> = serde_json::from_value(r.json["sessionHandles"].clone()).unwrap();
        assert_eq!(listed.len(), MAX_LISTED_SESSIONS);
        assert!(
            oldest.iter().all(|h| !listed.contains(h)),
            "the oldest are listed"
        );
        // Revoking by user still reaches every session, listed or not.
        let r = s
            .post("/recipe/session/remove", json!({"userId": "many"}))
            .await;
        let revoked = r.json["sessionHandlesRevoked"].as_array().unwrap();
        assert_eq!(revoked.len(), MAX_LISTED_SESSIONS + 5);
        let r = s.get("/recipe/session/user?userId=many").await;
        assert_eq!(r.json["sessionHandles"], json!([]));
    }
);

// ---- SEC2-INFO (c): tenants inside one app are labels; apps are the boundary ----

both_stores!(
    sec2_info_tenants_are_labels_apps_are_the_boundary,
    |backend: Backend| async move {
        let s = in_process::start(backend).await;
        for app in ["y", "z"] {
            let r = s
                .put("/recipe/multitenancy/app/v2", json!({"appId": app}))
                .await;
            assert_eq!(r.status_field(), "OK", "{}", r.text);
        }
        let verify = |at: &str| {
            json!({"accessToken": at, "doAntiCsrfCheck": false, "enableAntiCsrf": false,
                   "checkDatabase": true})
        };
        // Inside one app, a tenant that was never created is accepted, and a session of
        // tenant-t is read, verified and revoked through tenant-u: tenants are labels.
        let r = s.post("/tenant-t/recipe/session", new_session("u")).await;
        assert_eq!(r.status_field(), "OK", "{}", r.text);
        let handle = r.json["session"]["handle"].as_str().unwrap().to_owned();
        let at = r.json["accessToken"]["token"].as_str().unwrap().to_owned();
        let r = s
            .get(&format!("/tenant-u/recipe/session?sessionHandle={handle}"))
            .await;
        assert_eq!(r.status_field(), "OK", "{}", r.text);
        assert_eq!(r.json["tenantId"], "tenant-t");
        let r = s.post("/tenant-u/recipe/session/verify", verify(&at)).await;
        assert_eq!(r.status_field(), "OK", "{}", r.text);
        let r = s
            .post(
                "/tenant-u/recipe/session/remove",
                json!({"sessionHandles": [handle]}),
            )
            .await;
        assert_eq!(
            r.json["sessionHandlesRevoked"],
            json!([handle]),
            "{}",
            r.text
        );
        // Across apps nothing is shared: app y's session is unknown to app z and to public.
        let r = s
            .post("/appid-y/tenant-t/recipe/session", new_session("u"))
            .await;
        let handle = r.json["session"]["handle"].as_str().unwrap().to_owned();
        let at = r.json["accessToken"]["token"].as_str().unwrap().to_owned();
        for app in ["/appid-z", ""] {
            let r = s
                .get(&format!("{app}/recipe/session?sessionHandle={handle}"))
                .await;
            assert_eq!(r.status_field(), "UNAUTHORISED", "{app}: {}", r.text);
            let r = s
                .post(&format!("{app}/recipe/session/verify"), verify(&at))
                .await;
            assert_ne!(r.status_field(), "OK", "{app}: {}", r.text);
            let r = s
                .post(
                    &format!("{app}/recipe/session/remove"),
                    json!({"sessionHandles": [handle]}),
                )
                .await;
            assert_eq!(
                r.json["sessionHandlesRevoked"],
                json!([]),
                "{app}: {}",
                r.text
            );
        }
        let r = s
            .get(&format!("/appid-y/recipe/session?sessionHandle={handle}"))
            .await;
        assert_eq!(r.status_field(), "OK", "{}", r.text);
        s.stop().await;
    }
);
