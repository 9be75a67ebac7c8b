#!/usr/bin/env bash
# The NER comparison behind the README's table: ferrotune and the PyTorch
# reference (scripts/reference_ner.py) on NCBI-disease with all-MiniLM-L6-v2,
# the design document's recipe and the tuned/default recipe, then one table.
# Long: about an hour per implementation on 2 cores. Needs a Python with
# torch, transformers and seqeval (set PYTHON, default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
THREADS=${THREADS:-2}
bash scripts/fetch-model.sh
cargo build --release --bin ferrotune
bin=target/release/ferrotune
data="--train data/ncbi-disease/train.tsv --dev data/ncbi-disease/devel.tsv"
mkdir -p runs
"$bin" train --model models/all-MiniLM-L6-v2 $data --output runs/ft-default --threads "$THREADS"
"$bin" train --model models/all-MiniLM-L6-v2 $data --output runs/ft-lr5e-5 --threads "$THREADS" --lr 5e-5
"$bin" train --model models/all-MiniLM-L6-v2 $data --output runs/ft-design --threads "$THREADS" \
  --lr 2e-5 --epochs 5 --warmup-ratio 0 --schedule constant --max-grad-norm 0 --patience 0
for run in ft-default ft-lr5e-5 ft-design; do
  "$bin" eval --model runs/$run --data data/ncbi-disease/test.tsv --json runs/$run/test-report.json --threads "$THREADS"
done
HF_HUB_OFFLINE=1 "$PYTHON" scripts/reference_ner.py --recipe tuned --threads "$THREADS" --save runs/torch-tuned | tee runs/torch-tuned.log
HF_HUB_OFFLINE=1 "$PYTHON" scripts/reference_ner.py --recipe design --threads "$THREADS" | tee runs/torch-design.log
"$PYTHON" scripts/ner_table.py --torch design=runs/torch-design.log --torch tuned=runs/torch-tuned.log \
  --ferrotune design=runs/ft-design --ferrotune default=runs/ft-default --ferrotune "lr 5e-5=runs/ft-lr5e-5"
