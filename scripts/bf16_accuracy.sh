#!/usr/bin/env bash
# bf16 mixed-precision training against fp32 on NCBI-disease: the demo's
# recipe (`ferrotune train` defaults with --epochs 2, as scripts/demo.sh) at
# two seeds per precision, each model evaluated on the test set; prints one
# row per run and the means. Extra arguments go to every `train`.
#   bash scripts/bf16_accuracy.sh [OUT_DIR [TRAIN_ARGS...]]   (4 runs; ~30 min on 2 idle cores)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/bf16-accuracy}
shift || true
train_args=("$@")
[ ${#train_args[@]} -gt 0 ] || train_args=(--epochs 2)
cargo build --release --bin ferrotune
mkdir -p "$out"
# A copy: rebuilding the workspace during the hour of runs must not change them.
bin="$out/ferrotune"
cp target/release/ferrotune "$bin"
for seed in 42 7; do
  for precision in fp32 bf16; do
    run="$out/$precision-seed$seed"
    if [ ! -f "$run/test-report.json" ]; then
      /usr/bin/time -f "%e" -o "$run.time" "$bin" train --model models/all-MiniLM-L6-v2 \
        --train data/ncbi-disease/train.tsv --dev data/ncbi-disease/devel.tsv \
        --output "$run" --precision "$precision" --seed "$seed" "${train_args[@]}" > "$run.log" 2>&1
      "$bin" eval --model "$run" --data data/ncbi-disease/test.tsv --json "$run/test-report.json" > /dev/null
    fi
  done
done
python3 - "$out" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
scores = {}
print("| precision | seed | test F1 | train time (s) |\n|---|---|---|---|")
for run in sorted(out.glob("*-seed*/test-report.json")):
    precision, seed = run.parent.name.split("-seed")
    f1 = json.loads(run.read_text())["micro"]["f1"] * 100
    seconds = (out / f"{run.parent.name}.time").read_text().split()[-1]
    scores.setdefault(precision, []).append(f1)
    print(f"| {precision} | {seed} | {f1:.2f} | {seconds} |")
for precision, f1s in scores.items():
    print(f"{precision}: mean test F1 {sum(f1s) / len(f1s):.2f} over {len(f1s)} seeds")
PY
