#!/usr/bin/env bash
# Load test of `ferrotune serve` on loopback (bounded in time; stops by
# itself). Needs a fine-tuned model folder (default: runs/ncbi-demo from
# scripts/demo.sh).
#
#   bash scripts/load_test.sh [MODEL_DIR] [SECONDS]
#
# 1. one client, requests one after another (the baseline);
# 2. 64 concurrent clients (batching at work);
# 3. 500 clients against a server with --max-queue 8 (overload: 429s).
# Each line is the load generator's JSON plus the server's peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-runs/ncbi-demo}
seconds=${2:-30}
cargo build --release --bin ferrotune
cargo build --release -p ferrotune-serve --features test-support --example load_test
bin=target/release/ferrotune
load=target/release/examples/load_test

run() { # name, port, clients, seconds, server options...
  local name=$1 port=$2 clients=$3 secs=$4
  shift 4
  "$bin" serve --model "$model" --addr "127.0.0.1:$port" "$@" 2> "runs/load-$name.server.log" &
  local pid=$!
  for _ in $(seq 100); do
    grep -q "serving" "runs/load-$name.server.log" 2>/dev/null && break
    sleep 0.2
  done
  local result
  result=$("$load" --addr "127.0.0.1:$port" --clients "$clients" --seconds "$secs")
  local rss
  rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  kill -TERM "$pid"
  wait "$pid"
  echo "{\"run\": \"$name\", \"server_peak_rss_mib\": $((rss / 1024)), \"load\": $result}"
}

mkdir -p runs
run sequential 18431 1 "$seconds" --max-batch 32 --max-wait-ms 5
run concurrent 18432 64 "$seconds" --max-batch 32 --max-wait-ms 5
run overload 18433 500 10 --max-batch 32 --max-wait-ms 5 --max-queue 8
