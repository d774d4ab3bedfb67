#!/usr/bin/env bash
# Measures what the session layer costs per request, in one run on 127.0.0.1:
#   bare axum  GET /hello                      (baseline)
#   session    GET /hello + valid cookie, verified-token cache on
#   session    same, cache off (every request pays the RS256 check)
# Server pinned to core 0, wrk to core 1. Each wrk run is bounded (DURATION, default 8 s).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-8s}"
CONNECTIONS="${CONNECTIONS:-32}"
PORT="${PORT:-8090}"
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q -p tessera-examples --bin bench-app
BIN=target/release/bench-app
pid=""
cleanup() { if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi; pid=""; }
trap cleanup EXIT

start() {
  taskset -c 0 "$BIN" --port "$PORT" "$@" >/dev/null &
  pid=$!
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/hello" -H 'x: y' && break; sleep 0.05; done
}

run_wrk() { # prints requests/s; fails on errors or non-2xx
  local out
  out=$(taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "$@" "http://127.0.0.1:$PORT/hello")
  if grep -qE "Non-2xx|Socket errors" <<<"$out"; then echo "$out" >&2; echo "errors during the run" >&2; exit 1; fi
  awk '/Requests\/sec/ {print $2}' <<<"$out"
}

start --mode bare
bare=$(run_wrk)
cleanup

measure_session() {
  start --mode session "$@"
  local cookie
  cookie=$(curl -s -D - -o /dev/null -X POST -H 'st-auth-mode: cookie' "http://127.0.0.1:$PORT/login" \
    | awk -F'[;:] *' 'tolower($1)=="set-cookie" && $2 ~ /^sAccessToken=/ {print $2}')
  [ -n "$cookie" ] || { echo "no session cookie" >&2; exit 1; }
  run_wrk -H "Cookie: $cookie"
  cleanup
}
cached=$(measure_session)
uncached=$(measure_session --no-cache)

python3 - "$bare" "$cached" "$uncached" <<'PY'
import sys
bare, cached, uncached = map(float, sys.argv[1:])
print(f"bare axum            {bare:>10,.0f} req/s")
print(f"session, cache on    {cached:>10,.0f} req/s  ratio {cached/bare:.3f} (target >= 0.8)")
print(f"session, cache off   {uncached:>10,.0f} req/s  ratio {uncached/bare:.3f}")
PY
