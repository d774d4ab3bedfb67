#!/usr/bin/env bash
# Load soak of `tessera serve` over loopback: mixed session traffic for a bounded time, then a
# report of requests served, errors and the server's memory over time.
#
#   scripts/soak.sh                 # 600 s
#   DURATION=30 scripts/soak.sh     # a quick check
#
# Builds `tessera` in release (or uses TESSERA_BIN), starts it on 127.0.0.1 (free port) with a
# SQLite file in a temporary directory, and drives it with wrk and scripts/soak/mixed.lua:
# CONNECTIONS connections (default 4, one wrk thread each), every connection looping over a
# session's life — create, verify, refresh, verify (promotion), update session data, update
# JWT payload, regenerate, refresh, JWKS, session info, revoke (3 sessions in 4), verify after
# revoke — with SOAK_DELAY_MS (default 5) between requests on a connection.
#
# Reports requests served, errors (socket errors, non-2xx, and any response that is not what
# the protocol requires at that step), server log lines at WARN/ERROR or panics, and VmRSS at
# start, after warm-up (10% of DURATION, at least 5 s), at the middle and at the end. Exits
# non-zero if there was any error, or if the end RSS is more than RSS_TOLERANCE_PCT (default
# 20) above the post-warm-up RSS. The server and wrk are stopped by PID on exit, whatever
# happens; wrk is also bounded by `timeout`.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-600}"
CONNECTIONS="${CONNECTIONS:-4}"
SOAK_DELAY_MS="${SOAK_DELAY_MS:-5}"
RSS_TOLERANCE_PCT="${RSS_TOLERANCE_PCT:-20}"
export SOAK_DELAY_MS

for v in DURATION CONNECTIONS SOAK_DELAY_MS RSS_TOLERANCE_PCT; do
  if ! [[ "${!v}" =~ ^[0-9]+$ ]]; then
    echo "$v must be a whole number" >&2
    exit 2
  fi
done
if [ "$DURATION" -lt 10 ] || [ "$DURATION" -gt 86400 ]; then
  echo "DURATION must be 10..86400 seconds" >&2
  exit 2
fi
if [ "$CONNECTIONS" -lt 1 ] || [ "$CONNECTIONS" -gt 64 ]; then
  echo "CONNECTIONS must be 1..64" >&2
  exit 2
fi

