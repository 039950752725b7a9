"""A deployment's database part: the DB package's increments before the hosts, and rolling back.

Functions of the running `DeploymentRun` (releases/jobs.py), which has loaded the target database
and the DB package's versions; dbdelta plans the scripts and dbapply runs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from slipway.core.errors import OperationError
from slipway.releases import dbapply, dbdelta, dbplan
from slipway.releases.dbpackage import version_key
from slipway.releases.models import Package

if TYPE_CHECKING:
    from slipway.releases.jobs import DeploymentRun


def apply_db(run: DeploymentRun) -> dict[str, Any] | None:
    if run.db_package is None or run.db_versions is None or run.db_target is None:
        return None
    applied = (run.deployment.db_result or {}).get("installed_after")
    if applied and version_key(applied) >= version_key(run.db_package.version):
        run.ctx.log("[db] applied by an earlier run of this deployment", "system")
        return run.deployment.db_result
    with run.ctx.step("db"):
        delta = dbdelta.plan_upgrade(run.db_target, run.db_versions, run.db_package.version)
        run.ctx.log(
            f"[db] {delta.installed or 'nothing'} -> {delta.target}: "
            f"{len(delta.scripts)} script(s)",
            "system",
        )
        result = dbapply.apply(
            run.db_target,
            delta,
            package=run.db_package.filename,
            log=lambda line: run.ctx.log(f"[db] {line}"),
            check=run.ctx.check,
        )
    run.update_deployment(db_result=result)
    run.deployment.db_result = result
    return result


def rollback_db(run: DeploymentRun, to: str | None, why: str) -> dict[str, Any] | None:
    if run.db_target is None:
        return None
    versions = run.db_versions
    if versions is None:
        with run.session() as session:
            newest = session.scalars(
                select(Package)
                .where(Package.project_id == run.project.id, Package.is_db.is_(True))
                .order_by(Package.version_sort.desc())
            ).first()
            if newest is None:
                raise OperationError(
                    "no DB package to take the rollback scripts from; upload one",
                    code="no_db_package",
                )
            versions = dbplan.versions_of(run.ctx.settings, newest)
    delta = dbdelta.plan_rollback(run.db_target, versions, to)
    run.ctx.log(f"[db] rollback ({why}): {len(delta.scripts)} script(s) to {to}", "system")
    return dbapply.apply(
        run.db_target,
        delta,
        package="rollback",
        log=lambda line: run.ctx.log(f"[db] {line}"),
    )
