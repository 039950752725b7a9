"""Release operations on a worker: release.deploy, release.resume, release.rollback.

The deployment row and its host rows are the record: each step of each host is written there as
it ends, so a resumed deployment skips the hosts that are done, and the API shows per-host state
while it runs. Hosts of a batch run concurrently on one event loop, one SSH connection each.
"""

from __future__ import annotations

import asyncio
import logging
import threading
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
from slipway.releases import dbdelta, dbplan, deployments, packages, plan, profiles
from slipway.releases.dbpackage import version_key
from slipway.releases.hostplan import Hooks, HostOutcome, HostPlan, Release, Settings
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

PROGRESS_EVERY = 0.25

log = logging.getLogger(__name__)
CONTINUE_POLL = 0.5


class HostBook:
    """Per-host state written by a thread of its own, batched every PROGRESS_EVERY seconds, so the
    event loop that drives the hosts never waits on the database."""

    def __init__(self, run: DeploymentRun) -> None:
        self._run = run
        self._lock = threading.Lock()
        self._dirty: dict[int, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="host-book", daemon=True)

    def __enter__(self) -> HostBook:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.flush()

    def set(self, host_id: int, **values: Any) -> None:
        with self._lock:
            self._dirty.setdefault(host_id, {}).update(values)

    def _loop(self) -> None:
        while not self._stop.wait(PROGRESS_EVERY):
            try:
                self.flush()
            except Exception:  # the next flush, or the final one, writes it
                log.exception("writing host state of deployment %s", self._run.deployment_id)

    def flush(self) -> None:
        with self._lock:
            dirty, self._dirty = self._dirty, {}
        if dirty:
            with self._run.session() as session:
                for host_id, values in dirty.items():
                    session.execute(
                        update(DeploymentHost)
                        .where(
                            DeploymentHost.deployment_id == self._run.deployment_id,
                            DeploymentHost.host_id == host_id,
                        )
                        .values(**values)
                    )
                session.commit()
        self._run._report_progress()


