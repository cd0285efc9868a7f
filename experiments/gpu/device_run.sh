#!/usr/bin/env bash
# The GPU checks of issue 7, as one call of the device tool (see RESULTS.md beside this file).
#   run(command="bash experiments/gpu/device_run.sh", carry=[".whl", ".devcarry"], timeout_s=560)
# Every step is bounded by what is left of BUDGET_S; a failed step does not stop the next.
# DEV=cpu SIM=1 runs the same steps here with tiny budgets (a rehearsal before spending device time).
set -u
START=$(date +%s)
BUDGET_S=${BUDGET_S:-500}
DEV=${DEV:-cuda}
OUT=${OUT:-/tmp/gpu-out}
SIM=${SIM:-0}
mkdir -p "$OUT/r"
LOG="$OUT/log.txt"
exec > >(tee -a "$LOG") 2>&1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TQDM_DISABLE=1
PY=${PY:-python3}

left() { echo $((BUDGET_S - ($(date +%s) - START))); }
step() {  # step NAME LIMIT_S CMD...: run CMD under min(LIMIT_S, time left), log its wall time and status
  local name=$1 limit=$2; shift 2
  local l; l=$(left)
  if [ "$l" -lt 20 ]; then echo "== $name: skipped (${l}s left)"; return; fi
  [ "$limit" -gt "$l" ] && limit=$l
  echo "== $name (limit ${limit}s) $(date -u +%T)"
  local t0; t0=$(date +%s)
  timeout --kill-after=10 "$limit" "$@"
  echo "== $name: rc=$? wall=$(( $(date +%s) - t0 ))s"
}

source experiments/gpu/device_setup.sh

if [ "$SIM" = 1 ]; then
  LAT="--repeats 3 --warmup 1"; CAL="--students 3"; NCHECK=3; TRIALS=3; STEPS="--steps 4"; STIME=60
  PROBES=("steps=4" "steps=4 transfer=false layers=2,5"); BSTEPS=4; BMETHODS="--methods dq8,kd-eo"
else
  LAT=""; CAL=""; NCHECK=30; TRIALS=8; STEPS=""; STIME=120; BSTEPS=200; BMETHODS=""
  PROBES=("steps=200" "steps=200 transfer=false" "steps=400 transfer=false" "steps=800 transfer=false"
          "steps=200 transfer=false layers=2,5" "steps=400 transfer=false layers=2,5")
fi
HS="$PY -m hybridsearch"
C="--teacher $T --device $DEV --no-progress"

# 1. latency model on this device at float32 (the default protocol): calibrate, then 30 unseen students
step "latency calibrate fp32" 120 $HS latency calibrate $C $LAT $CAL --out "$OUT/r/latency-table-fp32.json"
step "latency check fp32" 90 $HS latency check $C $LAT --n $NCHECK --out "$OUT/r/latency-check-fp32.json"
# 2. the latency model at float16 (calibrated for this dtype, then checked)
if [ "$DEV" = cuda ]; then
  step "latency check fp16" 75 $HS latency check $C $LAT --dtype float16 --n $NCHECK --out "$OUT/r/latency-check-fp16.json"
fi
# 3. a short search on this device (trials train and are timed on the GPU)
step "search" $((STIME + 60)) $HS search --teacher $T --device $DEV --trials $TRIALS --timeout $STIME $STEPS \
  --out /tmp/hs-gpu-run
# 4. dev-selected KD-EO probes (accuracy does not depend on the device): transfer rows on / off,
#    budget, a two-layer student (toward the search's 3x target)
PARGS=(); for p in "${PROBES[@]}"; do PARGS+=(--probe "$p"); done
step "kd probes" 150 $PY experiments/baselines/probe.py --method kd-eo --teacher $T --device $DEV \
  --out "$OUT/r/kd-probes.jsonl" "${PARGS[@]}"
# 5. the whole baselines table on this device, if time is left
step "baselines $BSTEPS steps" 200 $HS baselines --task mr --teacher $T --device $DEV --steps $BSTEPS $BMETHODS \
  --out /tmp/hs-gpu-baselines

echo "== done in $(( $(date +%s) - START ))s"
tar czf "$OUT/results.tgz" --exclude='weights' --exclude='*.safetensors' -C /tmp \
  $(cd /tmp && ls -d hs-gpu-run hs-gpu-kd-* hs-gpu-baselines 2>/dev/null) -C "$OUT" r 2>/dev/null
ls -la "$OUT"
