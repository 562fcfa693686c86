#!/usr/bin/env bash
# Make sure the services the tests need answer: PostgreSQL and Redis on their
# default local ports (or the ones DATABASE_URL / CELERY_BROKER_URL name).
# On a fresh Debian machine where they are missing, install Debian's packages
# and start them, and say so. Idempotent; prints one line per service.
set -euo pipefail

SCRIPT_NAME=ensure-services
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

# host and port from a URL such as postgres://user:pw@host:port/db
url_host() { python3 -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(p.hostname or "127.0.0.1")' "$1"; }
url_port() { python3 -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(p.port or sys.argv[2])' "$1" "$2"; }
answers() { python3 -c 'import socket,sys; s=socket.create_connection((sys.argv[1], int(sys.argv[2])), 2); s.close()' "$1" "$2" 2>/dev/null; }
wait_for() { for _ in $(seq 1 60); do answers "$1" "$2" && return 0; sleep 0.5; done; return 1; }

# --- PostgreSQL -------------------------------------------------------------
PG_URL=${DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/adminvms}
PG_HOST=$(url_host "$PG_URL"); PG_PORT=$(url_port "$PG_URL" 5432)
if answers "$PG_HOST" "$PG_PORT"; then
  say "PostgreSQL answers on $PG_HOST:$PG_PORT"
elif [ -n "${DATABASE_URL:-}" ]; then
  say "DATABASE_URL names $PG_HOST:$PG_PORT, which does not answer"; exit 1
else
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    say "PostgreSQL is missing: installing Debian's postgresql"
    apt_install postgresql
  fi
  say "starting PostgreSQL"
  for version in $(ls /etc/postgresql); do
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
  wait_for "$PG_HOST" "$PG_PORT" || { say "PostgreSQL did not start"; exit 1; }
  # A fresh cluster asks for a password over TCP: give postgres the one the
  # default DATABASE_URL uses (a local test database, nothing else).
  as_root su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null || true
  say "PostgreSQL answers on $PG_HOST:$PG_PORT"
fi

# --- Redis --------------------------------------------------------------------
REDIS_URL=${CELERY_BROKER_URL:-redis://127.0.0.1:6379/0}
RD_HOST=$(url_host "$REDIS_URL"); RD_PORT=$(url_port "$REDIS_URL" 6379)
if answers "$RD_HOST" "$RD_PORT"; then
  say "Redis answers on $RD_HOST:$RD_PORT"
elif [ -n "${CELERY_BROKER_URL:-}" ]; then
  say "CELERY_BROKER_URL names $RD_HOST:$RD_PORT, which does not answer"; exit 1
else
  if ! command -v redis-server >/dev/null; then
    say "Redis is missing: installing Debian's redis-server"
    apt_install redis-server
  fi
  say "starting Redis"
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 --port "$RD_PORT" --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/adminvms-tests.log
  wait_for "$RD_HOST" "$RD_PORT" || { say "Redis did not start"; exit 1; }
  say "Redis answers on $RD_HOST:$RD_PORT"
fi
