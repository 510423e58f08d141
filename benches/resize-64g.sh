#!/usr/bin/env bash
# `winre resize --apply` on a 64 GiB sparse GPT image whose 600 MiB recovery partition (holding
# a 500 MiB Winre.wim) sits right after the OS partition: the OS volume is shrunk, the recovery
# partition moved down and grown. Prints the time (hyperfine, fresh copy each run) and the bytes
# written, against the bytes that must move (the recovery partition) plus the journal.
#
# Bytes written are counted twice: by winre itself (image + journal bytes it wrote) and by the
# kernel (/proc/self/io write_bytes of the winre process, read at its end).
#
# Usage: benches/resize-64g.sh     (builds its image once into fixtures/cache/bench/)
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in hyperfine mkntfs wimlib-imagex sfdisk python3; do
  command -v "$tool" >/dev/null || { echo "resize-64g.sh: '$tool' is missing" >&2; exit 1; }
done
cargo build --release -q
winre="$PWD/target/release/winre"
cache="$PWD/fixtures/cache/bench"
mkdir -p "$cache"
MIB=1048576
exec 9>"$cache/.lock"
flock 9
if [ ! -f "$cache/resize-64g.img" ]; then
  work=$(mktemp -d "$cache/tmp.XXXXXX")
  rec_mib=600
  os_mib=$((64 * 1024 - 1 - 100 - 16 - rec_mib - 1))
  os_start=$((1 + 100 + 16))
  rec_start=$((os_start + os_mib))
  mkdir -p "$work/os/Windows/System32/Recovery" "$work/rec/Recovery/WindowsRE" "$work/wimtree"
  printf '\xef\xbb\xbf<?xml version='"'"'1.0'"'"' encoding='"'"'utf-8'"'"'?>\r\n<WindowsRE version="2.0">\r\n  <WinreLocation path="\\Recovery\\WindowsRE" id="0" offset="%s" guid="{1cb3eeb3-fd89-4fc4-a7d5-34f852f5aa52}"/>\r\n  <InstallState state="1"/>\r\n</WindowsRE>\r\n' \
    $((rec_start * MIB)) >"$work/os/Windows/System32/Recovery/ReAgent.xml"
  printf 'MZ dummy\n' >"$work/os/Windows/System32/winload.efi"
  python3 -c 'import random,sys; r=random.Random(7); f=open(sys.argv[1],"wb"); [f.write(r.randbytes(1<<20)) for _ in range(500)]' "$work/wimtree/payload.bin"
  wimlib-imagex capture "$work/wimtree" "$work/rec/Recovery/WindowsRE/Winre.wim" WinRE --compress=none >/dev/null
  cp "$work/os/Windows/System32/Recovery/ReAgent.xml" "$work/rec/Recovery/WindowsRE/"
  truncate -s $((os_mib * MIB)) "$work/os.img"
  mkntfs -F -Q -q -s 512 -c 4096 -H 255 -S 63 -L Windows -p $((os_start * 2048)) "$work/os.img"
  wimlib-imagex capture "$work/os" "$work/os.wim" os --compress=none >/dev/null
  wimlib-imagex apply "$work/os.wim" 1 "$work/os.img" >/dev/null
  truncate -s $((rec_mib * MIB)) "$work/rec.img"
  mkntfs -F -Q -q -s 512 -c 4096 -H 255 -S 63 -L Recovery -p $((rec_start * 2048)) "$work/rec.img"
  wimlib-imagex capture "$work/rec" "$work/rec.wim" rec --compress=none >/dev/null
  wimlib-imagex apply "$work/rec.wim" 1 "$work/rec.img" >/dev/null
  truncate -s 64G "$work/disk.img"
  printf 'label: gpt\nstart=2048, size=%s, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\nstart=%s, size=%s, type=E3C9E316-0B5C-4DB8-817D-F92DF00215AE\nstart=%s, size=%s, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\nstart=%s, size=%s, type=DE94BBA4-06D1-4D40-A16A-BFD50179D6AC, attrs="RequiredPartition,GUID:63"\n' \
    $((100 * 2048)) $((101 * 2048)) $((16 * 2048)) $((os_start * 2048)) $((os_mib * 2048)) $((rec_start * 2048)) $((rec_mib * 2048)) |
    sfdisk -q "$work/disk.img" >/dev/null
  dd if="$work/os.img" of="$work/disk.img" bs=1M seek=$os_start conv=notrunc,sparse status=none
  dd if="$work/rec.img" of="$work/disk.img" bs=1M seek=$rec_start conv=notrunc,sparse status=none
  mv "$work/disk.img" "$cache/resize-64g.img"
  rm -rf "$work"
fi
exec 9>&-

tmp=$(mktemp -d "${TMPDIR:-/tmp}/resize-64g.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
img="$tmp/disk.img"
prepare="rm -f $img.winre-journal; cp --sparse=always $cache/resize-64g.img $img; sync"
hyperfine --runs 3 --prepare "$prepare" "$winre resize $img --apply --json"
eval "$prepare"
"$winre" resize "$img" --apply --json >"$tmp/report.json"
python3 - "$tmp/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
a = r["apply"]
move = next(x["len_bytes"] for x in r["actions"] if x["op"] == "move_partition")
mib = lambda b: b / 1048576
budget = move + a["journal_bytes"]
counted = a["image_bytes_written"] + a["journal_bytes"]
kernel = r["io"]["write_bytes"] if r.get("io") else None
print(f"case {r['case']}: OS shrunk by {mib(r['plan']['shrink_os_by_bytes']):.0f} MiB, recovery moved and grown by {mib(r['plan']['grow_by_bytes']):.0f} MiB")
print(f"free space on the WinRE volume: {mib(r['free_before_bytes']):.1f} MiB -> {mib(r['free_after_bytes']):.1f} MiB")
print(f"time (this run):                 {r['seconds']:.2f} s")
print(f"bytes that must move:            {move} ({mib(move):.0f} MiB)")
print(f"journal:                         {a['journal_bytes']} ({mib(a['journal_bytes']):.1f} MiB; {mib(a['journal_saved_bytes']):.1f} MiB of saved data, zero regions kept as lengths)")
print(f"image bytes written (winre):     {a['image_bytes_written']} ({mib(a['image_bytes_written']):.1f} MiB; {a['move_chunks_skipped']} move chunks already equal)")
print(f"total written (winre count):     {counted} = {counted / budget:.3f} x (move + journal)")
if kernel is not None:
    print(f"total written (/proc write_bytes): {kernel} = {kernel / budget:.3f} x (move + journal)")
PY
