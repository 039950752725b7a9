#!/usr/bin/env bash
# Make sure the services the test suite uses answer: PostgreSQL on 127.0.0.1:5432, Redis on
# 127.0.0.1:6379, MariaDB on 127.0.0.1:3306 and Docker on /var/run/docker.sock, with the stand-in
# base image local/busybox:1; and, as root, that /usr/sbin/sshd is installed (the tests run their
# own sshd "hosts" from it, see tests/support/sshd.py), and so are docker-registry and htpasswd
# (the tests run their own registries, see tests/support/registry.py). Starts (and, as root, installs) only what
# is missing, and records what it started in a state file so that `stop` can stop exactly that
# afterwards. Fast and silent-ish when all is up.
#
#   scripts/test-services.sh [start] [STATE_FILE]
#   scripts/test-services.sh stop [STATE_FILE]
#
# STATE_FILE defaults to $SLIPWAY_TEST_SERVICES_STATE, else /tmp/slipway-test-services-$UID.state.
# To try the Docker part against a throw-away daemon instead of the machine's, set
# SLIPWAY_TEST_DOCKER_SOCK (another socket path) and SLIPWAY_TEST_DOCKERD_ARGS (e.g. its own
# --data-root, --exec-root, --bridge=none --iptables=false).
set -euo pipefail

PG_HOST=127.0.0.1
PG_PORT=5432
REDIS_HOST=127.0.0.1
REDIS_PORT=6379
MARIADB_HOST=127.0.0.1
MARIADB_PORT=3306
MARIADBD=/usr/sbin/mariadbd
SSHD=/usr/sbin/sshd
REGISTRY=/usr/bin/docker-registry
DOCKER_SOCK=${SLIPWAY_TEST_DOCKER_SOCK:-/var/run/docker.sock}
DOCKERD_ARGS=${SLIPWAY_TEST_DOCKERD_ARGS:-}
DOCKERD=/usr/sbin/dockerd
BUSYBOX_IMAGE=local/busybox:1

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

mariadb_up() {
  tcp_open "$MARIADB_HOST" "$MARIADB_PORT"
}

# A MariaDB installed here from scratch is set up like the machines the suite is written for:
# root may log in over TCP from 127.0.0.1 without a password, and there is a database `test`.
mariadb_setup_fresh() {
  say "configuring the new MariaDB (root on $MARIADB_HOST without password, database test)"
  mariadb -u root <<SQL >/dev/null 2>&1 || true
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
CREATE DATABASE IF NOT EXISTS test;
SQL
}

start_mariadb() {
  if mariadb_up; then
    say "MariaDB answers on $MARIADB_HOST:$MARIADB_PORT"
    return 0
  fi
  if ! is_root; then
    say "WARNING: MariaDB does not answer on $MARIADB_HOST:$MARIADB_PORT and we are not root;" \
      "start it yourself (tests that need it will fail)"
    return 0
  fi
  local fresh=0
  if [ ! -x "$MARIADBD" ]; then
    apt_install mariadb-server mariadb-client
    fresh=1
    if mariadb_up; then # the package's own scripts started it
      mariadb_setup_fresh
      say "MariaDB installed and running (started by the package)"
      return 0
    fi
  fi
  if [ ! -d /var/lib/mysql/mysql ]; then
    say "mariadb-install-db (no data directory yet)"
    local out
    if ! out=$(mariadb-install-db --user=mysql 2>&1); then
      say "ERROR: mariadb-install-db failed:" >&2
      echo "$out" >&2
      return 1
    fi
    fresh=1
  fi
  local dir pidfile log
  dir=$(dirname "$state")
  pidfile="$dir/slipway-test-mariadb.pid"
  log="$dir/slipway-test-mariadb.log"
  if pgrep -x mariadbd >/dev/null 2>&1; then
    say "mariadbd runs but does not answer yet; waiting for it" # not ours to stop
  else
    install -d -o mysql -g mysql -m 0755 /run/mysqld
    say "starting mariadbd (log: $log)"
    start-stop-daemon --start --oknodo --background --make-pidfile --pidfile "$pidfile" \
      --exec "$MARIADBD" -- --user=mysql --log-error="$log"
    echo "mariadb $(cat "$pidfile")" >>"$state"
  fi
  if ! wait_for 60 mariadb_up; then
    say "ERROR: MariaDB did not answer on $MARIADB_HOST:$MARIADB_PORT within 60 s; the end of" \
      "$log:" >&2
    tail -n 20 "$log" >&2 2>/dev/null || true
    return 1
  fi
  if [ "$fresh" -eq 1 ]; then
    mariadb_setup_fresh
  fi
  say "MariaDB is up"
}

