#!/usr/bin/env bash
# Runs the engine benchmarks and prints each figure with its in-run baseline ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p tessera --bench engine -- "$@"
python3 - <<'PY'
import json, pathlib
root = pathlib.Path("target/criterion")
def ns(group, name):
    p = root / group / name / "new" / "estimates.json"
    return json.loads(p.read_text())["median"]["point_estimate"]
v, vr = ns("verify", "access_token"), ns("verify", "raw_rs256")
s, sr = ns("sign", "access_token"), ns("sign", "raw_rs256")
c, r = ns("sqlite", "create"), ns("sqlite", "refresh")
print(f"verify access token: {v/1000:.2f} us  raw RS256 verify: {vr/1000:.2f} us  ratio {v/vr:.3f} (target <= 1.3)")
print(f"sign access token:   {s/1000:.2f} us  raw RS256 sign:   {sr/1000:.2f} us  ratio {s/sr:.3f}")
am, asg = ns("anonymous", "mint"), ns("anonymous", "raw_ed25519_sign")
avu, avc, avr = ns("anonymous", "verify_uncached"), ns("anonymous", "verify_cached"), ns("anonymous", "raw_ed25519_verify")
print(f"anonymous mint: {am/1000:.2f} us = {1e9/am:,.0f} mints/s on one core; raw Ed25519 sign {asg/1000:.2f} us, ratio {am/asg:.2f}")
print(f"anonymous verify: {avu/1000:.2f} us uncached (raw Ed25519 verify {avr/1000:.2f} us, ratio {avu/avr:.2f}); {avc/1000:.3f} us from the cache")
print(f"sqlite create: {c/1000:.1f} us = {1e9/c:,.0f} sessions/s on one core (target >= 2,000)")
print(f"sqlite refresh: {r/1000:.1f} us = {1e9/r:,.0f} refreshes/s on one core")
PY
