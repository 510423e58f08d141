#!/usr/bin/env bash
# Single-threaded decode + SHA-1 of every file blob of a WIM: winre's LZX/XPRESS/LZMS decoders
# (crates/wim/examples/codec_throughput.rs --sha1) against `wimlib-imagex verify`, which also
# decompresses every blob on one thread and checks its SHA-1. The WIMs are ~64 MiB of
# /usr/lib/x86_64-linux-gnu captured by wimlib-imagex (fixtures/make-codec-wims.sh bench and
# lzms-bench; LZMS at 128 KiB, wimlib's default, and 64 MiB, its solid default).
#
# Figures are CPU seconds (user + sys), best of RUNS runs, so a busy machine does not skew the
# ratio; MB/s is uncompressed bytes per CPU second. ratio = ours / wimlib throughput.
#
#   benches/codec-vs-wimlib.sh [RUNS]
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-5}
for tool in wimlib-imagex /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "codec-vs-wimlib.sh: $tool is not installed" >&2; exit 1; }
done
dir=$("$root/fixtures/make-codec-wims.sh" bench)
lzms_dir=$("$root/fixtures/make-codec-wims.sh" lzms-bench)
(cd "$root" && cargo build --quiet --release -p winre-wim --example codec_throughput)
ours="$root/target/release/examples/codec_throughput"
timing=$(mktemp)
trap 'rm -f "$timing"' EXIT

# Best CPU time (user + sys) of $runs runs of the given command.
best_cpu() {
    local best=""
    for _ in $(seq "$runs"); do
        local t
        /usr/bin/time -o "$timing" -f "%U %S" "$@" >/dev/null 2>&1
        t=$(awk '{print $1 + $2}' "$timing")
        if [ -z "$best" ] || awk -v a="$t" -v b="$best" 'BEGIN { exit !(a < b) }'; then
            best=$t
        fi
    done
    echo "$best"
}

printf '%-14s %10s %12s %12s %12s %12s %7s\n' wim MB ours_cpu_s ours_MB/s wimlib_cpu_s wimlib_MB/s ratio
for wim in "$dir"/lzx-32768.wim "$dir"/xpress-32768.wim "$dir"/lzx-1048576.wim \
    "$lzms_dir"/lzms-131072.wim "$lzms_dir"/lzms-1048576.wim "$lzms_dir"/lzms-67108864.wim; do
    name=$(basename "$wim" .wim)
    bytes=$("$ours" "$wim" --sha1 | awk '{print $1}')
    ours_s=$(best_cpu "$ours" "$wim" --sha1)
    wimlib_s=$(best_cpu wimlib-imagex verify "$wim")
    awk -v n="$name" -v b="$bytes" -v o="$ours_s" -v w="$wimlib_s" 'BEGIN {
        mb = b / 1e6
        printf "%-14s %10.1f %12.2f %12.1f %12.2f %12.1f %7.2f\n", n, mb, o, mb / o, w, mb / w, w / o
    }'
done
