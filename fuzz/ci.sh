#!/usr/bin/env bash
# CI: builds every fuzz target, then runs each for SECONDS (default 20) on a scratch copy of its
# committed corpus (fuzz/corpus/<target>), so the committed corpus never changes. Fails on the
# first crash, hang (-timeout), or out-of-memory (-rss_limit_mb / -malloc_limit_mb); the input
# that did it is left in fuzz/artifacts/<target>/. Prints the time the runs took.
# Usage: fuzz/ci.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-20}"
# cargo-fuzz passes -Z flags (sanitizer, coverage); the stable toolchain accepts them with
# RUSTC_BOOTSTRAP=1, so CI needs no nightly download (only crates.io is reachable there).
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
start=$(date +%s)
for t in $(cargo fuzz list); do
    work="$(mktemp -d)"
    cp corpus/"$t"/* "$work"/ 2>/dev/null || true
    mkdir -p "artifacts/$t"
    echo "fuzz/ci.sh: $t for ${secs}s on $(ls "$work" | wc -l) corpus inputs"
    status=0
    cargo fuzz run -O "$t" "$work" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
        -max_len=6000000 -len_control=0 -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" >"$work.log" 2>&1 || status=$?
    grep -E "^(stat::number_of_executed_units|#[0-9]+ +DONE)" "$work.log" || true
    if [ "$status" != 0 ]; then
        tail -n 60 "$work.log" >&2
    fi
    rm -rf "$work" "$work.log"
    [ "$status" = 0 ] || { echo "fuzz/ci.sh: $t failed (exit $status): see fuzz/artifacts/$t/" >&2; exit 1; }
done
echo "fuzz/ci.sh: all targets ran in $(( $(date +%s) - start ))s"
