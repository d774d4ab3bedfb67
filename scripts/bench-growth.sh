#!/usr/bin/env bash
# How Tessera's cost grows with the sessions stored, measured in one run on this machine and
# written to docs/benchmarks.md (the "How cost grows" section, between its markers) with line
# charts in docs/img/ and the raw samples in docs/benchmarks-growth.json:
#   for SQLite and PostgreSQL, with 10 k, 100 k and 1 M live sessions in the store (filled in
#   bulk with SQL, rows shaped like the engine's): create/s, refresh/s and the p50/p99 of verify
#   with checkDatabase, against `tessera serve`; then, at 1 M with half the sessions expired,
#   the expired-session clean-up's total time and the time of each DELETE statement (the
#   write-lock hold on SQLite).
# Server on core 0, wrk on core 1, 127.0.0.1 only, every process stopped by PID; PostgreSQL
# stores are schemas of their own (dropped at the end), SQLite stores files in a temporary
# directory (deleted at the end). Rules: the top of scripts/lib/bench_growth.py.
#
#   scripts/bench-growth.sh              # full run (release build), about 15 minutes
#   SMOKE=1 scripts/bench-growth.sh      # debug build, 1,000 sessions, one 2 s round; writes to a
#                                        # temporary directory and checks only that every
#                                        # measurement answered and the section parses
# Environment: SIZES (10000,100000,1000000), STORES (sqlite,postgres), ROUNDS (3), DURATION
# (5 s), CONNECTIONS (32), SETUP (256 real sessions each for verify and refresh), OUT (docs),
# PROFILE (release; debug when SMOKE=1),
# TESSERA_TEST_POSTGRES_URL (postgres://postgres@127.0.0.1:5432/test), LOAD_NOTE (what else ran,
# for the report).
#
# It installs what it needs itself: wrk, gnuplot and the PostgreSQL client from Debian.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '== %s\n' "$*" >&2; }

SMOKE="${SMOKE:-0}"
if [ "$SMOKE" = 1 ]; then
  SIZES="${SIZES:-1000}" ROUNDS="${ROUNDS:-1}" DURATION="${DURATION:-2}" WARMUP="${WARMUP:-0}"
  SETUP="${SETUP:-64}" PROFILE="${PROFILE:-debug}"
else
  SIZES="${SIZES:-10000,100000,1000000}" ROUNDS="${ROUNDS:-3}" DURATION="${DURATION:-5}"
  WARMUP="${WARMUP:-1}" SETUP="${SETUP:-256}" PROFILE="${PROFILE:-release}"
fi
STORES="${STORES:-sqlite,postgres}"
CONNECTIONS="${CONNECTIONS:-32}"
PG_URL="${TESSERA_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v gnuplot >/dev/null || missing+=(gnuplot-nox)
command -v taskset >/dev/null || missing+=(util-linux)
command -v psql >/dev/null || missing+=(postgresql-client)
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [[ "$STORES" == *postgres* ]] && ! psql "$PG_URL" -Atqc 'select 1' >/dev/null 2>&1; then
  echo "PostgreSQL does not answer at $PG_URL (set TESSERA_TEST_POSTGRES_URL, or STORES=sqlite)" >&2
  exit 1
fi

flags=(-q)
[ "$PROFILE" = release ] && flags+=(--release)
log "cargo build ($PROFILE): tessera, bench-cleanup"
# One invocation with both packages, as bench-peers.sh and scripts/test.sh build them: the same
# feature set, so the artifacts are shared.
cargo build "${flags[@]}" -p tessera-examples --bin bench-cleanup -p tessera-server --bin tessera
BINS="${CARGO_TARGET_DIR:-$PWD/target}/$PROFILE"

own_out=""
if [ -z "${OUT:-}" ] && [ "$SMOKE" = 1 ]; then
  OUT="$(mktemp -d "${TMPDIR:-/tmp}/tessera-bench-growth-smoke.XXXXXX")"
  own_out="$OUT"
fi
OUT="${OUT:-docs}"
mkdir -p "$OUT"
args=(--bins "$BINS" --postgres "$PG_URL" --stores "$STORES" --sizes "$SIZES" --rounds "$ROUNDS"
  --duration "$DURATION" --warmup "$WARMUP" --connections "$CONNECTIONS" --setup "$SETUP"
  --out "$OUT/benchmarks.md" --img "$OUT/img" --json "$OUT/benchmarks-growth.json")
[ "$SMOKE" = 1 ] && args+=(--smoke)
# The driver stops every process it started and drops every store it made; on INT or TERM it is
# told to, and waited for.
python3 scripts/lib/bench_growth.py "${args[@]}" &
driver=$!
trap 'kill -TERM "$driver" 2>/dev/null || true' INT TERM
status=0
wait "$driver" || status=$?
while kill -0 "$driver" 2>/dev/null; do wait "$driver" || status=$?; done
if [ -n "$own_out" ]; then rm -rf "$own_out"; fi
exit "$status"
