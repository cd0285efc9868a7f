#!/usr/bin/env bash
# Survey baselines on mr with the default (fine-tuned MiniLM-L6-H384) teacher, under the shared lock.
# Usage: experiments/baselines/run.sh [STEPS]   (from the repository root, venv active)
# Writes experiments/baselines/run/{table.md,table.csv,pareto.png,rows/*.json} and env.txt.
set -euo pipefail
STEPS=${1:-400}
export HYBRIDSEARCH_CACHE=${HYBRIDSEARCH_CACHE:-/tmp/hs-exp-cache}  # where the experiments' teacher lives
OUT=${OUT:-experiments/baselines/run}
mkdir -p "$OUT"
{
  echo "date: $(date -u +%FT%TZ)"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  python -c "import torch, transformers, numpy, sys; print('python', sys.version.split()[0], '| torch', torch.__version__, '| transformers', transformers.__version__, '| numpy', numpy.__version__)"
  echo "cache: $HYBRIDSEARCH_CACHE"
  echo "command: flock /tmp/hs-heavy.lock hybridsearch baselines --task mr --out $OUT --steps $STEPS"
} > "$OUT/env.txt"
start=$(date +%s)
flock /tmp/hs-heavy.lock bash -c "date -u +'lock acquired %H:%M:%S'; /usr/bin/time -f 'inside lock wall %e s' hybridsearch baselines --task mr --out $OUT --steps $STEPS" 2>&1 | grep -vE 'it/s\]|s/it\]' | tee "$OUT/log.txt"
echo "wall: $(( $(date +%s) - start )) s" | tee -a "$OUT/env.txt"
