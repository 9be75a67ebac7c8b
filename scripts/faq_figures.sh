#!/usr/bin/env bash
# The FAQ assistant's figures (README, "FAQ assistant"):
#   1. COVID FAQ, zero-shot demo model: threshold calibrated on the devel
#      questions, `faq eval` on the test questions;
#   2. BANKING77 hand-over (20 intents held out of the FAQ): threshold
#      calibrated on devel, `faq eval` on test (in scope vs held out), for the
#      demo model and, when given, a model fine-tuned without the held-out
#      intents;
#   3. each of 1-2 again with sentence-transformers and scikit-learn
#      (scripts/reference_faq.py, runs/faq/reference-*.json);
#   4. `faq ask` latency, one query at a time, against a 10,000-entry FAQ.
# Writes runs/faq/*.json and the coverage/precision plots docs/faq-*.svg.
#   bash scripts/faq_figures.sh [FINETUNED_MODEL_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
finetuned=${1:-}
out=runs/faq
model=models/all-MiniLM-L6-v2
cargo build --release --bin ferrotune
bin=target/release/ferrotune
mkdir -p "$out" docs
python3 scripts/faq_banking77.py "$out/banking77"

"$bin" faq build --model "$model" --faq data/covid-faq/faq.tsv --dev data/covid-faq/questions-devel.tsv \
  --output "$out/covid-zeroshot"
"$bin" faq eval --index "$out/covid-zeroshot" --questions data/covid-faq/questions-test.tsv \
  --json "$out/covid-zeroshot-test.json" --svg docs/faq-covid-zeroshot.svg

.venv/bin/python scripts/reference_faq.py "$model" data/covid-faq/faq.tsv data/covid-faq/questions-devel.tsv \
  data/covid-faq/questions-test.tsv > "$out/reference-covid-zeroshot.json"

handover() { # NAME MODEL
  "$bin" faq build --model "$2" --faq "$out/banking77/faq-inscope.tsv" --dev "$out/banking77/dev.tsv" \
    --output "$out/banking77-$1"
  "$bin" faq eval --index "$out/banking77-$1" --questions "$out/banking77/test.tsv" \
    --json "$out/banking77-$1-test.json" --svg "docs/faq-banking77-$1.svg"
  .venv/bin/python scripts/reference_faq.py "$2" "$out/banking77/faq-inscope.tsv" "$out/banking77/dev.tsv" \
    "$out/banking77/test.tsv" > "$out/reference-banking77-$1.json"
}
handover zeroshot "$model"
[ -z "$finetuned" ] || handover finetuned "$finetuned"

"$bin" faq build --model "$model" --faq "$out/banking77/faq-10k.tsv" --output "$out/banking77-10k"
"$bin" bench faq-ask --index "$out/banking77-10k" --queries "$out/banking77/latency-queries.txt" \
  > "$out/faq-ask-latency.json"
cat "$out/faq-ask-latency.json"
