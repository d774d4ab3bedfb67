#!/usr/bin/env bash
# Scale-out: create and refresh throughput with one and with two `tessera serve` instances on one
# PostgreSQL, measured in one run and written to docs/scaling.md (the "Scale-out measured"
# section, between its markers; raw samples in docs/scaling.json). One wrk with two threads
# drives the instances (with two, one thread each; with one, both threads it), 127.0.0.1 only,
# every process stopped by PID, the run's PostgreSQL schema dropped at the end. On a 2-core
# machine the instances, PostgreSQL and wrk share the cores: read the caveat in the report.
# Rules: the top of scripts/lib/bench_scale.py.
#
#   scripts/bench-scale.sh               # full run (release build), about 2 minutes
#   SMOKE=1 scripts/bench-scale.sh       # debug build, one 2 s round; writes to a temporary
#                                        # directory and checks only that every request answered
#                                        # and the section parses
# Environment: ROUNDS (4), DURATION (5 s), CONNECTIONS (32), SETUP (256 real sessions for
# refresh), OUT (docs), PROFILE (release; debug when SMOKE=1), TESSERA_TEST_POSTGRES_URL
# (postgres://postgres@127.0.0.1:5432/test), LOAD_NOTE (what else ran, for the report).
#
# It installs what it needs itself: wrk and the PostgreSQL client from Debian.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '== %s\n' "$*" >&2; }

SMOKE="${SMOKE:-0}"
if [ "$SMOKE" = 1 ]; then
  ROUNDS="${ROUNDS:-1}" DURATION="${DURATION:-2}" SETUP="${SETUP:-64}" PROFILE="${PROFILE:-debug}"
else
  ROUNDS="${ROUNDS:-4}" DURATION="${DURATION:-5}" SETUP="${SETUP:-256}" PROFILE="${PROFILE:-release}"
fi
CONNECTIONS="${CONNECTIONS:-32}"
PG_URL="${TESSERA_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v psql >/dev/null || missing+=(postgresql-client)
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! psql "$PG_URL" -Atqc 'select 1' >/dev/null 2>&1; then
  echo "PostgreSQL does not answer at $PG_URL (set TESSERA_TEST_POSTGRES_URL)" >&2
  exit 1
fi

flags=(-q)
[ "$PROFILE" = release ] && flags+=(--release)
log "cargo build ($PROFILE): tessera"
cargo build "${flags[@]}" -p tessera-server --bin tessera
BINS="${CARGO_TARGET_DIR:-$PWD/target}/$PROFILE"

own_out=""
if [ -z "${OUT:-}" ] && [ "$SMOKE" = 1 ]; then
  OUT="$(mktemp -d "${TMPDIR:-/tmp}/tessera-bench-scale-smoke.XXXXXX")"
  own_out="$OUT"
  cp docs/scaling.md "$OUT/scaling.md"
fi
OUT="${OUT:-docs}"
mkdir -p "$OUT"
args=(--bins "$BINS" --postgres "$PG_URL" --rounds "$ROUNDS" --duration "$DURATION"
  --connections "$CONNECTIONS" --setup "$SETUP" --out "$OUT/scaling.md" --json "$OUT/scaling.json")
[ "$SMOKE" = 1 ] && args+=(--smoke)
# The driver stops every process it started and drops its schema; on INT or TERM it is told to,
# and waited for.
python3 scripts/lib/bench_scale.py "${args[@]}" &
driver=$!
trap 'kill -TERM "$driver" 2>/dev/null || true' INT TERM
status=0
wait "$driver" || status=$?
while kill -0 "$driver" 2>/dev/null; do wait "$driver" || status=$?; done
if [ -n "$own_out" ]; then rm -rf "$own_out"; fi
exit "$status"
