#!/usr/bin/env bash
# Dev-selected KD-EO recipe probes at the table's budget (200 steps), 3 seeds each, on the GPU.
#   run(command="bash experiments/gpu/device_probes.sh", carry=[".whl", ".devcarry"], timeout_s=420)
set -u
DEV=${DEV:-cuda}; OUT=${OUT:-/tmp/gpu-out}; PY=${PY:-python3}
mkdir -p "$OUT/r"
exec > >(tee -a "$OUT/log.txt") 2>&1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TQDM_DISABLE=1
source experiments/gpu/device_setup.sh
VARIANTS=("" "weights={\"kd_eo\":0.1}" "temperature=1.0" "alpha=0.0" "lr=3e-4" "lr=1e-4" "transfer=false"
          "transfer_limit=8000" "layer_map=last_k" "weights={\"kd_eo\":0.1} lr=3e-4")
PARGS=()
for v in "${VARIANTS[@]}"; do for s in 0 1 2; do PARGS+=(--probe "steps=200 seed=$s $v"); done; done
timeout 380 $PY experiments/baselines/probe.py --method kd-eo --teacher $T --device $DEV \
  --out "$OUT/r/kd-probes-200.jsonl" "${PARGS[@]}"
echo "== probes rc=$?"
