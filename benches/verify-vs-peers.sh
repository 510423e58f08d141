#!/usr/bin/env bash
# `winre verify` against `wimlib-imagex verify` and 7-Zip's `7zz t` on the WIMs of
# fixtures/make-peer-wims.sh (one ~340 MiB tree of shared libraries as LZX, XPRESS, LZMS and solid
# LZMS), side by side: the commands run in turn (winre, wimlib, 7-Zip, winre, ...) so that a
# machine whose load drifts slows all of them alike, and each figure is the median of RUNS runs.
#
# Two tables:
#   all cores   winre verify, wimlib-imagex verify, 7zz t: wall seconds, CPU seconds
#               (user + sys), peak RSS (MiB, /usr/bin/time %M); speed-up = fastest peer's wall
#               time / winre's.
#   one thread  winre verify --threads 1, wimlib-imagex verify (one thread), 7zz t -mmt1: CPU
#               seconds; ratio = the faster peer's CPU time / winre's (above 1: winre is faster).
# Every command decodes every blob; winre and wimlib-imagex check each blob's SHA-1 (7-Zip tests
# the archive the same way).
# Needs: wimtools, 7zip (7zz), /usr/bin/time, python3; builds winre with `cargo build --release`.
#
#   benches/verify-vs-peers.sh [RUNS]     (default 3 runs each, after one warm-up)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-3}
for tool in wimlib-imagex 7zz python3 /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "verify-vs-peers.sh: $tool is missing (apt: wimtools 7zip time python3)" >&2; exit 1; }
done
dir=$("$root/fixtures/make-peer-wims.sh")
(cd "$root" && cargo build --release --quiet -p winre)
winre="$root/target/release/winre"
for wim in "$dir"/*.wim; do
    "$winre" verify "$wim" >/dev/null
    wimlib-imagex verify "$wim" >/dev/null 2>&1
    7zz t "$wim" >/dev/null
done
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
python3 - "$runs" "$winre" "$dir" <<'PY'
import os, statistics, subprocess, sys, tempfile

runs, winre, d = int(sys.argv[1]), sys.argv[2], sys.argv[3]
wims = [("lzx-32768.wim", "LZX", "32 KiB"), ("xpress-32768.wim", "XPRESS", "32 KiB"),
        ("lzx-2097152.wim", "LZX", "2 MiB"), ("lzms-131072.wim", "LZMS", "128 KiB"),
        ("solid-lzms.wim", "solid LZMS", "64 MiB")]

def timed(cmd):
    """(wall s, cpu s, peak RSS MiB) of one run."""
    with tempfile.NamedTemporaryFile("r") as t:
        subprocess.run(["/usr/bin/time", "-o", t.name, "-f", "%e %U %S %M"] + cmd,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        e, u, s, m = t.read().split()[-4:]
    return float(e), float(u) + float(s), int(m) / 1024

def side_by_side(cmds):
    """Median (wall, cpu, rss) of each command, run in turn after one warm-up round."""
    for c in cmds:
        timed(c)
    got = [[] for _ in cmds]
    for _ in range(runs):
        for i, c in enumerate(cmds):
            got[i].append(timed(c))
    return [tuple(statistics.median(r[k] for r in g) for k in range(3)) for g in got]

print("\nall cores: wall s / CPU s / peak RSS MiB (median of %d)" % runs)
print(f"{'WIM':<18} {'compression':<11} {'chunk':>7} {'MiB':>5} | {'winre':>20} | {'wimlib':>20} | {'7-Zip':>20} | speed-up")
for name, comp, chunk in wims:
    p = os.path.join(d, name)
    w, l, z = side_by_side([[winre, "verify", p], ["wimlib-imagex", "verify", p], ["7zz", "t", p]])
    cell = lambda r: f"{r[0]:5.2f} {r[1]:6.2f} {r[2]:6.0f}"
    print(f"{name:<18} {comp:<11} {chunk:>7} {os.path.getsize(p) / 2**20:5.0f} | {cell(w):>20} | {cell(l):>20} | {cell(z):>20} | "
          f"{min(l[0], z[0]) / w[0]:.2f}x")

print("\none thread: CPU s (median of %d)" % runs)
print(f"{'WIM':<18} {'winre':>7} {'wimlib':>7} {'7zz-mmt1':>8} {'vs wimlib':>9} {'vs 7-Zip':>9} {'vs faster':>9}")
for name, comp, chunk in wims:
    p = os.path.join(d, name)
    w, l, z = side_by_side([[winre, "verify", "--threads", "1", p], ["wimlib-imagex", "verify", p], ["7zz", "t", "-mmt1", p]])
    print(f"{name:<18} {w[1]:7.2f} {l[1]:7.2f} {z[1]:8.2f} {l[1] / w[1]:8.2f}x {z[1] / w[1]:8.2f}x {min(l[1], z[1]) / w[1]:8.2f}x")
PY
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
