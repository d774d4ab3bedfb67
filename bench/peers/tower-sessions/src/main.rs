//! `peer-tower-sessions`: the tower-sessions peer of `scripts/bench-peers.sh` — axum with
//! tower-sessions and its sqlx SQLite store, configured as its documentation shows, with the
//! SQLite settings Tessera's own store uses (WAL, `synchronous=NORMAL`, 8 connections), so
//! that the comparison is between session systems, not SQLite configurations.
//!
//! Routes:
//! - `POST /login`: inserts the user id into a new session (one row written, `Set-Cookie: id=…`);
//! - `GET /hello`: reads the session from SQLite; `hello` if it holds the user id, else 401, so
//!   that a load run counts a lost session as an error.
//!
//! Prints `listening on http://127.0.0.1:<port>` when ready; stops on SIGINT or SIGTERM.

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;
use tower_sessions::{Session, SessionManagerLayer};
use tower_sessions_sqlx_store::sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use tower_sessions_sqlx_store::SqliteStore;

/// Flags.
#[derive(Debug, Parser)]
struct Args {
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// SQLite database file (created if missing).
    #[arg(long)]
    db: PathBuf,
}

const USER_KEY: &str = "user_id";
const USER: &str = "bench-user";

async fn login(session: Session) -> Result<&'static str, StatusCode> {
    session
        .insert(USER_KEY, USER)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok("ok")
}

async fn hello(session: Session) -> Result<&'static str, StatusCode> {
    match session.get::<String>(USER_KEY).await {
        Ok(Some(user)) if user == USER => Ok("hello"),
        Ok(_) => Err(StatusCode::UNAUTHORIZED),
        Err(_) => Err(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let options = SqliteConnectOptions::new()
        .filename(&args.db)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await?;
    let store = SqliteStore::new(pool);
    store.migrate().await?;
    let sessions = SessionManagerLayer::new(store).with_secure(false);
    let app = Router::new()
        .route("/hello", get(hello))
        .route("/login", post(login))
        .layer(sessions);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await?;
    Ok(())
}

/// SIGINT or SIGTERM (SIGINT only where no SIGTERM handler can be installed).
async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
