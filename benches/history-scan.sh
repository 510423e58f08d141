#!/usr/bin/env bash
# `winre scan --history` of a disk whose System.evtx is about 20 MiB (written by the test EVTX
# writer, a Windows Update event in every chunk so that none is skipped), against plain `winre
# scan` of the same disk: prints the bytes read and the best time of 5 runs of each.
# Usage: benches/history-scan.sh    (builds winre --release)
set -euo pipefail
cd "$(dirname "$0")/.."
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree/Windows/System32/winevt/Logs"
WINRE_BENCH_EVTX="$tree/Windows/System32/winevt/Logs/System.evtx" \
  cargo test -q -p winre-core --test history_evtx write_bench_system_log -- --ignored >/dev/null 2>&1
size=$(stat -c %s "$tree/Windows/System32/winevt/Logs/System.evtx")
img=$(bash fixtures/make-history-disk.sh "$tree" 3920 300 10.0.19041.3920 reboot-pending)
cargo build -q --release
bin=target/release/winre
echo "System.evtx: $size bytes ($((size / 1048576)) MiB)"
for mode in "" "--history"; do
  best=
  for _ in 1 2 3 4 5; do
    line=$($bin scan --stats $mode "$img" 2>&1 >/dev/null | tail -1)
    ms=$(sed -n 's/.* \([0-9.]*\) ms.*/\1/p' <<<"$line")
    if [ -z "$best" ] || awk "BEGIN{exit !($ms < $best)}"; then best=$ms; fi
  done
  bytes=$(sed -n 's/.*read \([0-9]*\) bytes.*/\1/p' <<<"$line")
  printf 'scan %-10s read %10s bytes, best of 5: %s ms\n' "${mode:-(plain)}" "$bytes" "$best"
done
