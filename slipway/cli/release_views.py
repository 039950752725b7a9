"""How `slipway releases` shows a dry-run plan, a deployment and its hosts."""

from __future__ import annotations

import json
from typing import Any

from slipway.cli.output import short_time, table


def print_plan(plan: dict[str, Any]) -> None:
    """A dry run's answer: batches, what each host would run, the database scripts."""
    what = " and ".join(
        f"{label} {version}"
        for label, version in (("package", plan["version"]), ("DB package", plan["db_version"]))
        if version
    )
    print(f"dry run: {what}; nothing was touched")
    for index, batch in enumerate(plan["batches"], 1):
        print(f"batch {index}: {', '.join(batch)}")
    if plan["hosts"]:
        table(
            ["HOST", "RUNS NOW", "WOULD RUN"],
            [[h["host"], h["current_version"], plan["version"]] for h in plan["hosts"]],
        )
    if plan["db"]:
        db = plan["db"]
        scripts = db.get("scripts") or []
        print(f"database: {db.get('installed') or 'nothing'} -> {db.get('target')}: "
              f"{len(scripts)} script(s)")  # fmt: skip
        for script in scripts:
            print(f"  {script['version']} {script['action']} {script['script']} "
                  f"({script['statements']} statement(s))")  # fmt: skip
    if plan["variables"]:
        print(f"variables used: {', '.join(sorted(plan['variables']))}")


def _step_cell(step: dict[str, Any] | None) -> str:
    if step is None:
        return "-"
    if step["status"] == "done":
        return f"{step.get('seconds') or 0:.1f}s"
    return {"running": "...", "failed": "FAILED"}.get(step["status"], step["status"])


def hosts_summary(view: dict[str, Any]) -> None:
    """One row per host: batch, status, versions, and each step's time (or where it stopped)."""
    steps: list[str] = []
    for host in view["hosts"]:
        steps += [s["name"] for s in host["steps"] if s["name"] not in steps]
    rows = []
    for host in view["hosts"]:
        by_name = {s["name"]: s for s in host["steps"]}
        rows.append(
            [host["host"], host["batch"] + 1, host["status"], host["previous_version"],
             host["version"]] + [_step_cell(by_name.get(name)) for name in steps]
        )  # fmt: skip
    table(["HOST", "BATCH", "STATUS", "FROM", "RUNS"] + steps, rows)
    for host in view["hosts"]:
        if host["error"]:
            print(f"{host['host']}: {host['error'].get('code')}: {host['error'].get('message')}")


def show_deployment(view: dict[str, Any]) -> None:
    """One deployment in detail: target, progress, who and when, error, then its hosts."""
    progress = view["progress"]
    target = " ".join(
        f"{label}{v}" for label, v in (("", view["version"]), ("db ", view["db_version"])) if v
    )
    print(f"deployment {view['id']}: {view['kind']} {target or '-'} to "
          f"{view['project']}/{view['environment']}, {view['status']}")  # fmt: skip
    estimate = view["estimated_seconds_left"]
    left = f", about {max(1, round(estimate))} s left" if estimate is not None else ""
    print(f"progress: {progress['done']}/{progress['total']} steps ({progress['percent']}%){left}")
    started, finished = short_time(view["started_at"]), short_time(view["finished_at"])
    print(f"started by {view['actor'] or '-'} at {started or '-'}, finished {finished or '-'}; "
          f"operation {view['operation_id'] or '-'}")  # fmt: skip
    if view["status"] == "awaiting_continue":
        print(f"waits before batch {view['next_batch'] + 1}: slipway releases continue "
              f"{view['project']} {view['environment']} {view['id']}")  # fmt: skip
    if view["error"]:
        print(f"error: {view['error'].get('code')}: {view['error'].get('message')}")
    if view["db"]:
        print(f"database: {json.dumps(view['db'])}")
    hosts_summary(view)
