#!/usr/bin/env bash
# Latency model on this machine: calibrate (default teacher, space, shape 1x64, all cores), then check on
# 30 unseen random students. Run from the repo root with the venv active; takes the shared heavy-run lock.
set -euo pipefail
OUT=${OUT:-experiments/latency_model/results}
mkdir -p "$OUT"
flock /tmp/hs-heavy.lock bash -c "
  date -u +'lock acquired %H:%M:%S'
  /usr/bin/time -f 'calibrate wall %e s' hybridsearch latency calibrate --force --repeats 40 --no-progress --out $OUT/table.json
  /usr/bin/time -f 'check wall %e s' hybridsearch latency check --n 30 --repeats 40 --no-progress --out $OUT/check.json
" 2>&1 | grep -v -e UserWarning -e '_register(fullname)' | tee "$OUT/log.txt"
