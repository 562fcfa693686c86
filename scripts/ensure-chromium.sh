#!/usr/bin/env bash
# Browser tests drive Debian's Chromium through Playwright: install it when missing.
set -euo pipefail
CHROMIUM=${ADMINVMS_CHROMIUM:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ]; then
  echo "ensure-chromium: $("$CHROMIUM" --version 2>/dev/null | head -1) at $CHROMIUM"
  exit 0
fi
echo "ensure-chromium: Chromium is missing: installing Debian's chromium"
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
as_root apt-get update -qq
DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >/dev/null
echo "ensure-chromium: $("$CHROMIUM" --version | head -1)"
