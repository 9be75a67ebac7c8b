#!/usr/bin/env bash
# Side-by-side benchmark of ferrotune and PyTorch + transformers on this
# machine (see scripts/bench.py for what is timed and how). Prints a markdown
# table. Not a test: nothing in CI runs it.
#
#   bash scripts/bench.sh [--setup-python] [--threads N] [--rounds N] [--quick] [--json FILE]
#
# Python: $PYTHON if set; otherwise .venv/bin/python, created with pip from
# scripts/requirements-reference.txt when --setup-python is given.
set -euo pipefail
cd "$(dirname "$0")/.."
setup=0
args=()
for a in "$@"; do
  if [ "$a" = "--setup-python" ]; then setup=1; else args+=("$a"); fi
done
if [ -z "${PYTHON:-}" ]; then
  if [ ! -x .venv/bin/python ]; then
    if [ "$setup" = 1 ]; then
      python3 -m venv .venv
      .venv/bin/pip install --quiet -r scripts/requirements-reference.txt
    else
      echo "no Python with torch: set PYTHON, or pass --setup-python to create .venv" >&2
      exit 2
    fi
  fi
  PYTHON=.venv/bin/python
fi
bash scripts/fetch-model.sh
cargo build --release --bin ferrotune
exec "$PYTHON" scripts/bench.py --python "$PYTHON" "${args[@]}"
