#!/usr/bin/env bash
# The one command that runs every test on a fresh machine: it installs what the tests need,
# makes sure PostgreSQL answers, then runs formatting, lints, unit/integration/doc tests and a
# single-iteration pass over every benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."

START=$SECONDS
log() { printf '\n== [%4ds] %s\n' "$((SECONDS - START))" "$*"; }

export CARGO_TERM_COLOR=never
export TESSERA_TEST_POSTGRES_URL="${TESSERA_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"

log "Node.js (compatibility suites drive the real SuperTokens SDKs)"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
node --version

log "toolchain"
command -v cargo >/dev/null || { echo "cargo is required (rustup)"; exit 1; }
rustup component add rustfmt clippy >/dev/null 2>&1 || true
cargo --version

log "PostgreSQL"
if ! command -v psql >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-client >/dev/null
fi
if ! psql "$TESSERA_TEST_POSTGRES_URL" -Atc 'select 1' >/dev/null 2>&1; then
  if command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
  for _ in $(seq 1 30); do
    psql "$TESSERA_TEST_POSTGRES_URL" -Atc 'select 1' >/dev/null 2>&1 && break
    sleep 1
  done
fi
psql "$TESSERA_TEST_POSTGRES_URL" -Atc 'select version()'
# Drop the schemas earlier test runs left behind.
psql "$TESSERA_TEST_POSTGRES_URL" -Atc "select 'drop schema \"' || nspname || '\" cascade;' from pg_namespace where nspname like 'tessera_test_%' or nspname like 'tessera_srv_%'" \
  | psql "$TESSERA_TEST_POSTGRES_URL" -q >/dev/null 2>&1 || true

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

log "cargo doc -D warnings (every intra-doc link resolves, none points at a private item)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

log "cargo test (unit, integration, doc)"
cargo test --workspace

log "cargo fuzz: every target briefly from its committed corpus (ROB-01; longer: FUZZ_SECONDS)"
# The nightly, coverage-instrumented build shares nothing with the stable builds above: its target
# folder is kept in the user's cache, so a rerun on the same machine rebuilds only what changed.
FUZZ_SECONDS="${FUZZ_SECONDS:-10}" \
  CARGO_TARGET_DIR="${TESSERA_FUZZ_TARGET_DIR:-$HOME/.cache/tessera/fuzz-target}" scripts/fuzz-ci.sh

log "supertokens-node 24 against tessera serve (SQLite and PostgreSQL)"
cargo build -p tessera-server
(
  cd tests/compat/node
  npm ci --no-audit --no-fund --loglevel=error
  TESSERA_BIN="$PWD/../../../target/debug/tessera" npm test
  TESSERA_BIN="$PWD/../../../target/debug/tessera" TESSERA_DATABASE_URL="$TESSERA_TEST_POSTGRES_URL" npm test
)

log "supertokens-python against tessera serve (SQLite and PostgreSQL)"
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
fi
TESSERA_BIN="$PWD/target/debug/tessera" tests/compat/python/run.sh -q
TESSERA_BIN="$PWD/target/debug/tessera" TESSERA_DATABASE_URL="$TESSERA_TEST_POSTGRES_URL" tests/compat/python/run.sh -q

log "headless Chromium with the stock supertokens-website against tessera-axum, and the tessera serve admin page"
./scripts/install-browser-deps.sh
cargo build -p tessera-server -p tessera-examples --bin tessera --bin browser-app --bin website-test-app --bin shop
(cd tests/browser && BROWSER_APP_BIN="$PWD/../../target/debug/browser-app" SHOP_BIN="$PWD/../../target/debug/shop" TESSERA_BIN="$PWD/../../target/debug/tessera" npm test)

log "peer benchmarks, smoke mode: every peer answers without errors, the report parses (figures: scripts/bench-peers.sh)"
SMOKE=1 scripts/bench-peers.sh
SMOKE=1 scripts/bench-paired.sh

log "growth and scale-out benchmarks, smoke mode: 1,000 sessions, 1 and 2 instances; every measurement answers, the reports parse (figures: scripts/bench-growth.sh, scripts/bench-scale.sh)"
SMOKE=1 scripts/bench-growth.sh
SMOKE=1 scripts/bench-scale.sh

log "benchmarks, one iteration each (figures: scripts/bench-*.sh)"
cargo test --workspace --benches

log "all tests passed"
