#!/usr/bin/env bash
# `winre scan --from-list` over 1,000 local disk images, with --jobs 1, --jobs 2 and the default
# (one worker per core): prints images per second for each (hyperfine mean over the runs).
#
# The 1,000 images are hard links to the fixture disks of fixtures/make-winre-disks.sh and the
# committed demo qcow2 (12 images, cycled), made once in fixtures/cache/fleet-bench/: distinct
# paths at no disk cost. They share the page cache, so this measures winre's work per image
# (open, partition table, NTFS, hives, WIM header), not the disk. With --copies the script makes
# sparse copies instead (about 7 MiB each, ~8 GiB in all), so each image is its own file.
#
# Usage: benches/fleet-scan.sh [--runs N] [--copies]   (needs a release build: cargo build --release)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=3
copies=
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --copies) copies=1; shift ;;
    *) echo "usage: $0 [--runs N] [--copies]" >&2; exit 2 ;;
  esac
done
for tool in hyperfine jq; do
  command -v "$tool" >/dev/null || { echo "fleet-scan.sh: $tool is missing" >&2; exit 1; }
done
winre="$root/target/release/winre"
[ -x "$winre" ] || { echo "fleet-scan.sh: build first: cargo build --release" >&2; exit 1; }
fixtures=$(bash "$root/fixtures/make-winre-disks.sh")
sources=()
for name in gpt-after gpt-small gpt-first mbr gpt-4k disabled on-os none fragmented cluster64k demo; do
  sources+=("$fixtures/$name.img")
done
sources+=("$root/fixtures/demo/winre-demo.qcow2")

kind=${copies:+copies}
kind=${kind:-links}
dir="$root/fixtures/cache/fleet-bench-$kind"
count=1000
exec 9>"$root/fixtures/cache/.lock"
flock 9
if [ ! -f "$dir/list.txt" ]; then
  tmp=$(mktemp -d "$root/fixtures/cache/fleet-bench.tmp.XXXXXX")
  for ((i = 0; i < count; i++)); do
    src=${sources[$((i % ${#sources[@]}))]}
    dst="$tmp/image-$(printf %04d "$i").${src##*.}"
    if [ -n "$copies" ]; then
      cp --sparse=always --reflink=auto "$src" "$dst"
    else
      ln "$src" "$dst"
    fi
    echo "$dir/${dst##*/}" >>"$tmp/list.txt"
  done
  rm -rf "$dir"
  mv "$tmp" "$dir"
fi
flock -u 9
list="$dir/list.txt"
[ "$(wc -l <"$list")" -eq "$count" ]

# One run first: every image must scan (exit 0), one line each.
lines=$("$winre" scan --from-list "$list" | wc -l)
[ "$lines" -eq "$count" ] || { echo "fleet-scan.sh: $lines lines for $count images" >&2; exit 1; }

cores=$(nproc)
work=$(mktemp -d "${TMPDIR:-/tmp}/winre-fleet-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
hyperfine --runs "$runs" --warmup 1 --export-json "$work/h.json" \
  -n "jobs 1" "$winre scan --from-list $list --jobs 1" \
  -n "jobs 2" "$winre scan --from-list $list --jobs 2" \
  -n "default ($cores cores)" "$winre scan --from-list $list" >&2

echo
echo "winre scan --from-list, $count images ($kind of ${#sources[@]} fixtures), $cores cores, load $(cut -d' ' -f1-3 /proc/loadavg):"
jq -r --argjson n "$count" '.results[] |
  "  \(.command | .[0:24] | . + " " * (24 - length)) \(.mean * 1000 | round) ms ± \(.stddev * 1000 | round)  -> \($n / .mean | round) images/s; CPU \((.user + .system) * 1000000 / $n | round) us/image (user+sys)"' \
  "$work/h.json"
