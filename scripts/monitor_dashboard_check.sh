#!/usr/bin/env bash
# Opens a monitor dashboard page (`ferrotune monitor report`) offline in
# headless Chromium (Debian's `chromium` package, installed when missing)
# and takes a screenshot of it, to look at.
#
#   bash scripts/monitor_dashboard_check.sh PAGE.html OUT.png
#
# A sample page, without a database:
#   FERROTUNE_DASHBOARD_SAMPLE=/tmp/dashboard.html cargo test --release -p ferrotune-monitor sample_dashboard
set -euo pipefail
page=$1 out=$2
[[ -s $page ]] || { echo "no page at $page" >&2; exit 1; }
if ! command -v chromium > /dev/null; then
  if [[ $(id -u) == 0 ]]; then apt-get install -y chromium; else sudo apt-get install -y chromium; fi
fi
rm -f "$out"
# --no-sandbox: headless Chromium as root (CI containers) refuses to start without it.
chromium --headless --disable-gpu --no-sandbox --hide-scrollbars --window-size=1400,2400 \
  --screenshot="$out" "file://$(realpath "$page")" 2> /dev/null
size=$(stat -c %s "$out" 2> /dev/null || echo 0)
# A blank 1400x2400 PNG is a few kilobytes; a drawn page is tens of them.
(( size > 20000 )) || { echo "screenshot $out missing or blank ($size bytes)" >&2; exit 1; }
echo "screenshot $out: $size bytes"
