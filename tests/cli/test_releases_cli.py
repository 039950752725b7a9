"""`slipway releases …` against a real API process, a real worker and real sshd hosts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.helpers import invoke, ok, one_error_line, run
from tests.conftest import Processes
from tests.releases.archives import make_app_package
from tests.releases.conftest import World, app_scripts
from tests.support.sshd import SSHFarm

# The CLI is an HTTP client: what it adds does not depend on the API's database backend.
pytestmark = [pytest.mark.slow, pytest.mark.parametrize("backend", ["sqlite"], indirect=True)]

CONFIG = {"conf/app.properties": "db.host=[@db_ip]\ndb.password=[!db_password]\n"}


@pytest.fixture
def cli_world(
    env: dict[str, str],
    tokens: dict[str, str],
    ssh_farm: SSHFarm,  # noqa: F811
    tmp_path: Path,
    processes: Processes,
) -> Iterator[tuple[World, dict[str, str]]]:
    """The release world built through the API process the CLI talks to, and the CLI's env."""
    url = processes.api()
    processes.worker()
    with httpx.Client(base_url=url, timeout=30) as http:
        world = World(http, tokens, ssh_farm, tmp_path, processes).setup()
        yield world, {**env, "SLIPWAY_URL": url, "SLIPWAY_TOKEN": tokens["operator"]}


def package(world: World, version: str, **scripts: str) -> Path:
    return make_app_package(
        world.tmp_path, "demo-app", version, dict(CONFIG), scripts=app_scripts(**scripts)
    )


