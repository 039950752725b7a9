"""`slipway registries …` through a real API against a real registry; the `$` of robot accounts
survives the shell, the CLI, the API and the login."""

from __future__ import annotations

import json
import os
import shlex
import subprocess

import pytest

from slipway.core.config import Settings
from tests.cli.helpers import invoke, ok, one_error_line
from tests.conftest import SLIPWAY, Processes, free_port, make_user
from tests.support.registry import RegistryServer

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@SQLITE_ONLY
def test_registries_commands_add_test_update_and_remove(
    env: dict[str, str], settings: Settings, processes: Processes, registry: RegistryServer
) -> None:
    cli = {
        **env,
        "SLIPWAY_URL": processes.api(),
        "SLIPWAY_TOKEN": make_user(settings, "ops", "admin"),
    }

    def registries(*args: str, stdin: str | None = None):
        return invoke("registries", *args, stdin=stdin, env=cli)

    # As a user types it in a shell: single quotes keep the `$`.
    typed = subprocess.run(
        [
            "bash",
            "-c",
            f"printf '%s\\n' {shlex.quote(registry.password)} | {SLIPWAY} registries add local "
            f"--url {registry.address} --username 'robot$slipway' --password-stdin",
        ],
        env={**cli, "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=60,
    )
    listed = ok(registries("list"))
    shown = json.loads(ok(registries("show", "local")))
    tested = ok(registries("test", "local"))
    described = ok(registries("update", "local", "--description", "the test registry"))
    # The prompt (no echo) when --password-stdin is not given; the same password changes nothing.
    prompted = ok(registries("update", "local", "--password", stdin=f"{registry.password}\n"))
    aliased = ok(registries("update", "local", "--dns-alias", "reg.example.com"))
    history = ok(registries("revisions", "local"))

    assert typed.returncode == 0, typed.stderr
    assert typed.stdout == (
        f"registry local added: robot$slipway logs in at {registry.url} (basic auth)\n"
    )
    assert listed.split()[:4] == ["local", registry.address, "robot$slipway", "-"]
    assert shown["username"] == "robot$slipway" and shown["has_password"] is True
    assert tested == f"local: ok; logged in at {registry.url} (basic auth)\n"
    assert described == "registry local updated (revision 2)\n"
    assert prompted.endswith("registry local updated (revision 2)\n")
    assert aliased == "registry local updated (revision 3)\n"
    assert [line.split()[-1] for line in history.splitlines()] == [
        "dns_alias",
        "description",
        "created",
    ]
    for output in (typed.stdout, typed.stderr, listed, json.dumps(shown), tested, prompted):
        assert registry.password not in output

    wrong = registries("update", "local", "--password-stdin", stdin="wrong-password-9\n")
    away = registries(
        "add", "away", "--url", f"127.0.0.1:{free_port()}", "--username", "u",
        "--password-stdin", stdin="pw\n",
    )  # fmt: skip
    bad_url = registries(
        "add", "bad", "--url", "ftp://x", "--username", "u", "--password-stdin", stdin="pw\n"
    )
    taken = registries(
        "add", "again", "--url", registry.address, "--username", "u", "--password-stdin",
        stdin="pw\n",
    )  # fmt: skip
    missing = registries("show", "nope")
    no_stdin = registries(
        "add", "empty", "--url", registry.address, "--username", "u", "--password-stdin", stdin=""
    )
    nothing = registries("update", "local")

    one_error_line(wrong, exit_code=2, contains="error: registry_auth_failed")
    assert "wrong-password-9" not in wrong.stderr
    one_error_line(away, exit_code=6, contains="error: registry_unreachable")
    one_error_line(bad_url, exit_code=2, contains="url")
    one_error_line(taken, exit_code=4, contains="error: registry_host_taken")
    one_error_line(missing, exit_code=3, contains="error: registry_not_found")
    one_error_line(no_stdin, exit_code=2, contains="the password expected on stdin")
    one_error_line(nothing, exit_code=2, contains="nothing to change")

    assert ok(registries("remove", "local")) == "registry local removed\n"
    assert ok(registries("list")) == ""