# A program the tests run themselves: installed with apt as root; otherwise named, and the tests
# that need it skip.
ensure_program() {
  local program=$1 package=$2 tests=$3
  if command -v "$program" >/dev/null 2>&1; then
    say "$program is installed ($(command -v "$program"))"
    return 0
  fi
  if ! is_root; then
    say "WARNING: $program is missing and we are not root; apt-get install $package" \
      "($tests are skipped)"
    return 0
  fi
  apt_install "$package"
  say "$program installed"
}

# Only the binary: the tests start their own sshd processes on loopback addresses.
ensure_sshd() { ensure_program "$SSHD" openssh-server "the SSH tests"; }

# The Dockerfile build tests make a Debian base image once (tests/builds/support.py).
ensure_debootstrap() { ensure_program debootstrap debootstrap "the Dockerfile build tests"; }

# Only the binaries: the tests run their own registries on 127.0.0.1:5000 and :5001 (the next
# free 127.0.0.1:50X0 pair when that is taken), see tests/support/registry.py.
ensure_registry() {
  local missing=()
  [ -x "$REGISTRY" ] || missing+=(docker-registry)
  command -v htpasswd >/dev/null 2>&1 || missing+=(apache2-utils)
  if [ ${#missing[@]} -eq 0 ]; then
    say "docker-registry and htpasswd are installed"
    return 0
  fi
  if ! is_root; then
    say "WARNING: ${missing[*]} missing and we are not root; apt-get install ${missing[*]}" \
      "(the registry tests are skipped)"
    return 0
  fi
  apt_install "${missing[@]}"
  if [[ " ${missing[*]} " == *" docker-registry "* ]]; then
    stop_package_registry
  fi
  say "${missing[*]} installed"
}

# Debian's package starts its own registry on :5000 (/etc/docker/registry/config.yml); the one
# we just installed is stopped and kept from starting at boot, so the tests' port is free. A
# registry that ran before this script is left alone (the tests then use the next port pair).
stop_package_registry() {
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    say "stopping and disabling the docker-registry service the package started"
    systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
  elif [ -x /etc/init.d/docker-registry ]; then
    if /etc/init.d/docker-registry status >/dev/null 2>&1; then
      say "stopping the docker-registry service the package started"
      /etc/init.d/docker-registry stop >/dev/null 2>&1 || true
    fi
    update-rc.d docker-registry disable >/dev/null 2>&1 || true
  fi
}

docker_cli() {
  docker -H "unix://$DOCKER_SOCK" "$@"
}

docker_up() {
  command -v docker >/dev/null 2>&1 && timeout 10 docker -H "unix://$DOCKER_SOCK" info >/dev/null 2>&1
}

static_busybox() { # prints the path of a statically linked busybox, if one is installed
  local candidate linkage
  for candidate in /bin/busybox /usr/bin/busybox /usr/local/bin/busybox; do
    [ -x "$candidate" ] || continue
    # ldd fails on a static binary (that is the point), so its status is not looked at.
    linkage=$(LC_ALL=C ldd "$candidate" 2>&1 || true)
    case $linkage in
      *"not a dynamic executable"* | *"statically linked"*)
        echo "$candidate"
        return 0
        ;;
    esac
  done
  return 1
}

start_docker() {
  if docker_up; then
    say "Docker answers on $DOCKER_SOCK"
    return 0
  fi
  if ! is_root; then
    say "WARNING: Docker does not answer on $DOCKER_SOCK and we are not root;" \
      "start it yourself (tests that need it are skipped)"
    return 0
  fi
  local missing=()
  if [ ! -x "$DOCKERD" ] || ! command -v docker >/dev/null 2>&1; then missing+=(docker.io); fi
  command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
  static_busybox >/dev/null || missing+=(busybox-static)
  if [ ${#missing[@]} -gt 0 ]; then
    apt_install "${missing[@]}"
    if docker_up; then # the package's own scripts started it
      say "Docker installed and running (started by the package)"
      return 0
    fi
  fi
  local dir pidfile log pid
  dir=$(dirname "$state")
  pidfile="$dir/slipway-test-dockerd.pid"
  log="$dir/slipway-test-dockerd.log"
  rm -f "$pidfile"
  say "starting dockerd on unix://$DOCKER_SOCK (log: $log)"
  # Its own session: it outlives this script and a Ctrl-C meant for pytest does not reach it.
  # shellcheck disable=SC2086 # DOCKERD_ARGS is a list of arguments
  setsid "$DOCKERD" --host "unix://$DOCKER_SOCK" --pidfile "$pidfile" $DOCKERD_ARGS \
    >"$log" 2>&1 </dev/null &
  pid=$!
  # Recorded at once, so that `stop` ends it even if it never answers.
  echo "dockerd $pid" >>"$state"
  local deadline=$((SECONDS + 60))
  until docker_up; do
    if ! kill -0 "$pid" 2>/dev/null; then
      say "ERROR: dockerd exited at start; the end of $log:" >&2
      tail -n 20 "$log" >&2 || true
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "ERROR: dockerd did not answer on $DOCKER_SOCK within 60 s; the end of $log:" >&2
      tail -n 20 "$log" >&2 || true
      return 1
    fi
    sleep 0.5
  done
  say "Docker is up (pid $pid)"
}

build_busybox_image() { # busybox-binary
  local busybox=$1 work applet
  work=$(mktemp -d "${TMPDIR:-/tmp}/slipway-busybox.XXXXXX")
  mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/tmp"
  chmod 1777 "$work/rootfs/tmp"
  cp "$busybox" "$work/rootfs/bin/busybox"
  # `busybox --list` names busybox itself too: a link by that name would replace the binary.
  while IFS= read -r applet; do
    if [ -n "$applet" ] && [ "$applet" != busybox ]; then
      ln -s busybox "$work/rootfs/bin/$applet"
    fi
  done < <("$busybox" --list)
  if tar -C "$work/rootfs" -cf "$work/rootfs.tar" . &&
    docker_cli import --change 'ENV PATH=/bin' "$work/rootfs.tar" "$BUSYBOX_IMAGE" >/dev/null; then
    rm -rf "$work"
    return 0
  fi
  rm -rf "$work"
  return 1
}

ensure_busybox_image() {
  if ! docker_up; then
    return 0 # already warned: no engine to put it in
  fi
  if docker_cli image inspect "$BUSYBOX_IMAGE" >/dev/null 2>&1; then
    say "image $BUSYBOX_IMAGE is present"
    return 0
  fi
  local busybox
  if ! busybox=$(static_busybox); then
    if is_root; then
      apt_install busybox-static
    fi
    if ! busybox=$(static_busybox); then
      say "WARNING: no statically linked busybox (apt-get install busybox-static), so no" \
        "$BUSYBOX_IMAGE (tests that need it fail)"
      return 0
    fi
  fi
  say "building $BUSYBOX_IMAGE from $busybox"
  if ! build_busybox_image "$busybox"; then
    say "ERROR: could not build $BUSYBOX_IMAGE" >&2
    return 1
  fi
  if [ "$(docker_cli run --rm "$BUSYBOX_IMAGE" sh -c 'echo ok' 2>/dev/null)" != ok ]; then
    say "WARNING: $BUSYBOX_IMAGE was built but a container of it does not run here"
  fi
  say "image $BUSYBOX_IMAGE built"
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
      mariadb)
        if ! grep -qs mariadbd "/proc/$arg/cmdline"; then
          continue # already gone (and its pid maybe reused): nothing of ours to stop
        fi
        say "stopping the MariaDB it started (pid $arg)"
        kill -TERM "$arg" 2>/dev/null || true
        for _ in $(seq 300); do kill -0 "$arg" 2>/dev/null || break; sleep 0.1; done
        ;;
      dockerd)
        # Its containers get dockerd's own shutdown timeout (15 s) to stop.
        if ! grep -qs dockerd "/proc/$arg/cmdline"; then
          continue # already gone (and its pid maybe reused): nothing of ours to stop
        fi
        say "stopping the dockerd it started (pid $arg)"
        kill -TERM "$arg" 2>/dev/null || true
        for _ in $(seq 300); do kill -0 "$arg" 2>/dev/null || break; sleep 0.1; done
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
    start_mariadb
    ensure_sshd
    ensure_registry
    ensure_debootstrap
    start_docker
    ensure_busybox_image
    ;;
  stop)
    stop_started
    ;;
  *)
    echo "usage: $0 [start|stop] [STATE_FILE]" >&2
    exit 2
    ;;
esac
