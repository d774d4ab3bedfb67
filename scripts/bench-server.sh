#!/usr/bin/env bash
# Load benchmark of `tessera serve` over loopback HTTP, with an in-run baseline.
#
#   scripts/bench-server.sh                        # SQLite file in a temporary directory
#   scripts/bench-server.sh --postgres [URL]       # PostgreSQL (default URL below), own schema
#
# Builds `tessera` in release, starts it on 127.0.0.1 pinned to core 0, and drives it with wrk
# pinned to core 1 (wrk is installed from Debian if missing). One run measures, each for
# DURATION seconds (default 8, at most 10) with CONNECTIONS connections (default 32):
#   GET  /hello                     baseline: the HTTP stack plus a store ping
#   POST /public/recipe/session     create (one insert)
#   POST /recipe/session/verify     with checkDatabase: true (one row read)
#   POST /recipe/session/refresh    every request a valid rotation: each session's newest
#                                   refresh token is used once, then replaced by the one the
#                                   response returns (one promotion write per refresh)
# and prints requests/s, the ratio to /hello, errors (socket errors, non-2xx, and any 200 whose
# JSON status is not OK — a run with errors is invalid and makes the script fail), and the
# server's resident memory (VmRSS) idle and after the load. The server is stopped by PID on
# exit, whatever happens.
#
# METRICS=off starts the server with `--metrics off` (default: on, as shipped); compare the
# verify figure of two runs, or use METRICS=both to run the whole load twice, on then off, and
# print the ratios (issue 13).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-8}"
CONNECTIONS="${CONNECTIONS:-32}"
SESSIONS_PER_CONNECTION=4
PG_URL=""
while [ $# -gt 0 ]; do
  case "$1" in
    --postgres)
      PG_URL="postgres://postgres@127.0.0.1:5432/test"
      if [ $# -gt 1 ] && [[ "$2" == postgres* ]]; then PG_URL="$2"; shift; fi
      ;;
    -h | --help)
      sed -n '2,20p' "$0"
      exit 0
      ;;
    *)
      echo "unknown argument: $1 (see --help)" >&2
      exit 2
      ;;
  esac
  shift
done
if ! [[ "$DURATION" =~ ^[0-9]+$ ]] || [ "$DURATION" -lt 1 ] || [ "$DURATION" -gt 10 ]; then
  echo "DURATION must be 1..10 seconds" >&2
  exit 2
fi

log() { printf '== %s\n' "$*" >&2; }

METRICS="${METRICS:-on}"
if [ "$METRICS" = both ]; then
  # The same load twice, metrics on then off, each with its own server; ratios of the two.
  on_out="$(METRICS=on "$0" "$@")"
  printf 'metrics on:%s\n\n' "$on_out"
  off_out="$(METRICS=off "$0" "$@")"
  printf 'metrics off:%s\n\n' "$off_out"
  python3 - "$on_out" "$off_out" <<'PY'
import sys
def rates(text):
    out = {}
    for line in text.splitlines():
        if line.startswith(("GET ", "POST ")):
            name, rest = line[:46].strip(), line[46:].split()
            out[name] = float(rest[0])
    return out
on, off = map(rates, sys.argv[1:3])
for name in on:
    if name in off and off[name]:
        print(f"metrics on / off  {name:46} {on[name]:9.0f} / {off[name]:9.0f} = {on[name] / off[name]:.3f}")
PY
  exit 0
fi
case "$METRICS" in on | off) ;; *) echo "METRICS must be on, off or both" >&2; exit 2 ;; esac

if ! command -v wrk >/dev/null; then
  log "installing wrk"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
command -v taskset >/dev/null || { echo "taskset (util-linux) is required" >&2; exit 1; }
if [ "$(nproc)" -lt 2 ]; then
  echo "needs two cores (server on core 0, wrk on core 1); this machine has $(nproc)" >&2
  exit 1
fi

log "cargo build --release -p tessera-server"
cargo build --release --quiet -p tessera-server
TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
BIN="$TARGET_DIR/release/tessera"
[ -x "$BIN" ] || { echo "no binary at $BIN" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/tessera-bench.XXXXXX")"
SERVER_PID=""
SCHEMA=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ -n "$SCHEMA" ] && command -v psql >/dev/null; then
    psql "$PG_URL" -qc "drop schema if exists \"$SCHEMA\" cascade" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -n "$PG_URL" ]; then
  SCHEMA="tessera_bench_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
  STORE=(--database-url "$PG_URL" --database-schema "$SCHEMA")
else
  STORE=(--sqlite-path "$WORK/bench.db")
fi

log "starting tessera on core 0"
# Only the flags configure the server: drop every variable it would read.
env -u API_KEYS -u POSTGRESQL_CONNECTION_URI -u POSTGRESQL_TABLE_SCHEMA -u TESSERA_CONFIG \
  -u TESSERA_SQLITE_PATH -u ACCESS_TOKEN_VALIDITY -u REFRESH_TOKEN_VALIDITY -u BASE_PATH \
  -u ACCESS_TOKEN_DYNAMIC_SIGNING_KEY_UPDATE_INTERVAL -u REFRESH_TOKEN_ROTATION_GRACE_PERIOD \
  -u SUPERTOKENS_MAX_CDI_VERSION -u SUPERTOKENS_MIN_CDI_VERSION -u TESSERA_LOG \
  -u TESSERA_METRICS -u TESSERA_METRICS_ADDR -u TESSERA_API_KEY_RATE_LIMIT -u TESSERA_LOG_FORMAT \
  LOG_LEVEL=error taskset -c 0 "$BIN" serve --host 127.0.0.1 --port 0 --metrics "$METRICS" "${STORE[@]}" \
  >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER_PID=$!
