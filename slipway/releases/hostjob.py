"""One host's turn in a deployment job: its pipeline's inputs, the run, and the outcome recorded.

Functions of the running `DeploymentRun` (releases/jobs.py): what the loaded rows give the
host's pipeline (the release, the host's plan), its step records through the `HostBook`, and its
outcome written to the host row and the environment's `HostRelease`. The pipeline itself (and
asyncssh with it) is imported only when a host runs: the API imports the job's module, and never
deploys.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from slipway.core.db import utcnow
from slipway.releases import packages
from slipway.releases.hostplan import Hooks, HostOutcome, HostPlan, Release
from slipway.releases.models import DeploymentHost, HostRelease, HostStatus, Package
from slipway.targets import hosts as targets_hosts

if TYPE_CHECKING:
    from slipway.releases.jobs import DeploymentRun


async def run_host(
    run: DeploymentRun, row: DeploymentHost, semaphore: asyncio.Semaphore, kind: str
) -> HostOutcome:
    async with semaphore:
        run.book.set(
            row.host_id, status=HostStatus.running, started_at=utcnow(), steps=[], error=None
        )
        host = _host_plan(run, row)
        if kind == "rollback":
            target = run.deployment.plan["targets"][str(row.host_id)]
            host.rollback_to = target
            release = release_of(run, target)
        else:
            release = release_of(run)
        from slipway.releases.hostdeploy import HostRun  # loads asyncssh: only where hosts run

        hooks = Hooks(
            log=run.ctx.log, record=_recorder(run, row.host_id), should_stop=run.should_stop
        )
        host_run = HostRun(run.host_settings, release, host, hooks)
        outcome = await (host_run.rollback() if kind == "rollback" else host_run.deploy())
        await asyncio.to_thread(_save_outcome, run, row, outcome)
        return outcome


def release_of(run: DeploymentRun, version: str | None = None) -> Release:
    package = run.package
    if package is None:
        # A rollback: the release is on the hosts already, under the project's package name.
        return Release(name=_package_name(run), version=version or "")
    inspection = package.inspection or {}
    return Release(
        name=package.name,
        version=package.version,
        filename=package.filename,
        sha256=package.sha256,
        local_path=packages.file_of(run.ctx.settings, package),
        content_root=inspection.get("content_root") or "",
        scripts=inspection.get("scripts") or {},
    )


def _package_name(run: DeploymentRun) -> str:
    with run.session() as session:
        name = session.scalar(
            select(Package.name)
            .where(Package.project_id == run.project.id, Package.is_db.is_(False))
            .order_by(Package.id.desc())
        )
    return name or run.project.name


def _host_plan(run: DeploymentRun, row: DeploymentHost) -> HostPlan:
    release = run.releases.get(row.host_id)
    return HostPlan(
        host_id=row.host_id,
        name=row.host_name,
        target=run.targets[row.host_id],
        files=run.rendered.files.get(row.host_name, {}),
        variables={
            **(run.environment.variables or {}),
            **(run.environment.host_variables or {}).get(row.host_name, {}),
        },
        good_versions=list(release.good_versions) if release else [],
        kept_versions=list(release.kept_versions) if release else [],
    )


def _recorder(run: DeploymentRun, host_id: int) -> Callable[[str, dict[str, Any]], None]:
    steps: list[dict[str, Any]] = []

    def record(name: str, entry: dict[str, Any]) -> None:
        entry = {"name": name, **entry}
        for index, existing in enumerate(steps):
            if existing["name"] == name:
                steps[index] = entry
                break
        else:
            steps.append(entry)
        run.book.set(host_id, steps=list(steps))
        if entry["status"] == "done":
            run.steps_done += 1

    return record


def _save_outcome(run: DeploymentRun, row: DeploymentHost, outcome: HostOutcome) -> None:
    run.book.set(
        row.host_id,
        status=outcome.status,
        version=outcome.version,
        previous_version=outcome.previous_version,
        error=outcome.error,
        finished_at=utcnow(),
    )
    with run.session() as session:
        if outcome.host_key and not run.targets[row.host_id].host_key:
            targets_hosts.pin_host_key(session, row.host_id, outcome.host_key)
        release = session.scalar(
            select(HostRelease).where(
                HostRelease.environment_id == run.environment.id,
                HostRelease.host_id == row.host_id,
            )
        )
        if release is None:
            release = HostRelease(
                environment_id=run.environment.id,
                host_id=row.host_id,
                host_name=row.host_name,
                good_versions=[],
                kept_versions=[],
            )
            session.add(release)
        release.current_version = outcome.version
        if outcome.verified and outcome.version:
            release.good_versions = [v for v in release.good_versions if v != outcome.version] + [
                outcome.version
            ]
        if outcome.kept_versions is not None:
            release.kept_versions = list(outcome.kept_versions)
        release.deployment_id = run.deployment_id
        release.updated_at = utcnow()
        session.commit()
        run.releases[row.host_id] = release
        session.expunge(release)
