#!/usr/bin/env bash
# The main job on the default (mr, default MiniLM teacher, hybrid space, 12 trials), timed,
# under the shared heavy-run lock. Teacher and data come from $HYBRIDSEARCH_CACHE (warm);
# the run directory goes under $HYBRIDSEARCH_RUNS (outside the repo: it holds weights).
set -euo pipefail
cd "$(dirname "$0")/../.."
export HYBRIDSEARCH_CACHE=${HYBRIDSEARCH_CACHE:-/tmp/hs-exp-cache}
export HYBRIDSEARCH_RUNS=${HYBRIDSEARCH_RUNS:-/tmp/hs-runs}
LOG=${LOG:-/tmp/hs-search-main.log}
flock /tmp/hs-heavy.lock bash -c '
  date -u +"lock acquired %H:%M:%S"
  start=$(date +%s)
  .venv/bin/hybridsearch search "$@"
  echo "wall_s $(( $(date +%s) - start ))"
' _ "$@" 2>&1 | tee "$LOG"
