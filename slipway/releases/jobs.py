"""Release operations on a worker: release.deploy, release.resume, release.rollback.

The deployment row and its host rows are the record: each step of each host is written there as
it ends, so a resumed deployment skips the hosts that are done, and the API shows per-host state
while it runs. Hosts of a batch run concurrently on one event loop, one SSH connection each.

`DeploymentRun` loads the deployment and drives it: the database first (releases/dbdeploy.py),
then the batches of hosts (each host's turn: releases/hostjob.py; their rows written by
releases/hostbook.py), then the conclusion. The kinds are registered at the bottom.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from slipway.core.db import utcnow
from slipway.core.errors import OperationError, SlipwayError
from slipway.core.secrets import open_vault
from slipway.jobs.context import (
    WORKER_STOPPING,
    OperationCanceledError,
    OperationContext,
    WorkerStoppingError,
)
from slipway.jobs.kinds import operation_kind
from slipway.releases import dbdeploy, dbplan, deployments, hostjob, plan, profiles
from slipway.releases.hostbook import HostBook
from slipway.releases.hostplan import HostOutcome, Settings
from slipway.releases.models import (
    Deployment,
    DeploymentHost,
    DeploymentStatus,
    Environment,
    HostRelease,
    HostStatus,
    Package,
    Project,
)
from slipway.targets import hosts as targets_hosts
from slipway.targets.models import Host

CONTINUE_POLL = 0.5


class DeploymentRun:
    """One deployment or rollback on a worker: loaded once, then driven and recorded."""

    def __init__(self, ctx: OperationContext) -> None:
        self.ctx = ctx
        self.deployment_id: int = ctx.params["deployment_id"]
        self._progress_reported = -1
        self.book = self._new_book()
        self.steps_done = 0
        self._steps_total = 0

    # --- database helpers ----------------------------------------------------------------------

    def session(self) -> Session:
        return self.ctx.session()

    def update_deployment(self, **values: Any) -> None:
        with self.session() as session:
            session.execute(
                update(Deployment).where(Deployment.id == self.deployment_id).values(**values)
            )
            session.commit()

    def _report_progress(self) -> None:
        done = min(self.steps_done, self._steps_total)
        if done != self._progress_reported:
            self._progress_reported = done
            self.ctx.progress(done, self._steps_total)

    def should_stop(self) -> bool:
        return self.ctx.is_canceled or WORKER_STOPPING.is_set()

    def _new_book(self) -> HostBook:
        # One per batch: a book's writer thread runs once, for the batch's `with`.
        return HostBook(self.deployment_id, self.session, self._report_progress)

    # --- loading -------------------------------------------------------------------------------

    def load(self) -> None:
        ctx = self.ctx
        with self.session() as session:
            deployment = session.get(Deployment, self.deployment_id)
            if deployment is None:
                raise OperationError("the deployment no longer exists", code="deployment_not_found")
            environment = session.get(Environment, deployment.environment_id)
            project = session.get(Project, deployment.project_id)
            assert environment is not None and project is not None
            vault = open_vault(session, ctx.settings)
            host_rows = list(
                session.scalars(
                    select(DeploymentHost)
                    .where(DeploymentHost.deployment_id == deployment.id)
                    .order_by(DeploymentHost.batch, DeploymentHost.id)
                )
            )
            hosts = {
                h.id: h
                for h in session.scalars(
                    select(Host).where(Host.id.in_([r.host_id for r in host_rows]))
                )
            }
            releases = {
                row.host_id: row
                for row in session.scalars(
                    select(HostRelease).where(HostRelease.environment_id == environment.id)
                )
            }
            package = session.get(Package, deployment.package_id) if deployment.package_id else None
            db_package = (
                session.get(Package, deployment.db_package_id) if deployment.db_package_id else None
            )
            if deployment.kind == "deploy" and deployment.version and package is None:
                raise OperationError(
                    f"package {deployment.version} was deleted; upload it again",
                    code="package_not_found",
                )
            rendered = (
                plan.render(
                    session, ctx.settings, vault, environment, package, list(hosts.values())
                )
                if package is not None
                else plan.Rendered()
            )
            for secret in rendered.secrets:
                ctx.add_secret(secret)
            self.targets = {}
            for host_id, host in hosts.items():
                target = targets_hosts.ssh_target(session, ctx.settings, host)
                ctx.add_secret(target.password)
                ctx.add_secret(target.passphrase)
                self.targets[host_id] = target
            self.db_target = (
                dbplan.target_database(session, ctx.settings, vault, environment)
                if environment.database
                else None
            )
            if self.db_target is not None:
                ctx.add_secret(self.db_target.password)
            self.db_versions = (
                dbplan.versions_of(ctx.settings, db_package) if db_package is not None else None
            )
            for obj in (deployment, environment, project, *host_rows, *releases.values()):
                session.expunge(obj)
            if package is not None:
                session.expunge(package)
            if db_package is not None:
                session.expunge(db_package)
        self.deployment = deployment
        self.environment = environment
        self.project = project
        self.host_rows = host_rows
        self.releases = releases
        self.package = package
        self.db_package = db_package
        self.rendered = rendered
        self.profile = profiles.get_profile(ctx.settings, project.kind)
        strategy = deployment.plan.get("strategy") or {}
        self.strategy = strategy
        self.host_settings = Settings(
            deployment_id=deployment.id,
            root=environment.deploy_root,
            layout=environment.layout,
            keep_releases=environment.keep_releases,
            step_timeout=float(strategy.get("step_timeout", 900)),
            health_check=environment.health_check,
            profile=self.profile,
        )

    # --- batches -------------------------------------------------------------------------------

    def _wait_for_continue(self, index: int) -> None:
        self.update_deployment(status=DeploymentStatus.awaiting_continue, next_batch=index)
        self.ctx.log(
            f"batch {index} of {len(self.deployment.plan['batches'])} waits: "
            f"POST …/deployments/{self.deployment_id}/continue to go on",
            "system",
        )
        while True:
            with self.session() as session:
                continued = session.scalar(
                    select(Deployment.continued_batches).where(Deployment.id == self.deployment_id)
                )
            if continued is not None and continued >= index:
                return
            self.ctx.sleep(CONTINUE_POLL)

    def run_batches(self, kind: str) -> list[HostOutcome]:
        batches: list[list[int]] = self.deployment.plan["batches"]
        rows = {row.host_id: row for row in self.host_rows}
        max_failures = int(self.strategy.get("max_failures", 0))
        outcomes: list[HostOutcome] = []
        pause = self.strategy.get("pause", 0)
        first = True
        for index in range(self.deployment.next_batch, len(batches)):
            todo = [rows[h] for h in batches[index] if rows[h].status != HostStatus.succeeded]
            if not todo:
                continue
            if not first and pause == "manual":
                self._wait_for_continue(index)
            elif not first and pause:
                self.ctx.log(f"pausing {pause} s before batch {index + 1}", "system")
                self.ctx.sleep(float(pause))
            first = False
            self.ctx.check()
            self.update_deployment(status=DeploymentStatus.running, next_batch=index)
            names = ", ".join(row.host_name for row in todo)
            self.ctx.log(f"batch {index + 1}/{len(batches)}: {names}", "system")
            limit = plan.parallelism(self.ctx.settings, self.strategy, len(todo))
            with self.book:
                outcomes += asyncio.run(self._gather(todo, limit, kind))
            self.book = self._new_book()
            self.update_deployment(next_batch=index + 1)
            if self.should_stop():
                break
            failed = self.book.count_failed()
            if failed > max_failures:
                self.ctx.log(
                    f"{failed} host(s) failed, more than max_failures={max_failures}: "
                    "later batches will not start",
                    "stderr",
                )
                break
        self.book.skip_pending()
        return outcomes

    async def _gather(self, rows: list[DeploymentHost], limit: int, kind: str) -> list[HostOutcome]:
        semaphore = asyncio.Semaphore(limit)
        return list(
            await asyncio.gather(*(hostjob.run_host(self, row, semaphore, kind) for row in rows))
        )

    # --- the whole -----------------------------------------------------------------------------

    def _finish(self, status: DeploymentStatus, error: dict[str, Any] | None = None) -> None:
        self.update_deployment(status=status, error=error, finished_at=utcnow())

    def deploy(self) -> dict[str, Any]:
        self.load()
        self.update_deployment(
            status=DeploymentStatus.running, started_at=self.deployment.started_at or utcnow()
        )
        per_host = deployments.steps_per_host(self.deployment, self.environment)
        self._steps_total = per_host * len(self.host_rows) + (1 if self.db_package else 0)
        self.steps_done = per_host * sum(
            1 for r in self.host_rows if r.status == HostStatus.succeeded
        )
        self._report_progress()
        try:
            db_result = dbdeploy.apply_db(self)
            if db_result is not None:
                self.steps_done += 1
            if self.package is not None:
                self.run_batches("deploy")
        except (OperationCanceledError, WorkerStoppingError, SlipwayError) as exc:
            self._end_early(exc)
            raise
        return self._conclude()

    def _stop_now(self) -> None:
        """The deployment was canceled or its worker is stopping: record it, end the job."""
        self._record_stop()
        self.ctx.check()

    def _record_stop(self) -> None:
        if WORKER_STOPPING.is_set() and not self.ctx.is_canceled:
            self._finish(
                DeploymentStatus.failed,
                {
                    "code": "worker_stopped",
                    "message": "the worker stopped; every host is on a whole release; "
                    f"POST …/deployments/{self.deployment_id}/resume to finish",
                },
            )
        else:
            self._finish(DeploymentStatus.canceled, {"code": "canceled", "message": "canceled"})

    def _end_early(self, exc: Exception) -> None:
        self.book.skip_pending()
        if isinstance(exc, OperationCanceledError | WorkerStoppingError):
            self._record_stop()
        else:
            code = getattr(exc, "code", "failed")
            self._finish(
                DeploymentStatus.failed,
                {
                    "code": code,
                    "message": getattr(exc, "message", str(exc)),
                    "details": getattr(exc, "details", None),
                },
            )

    def _conclude(self) -> dict[str, Any]:
        summary = self.book.summary()
        failed = {name: h for name, h in summary.items() if h["status"] == HostStatus.failed}
        result: dict[str, Any] = {"hosts": summary, "db": self.deployment.db_result}
        if self.should_stop():
            self._stop_now()
        if failed:
            on_new = [n for n, h in summary.items() if h["version"] == self.deployment.version]
            if self.deployment.db_result and not on_new:
                before = self.deployment.db_result.get("installed_before")
                try:
                    result["db_rollback"] = dbdeploy.rollback_db(
                        self, before, "no host runs the new release"
                    )
                except SlipwayError as exc:
                    result["db_rollback"] = {"error": exc.message}
            names = ", ".join(
                f"{n} ({h['error']['message'] if h['error'] else 'failed'})"
                for n, h in failed.items()
            )
            message = f"{len(failed)} of {len(summary)} host(s) failed and were put back: {names}"
            error = {
                "code": "hosts_failed",
                "message": message,
                "details": {"failed": sorted(failed)},
            }
            self._finish(DeploymentStatus.failed, error)
            raise OperationError(
                message, code="hosts_failed", details=error["details"], result=result
            )
        self._finish(DeploymentStatus.succeeded)
        return result

    def rollback(self) -> dict[str, Any]:
        self.load()
        self.update_deployment(
            status=DeploymentStatus.running, started_at=self.deployment.started_at or utcnow()
        )
        self._steps_total = deployments.steps_per_host(self.deployment, None) * len(self.host_rows)
        try:
            self.run_batches("rollback")
        except (OperationCanceledError, WorkerStoppingError, SlipwayError) as exc:
            self._end_early(exc)
            raise
        return self._conclude_rollback()

    def _conclude_rollback(self) -> dict[str, Any]:
        db_to = self.deployment.plan.get("db_to")
        if db_to and not self.should_stop() and self.book.count_failed() == 0:
            with self.ctx.step("db rollback"):
                db_result = dbdeploy.rollback_db(self, db_to, f"rollback to {db_to}")
            self.update_deployment(db_result=db_result)
            self.deployment.db_result = db_result
        return self._conclude()


@operation_kind("release.deploy", timeout=6 * 3600)
def deploy(ctx: OperationContext) -> dict[str, Any]:
    return DeploymentRun(ctx).deploy()


@operation_kind("release.resume", timeout=6 * 3600)
def resume(ctx: OperationContext) -> dict[str, Any]:
    ctx.log("resuming: hosts that are done are skipped", "system")
    run = DeploymentRun(ctx)
    with ctx.session() as session:
        deployment = session.get(Deployment, run.deployment_id)
        is_rollback = deployment is not None and deployment.kind == "rollback"
    return run.rollback() if is_rollback else run.deploy()


@operation_kind("release.rollback", timeout=3600)
def rollback(ctx: OperationContext) -> dict[str, Any]:
    return DeploymentRun(ctx).rollback()
