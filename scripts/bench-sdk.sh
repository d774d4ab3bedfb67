#!/usr/bin/env bash
# What the session layer costs per request, measured in one run on 127.0.0.1 (server pinned to
# core 0, wrk to core 1, each wrk run bounded by DURATION):
#   bare axum  GET /hello                                     (baseline)
#   session    GET /hello behind tessera-axum, valid cookie, verified-token cache on / off
#   peer       express + supertokens-node verifySession against tessera serve, and the same
#              express app without verifySession (its own baseline)
# Each figure is the best of ROUNDS interleaved runs, so drift on a noisy machine hits all alike.
# BENCH_METRICS=1 adds "session, cache on, metrics": the same app recording the SDK's metrics
# into a Prometheus recorder (bench-app --metrics), interleaved with the others (issue 13).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-6s}"
ROUNDS="${ROUNDS:-2}"
CONNECTIONS="${CONNECTIONS:-32}"
PORT="${PORT:-8090}"
TARGET="${CARGO_TARGET_DIR:-target}" # cargo's own target dir, so the binaries below are the ones just built
cargo build --release -q -p tessera-examples --bin bench-app -p tessera-server --bin tessera
# shellcheck source=scripts/lib/wrk.sh
. scripts/lib/wrk.sh # the working directory is the repository root

login_cookie() { # URL → "sAccessToken=…"
  curl -s -D - -o /dev/null -X POST -H 'st-auth-mode: cookie' "$1" \
    | awk -F'[;:] *' 'tolower($1)=="set-cookie" && $2 ~ /^sAccessToken=/ {print $2}'
}

# Every run sends the same request bytes: GET /hello with a real session cookie (the bare app
# ignores it), so the ratio isolates the layer's work from the cost of a bigger request.
start_app() { # [bench-app flags…]
  taskset -c 0 "$TARGET"/release/bench-app --port "$PORT" "$@" >/dev/null &
  pids+=($!)
  wait_up "http://127.0.0.1:$PORT/hello"
}

session_cookie() { # from the running session app
  local c; c=$(login_cookie "http://127.0.0.1:$PORT/login")
  [ -n "$c" ] || { echo "no session cookie" >&2; exit 1; }
  echo "$c"
}

axum() { # [bench-app flags…] → req/s for GET /hello with a session cookie
  start_app "$@"
  local cookie="$BARE_COOKIE"
  [[ " $* " == *" bare "* ]] || cookie=$(session_cookie)
  local rps; rps=$(run_wrk "http://127.0.0.1:$PORT/hello" -H "Cookie: $cookie")
  cleanup
  echo "$rps"
}

start_app --mode session
BARE_COOKIE=$(session_cookie)
cleanup


bare=(); cached=(); uncached=(); metered=()
for _ in $(seq 1 "$ROUNDS"); do
  cached+=("$(axum --mode session)")
  if [ "${BENCH_METRICS:-0}" = 1 ]; then metered+=("$(axum --mode session --metrics)"); fi
  uncached+=("$(axum --mode session --no-cache)")
  bare+=("$(axum --mode bare)")
done

peer_line="peer: skipped (run npm ci in bench/peers/node, or scripts/bench-peers.sh once)"
if [ -d bench/peers/node/node_modules/supertokens-node ]; then
  dir=$(mktemp -d)
  taskset -c 0 "$TARGET"/release/tessera serve --port 3599 --sqlite-path "$dir/core.db" >/dev/null 2>&1 &
  pids+=($!)
  wait_up "http://127.0.0.1:3599/hello"
  (cd bench/peers/node && PORT=8095 CORE_URL=http://127.0.0.1:3599 exec taskset -c 0 node express-supertokens.mjs >/dev/null) &
  pids+=($!)
  wait_up "http://127.0.0.1:8095/hello"
  cookie=$(login_cookie "http://127.0.0.1:8095/login")
  [ -n "$cookie" ] || { echo "no session cookie from express" >&2; exit 1; }
  ebare=(); esession=()
  for _ in $(seq 1 "$ROUNDS"); do
    ebare+=("$(run_wrk "http://127.0.0.1:8095/hello")")
    esession+=("$(run_wrk "http://127.0.0.1:8095/session" -H "Cookie: $cookie")")
  done
  cleanup
  peer_line=$(python3 - "$(best "${ebare[@]}")" "$(best "${esession[@]}")" <<'PY'
import sys
b, s = map(float, sys.argv[1:])
print(f"express bare {b:,.0f} req/s; express + verifySession {s:,.0f} req/s, ratio {s/b:.3f}")
PY
)
fi

python3 - "$(best "${bare[@]}")" "$(best "${cached[@]}")" "$(best "${uncached[@]}")" <<'PY'
import sys
bare, cached, uncached = map(float, sys.argv[1:])
print(f"bare axum            {bare:>10,.0f} req/s")
print(f"session, cache on    {cached:>10,.0f} req/s  ratio {cached/bare:.3f} (target >= 0.9, issue 16)")
print(f"session, cache off   {uncached:>10,.0f} req/s  ratio {uncached/bare:.3f}")
PY
if [ "${BENCH_METRICS:-0}" = 1 ]; then
  python3 - "$(best "${bare[@]}")" "$(best "${cached[@]}")" "$(best "${metered[@]}")" <<'PY'
import sys
bare, cached, metered = map(float, sys.argv[1:])
print(f"session, cache on, metrics {metered:>10,.0f} req/s  ratio {metered/bare:.3f}; metrics on / off {metered/cached:.3f} (target >= 0.95)")
PY
fi
echo "$peer_line"
