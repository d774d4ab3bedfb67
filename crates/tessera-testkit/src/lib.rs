//! Test support for the tessera workspace, in one place: every crate's tests take their stores,
//! servers and response helpers from here.
//!
//! - [`store`]: which store a test runs on — a fresh SQLite file or a fresh PostgreSQL schema —
//!   and the PostgreSQL rule (never skipped in CI).
//! - [`engine`]: the engine on a fresh store with a manual clock.
//! - [`in_process`]: `tessera serve`'s router on a real listener in this process.
//! - [`binary`]: the real `tessera` binary as a child process.
//! - [`sdk`]: an axum app with the SDK layer over either core, and its responses.
//! - [`cdi`]: CDI request bodies and readers of replies and JWTs.
//! - [`rng`]: a seeded generator for replayable randomised tests.
//!
//! ```
//! use tessera_testkit::{Backend, Place};
//!
//! let place = Place::fresh(Backend::Sqlite);
//! assert!(matches!(place, Place::Sqlite(_)));
//! ```
// Test support: a setup that fails is a failed test, so panicking with a message is the answer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod binary;
pub mod cdi;
pub mod engine;
pub mod in_process;
pub mod rng;
pub mod sdk;
pub mod store;

pub use store::{
    fresh_schema, fresh_store, fresh_store_pair, postgres_url, skip_postgres, Backend, Place,
};

/// Runs each `async fn(Backend)` scenario as two tests, `<name>::sqlite` and
/// `<name>::postgres` (the PostgreSQL one skips only under [`skip_postgres`]).
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::Backend::Sqlite).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if $crate::skip_postgres() {
                        eprintln!("skipping PostgreSQL (TESSERA_SKIP_POSTGRES=1)");
                        return;
                    }
                    super::$name($crate::Backend::Postgres).await;
                }
            }
        )*
    };
}

/// Runs an async closure scenario on both stores: `<name>::sqlite` and `<name>::postgres`.
#[macro_export]
macro_rules! both_stores {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                ($body)($crate::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if $crate::skip_postgres() {
                    eprintln!("skipping: TESSERA_SKIP_POSTGRES=1");
                    return;
                }
                ($body)($crate::Backend::Postgres).await;
            }
        }
    };
}