def rows(output: str, first: str) -> dict[str, list[str]]:
    """A printed table as {first cell: the other cells}, from its header `first …` to a blank
    line; only rows keyed by a host (h0), a deployment id or a version count."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(first))
    table: dict[str, list[str]] = {}
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        cells = line.split()
        if re.fullmatch(r"h\d+|\d+(\.\d+)*", cells[0]):
            table[cells[0]] = cells[1:]
    return table


def started_id(output: str) -> int:
    match = re.search(r"^deployment (\d+) ", output, re.MULTILINE)
    assert match, output
    return int(match.group(1))


def test_upload_deploy_status_continue_and_rollback(
    cli_world: tuple[World, dict[str, str]],
) -> None:
    world, cli = cli_world
    first, second = package(world, "1.0.0"), package(world, "1.0.1")
    bad = first.with_name("demo-app-1.0.0.tar.gz")
    bad.write_bytes(first.read_bytes())

    uploaded = ok(run("releases", "upload", "demo", str(first), env=cli))
    as_json = json.loads(ok(invoke("releases", "upload", "demo", str(second), "--json", env=cli)))
    refused = invoke("releases", "upload", "demo", str(bad), env=cli)
    listing = ok(invoke("releases", "packages", "demo", env=cli))
    listed = json.loads(ok(invoke("releases", "packages", "demo", "--json", env=cli)))

    assert "app package demo-app 1.0.0 stored: demo-app_1.0.0_20240101001.tar.gz" in uploaded
    assert "variables used: db_ip, db_password" in uploaded
    assert (as_json["version"], as_json["kind"]) == ("1.0.1", "app")
    one_error_line(refused, exit_code=2, contains="error: bad_package_name: package file name")
    assert list(rows(listing, "VERSION")) == ["1.0.1", "1.0.0"]
    assert [p["version"] for p in listed["items"]] == ["1.0.1", "1.0.0"]

    deployed = ok(
        run("releases", "deploy", "demo", "prod", "--package", "1.0.0", "--wait", env=cli)
    )

    assert "[h1] connect: done" in deployed  # the operation's log, followed live
    assert deployed.rstrip().endswith(f"deployment {started_id(deployed)} succeeded")
    assert {h: cells[3] for h, cells in rows(deployed, "HOST").items()} == dict.fromkeys(
        ("h0", "h1", "h2"), "1.0.0"
    )

    plan = ok(invoke("releases", "deploy", "demo", "prod", "--package", "1.0.1",
                     "--canary", "1", "--batch-size", "50%", "--dry-run", env=cli))  # fmt: skip
    assert "batch 1: h0\nbatch 2: h1, h2\n" in plan
    assert rows(plan, "HOST")["h2"] == ["1.0.0", "1.0.1"]

    paused = ok(invoke("releases", "deploy", "demo", "prod", "--package", "1.0.1",
                       "--canary", "1", "--pause", "manual", env=cli))  # fmt: skip
    deployment = started_id(paused)
    world.wait(deployment, until=("awaiting_continue",))
    waiting = ok(invoke("releases", "status", "demo", "prod", str(deployment), env=cli))
    continued = ok(invoke("releases", "continue", "demo", "prod", str(deployment), env=cli))
    done = world.wait(deployment)
    detail = ok(invoke("releases", "status", "demo", "prod", str(deployment), env=cli))
    overview = ok(invoke("releases", "status", "demo", "prod", env=cli))

    assert f"waits before batch 2: slipway releases continue demo prod {deployment}" in waiting
    assert rows(waiting, "HOST")["h0"][:4] == ["1", "succeeded", "1.0.0", "1.0.1"]
    assert rows(waiting, "HOST")["h2"][:2] == ["2", "pending"]
    assert continued == f"deployment {deployment}: batch 2 starts\n"
    assert done["status"] == "succeeded"
    assert "progress: " in detail and "(100%)" in detail
    hosts = rows(detail, "HOST")
    assert sorted(hosts) == ["h0", "h1", "h2"]
    assert all(cells[1] == "succeeded" and cells[3] == "1.0.1" for cells in hosts.values())
    assert all(re.fullmatch(r"\d+\.\ds", cell) for cell in hosts["h1"][4:])
    assert {h: cells[0] for h, cells in rows(overview, "HOST").items()} == dict.fromkeys(
        ("h0", "h1", "h2"), "1.0.1"
    )
    assert rows(overview, "DEPLOYMENT")[str(deployment)][:3] == ["deploy", "1.0.1", "-"]

    rolled = ok(invoke("releases", "rollback", "demo", "prod", "--to", "1.0.0", "--wait", env=cli))
    after = ok(invoke("releases", "status", "demo", "prod", env=cli))
    unknown = invoke("releases", "status", "demo", "prod", "999", env=cli)

    assert "(rollback 1.0.0)" in rolled and "succeeded" in rolled.splitlines()[-1]
    assert {h: cells[0] for h, cells in rows(after, "HOST").items()} == dict.fromkeys(
        ("h0", "h1", "h2"), "1.0.0"
    )
    assert [world.current(host) for host in world.hosts] == ["demo-app_1.0.0"] * 3
    one_error_line(unknown, exit_code=3, contains="error: deployment_not_found")


def test_a_failing_deploy_waited_for_exits_1_and_names_the_host(
    cli_world: tuple[World, dict[str, str]],
) -> None:
    world, cli = cli_world
    world.upload(package(world, "1.0.0"))
    world.upload(package(world, "1.0.1", extra_deploy='[ "$SLIPWAY_HOST" = h1 ] && exit 7; true'))
    assert world.deploy_and_wait(package="1.0.0")["status"] == "succeeded"

    failed = invoke("releases", "deploy", "demo", "prod", "--package", "1.0.1",
                    "--max-failures", "5", "--wait", env=cli)  # fmt: skip
    overview = ok(invoke("releases", "status", "demo", "prod", "--json", env=cli))

    line = one_error_line(failed, exit_code=1, contains="error: deployment ")
    assert "failed: 1 of 3 host(s) failed and were put back: h1" in line
    hosts = rows(failed.stdout, "HOST")
    assert hosts["h1"][:4] == ["1", "failed", "1.0.0", "1.0.0"]
    assert "FAILED" in hosts["h1"]
    assert hosts["h0"][:4] == ["1", "succeeded", "1.0.0", "1.0.1"]
    assert re.search(r"^h1: \S+: ", failed.stdout, re.MULTILINE)
    runs: dict[str, Any] = {
        h["host"]: h["current_version"] for h in json.loads(overview)["environment"]["hosts"]
    }
    assert runs == {"h0": "1.0.1", "h1": "1.0.0", "h2": "1.0.1"}
