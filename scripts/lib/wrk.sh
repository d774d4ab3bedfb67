# Shared by the wrk benchmark scripts (sourced): the processes they start, readiness, a bounded
# wrk run on core 1 that fails on errors, and the best of several figures.
# Needs CONNECTIONS and DURATION set by the caller.

command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; pids=(); }
trap cleanup EXIT

wait_up() { for _ in $(seq 1 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done; echo "not up: $1" >&2; exit 1; }

run_wrk() { # URL [wrk args…] → requests/s; fails on socket errors or non-2xx
  local url=$1; shift
  local out
  out=$(taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "$@" "$url")
  if grep -qE "Non-2xx|Socket errors" <<<"$out"; then echo "$out" >&2; echo "errors during the run" >&2; exit 1; fi
  awk '/Requests\/sec/ {print $2}' <<<"$out"
}

best() { python3 -c 'import sys; print(max(map(float, sys.argv[1:])))' "$@"; }
