#!/usr/bin/env bash
# Create .venv and install hybridsearch with its test tools.
# torch is installed first, pinned, so that pip never swaps in a multi-GB CUDA build
# on a CPU-only machine: on this project's machines `torch==2.13.0` resolves to a CPU
# build on local disk; elsewhere set TORCH_INDEX_URL to PyTorch's CPU (or CUDA) wheel
# index, or install torch yourself before running this script.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
if ! python -c "import torch" >/dev/null 2>&1; then
  pip install -q "torch==${TORCH_VERSION:-2.13.0}" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
fi
pip install -q -e ".[${HYBRIDSEARCH_EXTRAS:-test}]"
echo "hybridsearch installed in $(pwd)/.venv"
