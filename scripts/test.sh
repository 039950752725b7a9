#!/usr/bin/env bash
# Run the whole test suite: make sure PostgreSQL, Redis and Docker (with the local/busybox:1 base
# image) answer, starting them if needed, run pytest with the given arguments, then stop whatever
# was started here. Exits with pytest's code. As root, the TLS tests also start a second dockerd
# of their own on 127.0.0.1 and stop it at the end of the session.
#
# The tests run in SLIPWAY_TEST_PROCESSES pytest processes at once (pytest-xdist, default 3, whole
# files to each): most of a test's time is spent waiting on the processes, engines and hosts it
# started. Each process is a test session of its own (its own Redis database, PostgreSQL database,
# sshd block, registry port and forker), as two `make test` on one machine are.
#
#   scripts/test.sh [PYTEST_ARGS...]      (make test PYTEST_ARGS='-x -k auth'; -n 0: one process)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/pytest ]; then
  echo "no .venv/bin/pytest: run 'make test' (it creates the venv first)" >&2
  exit 1
fi

workdir=$(mktemp -d "${TMPDIR:-/tmp}/slipway-test.XXXXXX")
export SLIPWAY_TEST_SERVICES_STATE="$workdir/services.state"

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  scripts/test-services.sh stop "$SLIPWAY_TEST_SERVICES_STATE" || true
  rm -rf "$workdir"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

scripts/test-services.sh start "$SLIPWAY_TEST_SERVICES_STATE"

rc=0
.venv/bin/pytest -n "${SLIPWAY_TEST_PROCESSES:-3}" --dist loadfile "$@" || rc=$?
exit "$rc"
