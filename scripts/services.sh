#!/usr/bin/env bash
# Make PostgreSQL and Redis available on loopback for tests and local clusters.
#   scripts/services.sh up     install when missing, start, create the test role; idempotent
#   scripts/services.sh down   stop what `up` started
#   scripts/services.sh env    print the exports (also written to .services.env)
# PostgreSQL refuses to run as root, so the Debian cluster runs as `postgres`.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_VERSION=${PG_VERSION:-15}
PG_CLUSTER=${PG_CLUSTER:-main}
PG_PORT=${PG_PORT:-5432}
PG_USER=threadwire
PG_PASSWORD=threadwire
REDIS_PORT=${REDIS_PORT:-6379}
ENV_FILE=.services.env

log() { printf 'services: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else
    log "need root for: $*"; return 1; fi
}

apt_install() {
  log "installing $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

pg_up() {
  if ! command -v pg_ctlcluster >/dev/null || [ ! -d "/usr/lib/postgresql/$PG_VERSION" ]; then
    apt_install "postgresql-$PG_VERSION"
  fi
  if ! pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -qx "$PG_VERSION $PG_CLUSTER"; then
    as_root pg_createcluster "$PG_VERSION" "$PG_CLUSTER" -p "$PG_PORT" >/dev/null
  fi
  if ! pg_lsclusters -h | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1==v && $2==c {print $4}' | grep -q online; then
    as_root pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start
  fi
  local port
  port=$(pg_lsclusters -h | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1==v && $2==c {print $3}')
  PG_PORT=$port
  for _ in $(seq 1 50); do
    pg_isready -q -h 127.0.0.1 -p "$PG_PORT" && break
    sleep 0.2
  done
  pg_isready -q -h 127.0.0.1 -p "$PG_PORT"
  as_root runuser -u postgres -- psql -q -p "$PG_PORT" -v ON_ERROR_STOP=1 <<SQL >/dev/null
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
    CREATE ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
  END IF;
END \$\$;
-- DROP DATABASE ... WITH (FORCE) of a test database must be able to end an autovacuum
-- worker that happens to be in it; without this the drop fails now and then.
GRANT pg_signal_backend TO $PG_USER;
SQL
  if ! as_root runuser -u postgres -- psql -p "$PG_PORT" -tAc \
      "SELECT 1 FROM pg_database WHERE datname = '$PG_USER'" | grep -q 1; then
    as_root runuser -u postgres -- createdb -p "$PG_PORT" -O "$PG_USER" "$PG_USER"
  fi
  log "postgresql $PG_VERSION/$PG_CLUSTER up on 127.0.0.1:$PG_PORT"
}

redis_up() {
  command -v redis-server >/dev/null || apt_install redis-server
  if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    # The Debian service may not run under every init; start our own daemon on loopback.
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes --save '' \
      --appendonly no --pidfile "/tmp/threadwire-redis-$REDIS_PORT.pid" \
      --logfile "/tmp/threadwire-redis-$REDIS_PORT.log"
    for _ in $(seq 1 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  fi
  redis-cli -p "$REDIS_PORT" ping >/dev/null
  log "redis up on 127.0.0.1:$REDIS_PORT"
}

write_env() {
  cat >"$ENV_FILE" <<ENV
export THREADWIRE_TEST_POSTGRES_URL=postgresql+asyncpg://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_USER
export THREADWIRE_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
ENV
  cat "$ENV_FILE"
}

case "${1:-up}" in
  up) pg_up; redis_up; write_env ;;
  env) write_env ;;
  down)
    redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    as_root pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" stop 2>/dev/null || true
    rm -f "$ENV_FILE"; log "stopped" ;;
  *) echo "usage: $0 up|down|env" >&2; exit 2 ;;
esac
