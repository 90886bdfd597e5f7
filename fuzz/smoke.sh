#!/usr/bin/env bash
# CI's fuzzing smoke test: builds every fuzz target and runs each for a short while (20 s, or
# the first argument) from its seed corpus. Fails on any crash, panic, timeout, leak or
# out-of-memory, printing the end of libFuzzer's log and where the crashing input was saved.
# Usage: bash fuzz/smoke.sh [seconds-per-target]
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-20}
# cargo-fuzz passes nightly-only flags (-Zsanitizer=address and others); the stable toolchain
# accepts them when told it is bootstrapping.
export RUSTC_BOOTSTRAP=1
export CARGO_INCREMENTAL=0
if ! cargo fuzz --version > /dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
start=$(date +%s)
cargo fuzz build
echo "fuzz targets built in $(($(date +%s) - start)) s"
# New inputs go to a scratch directory; the committed seeds are only read.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
for target in $(cargo fuzz list); do
    mkdir -p "$work/$target"
    log="$work/$target.log"
    if cargo fuzz run "$target" "$work/$target" "corpus/$target" -- \
        -max_total_time="$secs" -timeout=30 -print_final_stats=1 > "$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
        cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1)
        echo "$target: ok, $runs runs, $speed exec/s, $cov"
    else
        failed=1
        echo "$target: FAILED" >&2
        tail -n 60 "$log" >&2
    fi
done
echo "fuzz smoke test took $(($(date +%s) - start)) s"
exit "$failed"
