#!/usr/bin/env bash
# Run a complete local slipway in the foreground (`make run`):
#   1. Redis: SLIPWAY_REDIS_URL if set; else 127.0.0.1:6379 if it answers; else a private
#      redis-server started here (port 6390 or the next free one, plus a unix socket in the data dir);
#   2. `slipway db upgrade`;
#   3. the first admin, only when no user `admin` exists (its password is printed once);
#   4. `slipway api` and one `slipway worker`.
# Ctrl-C or SIGTERM stops everything this script started and exits 0; if any of those processes
# dies on its own, the others are stopped and the script exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."

SLIPWAY=$PWD/.venv/bin/slipway
PY=$PWD/.venv/bin/python
if [ ! -x "$SLIPWAY" ]; then
  echo "no .venv/bin/slipway: run 'make run' (it creates the venv first)" >&2
  exit 1
fi

say() { echo "run: $*"; }

# --- settings this script needs: the environment wins, then .env (as slipway itself reads them) ---
dotenv_get() { # NAME -> value from ./.env, or nothing
  [ -f .env ] || return 0
  "$PY" - "$1" <<'PY'
import sys
from dotenv import dotenv_values
value = dotenv_values(".env").get(sys.argv[1])
if value:
    print(value)
PY
}
setting() { # NAME DEFAULT
  if [ -n "${!1:-}" ]; then
    printf '%s\n' "${!1}"
  else
    local value
    value=$(dotenv_get "$1")
    printf '%s\n' "${value:-$2}"
  fi
}

DATA_DIR=$(setting SLIPWAY_DATA_DIR ./data)
HOST=$(setting SLIPWAY_HOST 127.0.0.1)
PORT=$(setting SLIPWAY_PORT 8000)
REDIS_URL=$(setting SLIPWAY_REDIS_URL "")
mkdir -p "$DATA_DIR"
DATA_DIR=$(cd "$DATA_DIR" && pwd)

# --- processes started here, stopped in reverse order on the way out ---
PIDS=()
NAMES=()

