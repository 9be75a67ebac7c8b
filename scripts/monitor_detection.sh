#!/usr/bin/env bash
# Detection figures of the sentiment monitor (issue 15): replayed Financial
# PhraseBank test sentences with negative bursts at known windows, run through
# `ferrotune monitor run` with a fine-tuned sentiment model, scored against
# the truth. Prints one JSON line per configuration.
#
#   bash scripts/monitor_detection.sh MODEL [RISES] [VOLUMES] [WINDOWS]
#   e.g. bash scripts/monitor_detection.sh runs/fpb "0.2 0.3 0.4" "50 100 200" 500
# Detector options for `monitor run` (e.g. "--alpha 0.01") in $MONITOR_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."
model=$1 rises=${2:-0.2} volumes=${3:-50} windows=${4:-500}
cargo build --release --bin ferrotune
bin=target/release/ferrotune
work=$(mktemp -d)
for rise in $rises; do
  for volume in $volumes; do
    "$bin" monitor simulate --data data/financial-phrasebank/test.tsv --negative negative \
      --output "$work/stream.jsonl" --truth "$work/truth.json" --windows "$windows" --volume "$volume" \
      --bursts 20 --burst-rise "$rise" --burst-windows 2 --seed 1 2> /dev/null
    rm -f "$work"/monitor.sqlite* "$work/alerts.jsonl" "$work/rejects.jsonl"
    "$bin" monitor run --model "$model" --input "$work/stream.jsonl" --negative negative --positive positive \
      --db "$work/monitor.sqlite" --alerts "$work/alerts.jsonl" --rejects "$work/rejects.jsonl" ${MONITOR_ARGS:-} \
      2> "$work/run.log"
    score=$("$bin" monitor score --truth "$work/truth.json" --alerts "$work/alerts.jsonl" | tr -d ' \n')
    echo "{\"args\":\"${MONITOR_ARGS:-}\",\"rise\":$rise,\"volume\":$volume,\"windows\":$windows,\"score\":$score,\"run\":\"$(tail -1 "$work/run.log")\"}"
  done
done
rm -rf "$work"
