#!/usr/bin/env bash
# Long local fuzzing of one target (not CI): grows fuzz/corpus-work/<target> from the committed
# corpus and the seeds, logs to fuzz/logs/<target>.log. Usage: fuzz/long-run.sh TARGET SECONDS
set -euo pipefail
cd "$(dirname "$0")"
t="$1"; secs="$2"
mkdir -p "corpus-work/$t" logs artifacts/"$t"
cp -n corpus/"$t"/* seeds/"$t"/* "corpus-work/$t/" 2>/dev/null || true
exec RUSTC_BOOTSTRAP=1 cargo fuzz run -O "$t" "corpus-work/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -max_len=6000000 -len_control=0 -print_final_stats=1 -artifact_prefix="artifacts/$t/" >"logs/$t.log" 2>&1
