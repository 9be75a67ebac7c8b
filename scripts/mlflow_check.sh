#!/usr/bin/env bash
# `train --mlflow-uri` against a real MLflow tracking server (issue 17,
# item 3): the server (PyPI `mlflow`, in .venv) is started here with a
# SQLite backend and an artifact store on a free loopback port, and stopped
# at the end. Two runs of the demo model on a slice of NCBI-disease:
#  1. server up: every param equals the run's options, every metric history
#     equals metrics.jsonl (same names as the TensorBoard files), the model
#     folder's files are artifacts, the run is FINISHED;
#  2. server down when training starts, started during the run: training
#     never stops (warnings), and at the end the server holds every metric
#     all the same.
# Prints one JSON line per check; exits 1 if one fails.
#
#   bash scripts/mlflow_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
bin=target/release/ferrotune
work=$(mktemp -d)
port=$($PYTHON -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
uri=http://127.0.0.1:$port
server_pid=
start_server() {
  .venv/bin/mlflow server --host 127.0.0.1 --port "$port" --workers 1 \
    --backend-store-uri "sqlite:///$work/mlflow.db" --artifacts-destination "$work/artifacts" > "$work/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 120); do
    curl -sf "$uri/health" > /dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "mlflow server did not start" >&2; cat "$work/server.log" >&2; return 1
}
trap '[ -n "$server_pid" ] && kill $server_pid 2>/dev/null; [ -z "${KEEP:-}" ] && rm -rf "$work"' EXIT
awk 'BEGIN{n=0} {print} /^$/ {n++; if (n == 120) exit}' data/ncbi-disease/train.tsv > "$work/train.tsv"
awk 'BEGIN{n=0} {print} /^$/ {n++; if (n == 60) exit}' data/ncbi-disease/devel.tsv > "$work/dev.tsv"
train() { # output, experiment, epochs
  "$bin" train --model models/all-MiniLM-L6-v2 --train "$work/train.tsv" --dev "$work/dev.tsv" --output "$1" \
    --epochs "$3" --batch-size 8 --lr 1e-4 --threads 2 --mlflow-uri "$uri" --mlflow-experiment "$2"
}
check() { # output, experiment
  "$PYTHON" - "$uri" "$1" "$2" <<'PY'
import json, sys
import mlflow
from mlflow.tracking import MlflowClient
uri, out, experiment = sys.argv[1:]
client = MlflowClient(uri)
exp = client.get_experiment_by_name(experiment)
runs = client.search_runs([exp.experiment_id])
assert len(runs) == 1, f"{len(runs)} runs"
run = runs[0]
options = json.load(open(f"{out}/run.json"))["options"]
expected_params = {k: (v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))) for k, v in options.items()}
params_equal = all(str(run.data.params.get(k)) == str(v) or run.data.params.get(k) == json.dumps(v) for k, v in options.items())
sys.path.insert(0, "scripts")
from tensorboard_check import expected_scalars
expected = expected_scalars(f"{out}/metrics.jsonl")
keys = {k for k, _ in expected}
found, unequal = 0, []
for key in keys:
    history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, key)}
    for (k, step), v in expected.items():
        if k != key:
            continue
        found += step in history
        if step in history and abs(history[step] - v) > 1e-6 * max(1.0, abs(v)):
            unequal.append((k, step, v, history[step]))
artifacts = sorted(a.path for a in client.list_artifacts(run.info.run_id, "model"))
ok = params_equal and found == len(expected) and not unequal and "model/model.safetensors" in artifacts \
    and run.info.status == "FINISHED"
print(json.dumps({"experiment": experiment, "status": run.info.status, "params": len(run.data.params),
                  "params_equal_options": params_equal, "metrics_expected": len(expected), "metrics_found": found,
                  "metric_keys": len(keys), "unequal": unequal[:3], "artifacts": artifacts, "ok": ok}))
sys.exit(0 if ok else 1)
PY
}
start_server
train "$work/up" up 2 2> "$work/up.log"
check "$work/up" up
# The server goes away; the next run starts without it, and it comes back
# (it takes seconds to start) while the run goes on.
kill $server_pid; wait $server_pid 2>/dev/null || true; server_pid=
train "$work/down" down 6 2> "$work/down.log" &
trainer=$!
sleep 2
start_server
wait $trainer
warnings=$(grep -c "warning: MLflow" "$work/down.log" || true)
echo "{\"server_down_at_start\": true, \"warnings\": $warnings, \"training_exit\": 0}"
check "$work/down" down
