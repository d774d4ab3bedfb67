#!/usr/bin/env bash
# What anonymous sessions cost per request, measured in one run on 127.0.0.1 (server pinned to
# core 0, wrk to core 1, each wrk run bounded by DURATION), each beside bare axum:
#   returning guest  GET /hello with an anonymous-token cookie (verified, cached) vs bare axum
#                    receiving the same bytes
#   first visit      GET /hello with no cookie: a new anonymous session minted per request
#                    (Ed25519 signature, Set-Cookie, front-token) vs bare axum, no cookie
# Each figure is the best of ROUNDS interleaved runs. Targets (issue 16): returning guest >= 0.9 x bare;
# first-visit mints >= 20,000/s.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-6s}"
ROUNDS="${ROUNDS:-2}"
CONNECTIONS="${CONNECTIONS:-32}"
PORT="${PORT:-8091}"
TARGET="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p tessera-examples --bin bench-app
# shellcheck source=scripts/lib/wrk.sh
. scripts/lib/wrk.sh # the working directory is the repository root

start_app() { # mode
  taskset -c 0 "$TARGET"/release/bench-app --port "$PORT" --mode "$1" >/dev/null &
  pids+=($!)
  wait_up "http://127.0.0.1:$PORT/hello"
}

mint_cookie() { # from the running anonymous app → "__Host-sAnonymousToken=…"
  curl -s -D - -o /dev/null -H 'st-auth-mode: cookie' "http://127.0.0.1:$PORT/hello" \
    | awk -F'[;:] *' 'tolower($1)=="set-cookie" && $2 ~ /AnonymousToken=/ {print $2}'
}

# Each app instance has its own key, so a returning guest's cookie comes from the instance
# measured; bare axum gets a cookie of the same size (it ignores it).
start_app anonymous
BARE_COOKIE=$(mint_cookie)
[ -n "$BARE_COOKIE" ] || { echo "no anonymous cookie" >&2; exit 1; }
cleanup

measure() { # mode guest|first|bare-cookie|bare → req/s
  start_app "$1"
  local rps
  case "$2" in
    guest)
      local cookie; cookie=$(mint_cookie)
      # The returning guest's request must be answered without minting.
      curl -s -D - -o /dev/null -H "Cookie: $cookie" "http://127.0.0.1:$PORT/hello" | grep -qi '^set-cookie' \
        && { echo "a returning guest got a new token" >&2; exit 1; }
      rps=$(run_wrk "http://127.0.0.1:$PORT/hello" -H "Cookie: $cookie" -H 'st-auth-mode: cookie') ;;
    first)
      curl -s -D - -o /dev/null -H 'st-auth-mode: cookie' "http://127.0.0.1:$PORT/hello" | grep -qi '^set-cookie: __Host-sAnonymousToken=' \
        || { echo "a first visit did not mint" >&2; exit 1; }
      rps=$(run_wrk "http://127.0.0.1:$PORT/hello" -H 'st-auth-mode: cookie') ;;
    bare-cookie) rps=$(run_wrk "http://127.0.0.1:$PORT/hello" -H "Cookie: $BARE_COOKIE" -H 'st-auth-mode: cookie') ;;
    bare) rps=$(run_wrk "http://127.0.0.1:$PORT/hello" -H 'st-auth-mode: cookie') ;;
  esac
  cleanup
  echo "$rps"
}


bare_c=(); guest=(); bare_n=(); first=()
for _ in $(seq 1 "$ROUNDS"); do
  guest+=("$(measure anonymous guest)")
  bare_c+=("$(measure bare bare-cookie)")
  first+=("$(measure anonymous first)")
  bare_n+=("$(measure bare bare)")
done

python3 - "$(best "${bare_c[@]}")" "$(best "${guest[@]}")" "$(best "${bare_n[@]}")" "$(best "${first[@]}")" <<'PY'
import sys
bc, g, bn, f = map(float, sys.argv[1:])
print(f"bare axum (same cookie)    {bc:>10,.0f} req/s")
print(f"returning guest (AnT)      {g:>10,.0f} req/s  ratio {g/bc:.3f} (target >= 0.9, issue 16)")
print(f"bare axum (no cookie)      {bn:>10,.0f} req/s")
print(f"first visit (mint per req) {f:>10,.0f} mints/s  ratio {f/bn:.3f} (target >= 20,000 mints/s)")
PY
