#!/usr/bin/env bash
# Acceptance run for the default teacher on `mr`: fine-tune from an empty cache (fetches mr,
# fine-tunes MiniLM-L6, builds the logit cache, prints dev/test accuracy ± s.e.), then run the
# same command again (must reuse the teacher and the logit cache, in seconds).
# Each run holds the shared CPU lock; wall times are measured inside the lock.
# Usage: bash experiments/teacher/run_teacher.sh [LOGDIR]   (cache: a fresh temp dir)
set -euo pipefail
cd "$(dirname "$0")/../.."
LOGDIR=${1:-$(mktemp -d)}
export HYBRIDSEARCH_CACHE=${HYBRIDSEARCH_CACHE:-$(mktemp -d)}
mkdir -p "$LOGDIR"
for run in 1 2; do
  flock /tmp/hs-heavy.lock bash -c '
    start=$(date +%s.%N)
    .venv/bin/hybridsearch teacher finetune --task mr
    echo "run '"$run"' wall_s $(echo "$(date +%s.%N) - $start" | bc)"
  ' > "$LOGDIR/run$run.log" 2>&1
  grep -vE "it/s|s/it" "$LOGDIR/run$run.log" | tail -12
done
echo "logs in $LOGDIR; cache in $HYBRIDSEARCH_CACHE"
