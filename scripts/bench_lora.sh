#!/usr/bin/env bash
# Issue 16's speed and memory figures: one training step at 16 x 128 with
# LoRA (r 8, query+value) against full fine-tuning, in alternating rounds of
# `ferrotune bench train-step` (median of 5 timed steps, the process's peak
# RSS), and the size of a saved adapter (r 8, query+value, NER head).
#   bash scripts/bench_lora.sh [ROUNDS] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
threads=${2:-2}
bin=${FERROTUNE:-target/release/ferrotune}
for round in $(seq "$rounds"); do
  for mode in full lora; do
    flags=()
    [ $mode = lora ] && flags=(--lora-r 8 --lora-targets query,value)
    "$bin" bench train-step --batch 16 --len 128 --threads "$threads" --runs 5 "${flags[@]}" | python3 -c "
import json, sys
r = json.loads(sys.stdin.read()); t = sorted(r['times_s'])
print(json.dumps({'round': $round, 'mode': '$mode', 'step_s': round(t[len(t) // 2], 4),
                  'peak_rss_mb': round(r['peak_rss_bytes'] / 2**20), 'trainable': r['trainable']}))"
  done
done | python3 -c "
import json, statistics, sys
rows = [json.loads(l) for l in sys.stdin]
for r in rows: print(json.dumps(r))
med = lambda m, k: statistics.median(r[k] for r in rows if r['mode'] == m)
print(f\"LoRA step {med('full','step_s') / med('lora','step_s'):.2f}x faster than full fine-tuning; \"
      f\"peak RSS {med('lora','peak_rss_mb') / med('full','peak_rss_mb'):.2f}x\")"
# The adapter's size: a one-epoch NER adapter on a few sentences.
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
head -200 data/ncbi-disease/train.tsv > "$tmp/train.tsv"
"$bin" train --model models/all-MiniLM-L6-v2 --train "$tmp/train.tsv" --output "$tmp/run" --epochs 1 \
  --peft lora --lora-r 8 --lora-targets query,value --threads "$threads" 2> /dev/null
echo "adapter_model.safetensors (r 8, query+value, NER head): $(stat -c %s "$tmp/run/model/adapter_model.safetensors") bytes"
