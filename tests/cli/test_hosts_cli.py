"""`slipway hosts …`: credentials, hosts and groups through a real API, against real sshd hosts."""

from __future__ import annotations

import json
from pathlib import Path

from slipway.core.config import Settings
from slipway.remote.ssh import key_fingerprint
from tests.cli.helpers import invoke, ok, one_error_line
from tests.conftest import Processes, make_user
from tests.support.sshd import SSHFarm

CLOSED_PORT = "2223"


def test_hosts_commands_add_test_group_and_remove(
    env: dict[str, str],
    settings: Settings,
    processes: Processes,
    ssh_farm: SSHFarm,
    tmp_path: Path,
) -> None:
    cli = {
        **env,
        "SLIPWAY_URL": processes.api(),
        "SLIPWAY_TOKEN": make_user(settings, "ops", "admin"),
    }
    first, second = ssh_farm.hosts[0], ssh_farm.hosts[1]
    key_file = tmp_path / "id_farm"
    key_file.write_text(ssh_farm.client_private_key)

    def hosts(*args: str, stdin: str | None = None):
        return invoke("hosts", *args, stdin=stdin, env=cli)

    added_key = ok(hosts("credentials", "add", "farm-key", "--key-file", str(key_file)))
    added_pw = ok(hosts("credentials", "add", "pw", "--password-stdin", stdin="a-password-1\n"))
    added = ok(
        hosts(
            "add", "web1", "--address", first.address, "--port", str(first.port),
            "--credential", "farm-key", "--label", "role=web", "--deploy-root", "/srv/app",
        )
    )  # fmt: skip
    later = json.loads(
        ok(
            hosts(
                "add",
                "later",
                "--address",
                second.address,
                "--port",
                str(second.port),
                "--credential",
                "farm-key",
                "--no-verify",
                "--json",
            )
        )  # fmt: skip
    )
    tested = ok(hosts("test", "web1"))
    pinned = ok(hosts("test", "later"))
    webs = ok(hosts("list", "--label", "role=web"))
    everything = ok(hosts("list"))
    shown = json.loads(ok(hosts("show", "web1")))
    selector_group = ok(hosts("groups", "add", "web", "--selector", "role=web"))
    list_group = ok(hosts("groups", "add", "rollout", "--host", "later", "--host", "web1"))
    groups = ok(hosts("groups", "list"))
    credentials = ok(hosts("credentials", "list"))

    assert "public key: ssh-ed25519 " in added_key
    assert added_pw == "credential pw added (password)\n"
    assert f"host web1 added; host key {key_fingerprint(first.host_public_key)}" in added
    assert later["host_key"] is None
    assert "web1: ok;" in tested and "user root uid 0 (root)" in tested and "GiB free" in tested
    assert "(pinned now)" in pinned
    assert [line.split()[0] for line in webs.splitlines()] == ["web1"]
    assert [line.split()[0] for line in everything.splitlines()] == ["later", "web1"]
    assert shown["facts"]["is_root"] is True and shown["deploy_root"] == "/srv/app"
    assert selector_group == "group web added: web1\n"
    assert list_group == "group rollout added: later web1\n"
    assert [line.split()[0] for line in groups.splitlines()] == ["rollout", "web"]
    assert "a-password-1" not in credentials and "farm-key" in credentials

    in_use = hosts("credentials", "remove", "farm-key")
    listed = hosts("remove", "web1")
    bad_address = hosts("add", "bad", "--address", "a b", "--credential", "farm-key")
    unreachable = hosts(
        "add", "away", "--address", first.address, "--port", CLOSED_PORT, "--credential", "farm-key"
    )
    missing = hosts("show", "nope")
    no_stdin = hosts("credentials", "add", "empty", "--password-stdin", stdin="")

    one_error_line(in_use, exit_code=4, contains="error: credential_in_use")
    one_error_line(listed, exit_code=4, contains="group rollout")
    one_error_line(bad_address, exit_code=2, contains="address")
    one_error_line(unreachable, exit_code=6, contains="error: host_unreachable")
    one_error_line(missing, exit_code=3, contains="error: host_not_found")
    one_error_line(no_stdin, exit_code=2, contains="the password expected on stdin")

    for args in (
        ("groups", "remove", "rollout"),
        ("groups", "remove", "web"),
        ("remove", "web1"),
        ("remove", "later"),
        ("credentials", "remove", "farm-key"),
        ("credentials", "remove", "pw"),
    ):
        ok(hosts(*args))
    assert (
        ok(hosts("list")) == ok(hosts("groups", "list")) == ok(hosts("credentials", "list")) == ""
    )
