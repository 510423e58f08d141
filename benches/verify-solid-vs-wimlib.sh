#!/usr/bin/env bash
# Times `winre verify` against `wimlib-imagex verify` on one solid LZMS WIM of at least 200 MB
# (built by fixtures/make-bench-solid.sh: shared libraries and documentation in 64 MiB LZMS
# chunks) and prints the ratio, the peak RSS of each, and the load average while measuring.
#
# winre decodes the solid resource's chunks on one thread per core and hashes each blob in order
# as the chunks arrive (crates/wim/src/pipeline.rs; memory: a 100 MiB buffer budget by default, so
# 64 MiB chunks decode one at a time; `--buffer-memory 512MiB` lets each core take one); wimlib-imagex
# verify decodes the chunks one after another. Also printed: the throughput of each (uncompressed
# bytes decoded and hashed per second of wall time) and the CPU time of each, whose ratio is the
# single-thread speed of the two decoders.
# Needs: wimtools, hyperfine, /usr/bin/time, python3, and a release build (the script runs
# `cargo build --release`).
#
# Usage: benches/verify-solid-vs-wimlib.sh [RUNS]      (default 3 runs each, after one warm-up)
# Target: winre at least 1.5x faster than wimlib-imagex on 2 cores.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs="${1:-3}"
for tool in wimlib-imagex hyperfine python3 /usr/bin/time; do
    command -v "$tool" >/dev/null 2>&1 || { echo "verify-solid-vs-wimlib.sh: '$tool' is missing (apt: wimtools hyperfine time python3)" >&2; exit 1; }
done
wim="$(bash "$here/fixtures/make-bench-solid.sh")"
size=$(stat -c %s "$wim")

(cd "$here" && cargo build --release --quiet)
winre="$here/target/release/winre"
# Both must agree that the WIM is intact before timing them.
"$winre" verify "$wim" >/dev/null
wimlib-imagex verify "$wim" >/dev/null 2>&1
unpacked=$("$winre" verify --json "$wim" | python3 -c 'import json, sys; print(json.load(sys.stdin)["bytes_checked"])')

echo "WIM: $wim ($((size / 1000000)) MB, solid LZMS, $(nproc) cores)"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
json="$(mktemp)"
trap 'rm -f "$json"' EXIT
hyperfine --warmup 1 --runs "$runs" --export-json "$json" \
    -n winre "$winre verify $wim" \
    -n wimlib "wimlib-imagex verify $wim"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

rss() { /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F': ' '/Maximum resident set size/{print $2}'; }
winre_rss=$(rss "$winre" verify "$wim")
wimlib_rss=$(rss wimlib-imagex verify "$wim")

python3 - "$json" "$winre_rss" "$wimlib_rss" "$unpacked" <<'PY'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
mb = int(sys.argv[4]) / 1e6
for name, rss in [("winre", sys.argv[2]), ("wimlib", sys.argv[3])]:
    r = results[name]
    cpu = r["user"] + r["system"]
    print(f"{name + ' verify:':<15} {r['mean']:.2f} s (mean), {mb / r['mean']:.0f} MB/s of {mb:.0f} MB unpacked; "
          f"CPU {cpu:.2f} s; peak RSS {int(rss) / 1024:.0f} MiB")
w, l = results["winre"], results["wimlib"]
print(f"speed-up: {l['mean'] / w['mean']:.2f}x (target >= 1.5x on 2 cores); "
      f"CPU time ratio (one decoder vs the other): {(l['user'] + l['system']) / (w['user'] + w['system']):.2f}x")
PY