alive() { # pid: running and not a zombie
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

start_bg() { # NAME COMMAND... : start in its own session, so a terminal's Ctrl-C reaches only us
  local name=$1
  shift
  if command -v setsid >/dev/null 2>&1; then
    setsid "$@" &
  else
    "$@" &
  fi
  PIDS+=("$!")
  NAMES+=("$name")
}

force=0
stop_one() { # index
  local pid=${PIDS[$1]} name=${NAMES[$1]} deadline
  alive "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
  say "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + 15))
  while alive "$pid" && [ "$SECONDS" -lt "$deadline" ] && [ "$force" -eq 0 ]; do
    sleep 0.2 || true
  done
  if alive "$pid"; then
    say "$name did not stop; killing it"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

stopped=0
stop_all() {
  [ "$stopped" -eq 0 ] || return 0
  stopped=1
  trap 'force=1' INT TERM # a second Ctrl-C kills what is left at once
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    stop_one "$i"
  done
}

on_exit() {
  local rc=$?
  stop_all
  if [ "$signaled" -eq 1 ]; then
    rc=0 # asked to stop: a step interrupted by the signal is not a failure
  fi
  exit "$rc"
}
signaled=0
trap on_exit EXIT
trap 'signaled=1' INT TERM

# --- Redis ---
redis_ping() { # host port
  if command -v redis-cli >/dev/null 2>&1; then
    [ "$(timeout 3 redis-cli -h "$1" -p "$2" ping 2>/dev/null)" = PONG ]
  else
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf "PING\r\n" >&3 && read -r -t 2 reply <&3 &&
      [[ $reply == +PONG* ]]' "$1" "$2" 2>/dev/null
  fi
}
port_taken() { timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$1" 2>/dev/null; }

if [ -n "$REDIS_URL" ]; then
  say "Redis: using SLIPWAY_REDIS_URL"
elif redis_ping 127.0.0.1 6379; then
  say "Redis: using the one answering on 127.0.0.1:6379 (redis://127.0.0.1:6379/0)"
else
  if ! command -v redis-server >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
      say "redis-server is missing; installing it with apt-get"
      apt-get update
      DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server
    else
      echo "install Redis: sudo apt-get install redis-server (or set SLIPWAY_REDIS_URL)"
      exit 1
    fi
  fi
  redis_port=6390
  while port_taken "$redis_port"; do
    redis_port=$((redis_port + 1))
    if [ "$redis_port" -gt 6399 ]; then
      echo "run: no free port in 6390-6399 for a private Redis; set SLIPWAY_REDIS_URL" >&2
      exit 1
    fi
  done
  redis_args=(--port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no
    --dir "$DATA_DIR" --logfile "$DATA_DIR/redis.log")
  socket=$DATA_DIR/redis.sock
  if [ "${#socket}" -le 100 ]; then # the kernel's limit on a unix socket path is 107 bytes
    redis_args+=(--unixsocket "$socket" --unixsocketperm 700)
  fi
  say "Redis: starting a private redis-server on 127.0.0.1:$redis_port (log: $DATA_DIR/redis.log)"
  start_bg redis redis-server "${redis_args[@]}"
  for _ in $(seq 50); do
    redis_ping 127.0.0.1 "$redis_port" && break
    alive "${PIDS[-1]}" || break
    sleep 0.2 || true
  done
  if ! redis_ping 127.0.0.1 "$redis_port"; then
    echo "run: the private redis-server did not start; see $DATA_DIR/redis.log" >&2
    exit 1
  fi
  export SLIPWAY_REDIS_URL="redis://127.0.0.1:$redis_port/0"
  if [[ " ${redis_args[*]} " == *" --unixsocket "* ]]; then
    say "Redis: $SLIPWAY_REDIS_URL (also on the unix socket $socket)"
  else
    say "Redis: $SLIPWAY_REDIS_URL"
  fi
fi

# --- database and first admin ---
say "slipway db upgrade"
"$SLIPWAY" db upgrade

password=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(15))')
created=$(printf '%s\n' "$password" |
  "$SLIPWAY" users create admin --role admin --password-stdin --if-missing)
if [ -n "$created" ]; then
  line1="login: admin / password: $password"
  line2="(shown once; change it with slipway users set-password)"
  width=${#line2}
  [ "${#line1}" -le "$width" ] || width=${#line1}
  border=$(printf '%*s' "$((width + 2))" '' | tr ' ' '-')
  echo
  echo "+$border+"
  printf '| %-*s |\n' "$width" "first admin created" "$width" "" "$width" "$line1" "$width" "$line2"
  echo "+$border+"
  echo
else
  say "user admin already exists; log in with its password"
fi
unset password

# --- api and one worker ---
say "starting slipway api on $HOST:$PORT and one slipway worker"
start_bg api "$SLIPWAY" api --host "$HOST" --port "$PORT"
start_bg worker "$SLIPWAY" worker

case $HOST in
  0.0.0.0 | '') connect_host=127.0.0.1 ;;
  :: | '[::]') connect_host='[::1]' ;;
  *:*) connect_host="[$HOST]" ;;
  *) connect_host=$HOST ;;
esac
url="http://$connect_host:$PORT"
api_pid=${PIDS[-2]}
ready=0
for _ in $(seq 150); do
  if [ "$signaled" -ne 0 ] || ! alive "$api_pid"; then
    break
  fi
  if "$PY" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
    "$url/api/v1/health" >/dev/null 2>&1; then
    ready=1
    break
  fi
  sleep 0.2 || true
done

if [ "$signaled" -eq 0 ] && alive "$api_pid"; then
  [ "$ready" -eq 1 ] || say "the API has not answered $url/api/v1/health yet"
  cat <<EOF

  slipway is running at $url   (API docs: $url/docs)
  get a token:  curl -d username=admin -d password='ADMIN_PASSWORD' $url/api/v1/auth/token
  use it:       curl -H "Authorization: Bearer TOKEN" $url/api/v1/operations
  CLI client:   export SLIPWAY_URL=$url SLIPWAY_TOKEN=TOKEN; .venv/bin/slipway ops list
  Ctrl-C stops everything started here.

EOF
fi

# --- wait: for a signal (clean exit 0) or for any process to end (exit non-zero) ---
status=0
died=
if [ "$signaled" -eq 0 ]; then
  wait -n -p died "${PIDS[@]}" || status=$?
fi
if [ "$signaled" -eq 1 ]; then
  say "stopping (signal received)"
  stop_all
  exit 0
fi
name=process
for i in "${!PIDS[@]}"; do
  [ "${PIDS[$i]}" = "$died" ] && name=${NAMES[$i]}
done
say "$name (pid $died) exited with status $status; stopping the rest" >&2
stop_all
[ "$status" -ne 0 ] || status=1
exit "$status"
