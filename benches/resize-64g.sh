#!/usr/bin/env bash
# `winre resize --apply` on a 64 GiB sparse GPT image whose 600 MiB recovery partition (holding
# a 500 MiB Winre.wim) sits right after the OS partition: the OS volume is shrunk, the recovery
# partition moved down and grown. Run on the raw image, and on qcow2 and VHDX copies of it
# (qemu-img convert), which winre writes through qemu-nbd. Prints the time (hyperfine, fresh copy
# each run) and the bytes written, against the bytes that must move (the recovery partition)
# plus the journal; for qcow2 / VHDX beside the manual route (qemu-img convert to raw, resize the
# raw copy, qemu-img convert back).
#
# Bytes written are counted twice: by winre itself (image + journal bytes it wrote) and by the
# kernel (/proc/PID/io write_bytes of the winre process, read at its end; it includes the
# reaped qemu-nbd's, which winre also reports alone, read just before qemu-nbd closed the image). The manual route's bytes are the
# allocated sizes of the two converted files plus the raw resize's write_bytes.
#
# Usage: benches/resize-64g.sh     (builds its images once into fixtures/cache/bench/)
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in hyperfine mkntfs wimlib-imagex sfdisk python3 qemu-img qemu-nbd; do
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
for fmt in qcow2 vhdx; do
  if [ ! -f "$cache/resize-64g.$fmt" ]; then
    qemu-img convert -f raw -O "$fmt" "$cache/resize-64g.img" "$cache/resize-64g.$fmt.tmp"
    mv "$cache/resize-64g.$fmt.tmp" "$cache/resize-64g.$fmt"
  fi
done
exec 9>&-

tmp=$(mktemp -d "${TMPDIR:-/tmp}/resize-64g.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
allocated() { echo $(( $(stat -c '%b * %B' "$1") )); }
for fmt in raw qcow2 vhdx; do
  case $fmt in raw) src="$cache/resize-64g.img" ;; *) src="$cache/resize-64g.$fmt" ;; esac
  img="$tmp/disk.$fmt"
  prepare="rm -f $img.winre-journal; cp --sparse=always $src $img; sync"
  echo "== $fmt"
  hyperfine --runs 2 --prepare "$prepare" "$winre resize $img --apply --json" --export-json "$tmp/hf-$fmt.json" >/dev/null
  eval "$prepare"
  "$winre" resize "$img" --apply --json >"$tmp/report-$fmt.json"
  manual_s=0 manual_bytes=0
  if [ "$fmt" != raw ]; then
    # The manual route: convert to raw, resize that, convert back.
    eval "$prepare"
    sync
    t0=$(date +%s.%N)
    qemu-img convert -f "$fmt" -O raw "$img" "$tmp/manual.raw"
    "$winre" resize "$tmp/manual.raw" --apply --json >"$tmp/manual.json"
    qemu-img convert -f raw -O "$fmt" "$tmp/manual.raw" "$tmp/manual.$fmt"
    sync
    t1=$(date +%s.%N)
    resize_bytes=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["io"]["write_bytes"])' "$tmp/manual.json")
    manual_bytes=$(( $(allocated "$tmp/manual.raw") + resize_bytes + $(allocated "$tmp/manual.$fmt") ))
    manual_s=$(python3 -c "print($t1 - $t0)")
    rm -f "$tmp/manual.raw" "$tmp/manual.raw.winre-journal" "$tmp/manual.$fmt"
  fi
  python3 - "$fmt" "$tmp/report-$fmt.json" "$tmp/hf-$fmt.json" "$manual_s" "$manual_bytes" <<'PY'
import json, sys
fmt, report, hf, manual_s, manual_bytes = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
r = json.load(open(report))
a = r["apply"]
mean = json.load(open(hf))["results"][0]["mean"]
move = next(x["len_bytes"] for x in r["actions"] if x["op"] == "move_partition")
mib = lambda b: b / 1048576
budget = move + a["journal_bytes"]
target = 1.1 if fmt == "raw" else 1.2
counted = a["image_bytes_written"] + a["journal_bytes"]
io = r.get("io") or {}
print(f"case {r['case']}: OS shrunk by {mib(r['plan']['shrink_os_by_bytes']):.0f} MiB, recovery moved and grown by {mib(r['plan']['grow_by_bytes']):.0f} MiB")
print(f"free space on the WinRE volume: {mib(r['free_before_bytes']):.1f} MiB -> {mib(r['free_after_bytes']):.1f} MiB")
print(f"time (hyperfine mean of 2):      {mean:.2f} s")
print(f"bytes that must move:            {move} ({mib(move):.0f} MiB)")
print(f"journal:                         {a['journal_bytes']} ({mib(a['journal_bytes']):.1f} MiB; {mib(a['journal_saved_bytes']):.1f} MiB of saved data, zero regions kept as lengths)")
print(f"image bytes written (winre):     {a['image_bytes_written']} ({mib(a['image_bytes_written']):.1f} MiB; {a['move_chunks_skipped']} move chunks already equal)")
print(f"total written (winre count):     {counted} = {counted / budget:.3f} x (move + journal)")
if "write_bytes" in io:
    # winre reads /proc/self/io after it has reaped qemu-nbd, and the kernel adds a reaped
    # child's counters to its parent's: write_bytes already includes qemu-nbd's.
    kernel = io["write_bytes"]
    nbd = io.get("qemu_nbd_write_bytes")
    extra = f" (of which qemu-nbd {nbd})" if nbd is not None else ""
    verdict = "within" if kernel / budget <= target else "OVER"
    print(f"total written (/proc write_bytes): {kernel}{extra} = {kernel / budget:.3f} x (move + journal); target {target} x: {verdict}")
if manual_bytes:
    print(f"manual route (convert to raw, resize, convert back): {manual_s:.2f} s, {manual_bytes} bytes ({mib(manual_bytes):.0f} MiB) written")
PY
  rm -f "$img" "$img.winre-journal"
done
