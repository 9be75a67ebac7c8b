#!/usr/bin/env bash
# Soak and abuse test of `ferrotune serve` on loopback (bounded in time;
# stops by itself). Needs the demo model (scripts/fetch-model.sh); makes a
# small NER model from it (one epoch on 200 NCBI-disease sentences) unless
# MODEL_DIR is given.
#
#   bash scripts/soak.sh [SECONDS] [MODEL_DIR]
#
# 1. baseline: 64 well-behaved clients alone for 60 s;
# 2. soak: the same clients for SECONDS (default 600) while slow-loris
#    connections, slow bodies, oversized, token-heavy and malformed requests
#    and connection floods run (crates/ferrotune-serve/examples/soak.rs);
# 3. SIGTERM with 8 large requests in flight: each must be answered 200 and
#    the server must exit 0 within its grace period.
# Each phase prints one JSON line; the server's RSS is sampled every 5 s.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
model=${2:-}
port=18441
grace_ms=30000
cargo build --release --bin ferrotune
cargo build --release -p ferrotune-serve --features test-support --example soak
bin=target/release/ferrotune
soak=target/release/examples/soak
mkdir -p runs
if [ -z "$model" ]; then
  model=runs/soak-ner
  if [ ! -f "$model/model/model.safetensors" ]; then
    bash scripts/fetch-model.sh
    awk 'BEGIN {n = 0} {print} /^$/ {if (++n >= 200) exit}' data/ncbi-disease/train.tsv > runs/soak-train.tsv
    "$bin" train --model models/all-MiniLM-L6-v2 --train runs/soak-train.tsv --output "$model" --epochs 1 > /dev/null 2>&1
  fi
fi
log=runs/soak.server.log
"$bin" serve --model "$model" --addr "127.0.0.1:$port" --shutdown-grace-ms "$grace_ms" 2> "$log" &
pid=$!
trap 'kill -9 $pid 2>/dev/null || true' EXIT
for _ in $(seq 150); do
  grep -q "serving" "$log" 2>/dev/null && break
  sleep 0.2
done
idle_rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
echo "{\"phase\": \"idle\", \"server_rss_mib\": $((idle_rss / 1024))}"
echo "{\"phase\": \"baseline\", \"result\": $("$soak" --addr "127.0.0.1:$port" --pid "$pid" --seconds 60 --abuse false)}"
echo "{\"phase\": \"soak\", \"result\": $("$soak" --addr "127.0.0.1:$port" --pid "$pid" --seconds "$seconds" --abuse true)}"

# SIGTERM with requests in flight.
text=$(python3 -c 'import json; print(json.dumps({"texts": [" ".join(["cancer"] * 100)] * 64}))')
statuses=$(mktemp)
curls=()
for _ in $(seq 8); do
  curl -s -o /dev/null -w '%{http_code}\n' -H 'Content-Type: application/json' \
    --data "$text" "http://127.0.0.1:$port/v1/ner" >> "$statuses" &
  curls+=($!)
done
sleep 0.5
start=$(date +%s.%N)
kill -TERM "$pid"
code=0
wait "$pid" || code=$?
end=$(date +%s.%N)
wait "${curls[@]}"
trap - EXIT
echo "{\"phase\": \"sigterm\", \"exit_code\": $code, \"seconds_to_exit\": $(python3 -c "print(round($end - $start, 2))"), \"grace_s\": $((grace_ms / 1000)), \"in_flight_statuses\": \"$(sort "$statuses" | uniq -c | tr -s ' ' | tr '\n' ';')\"}"
rm -f "$statuses"
