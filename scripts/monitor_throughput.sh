#!/usr/bin/env bash
# Throughput of the sentiment monitor against plain prediction (issue 15):
# `ferrotune monitor run` (classify, store in SQLite, count, detect) on a
# replayed Financial PhraseBank stream, and `ferrotune predict` with the same
# model on the same texts, in alternating rounds; prints each round's wall
# times and the ratio of throughputs (monitor / predict). Keeps the last
# monitor store and writes its dashboard next to it.
#
#   bash scripts/monitor_throughput.sh MODEL [RECORDS_PER_WINDOW] [WINDOWS] [ROUNDS] [OUT_DIR]
#   e.g. bash scripts/monitor_throughput.sh runs/fpb/model 50 400 2 /tmp/monitor-throughput
set -euo pipefail
cd "$(dirname "$0")/.."
model=$1 volume=${2:-50} windows=${3:-400} rounds=${4:-2} out=${5:-$(mktemp -d)}
cargo build --release --bin ferrotune
bin=$PWD/target/release/ferrotune
mkdir -p "$out"
"$bin" monitor simulate --data data/financial-phrasebank/test.tsv --negative negative \
  --output "$out/stream.jsonl" --truth "$out/truth.json" --windows "$windows" --volume "$volume" --seed 1 2> /dev/null
python3 -c 'import json,sys
for line in open(sys.argv[1]): print(json.loads(line)["text"])' "$out/stream.jsonl" > "$out/texts.txt"
records=$(wc -l < "$out/stream.jsonl")
seconds() { /usr/bin/time -f %e "$@" 2>&1 >/dev/null | tail -1; }
for round in $(seq "$rounds"); do
  rm -f "$out"/monitor.sqlite* "$out/alerts.jsonl"
  monitor=$(seconds "$bin" monitor run --model "$model" --input "$out/stream.jsonl" --negative negative \
    --positive positive --db "$out/monitor.sqlite" --alerts "$out/alerts.jsonl")
  predict=$(seconds "$bin" predict --model "$model" --input "$out/texts.txt" --format text)
  ratio=$(python3 -c "print(f'{$predict / $monitor:.2f}')")
  echo "{\"round\": $round, \"records\": $records, \"monitor_s\": $monitor, \"predict_s\": $predict, \"monitor_vs_predict_throughput\": $ratio}"
done
"$bin" monitor report --db "$out/monitor.sqlite" --output "$out/dashboard.html"
