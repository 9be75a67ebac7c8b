#!/usr/bin/env bash
# Issue 16's accuracy figures: LoRA against full fine-tuning on NCBI-disease
# (entity micro F1) or Financial PhraseBank (accuracy), with ferrotune, and
# Python PEFT beside it on the same data, recipe and threads.
#
#   bash scripts/lora_figures.sh ner "5e-4 1e-3 2e-3"   # LoRA lrs tried on dev
#   PEFT_LR=1e-3 bash scripts/lora_figures.sh ner "1e-3" # + the PEFT run
#   bash scripts/lora_figures.sh fpb "1e-3"
#   LORA_EPOCHS=8 bash scripts/lora_figures.sh ner "1e-3" # LoRA runs of 8 epochs
#
# The default recipe everywhere (4 epochs, batch 16, warmup 10% + linear
# decay, weight decay 0.01, clipping 1.0, max-len 128) except the learning
# rate; LoRA: r 8, alpha 16, dropout 0.1 on query, value, the attention
# output and both feed-forward matrices; the best epoch and LoRA's learning
# rate are picked on dev. Runs already done are not repeated. The PEFT run
# needs .venv (torch, transformers, peft, seqeval, scikit-learn).
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:?ner or fpb}
lrs=${2:-"1e-3"}
THREADS=${THREADS:-2}
PYTHON=${PYTHON:-.venv/bin/python}
bin=${FERROTUNE:-target/release/ferrotune}
targets=query,value,attention.output.dense,intermediate.dense,output.dense
model=models/all-MiniLM-L6-v2
case $which in
  ner) data=data/ncbi-disease; task=ner; extra=() ;;
  fpb) data=data/financial-phrasebank; task=classify; extra=(--task classify) ;;
  *) echo "ner or fpb" >&2; exit 2 ;;
esac
train=$data/train.tsv dev=$data/devel.tsv test=$data/test.tsv
out=runs/lora-$which
mkdir -p "$out"

# run dir [flags...] -> one JSON line: best epoch, its dev figure, the test figure.
score() {
  local run=$1; shift
  "$bin" eval --data "$test" --json "$run/test.json" --threads "$THREADS" "$@" > /dev/null
  python3 - "$run" "$task" <<'PY'
import json, sys
run, task = sys.argv[1], sys.argv[2]
epochs = [json.loads(l) for l in open(f"{run}/metrics.jsonl") if '"type":"epoch"' in l]
best = next(e for e in epochs if e["epoch"] == epochs[-1]["best_epoch"])
figure = (lambda r: r["micro"]["f1"]) if task == "ner" else (lambda r: r["accuracy"])
print(json.dumps({"run": run, "best_epoch": best["epoch"], "dev": round(figure(best["dev"]), 4),
                  "test": round(figure(json.load(open(f"{run}/test.json"))), 4),
                  "train_s": round(sum(e["seconds"] for e in epochs), 1)}))
PY
}
train_run() { # output dir, extra flags...
  local run=$1; shift
  local model_flags=(--model "$run")
  case " $* " in *" --peft lora "*) model_flags=(--model $model --adapter "$run") ;; esac
  if ! grep -qs "^done:" "$run.log"; then
    rm -rf "$run"
    /usr/bin/time -f "peak RSS %M KB, %e s" "$bin" train --model $model --train "$train" --dev "$dev" \
      --output "$run" --threads "$THREADS" "${extra[@]}" "$@" 2> "$run.log"
  fi
  score "$run" "${model_flags[@]}"
  tail -1 "$run.log"
}
train_run "$out/full"
epochs=${LORA_EPOCHS:-4}
suffix=$([ "$epochs" = 4 ] || echo "-e$epochs")
for lr in $lrs; do
  train_run "$out/lora-$lr$suffix" --lr "$lr" --epochs "$epochs" --peft lora --lora-r 8 --lora-alpha 16 --lora-dropout 0.1 --lora-targets $targets
done
if [ -n "${PEFT_LR:-}" ]; then
  HF_HUB_OFFLINE=1 "$PYTHON" scripts/peft_train.py --task $task --model $model --train "$train" --dev "$dev" \
    --test "$test" --r 8 --alpha 16 --dropout 0.1 --targets $targets --lr "$PEFT_LR" --epochs "$epochs" --batch 16 \
    --max-len 128 --threads "$THREADS" --save "$out/peft-$PEFT_LR$suffix" 2> "$out/peft-$PEFT_LR$suffix.log" | tail -1
fi
