#!/usr/bin/env bash
# Tessera beside the session systems people would pick instead, measured in one run on this
# machine, written to docs/benchmarks.md with a bar chart (docs/benchmarks.png):
#   verified request  bare axum (floor); tessera-axum Session, cache on and off; tower-sessions
#                     on SQLite; Better Auth get-session on SQLite (cookie cache off and on);
#                     express + supertokens-node verifySession against tessera serve; bare
#                     express and node:http (node floors)
#   session creation  Tessera create vs tower-sessions insert vs Better Auth email sign-in
#                     (scrypt as shipped, and with a SHA-256 password hook) vs supertokens-node
#                     createNewSession through tessera serve, each on SQLite
#   guest visitor     Tessera first-visit anonymous mint vs Better Auth anonymous sign-in
# Servers on core 0, wrk on core 1, 127.0.0.1 only, every process stopped by PID; each figure is
# the median of ROUNDS interleaved rounds (rules: the top of scripts/lib/bench_peers.py).
#
#   scripts/bench-peers.sh                 # full run (release build), about 9 minutes
#   SMOKE=1 scripts/bench-peers.sh         # debug build, one 2 s round per peer, no warm-up;
#                                          # writes to a temporary directory and checks only
#                                          # that every peer answered and the report parses
# Environment: ROUNDS (3), DURATION (5 s), WARMUP (2 s), CONNECTIONS (32), OUT (docs),
# ONLY (comma-separated row keys, for trying one peer; node and its peers are installed only if
# it names one of theirs). Just Tessera's create against the raw RSA-2048 sign rate:
#   ONLY=tessera-create OUT=/tmp/bench scripts/bench-peers.sh
#
# It installs what it needs itself: wrk and gnuplot from Debian, the node peers with `npm ci`
# from bench/peers/node/package-lock.json (the result is cached per lockfile and node version
# under ~/.cache/tessera, since better-sqlite3 compiles SQLite from source), the Rust peers
# with cargo (the workspace's target directory).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '== %s\n' "$*" >&2; }

SMOKE="${SMOKE:-0}"
if [ "$SMOKE" = 1 ]; then
  ROUNDS="${ROUNDS:-1}" DURATION="${DURATION:-2}" WARMUP="${WARMUP:-0}"
  PROFILE=debug
else
  ROUNDS="${ROUNDS:-3}" DURATION="${DURATION:-5}" WARMUP="${WARMUP:-2}"
  PROFILE=release
fi
CONNECTIONS="${CONNECTIONS:-32}"

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v gnuplot >/dev/null || missing+=(gnuplot-nox)
command -v taskset >/dev/null || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The node peers' rows: better-auth*, supertokens*, express, node.
NEED_NODE=1
if [ -n "${ONLY:-}" ]; then
  case ",$ONLY," in
    *,better-auth* | *,supertokens* | *,express,* | *,node,*) ;;
    *) NEED_NODE=0 ;;
  esac
fi
# The node peers: npm ci from the lockfile, unless node_modules already came from this lockfile.
NODE_DIR=bench/peers/node
if [ "$NEED_NODE" = 1 ]; then
  command -v node >/dev/null && command -v npm >/dev/null || {
    log "apt-get install nodejs npm"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  }
  key="$(cat "$NODE_DIR/package-lock.json" <(node --version) <(uname -m) | sha256sum | cut -c1-16)"
  if [ "$(cat "$NODE_DIR/node_modules/.tessera-lock" 2>/dev/null)" != "$key" ]; then
    cache="${XDG_CACHE_HOME:-$HOME/.cache}/tessera/bench-peers-node/$key"
    rm -rf "$NODE_DIR/node_modules"
    if [ -f "$cache/node_modules/.tessera-lock" ]; then
      log "node peers: node_modules from the cache ($cache)"
      cp -a "$cache/node_modules" "$NODE_DIR/node_modules"
    else
      log "node peers: npm ci (better-sqlite3 compiles SQLite: a few minutes once)"
      # From source: its prebuilt binaries are not on the npm registry.
      (cd "$NODE_DIR" && npm_config_build_from_source=true npm ci --no-audit --no-fund --loglevel=error)
      echo "$key" >"$NODE_DIR/node_modules/.tessera-lock"
      mkdir -p "$(dirname "$cache")"
      tmp="$(mktemp -d "$(dirname "$cache")/tmp.XXXXXX")"
      cp -a "$NODE_DIR/node_modules" "$tmp/node_modules"
      rm -rf "$cache" && mv "$tmp" "$cache"
    fi
  fi
fi

# The Rust peers. Two cargo invocations on purpose: bench-app and tessera are built exactly as
# bench-sdk.sh builds them (shared artifacts), and the tower-sessions peer, whose store turns on
# sqlx's `time` feature, does not change the feature set they are built with.
flags=(-q)
[ "$PROFILE" = release ] && flags+=(--release)
log "cargo build ($PROFILE): bench-app, tessera, peer-tower-sessions"
cargo build "${flags[@]}" -p tessera-examples --bin bench-app -p tessera-server --bin tessera
cargo build "${flags[@]}" -p peer-tower-sessions
BINS="${CARGO_TARGET_DIR:-$PWD/target}/$PROFILE"

own_out=""
if [ -z "${OUT:-}" ] && [ "$SMOKE" = 1 ]; then
  OUT="$(mktemp -d "${TMPDIR:-/tmp}/tessera-bench-smoke.XXXXXX")"
  own_out="$OUT"
fi
OUT="${OUT:-docs}"
args=(--bins "$BINS" --node-dir "$NODE_DIR" --out "$OUT" --rounds "$ROUNDS" --duration "$DURATION"
  --warmup "$WARMUP" --connections "$CONNECTIONS")
[ "$SMOKE" = 1 ] && args+=(--smoke)
[ -n "${ONLY:-}" ] && args+=(--only "$ONLY")
# The driver stops every process it started; on INT or TERM it is told to, and waited for.
python3 scripts/lib/bench_peers.py "${args[@]}" &
driver=$!
trap 'kill -TERM "$driver" 2>/dev/null || true' INT TERM
status=0
wait "$driver" || status=$?
while kill -0 "$driver" 2>/dev/null; do wait "$driver" || status=$?; done
if [ -n "$own_out" ]; then rm -rf "$own_out"; fi
exit "$status"
