#!/usr/bin/env bash
# Throughput of `winre disk cat` on VMDK and E01 containers, side by side with the reference
# tools reading the same files: `qemu-img convert -O raw` for VMDK, `ewfexport -f raw` for E01.
# Both sides write the whole guest to a file in the same temporary directory, on tmpfs when
# /dev/shm exists (qemu-img skips writing zero runs, which favours it; `winre disk cat` writes
# every byte). Prints seconds, MiB/s and the ratio
# reference_time / winre_time (>= 1.0 means winre is at least as fast; target >= 1.0).
#
# Usage: benches/compare-vmdk-ewf.sh [RUNS]      (default 5 runs per command, 1 warm-up)
# The guest is 1 GiB: eight copies of fixtures' 128 MiB raw disk (GPT, seeded random and text
# data, holes), converted once and cached under fixtures/cache/bench-vmdk-ewf/.
# Set WINRE=/path/to/winre to use another build (default: cargo build --release, target/release).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs="${1:-5}"
for tool in hyperfine qemu-img ewfacquire ewfexport python3; do
    command -v "$tool" >/dev/null || { echo "compare-vmdk-ewf.sh: '$tool' is missing (apt: hyperfine qemu-utils ewf-tools)" >&2; exit 1; }
done

if [[ -z "${WINRE:-}" ]]; then
    (cd "$root" && cargo build --release --quiet --bin winre)
    WINRE="$root/target/release/winre"
fi

fixtures="$("$root/fixtures/make-vmdk-ewf.sh")"
cache="$root/fixtures/cache/bench-vmdk-ewf"
if [[ ! -f "$cache/.done" ]]; then
    rm -rf "$cache.tmp" && mkdir -p "$cache.tmp"
    for _ in 1 2 3 4 5 6 7 8; do cat "$fixtures/raw.img"; done >"$cache.tmp/guest.img"
    (
        cd "$cache.tmp"
        qemu-img convert -f raw -O vmdk -o subformat=monolithicSparse guest.img sparse.vmdk
        qemu-img convert -f raw -O vmdk -o subformat=streamOptimized guest.img stream.vmdk
        qemu-img convert -f raw -O vmdk -o subformat=monolithicFlat guest.img flat.vmdk
        ewfacquire -u -q -t "$cache.tmp/e01" -c fast guest.img >/dev/null
        ewfacquire -u -q -t "$cache.tmp/e01-split" -c fast -S 64MiB guest.img >/dev/null
        touch .done
    )
    rm -rf "$cache" && mv "$cache.tmp" "$cache"
fi

# Output goes to tmpfs when there is one, so the disk's write speed does not hide read speed.
work="$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)"
trap 'rm -rf "$work"' EXIT
guest_bytes=$(stat -c %s "$cache/guest.img")

mib=$((guest_bytes >> 20))

# bench LABEL WINRE_COMMAND REFERENCE_COMMAND: mean wall and CPU (user + system) time of each,
# ratios reference / winre. On a loaded machine the CPU ratio is the steadier figure.
bench() {
    local label="$1" ours="$2" reference="$3"
    hyperfine --style none --warmup 1 --runs "$runs" --export-json "$work/$label.json" \
        --prepare "rm -f $work/out.raw" -n winre "$ours" -n reference "$reference" >/dev/null
    python3 - "$work/$label.json" "$label" "$mib" <<'EOF'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
label, mib = sys.argv[2], int(sys.argv[3])
w, q = r["winre"], r["reference"]
cpu = lambda x: x["user"] + x["system"]
print(f"{label:<20} winre {w['mean']:6.3f} s ({mib / w['mean']:6.0f} MiB/s, cpu {cpu(w):5.2f} s)"
      f" | reference {q['mean']:6.3f} s ({mib / q['mean']:6.0f} MiB/s, cpu {cpu(q):5.2f} s)"
      f" | ratio {q['mean'] / w['mean']:5.2f}x wall, {cpu(q) / cpu(w):5.2f}x cpu")
EOF
}

echo "guest: $mib MiB, $runs runs each; reference = qemu-img (VMDK) or ewfexport (E01)"
echo "-- to a file (winre disk cat > out.raw; qemu-img convert -O raw; ewfexport -t - > out.raw)"
for v in sparse stream flat; do
    bench "vmdk-$v" "$WINRE disk cat $cache/$v.vmdk > $work/out.raw" \
        "qemu-img convert -f vmdk -O raw $cache/$v.vmdk $work/out.raw"
done
for e in e01 e01-split; do
    bench "$e" "$WINRE disk cat $cache/$e.E01 > $work/out.raw" \
        "ewfexport -u -q -f raw -t - $cache/$e.E01 > $work/out.raw 2>/dev/null"
done
echo "-- read only (winre disk cat > /dev/null; qemu-img bench: sequential 1 MiB reads; ewfexport -t - > /dev/null)"
for v in sparse stream flat; do
    bench "vmdk-$v-read" "$WINRE disk cat $cache/$v.vmdk > /dev/null" \
        "qemu-img bench -f vmdk -c $mib -s 1M -d 1 $cache/$v.vmdk"
done
for e in e01 e01-split; do
    bench "$e-read" "$WINRE disk cat $cache/$e.E01 > /dev/null" \
        "ewfexport -u -q -f raw -t - $cache/$e.E01 > /dev/null 2>&1"
done
