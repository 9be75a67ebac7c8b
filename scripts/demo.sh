#!/usr/bin/env bash
# The main job: fetch the demo model, build, fine-tune it for disease NER on
# the bundled NCBI-disease corpus, print the test report, save the model and
# tag two example sentences.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch-model.sh
cargo build --release --bin ferrotune
bin=target/release/ferrotune
out=${FERROTUNE_DEMO_OUTPUT:-runs/ncbi-demo}
# A short schedule that fits the 15-minute budget: two epochs at a higher peak rate.
"$bin" train --model models/all-MiniLM-L6-v2 \
  --train data/ncbi-disease/train.tsv --dev data/ncbi-disease/devel.tsv \
  --output "$out" --epochs 2 --lr 1e-4
echo
echo "== Test report (NCBI-disease test set) =="
"$bin" eval --model "$out" --data data/ncbi-disease/test.tsv --json "$out/test-report.json"
echo
echo "== Predictions =="
printf '%s\n' \
  "Germline mutations in BRCA1 are associated with hereditary breast and ovarian cancer." \
  "The patient was diagnosed with Duchenne muscular dystrophy and later developed cardiomyopathy." \
  | "$bin" predict --model "$out"
echo
echo "model saved in $out/model (Hugging Face BertForTokenClassification layout)"
