#!/usr/bin/env bash
# Issue 16's serving figures: many LoRA adapters on one base in one server,
# against the base with one adapter merged in, served alone.
#
#   [PRECISION=int8|bf16] bash scripts/bench_adapters.sh [ROUNDS] [SECONDS] [THREADS]
#
# 1. Trains one NER adapter (r 8, query + value, the classifier saved with
#    it) on 300 NCBI-disease training sentences for one epoch, and makes 20
#    distinct adapters of its shape (B scaled by 1 + i/20: other outputs,
#    the same cost); merges the first into a plain folder.
# 2. Alternately, ROUNDS times: `serve --model BASE --adapter a1=.. a20=..`
#    with 32 clients spread over 8 of the adapters (client i names adapter
#    i mod 8: every batch mixes them), then `serve --model MERGED` with the
#    same 32 clients; each for SECONDS, same threads, one text per request.
#    Prints each run's throughput and the server's peak RSS (VmHWM), then
#    the medians' ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
seconds=${2:-20}
threads=${3:-2}
PYTHON=${PYTHON:-.venv/bin/python}
base=models/all-MiniLM-L6-v2
out=runs/bench-adapters
mkdir -p "$out"
cargo build --release --bin ferrotune
cargo build --release -p ferrotune-serve --features test-support --example load_test
bin=target/release/ferrotune
load=target/release/examples/load_test

if [ ! -f "$out/a1/adapter_config.json" ]; then
  awk 'BEGIN{n=0} {print} /^$/ {n++; if (n == 300) exit}' data/ncbi-disease/train.tsv > "$out/train.tsv"
  "$bin" train --model $base --train "$out/train.tsv" --dev "$out/train.tsv" --output "$out/trained" \
    --peft lora --lora-r 8 --lora-targets query,value --epochs 1 --lr 1e-3 --threads "$threads" 2> "$out/train.log"
  "$PYTHON" - "$out" <<'PY'
import shutil, sys
from pathlib import Path
from safetensors.numpy import load_file, save_file
out = Path(sys.argv[1])
source = out / "trained" / "model"
for i in range(1, 21):
    target = out / f"a{i}"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    weights = target / "adapter_model.safetensors"
    tensors = load_file(weights)
    scaled = {k: (v * (1 + i / 20) if "lora_B" in k else v) for k, v in tensors.items()}
    save_file(scaled, weights, metadata={"format": "pt"})
PY
  rm -rf "$out/merged"
  "$bin" merge --model $base --adapter "$out/a1" --output "$out/merged" > /dev/null
fi
du -b "$out/a1/adapter_model.safetensors" | awk '{print "{\"adapter_bytes\": " $1 "}"}'

text="The patient was diagnosed with hereditary breast and ovarian cancer last year ."
serve_and_load() { # port, models for the clients ("" for the default), serve flags...
  local port=$1 models=$2
  shift 2
  local log="$out/server-$port.log"
  "$bin" serve --addr "127.0.0.1:$port" --threads "$threads" --precision "${PRECISION:-fp32}" "$@" 2> "$log" &
  local pid=$!
  for _ in $(seq 300); do
    grep -q "serving" "$log" && break
    sleep 0.2
  done
  local flags=(--addr "127.0.0.1:$port" --clients 32 --seconds "$seconds" --text "$text")
  [ -n "$models" ] && flags+=(--models "$models")
  local result
  result=$("$load" "${flags[@]}")
  local peak
  peak=$(awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")
  kill "$pid"
  wait "$pid" 2> /dev/null || true
  python3 -c "import json,sys; r=json.loads(sys.argv[1]); print(json.dumps({'ok_per_s': round(r['ok_per_s'], 1), 'p50_ms': round(r['p50_ms'], 1), 'statuses': r['statuses'], 'peak_rss_mib': float(sys.argv[2])}))" "$result" "$peak"
}

adapters=()
for i in $(seq 20); do adapters+=(--adapter "a$i=$out/a$i"); done
eight=a1,a2,a3,a4,a5,a6,a7,a8
results=$out/results.jsonl
: > "$results"
for round in $(seq "$rounds"); do
  r=$(serve_and_load 18461 "$eight" --model $base "${adapters[@]}")
  echo "{\"round\": $round, \"server\": \"20 adapters, 8 in each batch\", \"result\": $r}" | tee -a "$results"
  r=$(serve_and_load 18462 "" --model "$out/merged")
  echo "{\"round\": $round, \"server\": \"merged model\", \"result\": $r}" | tee -a "$results"
done
python3 - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def median(server, key):
    return statistics.median(r["result"][key] for r in rows if r["server"] == server)
a, m = "20 adapters, 8 in each batch", "merged model"
print(json.dumps({
    "throughput_ratio_adapters_vs_merged": round(median(a, "ok_per_s") / median(m, "ok_per_s"), 3),
    "peak_rss_ratio_adapters_vs_merged": round(median(a, "peak_rss_mib") / median(m, "peak_rss_mib"), 3),
    "adapters_ok_per_s": median(a, "ok_per_s"), "merged_ok_per_s": median(m, "ok_per_s"),
    "adapters_peak_rss_mib": median(a, "peak_rss_mib"), "merged_peak_rss_mib": median(m, "peak_rss_mib"),
}))
PY
