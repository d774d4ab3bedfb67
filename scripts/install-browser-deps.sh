#!/usr/bin/env bash
# Installs what tests/browser needs: Debian's Chromium (/usr/bin/chromium; never a browser
# downloaded by npm) and the pinned npm packages, then builds the browser bundles.
# Idempotent and quiet; a no-op in about a second when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/../tests/browser"
export DEBIAN_FRONTEND=noninteractive
# Belt and braces: no npm package may fetch a browser build of its own.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 PUPPETEER_SKIP_DOWNLOAD=1 PUPPETEER_SKIP_CHROMIUM_DOWNLOAD=1

if [ ! -x /usr/bin/chromium ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  log="$(mktemp)"
  if ! { $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends chromium fonts-liberation; } >"$log" 2>&1; then
    cat "$log" >&2; rm -f "$log"; echo "install-browser-deps: apt-get failed" >&2; exit 1
  fi
  rm -f "$log"
  [ -x /usr/bin/chromium ] || { echo "install-browser-deps: /usr/bin/chromium still missing" >&2; exit 1; }
fi

# The sqlite3 CLI: shop.test.mjs counts session rows in the shop's SQLite file with it (A1).
if ! command -v sqlite3 >/dev/null; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  log="$(mktemp)"
  if ! { $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends sqlite3; } >"$log" 2>&1; then
    cat "$log" >&2; rm -f "$log"; echo "install-browser-deps: apt-get install sqlite3 failed" >&2; exit 1
  fi
  rm -f "$log"
fi

command -v npm >/dev/null || { echo "install-browser-deps: npm is required (Node 20+)" >&2; exit 1; }
npm_quiet=(--no-audit --no-fund --loglevel=error)
if [ -f package-lock.json ]; then
  # npm ci wipes node_modules, so skip it when the lockfile has not changed since the last install.
  stamp=node_modules/.tessera-lock.sha256
  want="$(sha256sum package-lock.json | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    npm ci "${npm_quiet[@]}" >/dev/null
    echo "$want" >"$stamp"
  fi
else
  npm install "${npm_quiet[@]}" >/dev/null
fi

node bundles.mjs >/dev/null
