"""The local commands (version, users, tokens, check) against a real database and Redis."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session

from slipway import __version__
from slipway.auth import service as auth_service
from slipway.core.config import Settings
from slipway.core.security import verify_password
from tests.cli.helpers import finish, fresh_database, invoke, ok, one_error_line, run, start
from tests.conftest import REDIS_URL, ROOT, Processes, bearer, free_port, make_user

PASSWORD = "correct-horse-1\n"
CREATE_ADMIN = ("users", "create", "--role", "admin", "--password-stdin")


def test_version_json_prints_the_manifest(env: dict[str, str]) -> None:
    manifest = json.loads(ok(run("version", "--json", env=env)))

    assert manifest["version"] == __version__
    components = manifest["components"]
    assert components["api"] == components["worker"] == __version__
    assert components["schema"]["current"] == components["schema"]["head"]
    assert components["schema"]["head"] is not None
    assert "Debian" in manifest["os_support"] and "Ubuntu" in manifest["os_support"]


def test_users_from_the_first_admin_to_disabled(
    env: dict[str, str], settings: Settings, session: Session
) -> None:
    created = run(*CREATE_ADMIN, "alice", env=env, stdin=PASSWORD)
    assert ok(created) == "user alice created with role admin\n"

    again = invoke("users", "create", "alice", "--password-stdin", stdin=PASSWORD)
    if_missing = invoke("users", "create", "alice", "--if-missing")
    short = invoke("users", "create", "bob", "--password-stdin", stdin="short\n")
    unknown = invoke("users", "set-role", "nobody", "viewer")
    # Another admin, so that alice may stop being one.
    ok(invoke(*CREATE_ADMIN, "carol", stdin=PASSWORD))
    changes = [
        invoke("users", "set-password", "alice", "--password-stdin", stdin="battery-staple-2\n"),
        invoke("users", "set-role", "alice", "operator"),
        invoke("users", "disable", "alice"),
    ]

    line = one_error_line(again, exit_code=4, contains="error: user_exists")
    assert line.startswith("error: user_exists: user 'alice' already exists")
    assert (if_missing.returncode, if_missing.stdout, if_missing.stderr) == (0, "", "")
    one_error_line(short, exit_code=2, contains="password is too short")
    one_error_line(unknown, exit_code=3, contains="error: user_not_found")
    assert [ok(result) for result in changes] == [
        "password of alice changed\n",
        "alice is now operator\n",
        "alice disabled\n",
    ]
    # What a user sees from a real process: the listing, and a refusal on exactly one line.
    listing, duplicate = (
        finish(start("users", "list", env=env)),
        finish(start(*CREATE_ADMIN, "alice", env=env, stdin=PASSWORD)),
    )
    assert [line.split() for line in ok(listing).splitlines()] == [
        ["alice", "operator", "disabled"],
        ["carol", "admin", "active"],
    ]
    one_error_line(duplicate, exit_code=4, contains="error: user_exists")
    user = auth_service.get_user(session, "alice")
    assert user is not None and verify_password("battery-staple-2", user.password_hash)
    assert auth_service.get_user(session, "bob") is None


def test_a_token_is_printed_once_works_as_a_bearer_and_can_be_revoked(
    env: dict[str, str], settings: Settings, processes: Processes
) -> None:
    make_user(settings, "ci-owner", "operator")
    creating = start("tokens", "create", "--user", "ci-owner", "--name", "ci", env=env)
    url = processes.api()
    created = finish(creating)

    token = ok(created).strip()
    assert created.stdout == token + "\n" and created.stderr == ""
    assert re.fullmatch(r"slw_[A-Za-z0-9_-]{40,}", token)
    me = httpx.get(f"{url}/api/v1/me", headers=bearer(token), timeout=10)
    assert me.status_code == 200 and me.json()["name"] == "ci-owner"

    listing = ok(invoke("tokens", "list"))
    assert token not in listing and token[4:14] not in listing
    token_id, owner, name, state = listing.split()[:4]
    assert (owner, name, state) == ("ci-owner", "ci", "active")
    assert ok(invoke("tokens", "revoke", token_id)) == f"token {token_id} revoked\n"
    one_error_line(invoke("tokens", "revoke", "4242"), exit_code=3, contains="token_not_found")

    after = httpx.get(f"{url}/api/v1/me", headers=bearer(token), timeout=10)
    assert after.status_code == 401
    assert ok(invoke("tokens", "list")).split()[3] == "revoked"


@pytest.fixture
def unmigrated_env(backend: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    with fresh_database(backend, tmp_path) as url:
        yield {
            "PATH": os.environ["PATH"],
            "PYTHONPATH": str(ROOT),
            "SLIPWAY_DATA_DIR": str(tmp_path / "data"),
            "SLIPWAY_DATABASE_URL": url,
            "SLIPWAY_REDIS_URL": REDIS_URL,
        }


def test_commands_on_an_unmigrated_database_say_so_in_one_line(
    unmigrated_env: dict[str, str],
) -> None:
    commands = [
        ["users", "create", "alice", "--password-stdin"],
        ["check"],
        ["worker", "--burst"],
        ["api", "--port", str(free_port())],
        ["secrets", "rotate-key"],
    ]
    started = [start(*command, env=unmigrated_env, stdin=PASSWORD) for command in commands]
    version = start("version", "--json", env=unmigrated_env)

    for command, process in zip(commands, started, strict=True):
        result = finish(process)
        line = one_error_line(result, exit_code=6, contains="error: database_not_migrated")
        assert "run `slipway db upgrade` first" in line, command
    manifest = json.loads(ok(finish(version)))
    assert manifest["components"]["schema"]["current"] is None


def test_check_fails_without_a_worker_and_passes_with_one(
    env: dict[str, str], processes: Processes
) -> None:
    alone = run("check", env=env)

    assert alone.returncode == 1, alone.stderr
    assert "Traceback" not in alone.stderr
    lines = alone.stdout.splitlines()
    checks = [line for line in lines if line.startswith(("ok ", "FAIL "))]
    assert [line.split()[1] for line in checks] == [
        "database:",
        "redis:",
        "workers:",
        "data_dir:",
        "docker_endpoint:local:",
    ]
    assert [line.split()[0] for line in checks] == ["ok", "ok", "FAIL", "ok", "ok"]
    assert "FAIL workers: no worker is alive: start one with `slipway worker`" in lines
    assert re.fullmatch(r"operation [0-9a-f-]{36} failed", lines[-1])

    processes.worker()
    together = run("check", env=env)

    out = ok(together)
    assert re.search(r"^ok   workers: 1 worker\(s\) alive on queues default$", out, re.M)
    assert "FAIL" not in out
    assert re.search(r"^operation [0-9a-f-]{36} succeeded$", out, re.M)
