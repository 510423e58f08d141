#!/usr/bin/env bash
# `winre scan` against the manual route a Linux admin takes today, on a 64 GiB sparse disk image
# (the gpt-after fixture grown to 64 GiB, its recovery partition moved to the end) and its VHDX.
#
# Manual route, per image: qemu-img convert the recovery partition out (raw: dd of it), ntfscat
# Winre.wim out of that, wimlib-imagex info on it. Prints mean times (hyperfine), bytes read by
# winre (--stats), and the ratio. Targets: winre < 50 ms and < 8 MiB read.
#
# Usage: benches/scan-vs-manual.sh [--runs N]   (needs a release build: cargo build --release)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=10
[ "${1:-}" = --runs ] && runs=$2
for tool in hyperfine qemu-img sgdisk ntfscat wimlib-imagex jq; do
  command -v "$tool" >/dev/null || { echo "scan-vs-manual.sh: $tool is missing" >&2; exit 1; }
done
winre="$root/target/release/winre"
[ -x "$winre" ] || { echo "scan-vs-manual.sh: build first: cargo build --release" >&2; exit 1; }
fixtures=$(bash "$root/fixtures/make-winre-disks.sh")
work=$(mktemp -d "${TMPDIR:-/tmp}/winre-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

# 64 GiB: copy the fixture sparsely, grow it, move the backup GPT to the new end, and move the
# recovery partition (4) to the end of the disk.
big="$work/big.img"
cp --sparse=always "$fixtures/gpt-after.img" "$big"
truncate -s 64G "$big"
sgdisk -e "$big" >/dev/null
rec_start=$(sgdisk -i 4 "$big" | sed -n 's/^First sector: \([0-9]*\).*/\1/p')
rec_sectors=$(sgdisk -i 4 "$big" | sed -n 's/^Partition size: \([0-9]*\).*/\1/p')
last=$(sgdisk -E "$big" | tail -1)
new_start=$(((last + 1 - rec_sectors) / 2048 * 2048))
dd if="$fixtures/gpt-after.p4.img" of="$big" bs=512 seek="$new_start" conv=notrunc,sparse status=none
dd if=/dev/zero of="$big" bs=512 seek="$rec_start" count=2048 conv=notrunc status=none
sgdisk -d 4 -n 4:"$new_start":+"$rec_sectors" -u 4:5a1c0004-0000-4000-8000-000000000004 -t 4:2700 -A 4:set:0 -A 4:set:63 "$big" >/dev/null
# ReAgent.xml on the OS volume still names the old offset: winre then finds the WIM through the
# BCD / the recovery partition, as it does on a disk whose partitions were moved.
vhdx="$work/big.vhdx"
qemu-img convert -O vhdx -o subformat=dynamic "$big" "$vhdx"

rec_offset=$((new_start * 512))
rec_bytes=$((rec_sectors * 512))
manual_raw="dd if=$big of=$work/rec.img bs=1M iflag=skip_bytes,count_bytes skip=$rec_offset count=$rec_bytes conv=sparse status=none && ntfscat $work/rec.img /Recovery/WindowsRE/Winre.wim > $work/w.wim && wimlib-imagex info $work/w.wim 1 >/dev/null"
manual_vhdx="qemu-img convert -O raw $vhdx $work/whole.img && dd if=$work/whole.img of=$work/rec.img bs=1M iflag=skip_bytes,count_bytes skip=$rec_offset count=$rec_bytes conv=sparse status=none && ntfscat $work/rec.img /Recovery/WindowsRE/Winre.wim > $work/w.wim && wimlib-imagex info $work/w.wim 1 >/dev/null"

for image in "$big" "$vhdx"; do
  "$winre" scan --json "$image" | jq -e '.winre.status == "enabled"' >/dev/null || { echo "winre did not find WinRE in $image" >&2; exit 1; }
  bytes=$("$winre" scan --json "$image" | jq '.stats.bytes_read')
  if [ "$image" = "$big" ]; then manual=$manual_raw; label=raw; else manual=$manual_vhdx; label=vhdx; fi
  hyperfine --runs "$runs" --warmup 2 --export-json "$work/$label.json" -N \
    "$winre scan --json $image" >/dev/null
  hyperfine --runs 3 --export-json "$work/$label-manual.json" "$manual" >/dev/null
  ours=$(jq '.results[0].mean * 1000' "$work/$label.json")
  theirs=$(jq '.results[0].mean * 1000' "$work/$label-manual.json")
  printf '%-5s winre scan: %8.1f ms, %6.2f MiB read | manual route: %9.1f ms | ratio %.0fx\n' \
    "$label" "$ours" "$(echo "$bytes / 1048576" | bc -l)" "$theirs" "$(echo "$theirs / $ours" | bc -l)"
done
