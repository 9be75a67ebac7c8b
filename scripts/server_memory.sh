#!/usr/bin/env bash
# Server memory after a burst (issue 13, item 5): idle RSS (15 s after one
# small request), then 16 large
# NER requests (4 at a time; 64 texts of 150 words each, about 11,000 tokens), then RSS every
# 10 s for 60 s. Pass MIMALLOC_PURGE_DELAY=-1 to see the old behaviour
# (freed memory never returned).
#
#   bash scripts/server_memory.sh MODEL_DIR [PORT]
set -euo pipefail
cd "$(dirname "$0")/.."
model=$1
port=${2:-18451}
bin=target/release/ferrotune
log=$(mktemp)
"$bin" serve --model "$model" --addr "127.0.0.1:$port" 2> "$log" &
pid=$!
trap 'kill -9 $pid 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 150); do
  grep -q "serving" "$log" && break
  sleep 0.2
done
rss() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status"; }
# One small request first: the idle server has answered once.
curl -s -o /dev/null -H 'Content-Type: application/json' --data '{"texts": ["cancer"]}' "http://127.0.0.1:$port/v1/ner"
sleep 15
idle=$(rss)
body=$(python3 -c 'import json; print(json.dumps({"texts": [" ".join(["hereditary breast cancer"] * 50)] * 64}))')
statuses=""
for _ in 1 2 3 4; do
  curls=()
  for _ in 1 2 3 4; do
    curl -s -o /dev/null -w '%{http_code} ' -H 'Content-Type: application/json' --data "$body" \
      "http://127.0.0.1:$port/v1/ner" > "$log.$RANDOM" &
    curls+=($!)
  done
  wait "${curls[@]}"
done
statuses=$(cat "$log".* | tr -s ' ')
rm -f "$log".*
peak=$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status")
after=()
for _ in 1 2 3 4 5 6; do
  sleep 10
  after+=("$(rss)")
done
echo "{\"burst_statuses\": \"$statuses\", \"idle_mib\": $idle, \"peak_mib\": $peak, \"every_10s_after_mib\": [$(IFS=,; echo "${after[*]}")], \"ratio_60s\": $(python3 -c "print(round(${after[5]} / $idle, 2))")}"
