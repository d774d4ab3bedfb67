//! `bench-app`: the smallest app to measure what the session layer costs per request.
//!
//! `--mode bare` serves `GET /hello` from plain axum; `--mode session` serves the same handler
//! behind `tessera-axum` with a required `Session` (cookie transfer), and `POST /login` to get
//! a session cookie. The layer goes once around the router (`tessera.wrap(router)`), or on
//! each route with `--per-route` (`router.layer(tessera.layer())`). `--no-cache` turns off the
//! verified-token cache, so every request pays for the RS256 check. Used by
//! `scripts/bench-sdk.sh`.
//!
//! `--mode anonymous` serves the same handler with an [`AnySession`] behind the layer with
//! anonymous sessions on: a request with an anonymous-token cookie is verified, one without
//! gets a new anonymous session minted. Used by `scripts/bench-anonymous.sh`.
//!
//! `--mode sign` serves nothing: it signs a 400-byte message with a fresh RSA-2048 key in a
//! loop, on the one thread, for `--seconds`, then prints `signed <n> in <s> s` and exits. The
//! raw signing rate a core manages, measured beside the creates by `scripts/bench-peers.sh`
//! (a create signs one access token: issue 16 asks for ≥ 0.75 × this rate).
//!
//! `--metrics` installs a Prometheus recorder (`metrics-exporter-prometheus`) and the SDK's
//! `MetricsSink` on the engine, as an app exporting metrics would: `scripts/bench-sdk.sh` with
//! `BENCH_METRICS=1` compares it with the same app without (issue 13).
//!
//! `scripts/bench-peers.sh` runs it as the bare-axum floor and the tessera-axum peer, with
//! `--port 0` (any free port: the line `listening on http://127.0.0.1:<port>` names it) and
//! `--db` (the SQLite file, which the script removes afterwards).

use axum::routing::{get, post};
use axum::Router;
use clap::{Parser, ValueEnum};
use std::sync::Arc;
use tessera_axum::{AnySession, Config, Session, SessionRejection, SignIn, Tessera};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    Bare,
    Session,
    Anonymous,
    Sign,
}

/// Flags.
#[derive(Debug, Parser)]
struct Args {
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 8090)]
    port: u16,
    /// SQLite database file (default: one in a temporary directory that is left behind).
    #[arg(long)]
    db: Option<std::path::PathBuf>,
    /// What to serve.
    #[arg(long, value_enum, default_value_t = Mode::Session)]
    mode: Mode,
    /// Disable the verified-token cache.
    #[arg(long)]
    no_cache: bool,
    /// Put the session layer on each route (`router.layer(tessera.layer())`) instead of once
    /// around the router (`tessera.wrap(router)`, the default).
    #[arg(long)]
    per_route: bool,
    /// Record the SDK's metrics into an installed Prometheus recorder.
    #[arg(long)]
    metrics: bool,
    /// `--mode sign`: how long to sign, in seconds.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
}

/// `--mode sign`: RS256 signatures over a 400-byte message (about a create's access token)
/// for `seconds`, on this thread. Returns the count and the time taken.
fn sign_loop(seconds: f64) -> Result<(u64, std::time::Duration), Box<dyn std::error::Error>> {
    let now_ms = tessera::Clock::now_ms(&tessera::SystemClock);
    let key = tessera::SigningKey::generate(
        format!("d-{now_ms}"),
        tessera::KeyKind::Dynamic,
        now_ms,
        u64::MAX,
    )?;
    let message = [7u8; 400];
    let budget = std::time::Duration::try_from_secs_f64(seconds)?;
    let started = std::time::Instant::now();
    let mut signed = 0u64;
    while started.elapsed() < budget {
        for _ in 0..16 {
            std::hint::black_box(key.sign_rs256(std::hint::black_box(&message))?);
        }
        signed += 16;
    }
    Ok((signed, started.elapsed()))
}

async fn hello() -> &'static str {
    "hello"
}

async fn hello_session(_session: Session) -> &'static str {
    "hello"
}

async fn hello_any(_session: AnySession) -> &'static str {
    "hello"
}

async fn login(sign_in: SignIn) -> Result<&'static str, SessionRejection> {
    sign_in
        .create("bench-user", Default::default(), serde_json::json!({}))
        .await?;
    Ok("ok")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if let Mode::Sign = args.mode {
        let (signed, took) = sign_loop(args.seconds)?;
        println!("signed {signed} in {:.6} s", took.as_secs_f64());
        return Ok(());
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(args))
}

async fn serve(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    let port = listener.local_addr()?.port();
    let app = match args.mode {
        Mode::Bare => Router::new().route("/hello", get(hello)),
        Mode::Sign => return Err("--mode sign serves nothing".into()),
        Mode::Session | Mode::Anonymous => {
            let path = match args.db {
                Some(path) => path,
                None => {
                    let dir = tempfile::tempdir()?;
                    let path = dir.path().join("bench.db");
                    std::mem::forget(dir); // lives as long as the process
                    path
                }
            };
            let store = Arc::new(tessera::SqliteStore::open(path).await?);
            let mut builder =
                tessera::SessionEngine::builder(store).config(tessera::SessionConfig {
                    verified_token_cache: if args.no_cache { 0 } else { 10_000 },
                    ..Default::default()
                });
            if args.metrics {
                let handle =
                    metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
                // Drain histograms now and then, as an exporter's upkeep would.
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                        handle.run_upkeep();
                    }
                });
                builder = builder.events(Arc::new(tessera_axum::metrics::MetricsSink::new()));
            }
            let engine = builder.build().await?;
            let origin = format!("http://localhost:{port}");
            let anonymous = matches!(args.mode, Mode::Anonymous);
            let config = Config::builder(&origin, &origin)
                .anonymous_sessions(anonymous)
                .secure(true) // the __Host- anonymous cookie, as in production
                .build()?;
            let tessera = Tessera::new(config, Arc::new(engine));
            let router = if anonymous {
                Router::new().route("/hello", get(hello_any))
            } else {
                Router::new().route("/hello", get(hello_session))
            };
            let router = router.route("/login", post(login));
            if args.per_route {
                router.layer(tessera.layer())
            } else {
                println!("listening on http://127.0.0.1:{port}");
                axum::serve(listener, tessera.wrap(router))
                    .with_graceful_shutdown(shutdown())
                    .await?;
                return Ok(());
            }
        }
    };
    println!("listening on http://127.0.0.1:{port}");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await?;
    Ok(())
}

/// Until Ctrl-C (or SIGINT from the scripts).
async fn shutdown() {
    let _ = tokio::signal::ctrl_c().await;
}
