#!/usr/bin/env bash
# Serve adminvms: gunicorn on HOST:PORT and a Celery worker with an embedded
# beat, until Ctrl-C, SIGTERM or SIGHUP; then stop both, and everything they
# started, within ADMINVMS_STOP_TIMEOUT seconds. `make run` runs it after
# migrate, seed_demo and collectstatic.
#
#   HOST=127.0.0.1 PORT=8000 scripts/run.sh
#
# How it stops: each server runs in a process group of its own (job control),
# so a terminal's Ctrl-C reaches this script only, not the servers' children
# behind their parents' backs. The script sends SIGTERM to each server's main
# process, which stops its own children in order (gunicorn: its workers
# finish their requests, under a second; celery: warm shutdown, the running
# tasks finish, then the pool and beat stop, 6-7 s when idle, most of it
# celery's own 1-2 s polling loops), waits, and SIGKILLs each group still there
# after the timeout (default 15 s). A second Ctrl-C kills at once. Stopped by a
# signal, it exits 0 (make prints nothing); if a server stops on its own, it
# stops the other and exits with that server's status.
#
# Not `trap 'kill 0' EXIT INT TERM` (what the Makefile did): kill 0 signals the
# shell itself too, whose TERM trap runs kill 0 again, and again, until bash
# overflows its stack ("make: *** Segmentation fault"); meanwhile every process
# of the group got thousands of SIGTERMs, celery's pool processes and beat
# included, behind the worker's back, and make died first, leaving the worker
# to finish its shutdown after the prompt came back.
set -uo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
STOP_TIMEOUT=${ADMINVMS_STOP_TIMEOUT:-15}

say() { printf 'adminvms: %s\n' "$*" >&2; }

groups=() # the servers' process groups; each leader is the server's main process
any_left() { # any process left in the servers' groups
  local group
  for group in "${groups[@]}"; do kill -0 -- "-$group" 2>/dev/null && return 0; done
  return 1
}
kill_groups() {
  local group
  for group in "${groups[@]}"; do kill -KILL -- "-$group" 2>/dev/null; done
}

stop() { # exit status
  trap 'say "killing"; kill_groups' INT
  trap '' TERM HUP
  say "stopping (Ctrl-C again to kill)"
  ((${#groups[@]})) && kill -TERM "${groups[@]}" 2>/dev/null
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while any_left && ((SECONDS < deadline)); do sleep 0.2; done # bash reaps its children as they exit
  if any_left; then
    say "still running after ${STOP_TIMEOUT} s: killing"
    kill_groups
  fi
  wait 2>/dev/null
  exit "$1"
}
# Before the servers start: a Ctrl-C during start-up must not leave one behind.
trap 'stop 0' INT TERM HUP

set -m # every background job leads its own process group
"$VENV/bin/celery" -A adminvms_dashboard worker --beat --loglevel=INFO --concurrency=2 \
  --schedule="${ADMINVMS_DATA_DIR:-.data}/celerybeat-schedule" </dev/null &
groups+=($!)
"$VENV/bin/gunicorn" adminvms_dashboard.wsgi --bind "$HOST:$PORT" --workers 2 --threads 4 \
  --graceful-timeout 5 --access-logfile - </dev/null &
groups+=($!)
set +m # no "[1] Terminated" notices from job control for a server stopped before its signal handlers

# Until a signal comes or one of the servers exits.
wait -n
status=$?
say "a server exited with status $status: stopping the other"
stop "$status"
