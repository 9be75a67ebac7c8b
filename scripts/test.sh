#!/usr/bin/env bash
# The test suite: fetches the demo model (for the Hugging Face parity test)
# and Debian's redis-server (for the monitor's Redis test),
# then runs every test of the workspace with the release profile, the one
# profile this project builds.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch-model.sh
# The monitor's Redis test starts its own server: Debian's redis-server.
if ! command -v redis-server >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq redis-server >/dev/null
fi
cargo test --release --workspace
# The kernels' fallback paths, forced: every path this processor has runs
# (the int8 test also runs each lower path itself). On a processor with AMX,
# `avx512` runs the AVX-512 kernels that AMX otherwise replaces.
fallbacks="avx2 portable"
if grep -qw amx_tile /proc/cpuinfo 2>/dev/null; then fallbacks="avx512 $fallbacks"; fi
for kernels in $fallbacks; do
  FERROTUNE_KERNELS=$kernels cargo test --release -p ferrotune-model --lib
done
