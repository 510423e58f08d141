#!/usr/bin/env bash
# `winre disk cat` throughput per container format, side by side with `qemu-img convert -O raw`
# of the same file (hyperfine, one run each), printed as a ratio (> 1.0: winre is faster).
# Also prints what opening each container and reading its partition table costs (--stats).
#
# Usage: benches/disk-cat.sh [CONTAINER...]
#   default: a 512 MiB raw disk (GPT; 192 MiB of seeded random data, 64 MiB of text, the rest
#   zeros) and its conversions by qemu-img (vpc dynamic, vhdx, vmdk monolithicSparse and
#   streamOptimized, qcow2, qcow2 -c) and ewfacquire (E01 -c fast).
# Both write to a new file in $TMPDIR and leave holes for zeros (winre skips what the container
# knows to be zero without reading it, ReadAt::known_zero; qemu-img uses block status).
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in hyperfine qemu-img python3; do
    command -v "$tool" >/dev/null || { echo "disk-cat.sh: '$tool' is missing" >&2; exit 1; }
done
cargo build --release -q
winre="$PWD/target/release/winre"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ $# -eq 0 ]; then
    src="$tmp/src"
    mkdir -p "$src"
    truncate -s 512M "$src/disk.raw"
    sgdisk -o -n 1:2048:0 -t 1:0700 "$src/disk.raw" >/dev/null
    python3 - "$src/disk.raw" <<'PY'
import random, sys
rng = random.Random(1)
with open(sys.argv[1], "r+b") as f:
    f.seek(1 << 20)
    for _ in range(192):
        f.write(rng.randbytes(1 << 20))
    line = b"The quick brown fox jumps over the lazy dog; WinRE lives on the recovery partition.\n"
    f.write((line * ((64 << 20) // len(line) + 1))[: 64 << 20])
PY
    qemu-img convert -f raw -O vpc -o subformat=dynamic "$src/disk.raw" "$src/disk.vhd"
    qemu-img convert -f raw -O vhdx "$src/disk.raw" "$src/disk.vhdx"
    qemu-img convert -f raw -O vmdk "$src/disk.raw" "$src/sparse.vmdk"
    qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$src/disk.raw" "$src/stream.vmdk"
    qemu-img convert -f raw -O qcow2 "$src/disk.raw" "$src/disk.qcow2"
    qemu-img convert -f raw -O qcow2 -c "$src/disk.raw" "$src/compressed.qcow2"
    set -- "$src/disk.raw" "$src/disk.vhd" "$src/disk.vhdx" "$src/sparse.vmdk" "$src/stream.vmdk" \
        "$src/disk.qcow2" "$src/compressed.qcow2"
    if command -v ewfacquire >/dev/null; then
        ewfacquire -u -q -t "$src/disk" -C c -D bench -E 1 -e winre -N none -c fast "$src/disk.raw" >/dev/null
        set -- "$@" "$src/disk.E01"
    fi
fi
printf '%-28s %12s %12s %8s   %s\n' container winre_s qemu_img_s ratio "open+table (--stats)"
for image in "$@"; do
    name=$(basename "$image")
    fmt=$(qemu-img info --output=json "$image" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["format"])' || echo "")
    # qemu-img does not read E01; ewfexport is its counterpart there.
    if [ -z "$fmt" ] && [[ "$image" == *.E01 ]] && command -v ewfexport >/dev/null; then
        reference="ewfexport -u -q -f raw -t '$tmp/qemu' '$image'"
    elif [ -n "$fmt" ]; then
        reference="qemu-img convert -f $fmt -O raw '$image' '$tmp/qemu.out'"
    else
        echo "$name: qemu-img cannot read it, skipped" >&2
        continue
    fi
    stats=$("$winre" disk info --stats --json "$image" 2>&1 >/dev/null | sed 's/^stats: open + partition table + probes: //' || true)
    hyperfine --runs 1 --style none --export-json "$tmp/h.json" \
        -n winre "$winre disk cat '$image' > '$tmp/winre.out'" \
        -n qemu-img "$reference" >/dev/null 2>&1 || {
        echo "$name: a command failed, skipped" >&2
        continue
    }
    python3 - "$tmp/h.json" "$name" "$stats" <<'PY'
import json, sys
r = {x["command"]: x["mean"] for x in json.load(open(sys.argv[1]))["results"]}
print(f'{sys.argv[2]:<28} {r["winre"]:12.3f} {r["qemu-img"]:12.3f} {r["qemu-img"] / r["winre"]:8.2f}   {sys.argv[3]}')
PY
    rm -f "$tmp/winre.out" "$tmp"/qemu*
done

# Opening cost on a 64 GiB sparse disk (GPT by sgdisk) in each container: time and bytes read.
echo
echo "64 GiB sparse disk: open + partition table + probes"
truncate -s 64G "$tmp/big.raw"
sgdisk -o -n 1:2048:+100M -t 1:ef00 -n 2:0:0 -t 2:0700 "$tmp/big.raw" >/dev/null
for spec in "vpc -o subformat=dynamic:big.vhd" "vhdx:big.vhdx" "vmdk:big.vmdk" "qcow2:big.qcow2"; do
    out="$tmp/${spec#*:}"
    qemu-img convert -f raw -O ${spec%%:*} "$tmp/big.raw" "$out"
    printf '%-28s %s\n' "$(basename "$out")" "$("$winre" disk info --stats --json "$out" 2>&1 >/dev/null | sed 's/^stats: open + partition table + probes: //')"
    rm -f "$out"
done
printf '%-28s %s\n' big.raw "$("$winre" disk info --stats --json "$tmp/big.raw" 2>&1 >/dev/null | sed 's/^stats: open + partition table + probes: //')"
