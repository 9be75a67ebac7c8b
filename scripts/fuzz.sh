#!/usr/bin/env bash
# Coverage-guided fuzzing of ferrotune's parsers with AFL++ (stable Rust):
# builds the targets of fuzz/ with `cargo afl`, then runs each for
# SECONDS (default 600), TARGETS at a time at the lowest priority, and prints
# each one's executions and crashes. Outputs go to fuzz/out/<target>/.
#
#   cargo install cargo-afl      # once (builds AFL++ too)
#   bash scripts/fuzz.sh [SECONDS] [PARALLEL] [TARGET...]
#
# A crash's input (fuzz/out/<target>/default/crashes/id:*) goes into
# fuzz/regressions/<target>/ once fixed: the corpus test replays it in CI.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-600}
parallel=${2:-2}
shift 2 || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(tagged texts model_config scorecard request)
nice -n 19 cargo afl build --release
export AFL_SKIP_CPUFREQ=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
run() {
  local t=$1
  rm -rf "out/$t"
  mkdir -p "out/$t"
  nice -n 19 timeout --signal=INT $((seconds + 30)) \
    cargo afl fuzz -V "$seconds" -i "corpus/$t" -o "out/$t" "target/release/$t" > "out/$t.log" 2>&1 || true
  local stats="out/$t/default/fuzzer_stats"
  echo "$t: execs $(awk '/^execs_done/ {print $3}' "$stats"), crashes $(awk '/^saved_crashes/ {print $3}' "$stats"), hangs $(awk '/^saved_hangs/ {print $3}' "$stats"), corpus $(awk '/^corpus_count/ {print $3}' "$stats"), run $(awk '/^run_time/ {print $3}' "$stats") s"
}
for ((i = 0; i < ${#targets[@]}; i += parallel)); do
  for t in "${targets[@]:i:parallel}"; do
    run "$t" &
  done
  wait
done
