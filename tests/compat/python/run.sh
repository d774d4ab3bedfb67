#!/usr/bin/env bash
# Runs the supertokens-python compatibility suite against `tessera serve`.
#
#   tests/compat/python/run.sh                     # SQLite; TESSERA_BIN or target/debug/tessera
#   TESSERA_DATABASE_URL=postgres://… run.sh       # PostgreSQL, in a fresh schema
#   run.sh -k theft -v                             # extra arguments go to pytest
#
# Creates tests/compat/python/.venv if missing (PYTHON picks the interpreter, default python3),
# installs the pinned requirements quietly, then runs pytest. Exits non-zero on any failure,
# including when no test was collected.
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x .venv/bin/python ]; then
  "${PYTHON:-python3}" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt

status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "run.sh: no tests were collected" >&2
  exit 1
fi
exit "$status"
