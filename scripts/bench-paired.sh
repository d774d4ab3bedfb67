#!/usr/bin/env bash
# The layer's cost per request as paired ratios, for a noisy machine: in each of ROUNDS rounds
# every configuration below runs once (DURATION each, in an order rotated from round to round),
# each figure is divided by the same round's bare-axum figure for the same request bytes, and
# the median of those per-round ratios is printed. Drift between rounds then falls on the
# numerator and the denominator alike; single runs of one script scatter by ±0.05 here.
#   bare            bare axum, GET /hello with a session cookie (ignored)
#   session         tessera-axum `Session`, cache on, the layer around the router (`wrap`)
#   session-route   the same with the layer on each route (`Router::layer`)
#   bare-guest      bare axum, GET /hello with an anonymous-token cookie and st-auth-mode
#   guest           tessera-axum `AnySession`, a returning guest (the same cookie), `wrap`
# BASE_BIN=path/to/another/bench-app adds base-session and base-guest (its defaults), for an
# A/B of two builds in the same run. Server on core 0, wrk on core 1, 127.0.0.1 only; every
# process is stopped by PID.
#
#   scripts/bench-paired.sh                      # 8 rounds of 3 s, about 2 minutes
#   ROUNDS=3 DURATION=1s scripts/bench-paired.sh # a quick look
#   CONFIGS="bare session session-route" scripts/bench-paired.sh   # some of them (with their floor)
#   SMOKE=1 scripts/bench-paired.sh              # debug build, one 1 s round: checks only that
#                                                # every configuration answered (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
SMOKE="${SMOKE:-0}"
if [ "$SMOKE" = 1 ]; then
  DURATION="${DURATION:-1s}" ROUNDS="${ROUNDS:-1}" PROFILE=debug
else
  DURATION="${DURATION:-3s}" ROUNDS="${ROUNDS:-8}" PROFILE=release
fi
CONNECTIONS="${CONNECTIONS:-32}"
PORT="${PORT:-8090}"
TARGET="${CARGO_TARGET_DIR:-target}"
BIN="$TARGET/$PROFILE/bench-app"
BASE_BIN="${BASE_BIN:-}"
if [ "$PROFILE" = release ]; then
  cargo build --release -q -p tessera-examples --bin bench-app
else
  cargo build -q -p tessera-examples --bin bench-app
fi
# shellcheck source=scripts/lib/wrk.sh
. scripts/lib/wrk.sh # the working directory is the repository root

work=$(mktemp -d)
start_app() { # BIN [bench-app flags…]
  local bin=$1; shift
  rm -f "$work"/bench.db*
  taskset -c 0 "$bin" --port "$PORT" --db "$work/bench.db" "$@" >/dev/null &
  pids+=($!)
  wait_up "http://127.0.0.1:$PORT/hello"
}

cookie_from() { # METHOD PATH NAME-PREFIX → "name=value" of the first Set-Cookie with that name
  curl -s -D - -o /dev/null -X "$1" -H 'st-auth-mode: cookie' "http://127.0.0.1:$PORT$2" \
    | awk -F'[;:] *' -v p="$3" 'tolower($1)=="set-cookie" && index($2, p)==1 {print $2; exit}'
}

# One session cookie and one guest cookie for the bare runs (the same length as the others';
# each Tessera app signs its own, with its own keys).
start_app "$BIN" --mode session
SESSION_COOKIE=$(cookie_from POST /login sAccessToken=)
cleanup
start_app "$BIN" --mode anonymous
GUEST_COOKIE=$(cookie_from GET /hello __Host-sAnonymousToken=)
cleanup
[ -n "$SESSION_COOKIE" ] && [ -n "$GUEST_COOKIE" ] || { echo "no cookies" >&2; exit 1; }

if [ -n "${CONFIGS:-}" ]; then
  read -r -a configs <<<"$CONFIGS"
else
  configs=(bare session session-route bare-guest guest)
  [ -n "$BASE_BIN" ] && configs+=(base-session base-guest)
fi

measure() { # CONFIG → req/s
  local bin="$BIN" cookie args=() guest=0
  case "$1" in
    bare) args=(--mode bare) cookie=$SESSION_COOKIE ;;
    session) args=(--mode session) ;;
    session-route) args=(--mode session --per-route) ;;
    bare-guest) args=(--mode bare) cookie=$GUEST_COOKIE guest=1 ;;
    guest) args=(--mode anonymous) guest=1 ;;
    base-session) bin=$BASE_BIN args=(--mode session) ;;
    base-guest) bin=$BASE_BIN args=(--mode anonymous) guest=1 ;;
  esac
  start_app "$bin" "${args[@]}"
  case "$1" in
    session* | base-session) cookie=$(cookie_from POST /login sAccessToken=) ;;
    guest | base-guest) cookie=$(cookie_from GET /hello __Host-sAnonymousToken=) ;;
  esac
  local extra=(-H "Cookie: $cookie")
  [ "$guest" = 1 ] && extra+=(-H "st-auth-mode: cookie")
  local rps; rps=$(run_wrk "http://127.0.0.1:$PORT/hello" "${extra[@]}")
  cleanup
  echo "$rps"
}

results=$(mktemp)
trap 'cleanup; rm -rf "$results" "$work"' EXIT
n=${#configs[@]}
for round in $(seq 1 "$ROUNDS"); do
  for i in $(seq 0 $((n - 1))); do
    c=${configs[$(((i + round) % n))]}
    printf '%s %s %s\n' "$round" "$c" "$(measure "$c")" >>"$results"
  done
  printf '== round %s/%s done\n' "$round" "$ROUNDS" >&2
done

python3 - "$results" "${configs[@]}" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
missing = set(sys.argv[2:]) - {c for _, c, v in rows if float(v) > 0}
if missing:
    sys.exit(f"no figure for {sorted(missing)}")
by = {}
for r, c, v in rows:
    by.setdefault(c, {})[r] = float(v)
floor = {"bare": "bare", "session": "bare", "session-route": "bare", "base-session": "bare",
         "bare-guest": "bare-guest", "guest": "bare-guest", "base-guest": "bare-guest"}
print("| configuration | req/s, median | ÷ same round's bare, median of rounds | per round |")
print("|---|--:|--:|---|")
for c, runs in by.items():
    base = by[floor[c]]
    ratios = [runs[r] / base[r] for r in runs]
    print(f"| {c} | {statistics.median(runs.values()):,.0f} | {statistics.median(ratios):.3f} | "
          + " ".join(f"{x:.3f}" for x in ratios) + " |")
print()
print("| pair, same round | median of rounds | per round |")
print("|---|--:|---|")
for a, b in [("session", "session-route"), ("session", "base-session"), ("guest", "base-guest")]:
    if a in by and b in by:
        ratios = [by[a][r] / by[b][r] for r in by[a]]
        print(f"| {a} ÷ {b} | {statistics.median(ratios):.3f} | "
              + " ".join(f"{x:.3f}" for x in ratios) + " |")
EOF
