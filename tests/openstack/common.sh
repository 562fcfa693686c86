# shellcheck shell=bash disable=SC2034
# Shared by up.sh and down.sh (sourced, not run): where things live and how a
# process started by us is recognised.

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

# Everything that belongs to one checkout's control plane.
STATE=${ADMINVMS_OPENSTACK_STATE:-$ROOT/.openstack}
ETC=$STATE/etc
LOGS=$STATE/logs
RUN=$STATE/run
DATA=$STATE/data

# The control plane's venv lives outside the checkout, keyed by the Python
# version and the lock file's content, so every clone of the same lock shares it.
CACHE=${ADMINVMS_OPENSTACK_CACHE:-/var/cache/adminvms}
OS_PYTHON=${ADMINVMS_OPENSTACK_PYTHON:-python3}
LOCK_FILE=$HERE/requirements.lock

# Services, their ports (all on 127.0.0.1), and the processes we start, in
# start order. The six APIs are gunicorn apps; the rest are Nova's and
# Cinder's daemons.
API_SERVICES=(keystone placement glance neutron nova-api cinder-api)
declare -A PORT=([keystone]=5000 [placement]=8778 [glance]=9292 [neutron]=9696 [nova-api]=8774 [cinder-api]=8776)
declare -A WSGI_APP=(
  [keystone]=keystone.wsgi.api
  [placement]=placement.wsgi.api
  [glance]=glance.wsgi.api
  [neutron]=neutron.wsgi.api
  [nova-api]=nova.wsgi.osapi_compute
  [cinder-api]=cinder.wsgi.api
)
COMPUTE_HOSTS=(compute1 compute2)
NOVA_DAEMONS=(nova-conductor nova-scheduler nova-compute1 nova-compute2)
CINDER_DAEMONS=(cinder-scheduler cinder-volume)
ALL_PROCESSES=("${API_SERVICES[@]}" "${NOVA_DAEMONS[@]}" "${CINDER_DAEMONS[@]}")

say() { printf 'openstack: %s\n' "$*"; }
die() { printf 'openstack: ERROR: %s\n' "$*" >&2; exit 1; }

# A pidfile holds "PID STARTTIME" (field 22 of /proc/PID/stat), so a recycled
# pid is never mistaken for ours and never signalled. The command name (field
# 2) may hold spaces once a service sets its title, so count after its ")".
# A zombie (exited, not yet reaped) counts as gone.
proc_starttime() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) && awk '$1 != "Z" {print $20}' <<<"${stat##*) }"
}
pid_of() { # name -> pid, if the process recorded in its pidfile is still that process
  local file=$RUN/$1.pid pid start
  [ -r "$file" ] || return 1
  read -r pid start <"$file" || return 1
  [ -n "$pid" ] && [ "$(proc_starttime "$pid")" = "$start" ] && echo "$pid"
}
alive() { pid_of "$1" >/dev/null; }
