#!/usr/bin/env bash
# Retrieval figures of the README: the demo model zero-shot and fine-tuned
# with the Multiple Negatives Ranking loss, on the COVID FAQ test (62
# rewordings against 209 FAQ questions) and BANKING77 by nearest neighbours
# (3,080 test utterances against the 8,998 train utterances), each beside
# sentence-transformers with the same recipe (scripts/reference_retrieval.py).
# Recipe on both sides: batch 32, lr 5e-5, 10 % warmup then linear decay,
# weight decay 0.01, clipping 1.0, scale 20, max length 128, no dev set (the
# last epoch is kept); COVID 10 epochs, BANKING77 1 epoch.
#   bash scripts/retrieval_figures.sh [OUT_DIR]   (about an hour on 2 busy cores)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/retrieval}
cargo build --release --bin ferrotune
mkdir -p "$out"
bin="$out/ferrotune"
cp target/release/ferrotune "$bin"
recipe=(--batch-size 32 --lr 5e-5 --warmup-ratio 0.1 --schedule linear --weight-decay 0.01 --max-grad-norm 1.0
  --scale 20 --max-len 128 --seed 42)
figures() { # name pairs corpus queries epochs reference-dataset
  local name=$1 pairs=$2 corpus=$3 queries=$4 epochs=$5 dataset=$6
  [ -f "$out/$name-zero.json" ] || "$bin" eval --task retrieval --model models/all-MiniLM-L6-v2 \
    --corpus "$corpus" --queries "$queries" --max-len 128 --json "$out/$name-zero.json" > /dev/null
  if [ ! -f "$out/$name-tuned.json" ]; then
    "$bin" train --task retrieval --model models/all-MiniLM-L6-v2 --train "$pairs" --output "$out/$name-model" \
      --epochs "$epochs" "${recipe[@]}" > "$out/$name-train.log" 2>&1
    "$bin" eval --task retrieval --model "$out/$name-model" --corpus "$corpus" --queries "$queries" --max-len 128 \
      --json "$out/$name-tuned.json" > /dev/null
  fi
  .venv/bin/python scripts/reference_retrieval.py --dataset "$dataset" --epochs "$epochs" \
    --ferrotune "$out/$name-zero.json" "$out/$name-tuned.json"
}
figures covid data/covid-faq/retrieval/pairs-train.tsv data/covid-faq/retrieval/corpus.tsv \
  data/covid-faq/retrieval/queries-test.tsv 10 covid
figures banking77 data/banking77/retrieval/pairs-train.tsv data/banking77/train.tsv data/banking77/test.tsv 1 banking77