URL=""
for _ in $(seq 1 300); do
  URL="$(sed -n 's/.*listening on \(http:\/\/[^ ]*\).*/\1/p' "$WORK/server.out" | head -1)"
  [ -n "$URL" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.err" >&2; echo "tessera exited" >&2; exit 1; }
  sleep 0.1
done
[ -n "$URL" ] || { echo "tessera did not start within 30 s" >&2; exit 1; }
log "$(head -1 "$WORK/server.out")"

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status"; }

# Sessions for verify (access tokens) and refresh (refresh tokens), made through the API.
SESSIONS=$((CONNECTIONS * SESSIONS_PER_CONNECTION))
python3 - "$URL" "$SESSIONS" "$WORK" <<'PY'
import json, sys, urllib.request
url, n, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
access, refresh = [], []
for i in range(n):
    body = json.dumps({"userId": f"bench-setup-{i}", "enableAntiCsrf": False,
                       "userDataInJWT": {"role": "user"}, "userDataInDatabase": {}}).encode()
    req = urllib.request.Request(f"{url}/public/recipe/session", data=body, method="POST",
                                 headers={"content-type": "application/json", "cdi-version": "5.4"})
    with urllib.request.urlopen(req, timeout=10) as r:
        reply = json.load(r)
    assert reply["status"] == "OK", reply
    access.append(reply["accessToken"]["token"])
    refresh.append(reply["refreshToken"]["token"])
open(f"{work}/access.txt", "w").write("\n".join(access) + "\n")
open(f"{work}/refresh.txt", "w").write("\n".join(refresh) + "\n")
PY

sleep 1
IDLE_RSS="$(rss_kib)"

run() { # name mode [tokens file]; one wrk thread (the script's <threads> argument is 1)
  local name="$1" mode="$2"
  shift 2
  log "wrk: $name (${DURATION}s, $CONNECTIONS connections, core 1)"
  taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 5s \
    -s scripts/lib/session_load.lua "$URL" -- "$mode" 1 "$@" >"$WORK/wrk-$mode.txt"
  printf '%s\t%s\n' "$name" "$(grep '^RESULT ' "$WORK/wrk-$mode.txt" | cut -d' ' -f2-)" \
    >>"$WORK/results.txt"
  grep '^FIRST_BAD ' "$WORK/wrk-$mode.txt" >&2 || true
}

run "GET /hello" hello
run "POST /public/recipe/session (create)" create
run "POST /recipe/session/verify (checkDatabase)" verify "$WORK/access.txt"
run "POST /recipe/session/refresh (rotation)" refresh "$WORK/refresh.txt"
LOADED_RSS="$(rss_kib)"
PEAK_RSS="$(awk '/^VmHWM:/ {print $2}' "/proc/$SERVER_PID/status")"

STORE_NAME="SQLite file"
[ -n "$PG_URL" ] && STORE_NAME="PostgreSQL"
python3 - "$WORK/results.txt" "$IDLE_RSS" "$LOADED_RSS" "$PEAK_RSS" "$STORE_NAME" "$CONNECTIONS" "$DURATION" <<'PY'
import sys
path, idle, loaded, peak, store, conns, dur = sys.argv[1:8]
rows = []
for line in open(path):
    name, rest = line.rstrip("\n").split("\t", 1)
    f = {k: int(v) for k, v in (kv.split("=") for kv in rest.split())}
    rps = f["requests"] / (f["duration_us"] / 1e6)
    errors = f["connect"] + f["read"] + f["write"] + f["timeout"] + f["status"]
    rows.append((name, rps, errors, f["bad"], f["p50_us"], f["p99_us"], f["requests"]))
base = rows[0][1]
print(f"\ntessera serve, {store}, server on core 0, wrk -t1 -c{conns} -d{dur}s on core 1 (127.0.0.1)")
print(f"{'endpoint':46} {'req/s':>9} {'vs /hello':>9} {'p50 ms':>7} {'p99 ms':>7} {'requests':>9} {'errors':>6} {'not OK':>6}")
for name, rps, errors, bad, p50, p99, n in rows:
    print(f"{name:46} {rps:9.0f} {rps / base:9.3f} {p50 / 1000:7.2f} {p99 / 1000:7.2f} {n:9d} {errors:6d} {bad:6d}")
print(f"server VmRSS: idle {int(idle) / 1024:.1f} MiB, after load {int(loaded) / 1024:.1f} MiB (peak VmHWM {int(peak) / 1024:.1f} MiB)")
invalid = sum(r[2] + r[3] for r in rows)
if invalid:
    print(f"INVALID: {invalid} failed requests (socket errors, non-2xx or status != OK)")
    sys.exit(1)
print("no errors: every request succeeded")
PY
