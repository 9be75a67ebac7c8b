#!/usr/bin/env bash
# The test suite: fetches the demo model (for the Hugging Face parity test),
# then runs every test of the workspace with the release profile, the one
# profile this project builds.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch-model.sh
cargo test --release --workspace
