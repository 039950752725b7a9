#!/usr/bin/env bash
# Make sure the services the test suite uses answer: PostgreSQL on 127.0.0.1:5432 and Redis on
# 127.0.0.1:6379. Starts (and, as root, installs) only what is missing, and records what it started
# in a state file so that `stop` can stop exactly that afterwards. Fast and silent-ish when all is up.
#
#   scripts/test-services.sh [start] [STATE_FILE]
#   scripts/test-services.sh stop [STATE_FILE]
#
# STATE_FILE defaults to $SLIPWAY_TEST_SERVICES_STATE, else /tmp/slipway-test-services-$UID.state.
set -euo pipefail

PG_HOST=127.0.0.1
PG_PORT=5432
REDIS_HOST=127.0.0.1
REDIS_PORT=6379

action=${1:-start}
state=${2:-${SLIPWAY_TEST_SERVICES_STATE:-${TMPDIR:-/tmp}/slipway-test-services-$(id -u).state}}

say() { echo "test-services: $*"; }
is_root() { [ "$(id -u)" -eq 0 ]; }

apt_updated=0
apt_install() {
  if [ "$apt_updated" -eq 0 ]; then
    say "apt-get update"
    apt-get update -qq
    apt_updated=1
  fi
  say "apt-get install -y $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

tcp_open() { # host port
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

pg_up() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 2
  else
    tcp_open "$PG_HOST" "$PG_PORT"
  fi
}

redis_up() {
  if command -v redis-cli >/dev/null 2>&1; then
    [ "$(timeout 3 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]
  else
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf "PING\r\n" >&3 && read -r -t 2 reply <&3 &&
      [[ $reply == +PONG* ]]' "$REDIS_HOST" "$REDIS_PORT" 2>/dev/null
  fi
}

wait_for() { # seconds check-function
  local deadline=$((SECONDS + $1))
  until "$2"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.5
  done
}

pg_version() { # newest installed cluster version, if any
  ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1
}

# A PostgreSQL installed here from scratch is set up like the machines the suite is written for:
# trust authentication on loopback, a superuser role named after the current user, databases
# `test` and one named after that user.
pg_setup_fresh_cluster() {
  local version=$1 hba=/etc/postgresql/$1/main/pg_hba.conf user
  user=$(id -un)
  say "configuring the new PostgreSQL $version cluster (trust on loopback, role $user, database test)"
  {
    echo "# slipway test setup: trust on loopback"
    echo "local all all trust"
    echo "host all all 127.0.0.1/32 trust"
    echo "host all all ::1/128 trust"
    cat "$hba"
  } >"$hba.new"
  mv "$hba.new" "$hba"
  pg_ctlcluster --skip-systemctl-redirect "$version" main reload || true
  wait_for 30 pg_up
  psql -h "$PG_HOST" -U postgres -d postgres -v ON_ERROR_STOP=0 -q <<SQL >/dev/null 2>&1 || true
CREATE ROLE "$user" SUPERUSER LOGIN;
CREATE DATABASE "$user" OWNER "$user";
CREATE DATABASE test OWNER "$user";
SQL
}

start_postgres() {
  if pg_up; then
    say "PostgreSQL answers on $PG_HOST:$PG_PORT"
    return 0
  fi
  if ! is_root; then
    say "WARNING: PostgreSQL does not answer on $PG_HOST:$PG_PORT and we are not root;" \
      "start it yourself (tests that need it will fail)"
    return 0
  fi
  local fresh=0 version
  version=$(pg_version)
  if [ -z "$version" ] || ! command -v pg_ctlcluster >/dev/null 2>&1; then
    apt_install postgresql
    fresh=1
    version=$(pg_version)
    if pg_up; then # the package's own scripts started it
      pg_setup_fresh_cluster "$version"
      echo "postgres $version" >>"$state"
      say "PostgreSQL $version installed and running"
      return 0
    fi
  fi
  if [ ! -d "/etc/postgresql/$version/main" ]; then
    say "pg_createcluster $version main"
    pg_createcluster "$version" main >/dev/null
    fresh=1
  fi
  say "starting PostgreSQL $version (pg_ctlcluster $version main start)"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  echo "postgres $version" >>"$state"
  if ! wait_for 30 pg_up; then
    say "ERROR: PostgreSQL $version did not answer on $PG_HOST:$PG_PORT within 30 s" >&2
    return 1
  fi
  if [ "$fresh" -eq 1 ]; then
    pg_setup_fresh_cluster "$version"
  fi
  say "PostgreSQL $version is up"
}

start_redis() {
  if redis_up; then
    say "Redis answers on $REDIS_HOST:$REDIS_PORT"
    return 0
  fi
  if ! is_root; then
    say "WARNING: Redis does not answer on $REDIS_HOST:$REDIS_PORT and we are not root;" \
      "start it yourself (tests that need it will fail)"
    return 0
  fi
  if ! command -v redis-server >/dev/null 2>&1; then
    apt_install redis-server redis-tools
    if redis_up; then # the package's own scripts started it
      say "Redis installed and running (started by the package)"
      return 0
    fi
  fi
  local dir pidfile
  dir=$(dirname "$state")
  pidfile="$dir/slipway-test-redis-$REDIS_PORT.pid"
  say "starting redis-server on $REDIS_HOST:$REDIS_PORT"
  redis-server --daemonize yes --bind "$REDIS_HOST" --port "$REDIS_PORT" --save "" \
    --appendonly no --dir "$dir" --pidfile "$pidfile" --logfile "$dir/slipway-test-redis.log"
  if ! wait_for 15 redis_up; then
    say "ERROR: redis-server did not answer on $REDIS_HOST:$REDIS_PORT within 15 s" >&2
    return 1
  fi
  echo "redis $(cat "$pidfile")" >>"$state"
  say "Redis is up (pid $(cat "$pidfile"))"
}

stop_started() {
  if [ ! -s "$state" ]; then
    rm -f "$state"
    return 0
  fi
  local what arg
  while read -r what arg; do
    case $what in
      redis)
        say "stopping the Redis it started (pid $arg)"
        kill -TERM "$arg" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$arg" 2>/dev/null || break; sleep 0.1; done
        ;;
      postgres)
        say "stopping the PostgreSQL $arg cluster it started"
        pg_ctlcluster --skip-systemctl-redirect "$arg" main stop || true
        ;;
    esac
  done <"$state"
  rm -f "$state"
}

case $action in
  start)
    mkdir -p "$(dirname "$state")"
    touch "$state"
    start_postgres
    start_redis
    ;;
  stop)
    stop_started
    ;;
  *)
    echo "usage: $0 [start|stop] [STATE_FILE]" >&2
    exit 2
    ;;
esac
