#!/usr/bin/env bash
# Late QAT vs QAT throughout vs float, and 400 steps + a 400-step warm restart (a promoted trial), for the search's 3x student (kd-eo's layers 2, 4, 6 at int8),
# 400 and 800 steps, 3 seeds, on the GPU (accuracy does not depend on the device).
#   run(command="bash experiments/gpu/device_qat.sh", carry=[".whl", ".devcarry"], timeout_s=480)
# Three streams (one per seed) share the GPU; each probe appends a JSON line to $OUT/r/qat-s<seed>.jsonl.
# DEV=cpu STEPS_SCALE=0.01 rehearses it here in seconds.
set -u
DEV=${DEV:-cuda}; OUT=${OUT:-/tmp/gpu-out}; PY=${PY:-python3}; LIMIT=${LIMIT:-400}
STEPS_SCALE=${STEPS_SCALE:-1}
mkdir -p "$OUT/r"
exec > >(tee -a "$OUT/log.txt") 2>&1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TQDM_DISABLE=1
source experiments/gpu/device_setup.sh
n() { $PY -c "print(max(2, int($1 * $STEPS_SCALE)))"; }
S400=$(n 400); S800=$(n 800)
COMMON="arch.dropout=0.0 eval_every=$(n 50)"
# one short probe first: it fills the caches (teacher logits, transfer labels, stored teacher states)
# that the three streams would otherwise all build at once
timeout "$LIMIT" $PY experiments/baselines/probe.py --method kd-eo --teacher $T --device $DEV \
  --probe "steps=2 bits=8 eval_every=1" > "$OUT/r/warmup.log" 2>&1
echo "== caches warm rc=$? $(date -u +%T)"
PIDS=()
for seed in 0 1 2; do
  PARGS=()
  for q in 0.0 0.5 1.0; do PARGS+=(--probe "steps=$S400 seed=$seed bits=8 qat_from=$q $COMMON"); done
  PARGS+=(--probe "steps=$S400 seed=$seed $COMMON")                      # float reference
  for q in 0.0 0.5; do PARGS+=(--probe "steps=$S800 seed=$seed bits=8 qat_from=$q $COMMON"); done
  PARGS+=(--probe "steps=$S800 seed=$seed $COMMON")
  PARGS+=(--probe "steps=$S400 seed=$seed bits=8 qat_from=0.5 extend=$S400 $COMMON")  # a promoted trial
  timeout "$LIMIT" $PY experiments/baselines/probe.py --method kd-eo --teacher $T --device $DEV \
    --out "$OUT/r/qat-s$seed.jsonl" "${PARGS[@]}" > "$OUT/r/stream-s$seed.log" 2>&1 &
  PIDS+=($!)
done
wait "${PIDS[@]}"   # not a bare wait: it would also wait for the tee above
echo "== streams done $(date -u +%T)"
cat "$OUT"/r/qat-s*.jsonl | $PY -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    print(f"{r[\"probe\"]:<70} dev {r[\"dev\"]:.4f} test {r[\"test\"]:.4f} p {r[\"p_vs_teacher\"]:.3f} {r[\"wall_s\"]}s")
'
