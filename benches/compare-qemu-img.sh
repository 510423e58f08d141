#!/usr/bin/env bash
# Guest read throughput of crates/disk against qemu-img, per container format, and the cost of
# opening a 64 GiB sparse container and reading its GPT.
#
#   benches/compare-qemu-img.sh            (needs qemu-img, sgdisk, hyperfine, python3)
#
# 1. A 1 GiB raw image, mostly filled (70% random bytes, 20% compressible text, 10% zeros), is
#    built once and cached in fixtures/cache/bench/ with its conversions: VHD fixed and dynamic,
#    VHDX, qcow2 and qcow2 compressed.
# 2. For each, hyperfine (median of 5 runs after a warm-up, files in the page cache) times
#      ours:  winre disk cat IMAGE > /dev/null
#      qemu:  qemu-img convert -n -f FMT IMAGE --target-image-opts driver=null-co,size=VSIZE
#    qemu-img cannot convert to /dev/null (it refuses a device smaller than the guest), so it
#    converts to QEMU's null block driver, which discards writes: both sides then pay only for
#    reading and decoding the container. Prints qemu-img's time divided by ours: above 1.0 we
#    are faster. The target is >= 1.0 everywhere.
# 3. open_cost (crates/disk/examples/open_cost.rs) opens a 64 GiB sparse GPT disk in each format
#    through a read counter and reads its partition table (partition::read_table: both GPT
#    headers and arrays, each partition's boot sector): bytes, calls and milliseconds.
#    Targets: < 1 MiB and < 5 ms.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="$root/fixtures/cache/bench"
for tool in qemu-img sgdisk hyperfine python3; do
    command -v "$tool" >/dev/null 2>&1 || { echo "compare-qemu-img.sh: '$tool' is missing" >&2; exit 1; }
done
mkdir -p "$cache"

cargo build --quiet --release --manifest-path "$root/Cargo.toml" --bin winre
cargo build --quiet --release --manifest-path "$root/Cargo.toml" -p winre-disk --example open_cost
winre="$root/target/release/winre"
open_cost="$root/target/release/examples/open_cost"

MIB=$((1024 * 1024))
if [ ! -f "$cache/.done" ]; then
    echo "building the 1 GiB image and its conversions in $cache (once)..." >&2
    rm -f "$cache"/*
    truncate -s $((1024 * MIB)) "$cache/base.raw"
    python3 - "$cache/base.raw" <<'PY'
import random, sys
MIB = 1 << 20
rng = random.Random(7)
words = [b"winre", b"recovery", b"partition", b"cluster", b"sector", b"block", b"volume"]
with open(sys.argv[1], "r+b") as f:
    for mib in range(1024):
        kind = mib % 10
        if kind == 9:
            continue  # zeros
        f.seek(mib * MIB)
        if kind == 8 or kind == 7:
            line = b" ".join(rng.choice(words) for _ in range(12)) + b"\n"
            f.write((line * (MIB // len(line) + 1))[:MIB])
        else:
            f.write(rng.randbytes(MIB))
PY
    qemu-img convert -f raw -O vpc -o subformat=fixed "$cache/base.raw" "$cache/fixed.vhd"
    qemu-img convert -f raw -O vpc -o subformat=dynamic "$cache/base.raw" "$cache/dynamic.vhd"
    qemu-img convert -f raw -O vhdx "$cache/base.raw" "$cache/dynamic.vhdx"
    qemu-img convert -f raw -O qcow2 "$cache/base.raw" "$cache/plain.qcow2"
    qemu-img convert -f raw -O qcow2 -c "$cache/base.raw" "$cache/compressed.qcow2"
    # 64 GiB sparse GPT disk for the open cost.
    truncate -s 64G "$cache/sparse64.raw"
    sgdisk -n 1:2048:+100M -t 1:ef00 -n 2:0:+16M -t 2:0c01 -n 3:0:-1G -t 3:0700 -n 4:0:0 -t 4:2700 "$cache/sparse64.raw" >/dev/null
    qemu-img convert -f raw -O vpc -o subformat=dynamic "$cache/sparse64.raw" "$cache/sparse64.vhd"
    qemu-img convert -f raw -O vhdx "$cache/sparse64.raw" "$cache/sparse64.vhdx"
    qemu-img convert -f raw -O vhdx -o block_size=1M "$cache/sparse64.raw" "$cache/sparse64-1m.vhdx"
    qemu-img convert -f raw -O qcow2 "$cache/sparse64.raw" "$cache/sparse64.qcow2"
    touch "$cache/.done"
fi

json="$(mktemp)"
trap 'rm -f "$json"' EXIT
printf '\n%-18s %10s %10s %8s\n' "container" "ours (s)" "qemu (s)" "ratio"
for entry in raw:base.raw vpc:fixed.vhd vpc:dynamic.vhd vhdx:dynamic.vhdx qcow2:plain.qcow2 qcow2:compressed.qcow2; do
    fmt="${entry%%:*}"
    img="$cache/${entry#*:}"
    vsize="$(qemu-img info -f "$fmt" --output=json "$img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')"
    hyperfine --style none --warmup 1 --runs 5 --export-json "$json" \
        -n ours "$winre disk cat $img > /dev/null" \
        -n qemu "qemu-img convert -n -f $fmt $img --target-image-opts driver=null-co,size=$vsize" >/dev/null
    read -r ours qemu < <(python3 -c 'import json,sys; r={x["command"]: x["median"] for x in json.load(open(sys.argv[1]))["results"]}; print(r["ours"], r["qemu"])' "$json")
    printf '%-18s %10.3f %10.3f %7.2fx\n' "${entry#*:}" "$ours" "$qemu" "$(python3 -c "print($qemu / $ours)")"
done

printf '\nopen + partition table of a 64 GiB sparse disk (median of 20):\n'
"$open_cost" "$cache/sparse64.raw" "$cache/sparse64.vhd" "$cache/sparse64.vhdx" "$cache/sparse64-1m.vhdx" "$cache/sparse64.qcow2"