log() { printf '== [%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

if ! command -v wrk >/dev/null; then
  log "installing wrk"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi

if [ -n "${TESSERA_BIN:-}" ]; then
  BIN="$TESSERA_BIN"
else
  log "cargo build --release -p tessera-server"
  cargo build --release --quiet -p tessera-server
  BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/tessera"
fi
[ -x "$BIN" ] || { echo "no binary at $BIN" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/tessera-soak.XXXXXX")"
SERVER_PID=""
WRK_PID=""
stop_pid() { # pid: TERM, wait up to 5 s, then KILL
  local pid="$1"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  stop_pid "$WRK_PID"
  stop_pid "$SERVER_PID"
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "starting tessera (SQLite in $WORK)"
# Only the flags configure the server: drop every variable it would read.
env -u API_KEYS -u POSTGRESQL_CONNECTION_URI -u POSTGRESQL_TABLE_SCHEMA -u TESSERA_CONFIG \
  -u TESSERA_SQLITE_PATH -u ACCESS_TOKEN_VALIDITY -u REFRESH_TOKEN_VALIDITY -u BASE_PATH \
  -u ACCESS_TOKEN_DYNAMIC_SIGNING_KEY_UPDATE_INTERVAL -u REFRESH_TOKEN_ROTATION_GRACE_PERIOD \
  -u SUPERTOKENS_MAX_CDI_VERSION -u SUPERTOKENS_MIN_CDI_VERSION -u TESSERA_LOG \
  -u TESSERA_STATIC_SIGNING_KEY -u SUPERTOKENS_HOST -u SUPERTOKENS_PORT \
  "$BIN" serve --host 127.0.0.1 --port 0 --log-level warn --sqlite-path "$WORK/soak.db" \
  >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER_PID=$!
URL=""
for _ in $(seq 1 300); do
  URL="$(sed -n 's/.*listening on \(http:\/\/127\.0\.0\.1:[0-9]*\).*/\1/p' "$WORK/server.out" | head -1)"
  [ -n "$URL" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.err" >&2; echo "tessera exited" >&2; exit 1; }
  sleep 0.1
done
[ -n "$URL" ] || { echo "tessera did not start within 30 s" >&2; exit 1; }
case "$URL" in http://127.0.0.1:*) ;; *) echo "refusing non-loopback URL $URL" >&2; exit 1 ;; esac
log "$(head -1 "$WORK/server.out")"

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status"; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$SERVER_PID/status"; }

sleep 1
RSS_START="$(rss_kib)"
WARM=$((DURATION / 10))
[ "$WARM" -lt 5 ] && WARM=5
MID=$((DURATION / 2))

log "wrk: ${DURATION}s, $CONNECTIONS connections, ${SOAK_DELAY_MS} ms between requests per connection"
timeout -s KILL $((DURATION + 60)) wrk -t"$CONNECTIONS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s \
  -s scripts/soak/mixed.lua "$URL" >"$WORK/wrk.txt" 2>&1 &
WRK_PID=$!

# Sample the server's RSS every 5 s while wrk runs; note warm-up and middle.
START_TS=$(date +%s)
RSS_WARM=""
RSS_MID=""
: >"$WORK/rss.tsv"
while kill -0 "$WRK_PID" 2>/dev/null; do
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "tessera died during the soak" >&2; cat "$WORK/server.err" >&2; exit 1; }
  now=$(($(date +%s) - START_TS))
  rss="$(rss_kib)"
  printf '%s\t%s\n' "$now" "$rss" >>"$WORK/rss.tsv"
  if [ -z "$RSS_WARM" ] && [ "$now" -ge "$WARM" ]; then RSS_WARM="$rss"; log "RSS after warm-up (${now}s): ${rss} KiB"; fi
  if [ -z "$RSS_MID" ] && [ "$now" -ge "$MID" ]; then RSS_MID="$rss"; log "RSS at middle (${now}s): ${rss} KiB"; fi
  sleep 5
done
WRK_STATUS=0
wait "$WRK_PID" || WRK_STATUS=$?
WRK_PID=""
RSS_END="$(rss_kib)"
RSS_PEAK="$(hwm_kib)"
kill -0 "$SERVER_PID" 2>/dev/null || { echo "tessera died during the soak" >&2; exit 1; }
[ -n "$RSS_WARM" ] || RSS_WARM="$RSS_END"
[ -n "$RSS_MID" ] || RSS_MID="$RSS_END"

# Stop the server cleanly (SIGTERM) and check it stopped with success.
kill -TERM "$SERVER_PID"
SERVER_STATUS=0
for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
wait "$SERVER_PID" || SERVER_STATUS=$?
SERVER_PID=""

LOG_PROBLEMS="$(grep -cE ' (WARN|ERROR) |panicked' "$WORK/server.err" || true)"
if [ "$LOG_PROBLEMS" -gt 0 ]; then
  log "server log problems (first 20):"
  grep -E ' (WARN|ERROR) |panicked' "$WORK/server.err" | head -20 >&2
fi
python3 - "$WORK/wrk.txt" "$WRK_STATUS" "$SERVER_STATUS" "$LOG_PROBLEMS" "$RSS_START" "$RSS_WARM" "$RSS_MID" "$RSS_END" \
  "$RSS_PEAK" "$RSS_TOLERANCE_PCT" "$DURATION" "$CONNECTIONS" "$SOAK_DELAY_MS" "$WORK/rss.tsv" <<'PY'
import sys
(wrk_out, wrk_status, server_status, log_problems, start, warm, mid, end, peak, tol, dur, conns,
 delay, rss_file) = sys.argv[1:15]
text = open(wrk_out).read()
result = next((l for l in text.splitlines() if l.startswith("RESULT ")), None)
if result is None:
    print(text)
    print("INVALID: wrk produced no result")
    sys.exit(1)
f = {k: int(v) for k, v in (kv.split("=") for kv in result.split()[1:])}
ops = next((l[4:] for l in text.splitlines() if l.startswith("OPS ")), "")
first_bad = next((l[10:] for l in text.splitlines() if l.startswith("FIRST_BAD ")), "")
secs = f["duration_us"] / 1e6
socket = f["connect"] + f["read"] + f["write"] + f["timeout"]
errors = socket + f["status"] + f["bad"]
kib = lambda v: f"{int(v) / 1024:.1f} MiB"
samples = [int(l.split("\t")[1]) for l in open(rss_file) if l.strip()]
print(f"\ntessera serve soak, SQLite file, 127.0.0.1, {dur} s, wrk {conns} connections, {delay} ms between requests")
print(f"requests served: {f['requests']} ({f['requests'] / secs:.0f} req/s), p50 {f['p50_us'] / 1000:.2f} ms, p99 {f['p99_us'] / 1000:.2f} ms")
print(f"per step: {ops}")
print(f"errors: {errors} (socket {socket}, non-2xx {f['status']}, protocol {f['bad']})")
if first_bad:
    print(f"first protocol error: {first_bad}")
print(f"server log lines at WARN/ERROR or panics: {log_problems}")
print(f"server VmRSS: start {kib(start)}, after warm-up {kib(warm)}, middle {kib(mid)}, end {kib(end)}; "
      f"peak VmHWM {kib(peak)}; samples min {kib(min(samples or [0]))} max {kib(max(samples or [0]))}")
growth = (int(end) - int(warm)) * 100 / int(warm)
print(f"RSS end vs post-warm-up: {growth:+.1f}% (limit +{tol}%)")
bad = []
if int(wrk_status) != 0:
    bad.append(f"wrk exited with {wrk_status}")
if errors:
    bad.append(f"{errors} failed requests")
if int(log_problems):
    bad.append(f"{log_problems} WARN/ERROR/panic lines in the server log")
if growth > int(tol):
    bad.append(f"RSS grew {growth:.1f}% after warm-up")
if int(server_status) != 0:
    bad.append(f"server exited with {server_status} on SIGTERM")
if bad:
    print("FAIL: " + "; ".join(bad))
    sys.exit(1)
print("PASS: no errors, memory flat, clean stop")
PY
