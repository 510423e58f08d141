#!/usr/bin/env bash
# Times `winre verify` against `wimlib-imagex verify` on one large LZX WIM and prints the ratio
# and the peak RSS of each.
#
# The WIM (>= 200 MB compressed) is captured once from /usr/share, /usr/lib/x86_64-linux-gnu and
# /usr/lib/llvm-* with LZX at the default 32 KiB chunks, with an integrity table, and cached in
# fixtures/cache/bench/usr-lzx.wim (delete it to rebuild). Needs: wimtools, hyperfine,
# /usr/bin/time, python3, and a release build (`cargo build --release`; the script runs it).
#
# Usage: benches/compare-wimlib.sh [RUNS]      (default 5 runs each, after one warm-up)
# Targets: winre at least 1.8x faster than wimlib-imagex on 2 cores; peak RSS under 256 MiB.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs="${1:-5}"
cache="$here/fixtures/cache/bench"
wim="$cache/usr-lzx.wim"
mkdir -p "$cache"
for tool in wimlib-imagex hyperfine python3 /usr/bin/time; do
    command -v "$tool" >/dev/null 2>&1 || { echo "compare-wimlib.sh: '$tool' is missing (apt: wimtools hyperfine time python3)" >&2; exit 1; }
done

if [[ ! -f "$wim" ]]; then
    list="$cache/sources.txt"
    {
        echo "/usr/share /share"
        echo "/usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu"
        for d in /usr/lib/llvm-*; do [[ -d "$d" ]] && echo "$d /lib/$(basename "$d")"; done
    } >"$list"
    echo "capturing $wim from: $(tr '\n' ' ' <"$list")" >&2
    wimlib-imagex capture "$list" "$wim.tmp" "usr" --source-list --compress=lzx --check \
        --no-acls >/dev/null 2>"$cache/capture.log" || { cat "$cache/capture.log" >&2; exit 1; }
    mv "$wim.tmp" "$wim"
fi
size=$(stat -c %s "$wim")
if (( size < 200 * 1000 * 1000 )); then
    echo "compare-wimlib.sh: $wim is only $size bytes; need >= 200 MB (add sources)" >&2
    exit 1
fi

(cd "$here" && cargo build --release --quiet)
winre="$here/target/release/winre"

echo "WIM: $wim ($((size / 1000000)) MB, $(wimlib-imagex info "$wim" | awk -F': *' '/^Compression/{print $2}'), $(nproc) cores)"
json="$cache/hyperfine.json"
hyperfine --warmup 1 --runs "$runs" --export-json "$json" \
    -n winre "$winre verify $wim" \
    -n wimlib "wimlib-imagex verify $wim"

rss() { /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F': ' '/Maximum resident set size/{print $2}'; }
winre_rss=$(rss "$winre" verify "$wim")
wimlib_rss=$(rss wimlib-imagex verify "$wim")

python3 - "$json" "$winre_rss" "$wimlib_rss" <<'PY'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
w, l = results["winre"]["mean"], results["wimlib"]["mean"]
print(f"winre verify:          {w:.2f} s (mean)   peak RSS {int(sys.argv[2]) / 1024:.0f} MiB")
print(f"wimlib-imagex verify:  {l:.2f} s (mean)   peak RSS {int(sys.argv[3]) / 1024:.0f} MiB")
print(f"speed-up: {l / w:.2f}x (target >= 1.8x); winre RSS target < 256 MiB")
PY
