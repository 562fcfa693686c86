#!/usr/bin/env bash
# Make sure PYTHON (default python3) can create a venv with pip in it. Debian
# ships venv's ensurepip apart from the interpreter (python3.X-venv): without
# it, `python3 -m venv` answers --help but fails to create a venv ("ensurepip
# is not available"). On such a machine, install Debian's package and say so.
# A Python built elsewhere (pyenv, python.org) has ensurepip: nothing to do.
set -euo pipefail

SCRIPT_NAME=ensure-venv
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

PYTHON=${1:-${PYTHON:-python3}}
can_make_venvs() { "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; }

can_make_venvs && exit 0
command -v "$PYTHON" >/dev/null || { say "$PYTHON not found: install Python 3.11 or newer"; exit 1; }
if ! command -v apt-get >/dev/null; then
  say "$PYTHON cannot create venvs (no ensurepip) and this is not Debian: install its venv module"
  exit 1
fi
version=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
package=python$version-venv
if dpkg-query -W -f '${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
  say "$PYTHON has no ensurepip although $package is installed: it is not Debian's python$version; install its venv module"
  exit 1
fi
say "$PYTHON cannot create venvs (no ensurepip): installing Debian's $package"
apt_install --no-upgrade "$package"
can_make_venvs || { say "$PYTHON still has no ensurepip after installing $package"; exit 1; }
