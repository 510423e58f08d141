#!/usr/bin/env bash
# Times `winre wim ls` of a 5,000-file image (fixtures/make-tree-wims.sh: many.wim, LZX, 50
# directories of 100 files) with hyperfine, next to `wimlib-imagex dir` on the same file, and
# prints the mean wall time of each. The time covers opening the WIM, decompressing and parsing
# the metadata resource, and printing every path. Printed: wall time (mean, min) and CPU time
# (user + system), the figure that does not depend on other load on the machine.
#
# Needs: wimtools, ntfs-3g (for the fixture script), hyperfine, python3, and a release build
# (the script runs `cargo build --release`).
# Usage: benches/wim-ls.sh [RUNS]      (default 30 runs each, after 3 warm-ups)
# Target: winre under 50 ms.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs="${1:-30}"
for tool in wimlib-imagex hyperfine python3; do
    command -v "$tool" >/dev/null 2>&1 || { echo "wim-ls.sh: '$tool' is missing (apt: wimtools hyperfine python3)" >&2; exit 1; }
done
dir="$(bash "$here/fixtures/make-tree-wims.sh")"
wim="$dir/many.wim"
(cd "$here" && cargo build --release --quiet)
winre="$here/target/release/winre"
files=$("$winre" wim ls "$wim" 1 | wc -l)
echo "many.wim: $files paths, $(stat -c %s "$wim") bytes" >&2
json="$(mktemp)"
trap 'rm -f "$json"' EXIT
hyperfine --warmup 3 --runs "$runs" --style basic --export-json "$json" \
    -n "winre wim ls" "$winre wim ls $wim 1" \
    -n "wimlib-imagex dir" "wimlib-imagex dir $wim 1" >&2
python3 - "$json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
ours, theirs = r["winre wim ls"], r["wimlib-imagex dir"]
# Wall time suffers on a loaded machine; CPU time (user + system) does not: print both.
for label, x in [("winre wim ls (5,000 files)", ours), ("wimlib-imagex dir", theirs)]:
    cpu = (x["user"] + x["system"]) * 1000
    print(f"{label:<28} wall {x['mean']*1000:6.1f} ms mean, {x['min']*1000:6.1f} ms min; CPU {cpu:5.1f} ms mean (target < 50 ms)")
PY
