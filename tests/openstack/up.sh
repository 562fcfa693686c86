#!/usr/bin/env bash
# Bring up adminvms' test OpenStack control plane on 127.0.0.1, idempotently:
# Keystone, Placement, Glance, Neutron (ML2, no agents), Nova (API,
# conductor, scheduler and two nova-compute with the fake virt driver) and
# Cinder (API, scheduler, volume with Cinder's fake driver), on the local
# MariaDB and RabbitMQ; then what the demo and tests need (projects, users,
# networks, flavors, images) and .openstack/clouds.yaml.
#
#   tests/openstack/up.sh      # or: make openstack-up
#   tests/openstack/down.sh    # or: make openstack-down
#
# Re-running it while everything answers returns in well under a second and
# changes nothing. Logs: .openstack/logs/ (one file per process, plus setup.log).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

T0=$(date +%s%N)
elapsed() { awk -v now="$(date +%s%N)" -v t="${1:-$T0}" 'BEGIN { printf "%.1f", (now - t) / 1e9 }'; }
step() { say "$* [$(elapsed) s]"; }

DB_USER=openstack
DB_PASSWORD=openstack-secret # test-only, 127.0.0.1
DB_PREFIX="mysql+pymysql://$DB_USER:$DB_PASSWORD@127.0.0.1:3306"
DATABASES=(keystone placement glance nova_api nova nova_cell0 neutron cinder)
RABBIT_URL=${ADMINVMS_OPENSTACK_RABBIT_URL:-rabbit://guest:guest@127.0.0.1:5672/}
KEYSTONE_URL=http://127.0.0.1:${PORT[keystone]}
# gunicorn's options for every API: one worker with a few threads (the tests'
# load is a handful of concurrent calls, and every extra worker costs 100-200
# MB). --keep-alive: gunicorn closes an idle keep-alive connection after 2 s by
# default, and openstacksdk polls every 2 s, so a client now and then sent a
# request on a connection the server was closing ("Connection reset by peer"
# from nova-api on a fresh clone). 75 s, a typical load balancer's idle timeout,
# outlasts any client's pause between two polls.
GUNICORN_OPTS=(--workers 1 --worker-class gthread --threads 4 --timeout 120 --graceful-timeout 5 --keep-alive 75)
export ADMINVMS_OS_ADMIN_PASSWORD=admin-secret ADMINVMS_OS_SERVICE_PASSWORD=service-secret

mkdir -p "$ETC" "$LOGS" "$RUN" "$DATA"
# One bring-up at a time per checkout. Everything this script starts gets fd 8
# and 9 closed (see start, as_root): a daemon inheriting the lock would hold it.
exec 9>"$RUN/up.lock"
if ! flock -w 600 9; then
  holders=$(for fd in /proc/[0-9]*/fd/*; do [ "$(readlink "$fd" 2>/dev/null)" = "$RUN/up.lock" ] && echo "${fd%/fd/*}"; done)
  die "another up.sh has held $RUN/up.lock for 10 minutes (held by: ${holders//\/proc\//})"
fi

as_root() { if [ "$(id -u)" = 0 ]; then "$@" 8>&- 9>&-; else sudo "$@" 8>&- 9>&-; fi; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { # port seconds
  local i
  for ((i = 0; i < $2 * 4; i++)); do port_open "$1" && return 0; sleep 0.25; done
  return 1
}
# Every URL answers HTTP (any status, 401 included) within 2 s.
http_answers() {
  python3 - "$@" <<'EOF' 2>/dev/null
import sys, urllib.error, urllib.request
for url in sys.argv[1:]:
    try:
        urllib.request.urlopen(url, timeout=2)
    except urllib.error.HTTPError:
        pass
    except Exception:
        sys.exit(1)
EOF
}
apis_answer() { # service names
  local urls=() s
  for s in "$@"; do urls+=("http://127.0.0.1:${PORT[$s]}/"); done
  http_answers "${urls[@]}"
}

# --- the venv ----------------------------------------------------------------
PYVER=$("$OS_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
LOCK_SHA=$(sha256sum "$LOCK_FILE" | cut -c1-16)
VENV=$CACHE/openstack-venv-py$PYVER-$LOCK_SHA
ML2_SHA=$(cd "$HERE/adminvms_ml2" && sha256sum pyproject.toml adminvms_ml2/*.py | sha256sum | cut -c1-16)

ensure_venv() {
  if [ ! -f "$VENV/.complete" ]; then
    as_root mkdir -p "$CACHE"
    # Clones sharing the cache serialise here; the loser finds it complete.
    exec 8>"$CACHE/.install.lock"
    flock 8
    if [ ! -f "$VENV/.complete" ]; then
      local t
      t=$(date +%s%N)
      say "installing the control plane into $VENV (about a minute; log: $LOGS/setup.log)"
      rm -rf "$VENV"
      "$OS_PYTHON" -m venv "$VENV"
      # Chained with &&: `set -e` does not apply left of `||`, and a failed
      # install followed by a passing `pip check` (of a nearly empty venv) was
      # once marked complete.
      {
        "$VENV/bin/pip" install --quiet --upgrade pip &&
          # The lock is a complete `pip freeze`: no resolution, nothing else comes in.
          "$VENV/bin/pip" install --quiet --no-deps -r "$LOCK_FILE" &&
          "$VENV/bin/pip" check
      } >>"$LOGS/setup.log" 2>&1 || die "installing from $LOCK_FILE failed; see $LOGS/setup.log"
      touch "$VENV/.complete"
      BRINGUP_KIND="install, "
      step "installed $(grep -cv "^#" "$LOCK_FILE") pinned packages in $(elapsed "$t") s"
    fi
    flock -u 8
  fi
  if [ ! -f "$VENV/.adminvms-ml2-$ML2_SHA" ]; then
    # Our mechanism driver; its source hash is stamped so an edit reinstalls it.
    # Built from a copy: a build leaves build/ and *.egg-info beside the sources.
    local src
    src=$(mktemp -d)
    cp -r "$HERE/adminvms_ml2/pyproject.toml" "$HERE/adminvms_ml2/adminvms_ml2" "$src/"
    "$VENV/bin/pip" install --quiet --no-deps --force-reinstall "$src" \
      >>"$LOGS/setup.log" 2>&1 || die "installing adminvms_ml2 failed; see $LOGS/setup.log"
    rm -rf "$src"
    rm -f "$VENV"/.adminvms-ml2-*
    touch "$VENV/.adminvms-ml2-$ML2_SHA"
    say "installed the adminvms_ml2 mechanism driver"
  fi
}

# --- configuration -------------------------------------------------------------
render() { # template -> destination, written only when it changes
  local template=$1 dest=$2 host=${3:-} tmp
  tmp=$(mktemp)
  sed -e "s|@DB_PREFIX@|$DB_PREFIX|g" -e "s|@RABBIT_URL@|$RABBIT_URL|g" -e "s|@KEYSTONE_URL@|$KEYSTONE_URL|g" \
    -e "s|@SERVICE_PASSWORD@|$ADMINVMS_OS_SERVICE_PASSWORD|g" -e "s|@DATA@|$DATA|g" -e "s|@VENV@|$VENV|g" \
    -e "s|@LOGS@|$LOGS|g" -e "s|@ETC@|$ETC|g" -e "s|@HOST@|$host|g" "$template" >"$tmp"
  mkdir -p "$(dirname "$dest")"
  if cmp -s "$tmp" "$dest"; then rm -f "$tmp"; else mv "$tmp" "$dest" && chmod 600 "$dest"; fi
}
install_if_changed() { mkdir -p "$(dirname "$2")"; cmp -s "$1" "$2" || install -m 600 "$1" "$2"; }
render_configs() {
  local t=$HERE/etc host
  # The paste pipelines as the packages ship them, found beside each config.
  install_if_changed "$VENV/etc/glance/glance-api-paste.ini" "$ETC/glance/glance-api-paste.ini"
  install_if_changed "$VENV/etc/neutron/api-paste.ini" "$ETC/neutron/api-paste.ini"
  install_if_changed "$VENV/etc/nova/api-paste.ini" "$ETC/nova/api-paste.ini"
  install_if_changed "$VENV/etc/cinder/api-paste.ini" "$ETC/cinder/api-paste.ini"
  install_if_changed "$VENV/etc/cinder/resource_filters.json" "$ETC/cinder/resource_filters.json"
  render "$t/keystone/keystone.conf" "$ETC/keystone/keystone.conf"
  render "$t/placement/placement.conf" "$ETC/placement/placement.conf"
  render "$t/glance/glance-api.conf" "$ETC/glance/glance-api.conf"
  render "$t/neutron/neutron.conf" "$ETC/neutron/neutron.conf"
  render "$t/neutron/ml2_conf.ini" "$ETC/neutron/ml2_conf.ini"
  render "$t/nova/nova.conf" "$ETC/nova/nova.conf"
  for host in "${COMPUTE_HOSTS[@]}"; do render "$t/nova/compute.conf" "$ETC/nova/compute-$host.conf" "$host"; done
  render "$t/cinder/cinder.conf" "$ETC/cinder/cinder.conf"
  # What the running processes were started with: configs, venv, shim, gunicorn's options.
  CONFIG_SHA=$( (cd "$ETC" && find . -type f | LC_ALL=C sort | xargs sha256sum; echo "$VENV $ML2_SHA";
    echo "${GUNICORN_OPTS[*]}"; sha256sum "$HERE/wsgi_shim.py" "$HERE/bootstrap.py") | sha256sum | cut -c1-16)
}

# --- MariaDB and RabbitMQ --------------------------------------------------------
apt_updated=0
apt_install() {
  if [ $apt_updated = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq -o Dpkg::Options::=--force-confold "$@" \
    >>"$LOGS/setup.log" 2>&1
}
ensure_mariadb() {
  port_open 3306 && return 0
  if [ ! -x /usr/sbin/mariadbd ]; then
    say "MariaDB is missing: installing Debian's mariadb-server"
    # Written before the install, so even a postinst that starts it binds to loopback.
    as_root mkdir -p /etc/mysql/mariadb.conf.d
    printf '[mysqld]\nuser = mysql\nbind-address = 127.0.0.1\nskip-name-resolve\n' |
      as_root tee /etc/mysql/mariadb.conf.d/60-adminvms.cnf >/dev/null
    apt_install mariadb-server
  fi
  if ! port_open 3306; then
    say "starting MariaDB"
    as_root install -d -o mysql -g mysql /run/mysqld
    as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
  fi
  wait_port 3306 60 || die "MariaDB did not start on 127.0.0.1:3306"
}
ensure_rabbitmq() {
  port_open 5672 && return 0
  if ! command -v rabbitmq-server >/dev/null; then
    say "RabbitMQ is missing: installing Debian's rabbitmq-server"
    as_root mkdir -p /etc/rabbitmq
    [ -e /etc/rabbitmq/rabbitmq.conf ] ||
      echo 'listeners.tcp.local = 127.0.0.1:5672' | as_root tee /etc/rabbitmq/rabbitmq.conf >/dev/null
    [ -e /etc/rabbitmq/rabbitmq-env.conf ] ||
      printf 'NODENAME=rabbit@localhost\nERL_EPMD_ADDRESS=127.0.0.1\nexport ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}"\n' |
      as_root tee /etc/rabbitmq/rabbitmq-env.conf >/dev/null
    apt_install rabbitmq-server
  fi
  if ! port_open 5672; then
    say "starting RabbitMQ"
    as_root rabbitmq-server -detached >>"$LOGS/setup.log" 2>&1
  fi
  wait_port 5672 90 || die "RabbitMQ did not start on 127.0.0.1:5672"
}

# --- databases -------------------------------------------------------------------
# As MariaDB's root over its socket (a fresh Debian install authenticates
# root by unix_socket); the services use their own user over TCP.
sql() { as_root "$(command -v mariadb || command -v mysql)" -uroot -N -B -e "$1"; }
ensure_databases() {
  # The databases belong to this checkout's data folder (fernet keys, image
  # files, the stamps below): its id is the databases' schema comment. Databases
  # of another folder (another clone, a deleted .openstack) are dropped and made
  # anew, so the data on disk and in MariaDB always match.
  [ -f "$DATA/id" ] || python3 -c 'import uuid; print(uuid.uuid4())' >"$DATA/id"
  local id marker in_list found ours=0 foreign=0 db missing=()
  id=$(cat "$DATA/id")
  marker="adminvms-openstack:$id"
  in_list=$(printf "'%s'," "${DATABASES[@]}")
  found=$(sql "SELECT SCHEMA_NAME, SCHEMA_COMMENT FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN (${in_list%,})")
  while IFS=$'\t' read -r db comment; do
    [ -n "$db" ] || continue
    if [ "$comment" = "$marker" ]; then ours=$((ours + 1))
    elif [[ "$comment" == adminvms-openstack:* ]] || [ "${ADMINVMS_OPENSTACK_RESET_DB:-0}" = 1 ]; then foreign=$((foreign + 1))
    else die "database $db exists and was not made by this script; drop it or set ADMINVMS_OPENSTACK_RESET_DB=1"
    fi
  done <<<"$found"
  [ $ours = ${#DATABASES[@]} ] && return 0
  if [ $foreign = 0 ] && [ $ours -gt 0 ]; then
    # All ours, some missing: a service added since (cinder), or a database
    # dropped by hand. Make just those, and forget what their stamps said.
    for db in "${DATABASES[@]}"; do
      grep -q "^$db"$'\t' <<<"$found" || missing+=("$db")
    done
    for db in "${missing[@]}"; do
      case $db in
        nova*) rm -f "$DATA"/stamp-schema-nova-* ;;
        keystone) rm -f "$DATA"/stamp-schema-keystone-* "$DATA/stamp-keystone-bootstrap" "$DATA/stamp-identity" ;;
        glance) rm -f "$DATA"/stamp-schema-glance-* && rm -rf "$DATA/glance/images" ;;
        *) rm -f "$DATA/stamp-schema-$db-"* ;;
      esac
    done
  else
    if [ $((ours + foreign)) -gt 0 ]; then
      say "the control plane's databases are not this checkout's ($STATE): making them anew"
    fi
    rm -f "$DATA"/stamp-*
    rm -rf "$DATA/glance/images"
    missing=("${DATABASES[@]}")
  fi
  local statements="CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
    CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASSWORD';"
  for db in "${missing[@]}"; do
    statements+="DROP DATABASE IF EXISTS $db;
      CREATE DATABASE $db CHARACTER SET utf8 COMMENT '$marker';
      GRANT ALL PRIVILEGES ON $db.* TO '$DB_USER'@'127.0.0.1';
      GRANT ALL PRIVILEGES ON $db.* TO '$DB_USER'@'localhost';"
  done
  sql "$statements"
  step "created databases ${missing[*]}"
}

run_logged() { # name command... : output to logs/setup-NAME.log
  local name=$1; shift
  "$@" >>"$LOGS/setup-$name.log" 2>&1 || { echo "$name: '$*' failed" >>"$LOGS/setup-$name.log"; return 1; }
}
# Each service's schema is stamped with the lock's hash: a new lock (new
# releases) runs the migrations again, an unchanged one skips them.
schema() { # service command...
  local name=$1 stamp=$DATA/stamp-schema-$1-$LOCK_SHA; shift
  [ -f "$stamp" ] && return 0
  "$@" && touch "$stamp"
}
nova_schemas() {
  local nova_manage=("$VENV/bin/nova-manage" --config-file "$ETC/nova/nova.conf")
  run_logged nova "${nova_manage[@]}" api_db sync
  run_logged nova "${nova_manage[@]}" cell_v2 map_cell0 --database_connection "$DB_PREFIX/nova_cell0?charset=utf8"
  if [ -z "$(sql "SELECT name FROM nova_api.cell_mappings WHERE name = 'cell1'")" ]; then
    run_logged nova "${nova_manage[@]}" cell_v2 create_cell --name cell1 --verbose
  fi
  # Upgrades cell1 and cell0.
  run_logged nova "${nova_manage[@]}" db sync
}

# One chain per service, all in parallel: schema, then the API. Keystone's
# chain goes on to the bootstrap and the projects, users and catalog.
keystone_chain() {
  local km=("$VENV/bin/keystone-manage" --config-file "$ETC/keystone/keystone.conf")
  mkdir -p "$DATA/keystone"
  [ -f "$DATA/keystone/fernet-keys/0" ] ||
    run_logged keystone "${km[@]}" fernet_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)" &
  [ -f "$DATA/keystone/credential-keys/0" ] ||
    run_logged keystone "${km[@]}" credential_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)" &
  schema keystone run_logged keystone "${km[@]}" db_sync
  wait # for the key setups
  if [ ! -f "$DATA/keystone/fernet-keys/0" ] || [ ! -f "$DATA/keystone/credential-keys/0" ]; then
    die "keystone key setup failed: see $LOGS/setup-keystone.log"
  fi
  if [ ! -f "$DATA/stamp-keystone-bootstrap" ]; then
    run_logged keystone "${km[@]}" bootstrap --bootstrap-password "$ADMINVMS_OS_ADMIN_PASSWORD" \
      --bootstrap-region-id RegionOne --bootstrap-public-url "$KEYSTONE_URL/v3" \
      --bootstrap-internal-url "$KEYSTONE_URL/v3" --bootstrap-admin-url "$KEYSTONE_URL/v3"
    touch "$DATA/stamp-keystone-bootstrap"
  fi
  start_api keystone
  wait_apis keystone
  step "keystone answers"
  "$VENV/bin/python" "$HERE/bootstrap.py" identity | tee -a "$LOGS/setup.log"
  touch "$DATA/stamp-identity"
  step "identity ready"
}
api_chain() { # service
  case $1 in
    placement) schema placement run_logged placement "$VENV/bin/placement-manage" \
      --config-file "$ETC/placement/placement.conf" db sync ;;
    glance) schema glance run_logged glance "$VENV/bin/glance-manage" --config-file "$ETC/glance/glance-api.conf" db_sync ;;
    neutron) schema neutron run_logged neutron "$VENV/bin/neutron-db-manage" --config-file "$ETC/neutron/neutron.conf" \
      --config-file "$ETC/neutron/ml2_conf.ini" upgrade heads ;;
    nova-api) schema nova nova_schemas ;;
    cinder-api)
      # Keystone's chain is the bring-up's critical path and these chains share
      # two cores: Cinder's migrations (and its three processes) wait until
      # Keystone's own are done, which took ~10 s off a fresh bring-up.
      local i=0
      while [ ! -f "$DATA/stamp-schema-keystone-$LOCK_SHA" ] && [ $((i++)) -lt 480 ]; do sleep 0.25; done
      schema cinder run_logged cinder "$VENV/bin/cinder-manage" --config-file "$ETC/cinder/cinder.conf" db sync ;;
  esac
  start_api "$1"
  if [ "$1" = cinder-api ]; then
    # Cinder's daemons need only the schema (and RabbitMQ): no Keystone user.
    start_cinder cinder-scheduler
    start_cinder cinder-volume
  fi
}
start_nova_daemons() {
  # Only once Keystone has their users: the trial run (issue 7) found that
  # conductor and scheduler started before that did not work.
  start_nova nova-conductor nova-conductor
  start_nova nova-scheduler nova-scheduler
  for host in "${COMPUTE_HOSTS[@]}"; do
    ensure_node_identity "$host"
    start_nova "nova-$host" nova-compute --config-file "$ETC/nova/compute-$host.conf"
  done
}
start_control_plane() {
  mkdir -p "$DATA/glance/images" "$DATA/glance/staging" "$DATA/glance/tasks" "$DATA/neutron" "$DATA/nova/control" \
    "$DATA/cinder"
  if ! ls "$DATA"/stamp-schema-*-"$LOCK_SHA" >/dev/null 2>&1; then
    BRINGUP_KIND+="new schemas, "
    say "creating the schemas, each service's API as soon as its own is ready (logs: $LOGS/setup-*.log)"
  fi
  local pids=() names=() i failed=0 name
  # With the schemas and Keystone's users in place already (a restart), the
  # Nova daemons start at once; on a first start they wait for both.
  if [ -f "$DATA/stamp-identity" ] && [ -f "$DATA/stamp-schema-nova-$LOCK_SHA" ]; then start_nova_daemons; fi
  keystone_chain & pids+=($!) names+=(keystone)
  for name in placement glance neutron nova-api cinder-api; do api_chain "$name" & pids+=($!) names+=("$name"); done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { say "${names[$i]} failed: see $LOGS/setup-${names[$i]%-api}.log and $LOGS/${names[$i]}.log"; failed=1; }
  done
  [ $failed = 0 ] || die "bring-up failed"
}

ensure_node_identity() { # host
  # nova-compute keeps its node's uuid in state_path/compute_id and refuses to
  # start when the database knows the node but the file is gone (a cleaned
  # data folder); the database is the truth here, so write the file from it.
  local dir=$DATA/nova/$1 uuid
  mkdir -p "$dir"
  [ -s "$dir/compute_id" ] && return 0
  uuid=$(sql "SELECT uuid FROM nova.compute_nodes WHERE host = '$1' AND deleted = 0 LIMIT 1")
  if [ -n "$uuid" ]; then
    printf '%s' "$uuid" >"$dir/compute_id"
    say "restored the node identity of $1 ($uuid) from the database"
  fi
}

# --- processes ---------------------------------------------------------------------
start() { # name command... : detached in its own session, output to logs/NAME.log
  local name=$1; shift
  alive "$name" && return 0
  echo "=== $(date -Is) starting: $*" >>"$LOGS/$name.log"
  # Not a process-group leader (no job control in scripts), so setsid does
  # not fork and $! is the service itself, leader of its own process group.
  # The lock descriptors stay here: a service holding them would block the next up.sh.
  setsid "$@" </dev/null >>"$LOGS/$name.log" 2>&1 8>&- 9>&- &
  local pid=$!
  echo "$pid $(proc_starttime "$pid")" >"$RUN/$name.pid"
}
start_api() {
  local name=$1
  local env=(env ADMINVMS_WSGI_APP="${WSGI_APP[$name]}" OS_KEYSTONE_CONFIG_DIR="$ETC/keystone"
    OS_PLACEMENT_CONFIG_DIR="$ETC/placement" OS_GLANCE_CONFIG_DIR="$ETC/glance"
    # nova-api loads its paste pipeline from the first of these files.
    OS_NOVA_CONFIG_DIR="$ETC/nova" OS_NOVA_CONFIG_FILES="api-paste.ini;nova.conf"
    OS_NEUTRON_CONFIG_DIR="$ETC/neutron" OS_NEUTRON_CONFIG_FILES="neutron.conf;ml2_conf.ini"
    # Cinder reads only its command line (see wsgi_shim.py); api-paste.ini is found beside cinder.conf.
    ADMINVMS_WSGI_ARGS="$([ "$name" = cinder-api ] && echo "--config-file $ETC/cinder/cinder.conf")")
  start "$name" "${env[@]}" "$VENV/bin/gunicorn" --name "adminvms-$name" --chdir "$STATE" --pythonpath "$HERE" \
    --bind "127.0.0.1:${PORT[$name]}" "${GUNICORN_OPTS[@]}" --access-logfile - --error-logfile - \
    --access-logformat '%(h)s "%(r)s" %(s)s %(b)s %(M)sms' wsgi_shim:application
}
start_nova() {
  local name=$1 binary=$2; shift 2
  start "$name" "$VENV/bin/$binary" --config-file "$ETC/nova/nova.conf" "$@"
}
start_cinder() { # name (= the binary)
  start "$1" "$VENV/bin/$1" --config-file "$ETC/cinder/cinder.conf"
}
ports_free_or_ours() {
  local name
  for name in "${API_SERVICES[@]}"; do
    alive "$name" && continue
    if port_open "${PORT[$name]}"; then
      die "127.0.0.1:${PORT[$name]} ($name) is taken by a process this checkout did not start:
$(ss -ltnp "sport = :${PORT[$name]}" 2>/dev/null | tail -n +2)
Stop it (another clone's tests/openstack/down.sh?) and run again."
    fi
  done
}
wait_apis() { # names...
  local i
  for ((i = 0; i < 480; i++)); do
    apis_answer "$@" && return 0
    for name in "$@"; do
      alive "$name" || die "$name exited while starting; see $LOGS/$name.log:
$(tail -n 15 "$LOGS/$name.log")"
    done
    sleep 0.25
  done
  die "$* did not answer within 120 s; see $LOGS/"
}

summary() {
  say "up in $(elapsed) s; endpoints (all 127.0.0.1): keystone :${PORT[keystone]}/v3, nova :${PORT[nova-api]}/v2.1," \
    "cinder :${PORT[cinder-api]}/v3, neutron :${PORT[neutron]}, glance :${PORT[glance]}, placement :${PORT[placement]}"
  say "clouds: $STATE/clouds.yaml (adminvms-test, adminvms-test-lock, adminvms-member, adminvms-acme, adminvms-globex);" \
    "source $STATE/env"
  say "logs: $LOGS/"
}

# --- main ----------------------------------------------------------------------------
BRINGUP_KIND=""
ensure_venv
# The control plane's Python (with openstacksdk), for smoke.py and tools. A
# script, not a symlink: a venv's python finds its venv from its own path.
PY_SHIM=$(printf '#!/bin/sh\nexec %s "$@"\n' "$VENV/bin/python")
if [ "$(cat "$STATE/python" 2>/dev/null)" != "$PY_SHIM" ]; then
  rm -f "$STATE/python" && echo "$PY_SHIM" >"$STATE/python" && chmod +x "$STATE/python"
fi
render_configs

all_alive() { local n; for n in "${ALL_PROCESSES[@]}"; do alive "$n" || return 1; done; }
if all_alive && [ "$(cat "$RUN/config.sha" 2>/dev/null)" = "$CONFIG_SHA" ] && [ -f "$RUN/ready" ] &&
  [ -f "$STATE/clouds.yaml" ] && port_open 3306 && port_open 5672 && apis_answer "${API_SERVICES[@]}"; then
  say "already up"
  summary
  exit 0
fi

ensure_mariadb
ensure_rabbitmq
if [ "$(cat "$RUN/config.sha" 2>/dev/null)" != "$CONFIG_SHA" ]; then
  for name in "${ALL_PROCESSES[@]}"; do
    if alive "$name"; then
      say "configuration or installation changed since the control plane started: restarting it"
      bash "$HERE/down.sh"
      break
    fi
  done
fi
rm -f "$RUN/ready"
ports_free_or_ours
ensure_databases
echo "$CONFIG_SHA" >"$RUN/config.sha"
start_control_plane
start_nova_daemons
wait_apis "${API_SERVICES[@]}"
step "all APIs answer"
# The compute services in the database may still look up from processes that
# just died; bootstrap checks these processes and their fresh reports instead.
ADMINVMS_OS_COMPUTE_PIDS=$(for host in "${COMPUTE_HOSTS[@]}"; do printf '%s:%s ' "$host" "$(pid_of "nova-$host")"; done) \
  "$VENV/bin/python" "$HERE/bootstrap.py" resources | tee -a "$LOGS/setup.log"
"$VENV/bin/python" "$HERE/bootstrap.py" clouds "$STATE" | tee -a "$LOGS/setup.log"
touch "$RUN/ready"
echo "$(elapsed) s (${BRINGUP_KIND}start; finished $(date -Is))" >"$RUN/bringup.txt"
summary
