#!/usr/bin/env bash
# Short CI fuzz run (ROB-01, PRJ-04): builds every cargo-fuzz target once, then runs each for
# FUZZ_SECONDS (default 10) from its committed seed corpus. Fails on any crash, panic, timeout
# or OOM. New corpus entries go to a scratch directory, never into fuzz/corpus/.
#
#   scripts/fuzz-ci.sh                 # all targets, 10 s each
#   FUZZ_SECONDS=300 scripts/fuzz-ci.sh at_verify refresh_token   # longer, chosen targets
#
# Environment: FUZZ_SECONDS (per target), FUZZ_SANITIZER (none | address; default none: the
# crates are #![forbid(unsafe_code)], and an uninstrumented build is much faster to compile),
# FUZZ_JOBS (cargo build jobs), CARGO_TARGET_DIR (honoured).
set -euo pipefail

cd "$(dirname "$0")/../fuzz"
seconds="${FUZZ_SECONDS:-10}"
sanitizer="${FUZZ_SANITIZER:-none}"
jobs="${FUZZ_JOBS:-2}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz-ci: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz-ci: a nightly toolchain is needed (rustup toolchain install nightly)" >&2
    exit 1
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

flags=(--sanitizer "$sanitizer" --debug-assertions)
start=$(date +%s)
echo "fuzz-ci: building ${#targets[@]} targets (sanitizer: $sanitizer)" >&2
CARGO_BUILD_JOBS="$jobs" cargo +nightly fuzz build "${flags[@]}"
built=$(date +%s)
echo "fuzz-ci: build took $((built - start)) s" >&2

# Run the built binaries directly: `cargo fuzz run` would re-check (and maybe rebuild) per target.
host="$(rustc +nightly -vV | sed -n 's/^host: //p')"
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
bin_dir="$target_dir/$host/release"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
mkdir -p artifacts
failed=()
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t" "corpus/$t" "artifacts/$t"
    echo "fuzz-ci: $t for ${seconds}s" >&2
    # The first corpus directory receives new inputs; the committed seeds are read only.
    if ! "$bin_dir/$t" -artifact_prefix="artifacts/$t/" -max_total_time="$seconds" \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        "$scratch/$t" "corpus/$t" >"$scratch/$t.log" 2>&1; then
        failed+=("$t")
        echo "fuzz-ci: $t FAILED; last lines of its log:" >&2
        tail -n 40 "$scratch/$t.log" >&2
        echo "fuzz-ci: the crashing input is under fuzz/artifacts/$t/" >&2
    else
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$scratch/$t.log")
        echo "fuzz-ci: $t ok, ${execs:-?} executions" >&2
    fi
done
end=$(date +%s)
echo "fuzz-ci: total $((end - start)) s (build $((built - start)) s)" >&2
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz-ci: crashes in: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz-ci: all ${#targets[@]} targets ran clean" >&2
