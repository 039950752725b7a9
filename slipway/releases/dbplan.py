"""An environment's database and a DB package, put together for `dbdelta`."""

from __future__ import annotations

from sqlalchemy.orm import Session

from slipway.core.config import Settings
from slipway.core.secrets import Vault
from slipway.releases import archive, dbdelta, dbpackage, dbtarget, packages, service
from slipway.releases.models import Environment, Package


def target_database(
    session: Session, settings: Settings, vault: Vault, environment: Environment
) -> dbtarget.TargetDatabase:
    assert environment.database is not None
    return dbtarget.TargetDatabase(
        url=environment.database["url"],
        password=service.database_password(session, settings, vault, environment),
    )


def versions_of(settings: Settings, package: Package) -> list[dbpackage.DbVersion]:
    """The version directories of a DB package, read from the archive (never extracted)."""
    inspection = package.inspection or {}
    root = inspection.get("content_root") or ""
    names: list[str] = []
    for version in inspection.get("db_versions") or []:
        for action in ("increment", "rollback"):
            names += [f"{version['dir']}/{action}/{script}" for script in version.get(action, [])]
    members = {f"{root}/{name}" if root else name: name for name in names}
    contents = archive.read_members(packages.file_of(settings, package), members)
    return dbpackage.load_versions({members[member]: data for member, data in contents.items()})


def upgrade_plan(
    session: Session,
    settings: Settings,
    vault: Vault,
    environment: Environment,
    package: Package,
) -> dbdelta.DeltaPlan:
    return dbdelta.plan_upgrade(
        target_database(session, settings, vault, environment),
        versions_of(settings, package),
        package.version,
    )
