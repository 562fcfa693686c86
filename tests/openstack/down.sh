#!/usr/bin/env bash
# Stop the test control plane that this checkout's up.sh started (by the pids
# it recorded, each checked against its start time), newest first. MariaDB,
# RabbitMQ and the databases stay; up.sh starts again in seconds.
#
#   tests/openstack/down.sh                  # everything
#   tests/openstack/down.sh keystone nova-api # just these (up.sh restarts what is missing)
#
# Names: keystone placement glance neutron nova-api cinder-api nova-conductor
# nova-scheduler nova-compute1 nova-compute2 cinder-scheduler cinder-volume.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if [ $# -gt 0 ]; then
  for name in "$@"; do
    [[ " ${ALL_PROCESSES[*]} " == *" $name "* ]] || die "unknown process $name (one of: ${ALL_PROCESSES[*]})"
  done
  selected=("$@")
else
  selected=("${ALL_PROCESSES[@]}")
fi

stopped=()
for ((i = ${#ALL_PROCESSES[@]} - 1; i >= 0; i--)); do
  name=${ALL_PROCESSES[$i]}
  [[ " ${selected[*]} " == *" $name "* ]] || continue
  if pid=$(pid_of "$name"); then
    # Each service leads its own process group (gunicorn's worker included).
    kill -TERM -- "-$pid" 2>/dev/null || true
    stopped+=("$name:$pid")
  fi
  rm -f "$RUN/$name.pid"
done
# Give them 10 s to finish in-flight requests, then make sure.
for ((t = 0; t < 40; t++)); do
  left=0
  for entry in "${stopped[@]}"; do kill -0 "${entry#*:}" 2>/dev/null && left=1; done
  [ $left = 0 ] && break
  sleep 0.25
done
for entry in "${stopped[@]}"; do
  pid=${entry#*:}
  if kill -0 "$pid" 2>/dev/null; then
    say "${entry%%:*} (pid $pid) ignored SIGTERM for 10 s: killing it"
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
done
rm -f "$RUN/ready"
if [ ${#stopped[@]} = 0 ]; then
  say "nothing of this checkout's control plane was running"
else
  say "stopped ${#stopped[@]} processes: $(printf '%s ' "${stopped[@]%%:*}")"
fi
