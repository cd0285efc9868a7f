# Sourced by the device scripts: carried wheels, the teacher restored to float32, the mr files in the cache.
# Expects PY, DEV, OUT; sets PYTHONPATH, HYBRIDSEARCH_CACHE and T (the teacher directory).
if [ "$DEV" = cuda ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
  export PYTHONPATH=/tmp/site:$PWD
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/r/env.txt" 2>&1
fi
export HYBRIDSEARCH_CACHE=${HYBRIDSEARCH_CACHE:-/tmp/hs-gpu-cache}
mkdir -p "$HYBRIDSEARCH_CACHE" && cp -r .devcarry/cache/. "$HYBRIDSEARCH_CACHE/"
T=/tmp/hs-gpu-teacher
$PY experiments/gpu/unpack.py .devcarry/teacher $T || exit 3
$PY - >> "$OUT/r/env.txt" <<'PYEOF' || exit 3
import platform, torch, transformers, optuna
print("python", platform.python_version(), "torch", torch.__version__, "transformers", transformers.__version__,
      "optuna", optuna.__version__, "cuda", torch.version.cuda,
      "gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
import hybridsearch.cli  # noqa: F401  (the package imports here)
PYEOF
cat "$OUT/r/env.txt"

