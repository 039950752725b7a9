"""`slipway ops …`: the HTTP client commands against a real API, worker, database and Redis."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session

from slipway.core.config import Settings
from slipway.jobs import service
from tests.cli.helpers import finish, invoke, ok, one_error_line, run, start
from tests.conftest import ROOT, Processes, bearer, free_port, make_user, wait_for


def final(http: httpx.Client, operation_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        operation = dict(http.get(f"/api/v1/operations/{operation_id}").json())
        return operation if operation["status"] in ("succeeded", "failed", "canceled") else None

    return dict(wait_for(done, timeout=30, what=f"operation {operation_id}"))


def test_ops_commands_show_follow_and_refuse_in_one_line(
    env: dict[str, str], settings: Settings, session: Session, processes: Processes
) -> None:
    token = make_user(settings, "deployer", "operator")
    url = processes.api()
    processes.worker()
    cli = {**env, "SLIPWAY_URL": url, "SLIPWAY_TOKEN": token}
    no_token = {name: value for name, value in cli.items() if name != "SLIPWAY_TOKEN"}
    http = httpx.Client(base_url=url, headers=bearer(token), timeout=10)
    check = http.post("/api/v1/system/check").json()["operation"]["id"]
    assert final(http, check)["status"] == "succeeded"
    # Slow enough that `--follow` joins while it runs and has to wait for its end.
    steps = http.post(
        "/api/v1/operations", json={"kind": "test.steps", "params": {"steps": 3, "sleep": 0.5}}
    ).json()["operation"]["id"]
    failing = service.submit(session, settings, kind="test.fail", actor="test").id

    following = start("ops", "logs", steps, "--follow", env=cli)
    following_failure = start("ops", "logs", failing, "-f", env=cli)
    unauthenticated = run("ops", "list", env=no_token)
    shown = ok(invoke("ops", "show", check, env=cli))
    log = ok(invoke("ops", "logs", check, env=cli))
    finished = invoke("ops", "cancel", check, env=cli)
    unknown = invoke("ops", "show", str(uuid.uuid4()), env=cli)
    followed, followed_failure = finish(following), finish(following_failure)
    listing = ok(run("ops", "list", env=cli))

    operation = json.loads(shown)
    assert (operation["id"], operation["kind"], operation["status"]) == (
        check,
        "system.check",
        "succeeded",
    )
    assert "ok   workers:" in log and "FAIL" not in log
    lines = ok(followed).splitlines()
    assert [line for line in lines if line.startswith("working on")] == [
        "working on step 1",
        "working on step 2",
        "working on step 3",
    ]
    assert http.get(f"/api/v1/operations/{steps}").json()["status"] == "succeeded"
    assert (followed_failure.returncode, followed_failure.stderr) == (1, "")
    assert "about to fail" in followed_failure.stdout

    one_error_line(finished, exit_code=4, contains="is already succeeded")
    one_error_line(unknown, exit_code=3, contains="error: operation_not_found")
    line = one_error_line(unauthenticated, exit_code=5, contains="error: unauthenticated")
    assert line.endswith("(set SLIPWAY_TOKEN)")

    rows = {line.split()[0]: line.split()[1:3] for line in listing.splitlines()}
    assert rows[check] == ["succeeded", "system.check"]
    assert rows[steps] == ["succeeded", "test.steps"]
    assert rows[failing] == ["failed", "test.fail"]


def test_an_api_that_does_not_answer_is_named_on_one_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "SLIPWAY_URL": url}

    listing, following = (
        finish(process)
        for process in [
            start("ops", "list", env={**env, "SLIPWAY_TOKEN": "slw_x"}),
            start("ops", "logs", str(uuid.uuid4()), "--follow", env=env),
        ]
    )

    for result in (listing, following):
        line = one_error_line(result, exit_code=6, contains=f"error: cannot reach slipway at {url}")
        assert "Connection refused" in line
