#!/bin/sh
# Scans one shard of an image list with `winre scan --from-list --shard K/N` and writes
# $WINRE_OUT/shard-K-of-N.jsonl. The same script runs as a Kubernetes Indexed Job pod and as a
# Slurm array task; it takes K and N from whichever scheduler started it:
#
#   Kubernetes  K = $JOB_COMPLETION_INDEX, N = $WINRE_SHARDS (set it to the Job's completions)
#   Slurm       K = $SLURM_ARRAY_TASK_ID - $SLURM_ARRAY_TASK_MIN, N = $SLURM_ARRAY_TASK_COUNT
#               (the array must be a contiguous range such as --array=0-15 or --array=0-15%4)
#   by hand     K = $WINRE_SHARD_INDEX, N = $WINRE_SHARDS
#
# Also read: WINRE_LIST (the list, required), WINRE_OUT (output directory, required), WINRE_JOBS
# (images scanned at once; default: the CPUs winre sees), WINRE (the binary; default: winre),
# WINRE_ARGS (more scan options, e.g. "--min-free 1GiB").
#
# Exit status: 0 when the shard was scanned, even if some images were unreadable (they are error
# lines in the output, and `winre report merge` counts them); otherwise winre's status, so the
# scheduler retries a shard that did not run to its end (an unreadable list, a full volume).
set -u

list=${WINRE_LIST:?set WINRE_LIST to the image list}
out_dir=${WINRE_OUT:?set WINRE_OUT to the output directory}
winre=${WINRE:-winre}

if [ -n "${JOB_COMPLETION_INDEX:-}" ]; then
  index=$JOB_COMPLETION_INDEX
  count=${WINRE_SHARDS:?set WINRE_SHARDS to the Job spec.completions}
elif [ -n "${SLURM_ARRAY_TASK_ID:-}" ]; then
  if [ "${SLURM_ARRAY_TASK_STEP:-1}" != 1 ]; then
    echo "winre-shard.sh: the Slurm array must be a contiguous range (no :step)" >&2
    exit 2
  fi
  index=$((SLURM_ARRAY_TASK_ID - ${SLURM_ARRAY_TASK_MIN:-0}))
  count=${SLURM_ARRAY_TASK_COUNT:?not set: is this an array job?}
else
  index=${WINRE_SHARD_INDEX:?set WINRE_SHARD_INDEX (or run under Kubernetes or Slurm)}
  count=${WINRE_SHARDS:?set WINRE_SHARDS}
fi

out="$out_dir/shard-$index-of-$count.jsonl"
# winre writes $out.partial and renames it only when the run completes, so $out exists exactly
# when this shard ran to its end. Remove an older run's file first.
rm -f "$out" "$out.partial"
# shellcheck disable=SC2086 # WINRE_ARGS is split on purpose.
"$winre" scan --from-list "$list" --shard "$index/$count" ${WINRE_JOBS:+--jobs "$WINRE_JOBS"} \
  ${WINRE_ARGS:-} -o "$out"
status=$?
if [ "$status" -eq 2 ] && [ -f "$out" ]; then
  status=0
fi
exit "$status"
