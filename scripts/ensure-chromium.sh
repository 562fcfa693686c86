#!/usr/bin/env bash
# Browser tests drive Debian's Chromium through Playwright: install it when missing.
set -euo pipefail
CHROMIUM=${ADMINVMS_CHROMIUM:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ]; then
  echo "ensure-chromium: $("$CHROMIUM" --version 2>/dev/null | head -1) at $CHROMIUM"
  exit 0
fi
SCRIPT_NAME=ensure-chromium
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
say "Chromium is missing: installing Debian's chromium"
apt_install chromium
say "$("$CHROMIUM" --version | head -1)"