class DeploymentRun:
    def __init__(self, ctx: OperationContext) -> None:
        self.ctx = ctx
        self.deployment_id: int = ctx.params["deployment_id"]
        self._progress_reported = -1
        self.book = HostBook(self)
        self._steps_done = 0
        self._steps_total = 0

    # --- database helpers ----------------------------------------------------------------------

    def session(self) -> Session:
        return self.ctx.session()

    def _update_deployment(self, **values: Any) -> None:
        with self.session() as session:
            session.execute(
                update(Deployment).where(Deployment.id == self.deployment_id).values(**values)
            )
            session.commit()

    def _recorder(self, host_id: int) -> Any:
        steps: list[dict[str, Any]] = []

        def record(name: str, entry: dict[str, Any]) -> None:
            entry = {"name": name, **entry}
            for index, existing in enumerate(steps):
                if existing["name"] == name:
                    steps[index] = entry
                    break
            else:
                steps.append(entry)
            self.book.set(host_id, steps=list(steps))
            if entry["status"] == "done":
                self._steps_done += 1

        return record

    def _report_progress(self) -> None:
        done = min(self._steps_done, self._steps_total)
        if done != self._progress_reported:
            self._progress_reported = done
            self.ctx.progress(done, self._steps_total)

    def _should_stop(self) -> bool:
        return self.ctx.is_canceled or WORKER_STOPPING.is_set()

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

    def release(self, version: str | None = None) -> Release:
        package = self.package
        if package is None:
            # A rollback: the release is on the hosts already, under the project's package name.
            return Release(name=self._package_name(), version=version or "")
        inspection = package.inspection or {}
        return Release(
            name=package.name,
            version=package.version,
            filename=package.filename,
            sha256=package.sha256,
            local_path=packages.file_of(self.ctx.settings, package),
            content_root=inspection.get("content_root") or "",
            scripts=inspection.get("scripts") or {},
        )

    def _package_name(self) -> str:
        with self.session() as session:
            name = session.scalar(
                select(Package.name)
                .where(Package.project_id == self.project.id, Package.is_db.is_(False))
                .order_by(Package.id.desc())
            )
        return name or self.project.name

    # --- host outcomes -------------------------------------------------------------------------

    def _host_plan(self, row: DeploymentHost) -> HostPlan:
        release = self.releases.get(row.host_id)
        return HostPlan(
            host_id=row.host_id,
            name=row.host_name,
            target=self.targets[row.host_id],
            files=self.rendered.files.get(row.host_name, {}),
            variables={
                **(self.environment.variables or {}),
                **(self.environment.host_variables or {}).get(row.host_name, {}),
            },
            good_versions=list(release.good_versions) if release else [],
            kept_versions=list(release.kept_versions) if release else [],
        )

    def _save_outcome(self, row: DeploymentHost, outcome: HostOutcome) -> None:
        self.book.set(
            row.host_id,
            status=outcome.status,
            version=outcome.version,
            previous_version=outcome.previous_version,
            error=outcome.error,
            finished_at=utcnow(),
        )
        with self.session() as session:
            if outcome.host_key and not self.targets[row.host_id].host_key:
                targets_hosts.pin_host_key(session, row.host_id, outcome.host_key)
            release = session.scalar(
                select(HostRelease).where(
                    HostRelease.environment_id == self.environment.id,
                    HostRelease.host_id == row.host_id,
                )
            )
            if release is None:
                release = HostRelease(
                    environment_id=self.environment.id,
                    host_id=row.host_id,
                    host_name=row.host_name,
                    good_versions=[],
                    kept_versions=[],
                )
                session.add(release)
            release.current_version = outcome.version
            if outcome.verified and outcome.version:
                release.good_versions = [
                    v for v in release.good_versions if v != outcome.version
                ] + [outcome.version]
            if outcome.kept_versions is not None:
                release.kept_versions = list(outcome.kept_versions)
            release.deployment_id = self.deployment_id
            release.updated_at = utcnow()
            session.commit()
            self.releases[row.host_id] = release
            session.expunge(release)

    async def _run_host(
        self, row: DeploymentHost, semaphore: asyncio.Semaphore, kind: str
    ) -> HostOutcome:
        async with semaphore:
            self.book.set(
                row.host_id, status=HostStatus.running, started_at=utcnow(), steps=[], error=None
            )
            host = self._host_plan(row)
            release = self.release()
            if kind == "rollback":
                target = self.deployment.plan["targets"][str(row.host_id)]
                host.rollback_to = target
                release = self.release(target)
            # The SSH runner (and asyncssh under it) is imported where a deployment runs, not
            # with this module: the API imports every kind's module for its spec, and never deploys.
            from slipway.releases.hostdeploy import HostRun

            hooks = Hooks(
                log=self.ctx.log, record=self._recorder(row.host_id), should_stop=self._should_stop
            )
            run = HostRun(self.host_settings, release, host, hooks)
            outcome = await (run.rollback() if kind == "rollback" else run.deploy())
            await asyncio.to_thread(self._save_outcome, row, outcome)
            return outcome

    # --- batches -------------------------------------------------------------------------------

    def _wait_for_continue(self, index: int) -> None:
        self._update_deployment(status=DeploymentStatus.awaiting_continue, next_batch=index)
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
            self._update_deployment(status=DeploymentStatus.running, next_batch=index)
            names = ", ".join(row.host_name for row in todo)
            self.ctx.log(f"batch {index + 1}/{len(batches)}: {names}", "system")
            limit = plan.parallelism(self.ctx.settings, self.strategy, len(todo))
            with self.book:
                outcomes += asyncio.run(self._gather(todo, limit, kind))
            self.book = HostBook(self)
            self._update_deployment(next_batch=index + 1)
            if self._should_stop():
                break
            failed = self._count_failed()
            if failed > max_failures:
                self.ctx.log(
                    f"{failed} host(s) failed, more than max_failures={max_failures}: "
                    "later batches will not start",
                    "stderr",
                )
                break
        self._skip_pending()
        return outcomes

    async def _gather(self, rows: list[DeploymentHost], limit: int, kind: str) -> list[HostOutcome]:
        semaphore = asyncio.Semaphore(limit)
        return list(await asyncio.gather(*(self._run_host(row, semaphore, kind) for row in rows)))

    def _count_failed(self) -> int:
        with self.session() as session:
            return len(
                session.scalars(
                    select(DeploymentHost.id).where(
                        DeploymentHost.deployment_id == self.deployment_id,
                        DeploymentHost.status == HostStatus.failed,
                    )
                ).all()
            )

    def _skip_pending(self) -> None:
        with self.session() as session:
            session.execute(
                update(DeploymentHost)
                .where(
                    DeploymentHost.deployment_id == self.deployment_id,
                    DeploymentHost.status == HostStatus.pending,
                )
                .values(status=HostStatus.skipped)
            )
            session.commit()

    def _host_summary(self) -> dict[str, Any]:
        with self.session() as session:
            rows = session.scalars(
                select(DeploymentHost)
                .where(DeploymentHost.deployment_id == self.deployment_id)
                .order_by(DeploymentHost.batch, DeploymentHost.id)
            ).all()
            return {
                row.host_name: {"status": row.status, "version": row.version, "error": row.error}
                for row in rows
            }

    # --- the database --------------------------------------------------------------------------

    def apply_db(self) -> dict[str, Any] | None:
        if self.db_package is None or self.db_versions is None or self.db_target is None:
            return None
        applied = (self.deployment.db_result or {}).get("installed_after")
        if applied and version_key(applied) >= version_key(self.db_package.version):
            self.ctx.log("[db] applied by an earlier run of this deployment", "system")
            return self.deployment.db_result
        with self.ctx.step("db"):
            delta = dbdelta.plan_upgrade(self.db_target, self.db_versions, self.db_package.version)
            self.ctx.log(
                f"[db] {delta.installed or 'nothing'} -> {delta.target}: "
                f"{len(delta.scripts)} script(s)",
                "system",
            )
            result = dbdelta.apply(
                self.db_target,
                delta,
                package=self.db_package.filename,
                log=lambda line: self.ctx.log(f"[db] {line}"),
                check=self.ctx.check,
            )
        self._update_deployment(db_result=result)
        self.deployment.db_result = result
        return result

    def rollback_db(self, to: str | None, why: str) -> dict[str, Any] | None:
        if self.db_target is None:
            return None
        versions = self.db_versions
        if versions is None:
            with self.session() as session:
                newest = session.scalars(
                    select(Package)
                    .where(Package.project_id == self.project.id, Package.is_db.is_(True))
                    .order_by(Package.version_sort.desc())
                ).first()
                if newest is None:
                    raise OperationError(
                        "no DB package to take the rollback scripts from; upload one",
                        code="no_db_package",
                    )
                versions = dbplan.versions_of(self.ctx.settings, newest)
        delta = dbdelta.plan_rollback(self.db_target, versions, to)
        self.ctx.log(f"[db] rollback ({why}): {len(delta.scripts)} script(s) to {to}", "system")
        return dbdelta.apply(
            self.db_target,
            delta,
            package="rollback",
            log=lambda line: self.ctx.log(f"[db] {line}"),
        )

    # --- the whole -----------------------------------------------------------------------------

    def _finish(self, status: DeploymentStatus, error: dict[str, Any] | None = None) -> None:
        self._update_deployment(status=status, error=error, finished_at=utcnow())

    def deploy(self) -> dict[str, Any]:
        self.load()
        self._update_deployment(
            status=DeploymentStatus.running, started_at=self.deployment.started_at or utcnow()
        )
        per_host = deployments.steps_per_host(self.deployment, self.environment)
        self._steps_total = per_host * len(self.host_rows) + (1 if self.db_package else 0)
        self._steps_done = per_host * sum(
            1 for r in self.host_rows if r.status == HostStatus.succeeded
        )
        self._report_progress()
        try:
            db_result = self.apply_db()
            if db_result is not None:
                self._steps_done += 1
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
        self._skip_pending()
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
        summary = self._host_summary()
        failed = {name: h for name, h in summary.items() if h["status"] == HostStatus.failed}
        result: dict[str, Any] = {"hosts": summary, "db": self.deployment.db_result}
        if self._should_stop():
            self._stop_now()
        if failed:
            on_new = [n for n, h in summary.items() if h["version"] == self.deployment.version]
            if self.deployment.db_result and not on_new:
                before = self.deployment.db_result.get("installed_before")
                try:
                    result["db_rollback"] = self.rollback_db(before, "no host runs the new release")
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
        self._update_deployment(
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
        if db_to and not self._should_stop() and self._count_failed() == 0:
            with self.ctx.step("db rollback"):
                db_result = self.rollback_db(db_to, f"rollback to {db_to}")
            self._update_deployment(db_result=db_result)
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
