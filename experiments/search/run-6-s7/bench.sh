#!/usr/bin/env bash
# Session 7: the default search at 6 trials, after (d9d5a47) / Ray / before (ad886e0), one at a time under the
# heavy-run lock, caches warm. /tmp/hs-after and /tmp/hs-before are git worktrees of those commits.
set -u
export HYBRIDSEARCH_CACHE=/tmp/hs-exp-cache
PY=/work/main/.venv/bin/python
run() {  # name worktree args...
  local name=$1 tree=$2; shift 2
  echo "== $name $(git -C $tree rev-parse --short HEAD) $(date -u +%H:%M:%S)"
  local s=$(date +%s)
  (cd $tree && PYTHONPATH=$tree flock /tmp/hs-heavy.lock $PY -m hybridsearch search "$@") > /tmp/bench-$name.log 2>&1
  echo "$name rc=$? wall_s $(( $(date +%s) - s ))"
  (cd $tree && PYTHONPATH=$tree $PY -m hybridsearch study show "${@: -1}" ) > /tmp/bench-$name-show.log 2>&1
}
run after /tmp/hs-after --trials 6 --seed 0 --out /tmp/hs-runs-s7/after
run ray /tmp/hs-after --backend ray --concurrency 2 --trials 6 --seed 0 --out /tmp/hs-runs-s7/ray
run before /tmp/hs-before --trials 6 --seed 0 --out /tmp/hs-runs-s7/before
echo "== done $(date -u +%H:%M:%S)"
