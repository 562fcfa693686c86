# shellcheck shell=bash
# Shared by the scripts/ensure-*.sh bring-up scripts (sourced): messages, root, apt.
# Set SCRIPT_NAME before sourcing; it prefixes every message.

say() { printf '%s: %s\n' "${SCRIPT_NAME:-adminvms}" "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=0
apt_quiet() { # apt-get arguments; runs apt-get update once first
  if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get "$@" >/dev/null
}
apt_install() { apt_quiet install -y -qq "$@"; }
