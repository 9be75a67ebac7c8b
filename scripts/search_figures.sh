#!/usr/bin/env bash
# Issue 17's search figures (`ferrotune search`).
#
#   bash scripts/search_figures.sh ncbi OUT            # the NCBI study (scripts/search/ncbi.toml)
#   KILL_IN_TRIAL=5 bash scripts/search_figures.sh ncbi OUT
#                                                      # the same, killed (SIGKILL) during its 5th trial
#                                                      # (KILL_AFTER_S seconds into it, default 60),
#                                                      # then resumed with --resume
#   bash scripts/search_figures.sh same OUT_A OUT_B    # do two studies hold the same trials?
#   bash scripts/search_figures.sh summary OUT         # trials, epochs, best dev F1 and its test F1
#   bash scripts/search_figures.sh study FILE OUT      # any study file (KILL_IN_TRIAL as above)
#   bash scripts/search_figures.sh subset OUT          # side by side on the first 1,500 training
#                                                      # sentences: the same study with ferrotune
#                                                      # and with Optuna driving PyTorch
#                                                      # (scripts/optuna_reference.py; needs .venv);
#                                                      # PEER=none: ferrotune's side only;
#                                                      # KILL_IN_TRIAL as above (ferrotune's side)
#
# THREADS (default 2) threads for the study; a study already complete is
# not run again (its journal says so).
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:?ncbi, subset, study, same or summary}
THREADS=${THREADS:-2}
bin=${FERROTUNE:-target/release/ferrotune}

# out N -> how many trials are in the journal, and whether its trial N (from 1) is running.
journal_state() {
  python3 - "$1" "${2:-0}" <<'PY'
import json, sys
lines = open(f"{sys.argv[1]}/study.jsonl").read().splitlines()[1:]
trials = [json.loads(l) for l in lines]
n = int(sys.argv[2])
ready = len(trials) >= n and n > 0 and trials[n - 1]["state"] == "running"
print(len(trials), "ready" if ready else "wait")
PY
}

# study CONFIG OUT: runs the study into OUT (resumes it if OUT has a
# journal); with KILL_IN_TRIAL=N, kills it (SIGKILL) KILL_AFTER_S seconds
# into its N-th trial, checks no training outlived it, and resumes it.
study() {
  local config=$1 out=$2
  if [ -f "$out/study.jsonl" ]; then
    "$bin" search --config "$config" --output "$out" --threads "$THREADS" --resume
  elif [ -n "${KILL_IN_TRIAL:-}" ]; then
    "$bin" search --config "$config" --output "$out" --threads "$THREADS" &
    local pid=$!
    while sleep 2; do
      [ -f "$out/study.jsonl" ] || continue
      read -r _ state < <(journal_state "$out" "$KILL_IN_TRIAL")
      if [ "$state" = ready ]; then
        sleep "${KILL_AFTER_S:-60}"
        kill -KILL "$pid"
        wait "$pid" || true
        echo "killed during trial $KILL_IN_TRIAL (number $((KILL_IN_TRIAL - 1))); resuming" >&2
        break
      fi
      kill -0 "$pid" 2>/dev/null || { echo "the study ended before its trial $KILL_IN_TRIAL" >&2; exit 1; }
    done
    sleep 2
    if pgrep -f "train --config $out/trials" >/dev/null; then
      echo "a trial's training outlived the study" >&2
      exit 1
    fi
    "$bin" search --config "$config" --output "$out" --threads "$THREADS" --resume
  else
    "$bin" search --config "$config" --output "$out" --threads "$THREADS"
  fi
}

case $which in
  ncbi)
    study scripts/search/ncbi.toml "${2:?output folder}"
    ;;
  study)
    study "${2:?study file}" "${3:?output folder}"
    ;;
  subset)
    out=${2:?output folder}
    mkdir -p "$out"
    # The first 1,500 sentences of the training file (blank-line separated).
    awk -v RS= -v ORS='\n\n' 'NR <= 1500' data/ncbi-disease/train.tsv > "$out/train-1500.tsv"
    sed "s#data/ncbi-disease/train.tsv#$out/train-1500.tsv#" scripts/search/ncbi.toml > "$out/search.toml"
    /usr/bin/time -f "ferrotune search: %e s, peak RSS %M KB" \
      bash "$0" study "$out/search.toml" "$out/ferrotune" > "$out/ferrotune.tsv" 2> "$out/ferrotune.log"
    tail -1 "$out/ferrotune.log"
    bash "$0" summary "$out/ferrotune"
    [ "${PEER:-optuna}" = none ] && exit 0
    [ -f "$out/optuna.jsonl" ] && grep -q '"side"' "$out/optuna.jsonl" || \
      /usr/bin/time -f "optuna: %e s, peak RSS %M KB" ${PYTHON:-.venv/bin/python} scripts/optuna_reference.py \
        --train "$out/train-1500.tsv" --threads "$THREADS" > "$out/optuna.jsonl" 2> "$out/optuna.log"
    tail -1 "$out/optuna.log"
    tail -1 "$out/optuna.jsonl"
    ;;
  same)
    python3 - "${2:?study A}" "${3:?study B}" <<'PY'
import json, sys
def trials(out):
    return [json.loads(l) for l in open(f"{out}/study.jsonl").read().splitlines()[1:]]
a, b = trials(sys.argv[1]), trials(sys.argv[2])
same = a == b
diff = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
print(json.dumps({"same_trials": same, "trials": [len(a), len(b)], "first_difference": diff}))
sys.exit(0 if same else 1)
PY
    ;;
  summary)
    out=${2:?study folder}
    best=$(python3 -c "
import json, sys
trials = [json.loads(l) for l in open('$out/study.jsonl').read().splitlines()[1:]]
done = [t for t in trials if t['state'] == 'complete']
best = max(done, key=lambda t: (max(s for _, s in t['scores']), -t['number']))
print(best['number'])")
    model=$out/trials/$(printf %03d "$best")/run/model
    [ -f "$out/test-$best.json" ] || "$bin" eval --model "$model" --data data/ncbi-disease/test.tsv --json "$out/test-$best.json" --threads "$THREADS" >/dev/null
    python3 - "$out" "$best" <<'PY'
import json, sys
out, best = sys.argv[1], int(sys.argv[2])
trials = [json.loads(l) for l in open(f"{out}/study.jsonl").read().splitlines()[1:]]
epochs = sum(len(t["scores"]) for t in trials)
budget = sum(t["max_epochs"] for t in trials)
states = {s: sum(t["state"] == s for t in trials) for s in ("complete", "pruned", "failed", "running")}
b = trials[best]
print(json.dumps({
    "trials": len(trials), **states, "epochs": epochs, "budget": budget, "share": round(epochs / budget, 3),
    "best_trial": best, "best_params": b["params"], "best_dev_f1": round(max(s for _, s in b["scores"]), 4),
    "best_test_f1": round(json.load(open(f"{out}/test-{best}.json"))["micro"]["f1"], 4),
}))
PY
    ;;
  *) echo "ncbi, subset, same or summary" >&2; exit 2 ;;
esac
