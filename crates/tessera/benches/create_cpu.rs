//! CPU time per session create and per refresh on SQLite against the raw RSA-2048 signature,
//! all in one run (issue 16). Wall-clock figures swing with whatever else the machine runs;
//! the CPU time the process spends — every thread, the SQLite worker threads included, read
//! from `/proc/self/task/*/schedstat` — does much less. Blocks of each operation alternate
//! (sign, create, refresh, sign, …) so a change in load falls on all of them, and the medians
//! of the blocks are printed with the ratios:
//!
//! ```text
//! cargo bench -p tessera --bench create_cpu            # ROUNDS=7 BLOCK=300 by default
//! ```
//!
//! `create/s on one core` is `1 s / CPU per create`: what a core fully given to creates
//! would do once the hand-offs between threads cost no waiting.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use tessera::{KeyKind, NewSession, RefreshOptions, SessionEngine, SigningKey, SqliteStore};

/// CPU nanoseconds used so far by every thread of this process.
fn process_cpu_ns() -> u64 {
    std::fs::read_dir("/proc/self/task")
        .expect("procfs")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; a filter or `--list` from a workspace run is ignored.
    let rounds = env_or("ROUNDS", 7);
    let block = env_or("BLOCK", 300);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = rt.block_on(async {
        let store = SqliteStore::open(dir.path().join("bench.db"))
            .await
            .expect("store");
        SessionEngine::builder(Arc::new(store))
            .build()
            .await
            .expect("engine")
    });
    let now_ms = tessera::Clock::now_ms(&tessera::SystemClock);
    let key = SigningKey::generate(format!("d-{now_ms}"), KeyKind::Dynamic, now_ms, u64::MAX)
        .expect("key");
    let message = [7u8; 400];
    let mut current = rt
        .block_on(engine.create_session(NewSession::for_user("bench-user")))
        .expect("create")
        .refresh_token
        .token;
    // Warm-up: connections opened, statements prepared, caches filled.
    for _ in 0..block {
        rt.block_on(engine.create_session(NewSession::for_user("bench-user")))
            .expect("create");
    }
    let (mut sign, mut create, mut refresh) = (Vec::new(), Vec::new(), Vec::new());
    let per_op = |start: u64| (process_cpu_ns() - start) as f64 / block as f64;
    for _ in 0..rounds {
        let start = process_cpu_ns();
        for _ in 0..block {
            std::hint::black_box(
                key.sign_rs256(std::hint::black_box(&message))
                    .expect("sign"),
            );
        }
        sign.push(per_op(start));
        let start = process_cpu_ns();
        for _ in 0..block {
            rt.block_on(engine.create_session(NewSession::for_user("bench-user")))
                .expect("create");
        }
        create.push(per_op(start));
        let start = process_cpu_ns();
        for _ in 0..block {
            current = rt
                .block_on(engine.refresh_session(&current, RefreshOptions::default()))
                .expect("refresh")
                .refresh_token
                .token;
        }
        refresh.push(per_op(start));
    }
    let (s, c, r) = (median(sign), median(create), median(refresh));
    println!(
        "CPU per raw RSA-2048 sign: {:.1} us = {:.0}/s on one core",
        s / 1e3,
        1e9 / s
    );
    println!(
        "CPU per sqlite create:     {:.1} us = {:.0}/s on one core; create/s / sign/s = {:.3} (target >= 0.75)",
        c / 1e3,
        1e9 / c,
        s / c
    );
    println!(
        "CPU per sqlite refresh:    {:.1} us = {:.0}/s on one core; refresh/s / sign/s = {:.3}",
        r / 1e3,
        1e9 / r,
        s / r
    );
}
