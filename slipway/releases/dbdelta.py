"""Database deltas: which scripts of a DB package take a target database to a version.

Upgrading from A to B runs the increment scripts of every version in (A, B]; B need not be a
directory (versions without SQL changes have none). Rolling back to A runs the rollback scripts
of every applied version above A, newest version first. The package is read by `dbpackage`; what
ran is recorded in the target database itself and read back by `dbtarget`, so a version whose
scripts stopped half-way is resumed by the next upgrade or finished by the next rollback. A plan
is run by `dbapply`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from slipway.core.errors import InputError, InvalidStateError
from slipway.releases.dbpackage import (
    INCREMENT,
    ROLLBACK,
    DbScript,
    DbVersion,
    split_statements,
    version_key,
)
from slipway.releases.dbtarget import (
    TargetDatabase,
    VersionState,
    connect,
    installed_of,
    read_states,
)

NONE = "none"


@dataclass
class DeltaPlan:
    installed: str | None
    target: str | None  # None: roll back everything
    action: str  # INCREMENT | ROLLBACK | NONE
    scripts: list[DbScript] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The plan as a dry run shows it."""
        return {
            "installed": self.installed,
            "target": self.target,
            "action": self.action,
            "scripts": [
                {
                    "version": s.version,
                    "action": s.action,
                    "script": s.name,
                    "checksum": s.checksum,
                    "statements": len(split_statements(s.sql)),
                }
                for s in self.scripts
            ],
        }


def key_or_none(version: str | None) -> tuple[int, ...] | None:
    return version_key(version) if version is not None else None


def _verify(
    db: TargetDatabase,
    states: Mapping[tuple[int, ...], VersionState],
    versions: Sequence[DbVersion],
    installed: str | None,
) -> None:
    """Refuse a package whose scripts differ from what the history says ran: a changed or removed
    script of an applied version, or a script that should have run below the installed version
    but never did (`recorded` None)."""
    changes: list[dict[str, Any]] = []

    def compare(version: DbVersion, action: str, recorded: dict[str, str], strict: bool) -> None:
        now = {s.name: s.checksum for s in getattr(version, action)}
        names = set(recorded) | (set(now) if strict else set())
        for name in sorted(names):
            if recorded.get(name) != now.get(name):
                changes.append(
                    {
                        "version": version.version,
                        "action": action,
                        "script": name,
                        "recorded": recorded.get(name),
                        "now": now.get(name),
                    }
                )

    installed_key = key_or_none(installed)
    for version in versions:
        state = states.get(version.key)
        if state is not None and state.is_applied:
            compare(version, INCREMENT, state.increments, strict=state.is_installed)
            if state.phase == ROLLBACK:
                compare(version, ROLLBACK, state.rollbacks, strict=False)
        elif installed_key is not None and version.key < installed_key:
            compare(version, INCREMENT, {}, strict=True)
    if changes:
        listed = ", ".join(f"{c['version']} {c['action']} {c['script']}" for c in changes[:5])
        raise InputError(
            f"the package's scripts differ from what ran on {db.display_url}: {listed}"
            f"{' …' if len(changes) > 5 else ''}; a script that ran must not change",
            code="checksum_changed",
            details=changes,
        )


def plan_upgrade(db: TargetDatabase, versions: Sequence[DbVersion], target: str) -> DeltaPlan:
    """The increment scripts that take `db` from its installed version up to `target`, resuming a
    version that stopped half-way; refuses a target below the installed version."""
    target_key = version_key(target)
    with connect(db) as conn:
        states = read_states(conn)
    installed = installed_of(states)
    installed_key = key_or_none(installed)
    if installed_key is not None and target_key < installed_key:
        raise InputError(
            f"{db.display_url} has {installed} installed, above the target {target}: an upgrade "
            "never goes down; roll back to reach an older version",
            code="target_below_installed",
            details={"installed": installed, "target": target},
        )
    _verify(db, states, versions, installed)
    scripts: list[DbScript] = []
    for version in versions:
        if version.key > target_key or (installed_key is not None and version.key <= installed_key):
            continue
        state = states.get(version.key) or VersionState(version.version)
        if state.phase == ROLLBACK and not state.is_complete:
            raise InvalidStateError(
                f"{version.version} was rolled back only part-way on {db.display_url} "
                f"({', '.join(state.rollbacks)} ran); finish the rollback before upgrading",
                code="db_partly_rolled_back",
                details={"version": version.version, "rolled_back": list(state.rollbacks)},
            )
        done = state.increments if state.phase == INCREMENT else {}
        scripts += [s for s in version.increment if s.name not in done]
    return DeltaPlan(installed, target, INCREMENT if scripts else NONE, scripts)


def plan_rollback(db: TargetDatabase, versions: Sequence[DbVersion], to: str | None) -> DeltaPlan:
    """The rollback scripts of every applied version above `to`, newest version first; `to` None
    goes one installed version back (to nothing when only one is installed)."""
    with connect(db) as conn:
        states = read_states(conn)
    installed = installed_of(states)
    if to is None and installed is not None:
        installed_key = version_key(installed)
        below = [k for k, s in states.items() if s.is_installed and k < installed_key]
        to = states[max(below)].version if below else None
    to_key = key_or_none(to)
    _verify(db, states, versions, installed)
    by_key = {v.key: v for v in versions}
    scripts: list[DbScript] = []
    unavailable: list[str] = []
    for key in sorted((k for k, s in states.items() if s.is_applied), reverse=True):
        if to_key is not None and key <= to_key:
            continue
        state, version = states[key], by_key.get(key)
        if version is None or not version.rollback:
            unavailable.append(state.version)
            continue
        done = state.rollbacks if state.phase == ROLLBACK else {}
        scripts += [s for s in version.rollback if s.name not in done]
    if unavailable:
        raise InputError(
            f"this package has no rollback scripts for {', '.join(unavailable)}, applied on "
            f"{db.display_url}",
            code="rollback_unavailable",
            details={"versions": unavailable},
        )
    return DeltaPlan(installed, to, ROLLBACK if scripts else NONE, scripts)
