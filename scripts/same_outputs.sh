#!/usr/bin/env bash
# Runs two ferrotune binaries (e.g. before and after a refactor) on the same
# models and inputs and checks that `predict` and `eval --json` write
# byte-identical files: NER on the NCBI-disease test set (as plain text
# lines, as {"tokens"} JSONL, and through eval), classification on the
# Financial PhraseBank test set.
#
#   bash scripts/same_outputs.sh OLD_BINARY NEW_BINARY NER_MODEL CLASSIFY_MODEL [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
old=$1 new=$2 ner=$3 cls=$4 work=${5:-$(mktemp -d)}
mkdir -p "$work"
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
sentences, words = [], []
for line in open("data/ncbi-disease/test.tsv", encoding="utf-8"):
    line = line.rstrip("\n")
    if not line.strip():
        if words:
            sentences.append(words)
        words = []
        continue
    words.append(line.split("\t")[0])
if words:
    sentences.append(words)
with open(f"{work}/ncbi.txt", "w") as f:
    f.writelines(" ".join(s) + "\n" for s in sentences)
with open(f"{work}/ncbi.jsonl", "w") as f:
    f.writelines(json.dumps({"tokens": s}) + "\n" for s in sentences)
PY
status=0
for side in old new; do
  bin=${!side}
  "$bin" predict --model "$ner" --input "$work/ncbi.txt" --output "$work/$side-ner-text.jsonl" 2>/dev/null
  "$bin" predict --model "$ner" --input "$work/ncbi.jsonl" --output "$work/$side-ner-tokens.jsonl" 2>/dev/null
  "$bin" eval --model "$ner" --data data/ncbi-disease/test.tsv --json "$work/$side-ner-eval.json" > "$work/$side-ner-eval.txt" 2>/dev/null
  "$bin" predict --model "$cls" --input data/financial-phrasebank/test.tsv --output "$work/$side-cls.jsonl" 2>/dev/null
  "$bin" eval --model "$cls" --data data/financial-phrasebank/test.tsv --json "$work/$side-cls-eval.json" > "$work/$side-cls-eval.txt" 2>/dev/null
done
for name in ner-text.jsonl ner-tokens.jsonl ner-eval.json ner-eval.txt cls.jsonl cls-eval.json cls-eval.txt; do
  if cmp -s "$work/old-$name" "$work/new-$name"; then
    echo "identical  $name ($(wc -l < "$work/new-$name") lines, sha256 $(sha256sum < "$work/new-$name" | cut -c1-16))"
  else
    echo "DIFFERENT  $name"; status=1
  fi
done
exit $status
