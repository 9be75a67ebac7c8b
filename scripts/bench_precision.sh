#!/usr/bin/env bash
# Side-by-side benchmark of ferrotune's fp32, bf16 and int8 against PyTorch
# (fp32, bf16 autocast) and ONNX Runtime (fp32, int8 dynamic quantization);
# see scripts/bench_precision.py. Prints a markdown table. Not a test.
#
#   bash scripts/bench_precision.sh [--setup-python] [--threads N] [--rounds N] [--json FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
setup=0
args=()
for a in "$@"; do
  if [ "$a" = "--setup-python" ]; then setup=1; else args+=("$a"); fi
done
if [ -z "${PYTHON:-}" ]; then
  if [ ! -x .venv/bin/python ] && [ "$setup" = 1 ]; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet -r scripts/requirements-reference.txt
  fi
  [ -x .venv/bin/python ] || { echo "no Python with torch: set PYTHON, or pass --setup-python" >&2; exit 2; }
  PYTHON=.venv/bin/python
fi
bash scripts/fetch-model.sh
cargo build --release --bin ferrotune
exec "$PYTHON" scripts/bench_precision.py --python "$PYTHON" "${args[@]}"
