"""Running a `dbdelta` plan on its target database, each script recorded in the history.

Scripts run statement by statement (`sqlparse.split`), so a failure names its statement.
PostgreSQL runs each script in one transaction together with its history row: a failing script
leaves nothing behind. MariaDB commits DDL implicitly and cannot roll it back, so a script with
anything but INSERT/UPDATE/DELETE/REPLACE/SELECT commits statement by statement and a failure
leaves the statements before it applied (the log and the error say so); a data-only script runs
in one transaction as on PostgreSQL. Statements that cannot run in a transaction (PostgreSQL's
CREATE INDEX CONCURRENTLY) and MySQL `DELIMITER` blocks are not supported.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlparse
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from slipway.core.errors import ConflictError, ExternalServiceError, OperationError
from slipway.releases.dbdelta import DeltaPlan, key_or_none
from slipway.releases.dbpackage import DbScript, split_statements, version_key
from slipway.releases.dbtarget import (
    HISTORY_TABLE,
    TargetDatabase,
    connect,
    driver_message,
    installed_of,
    lock,
    prepare_history,
    read_states,
    record_run,
)

STATEMENT_EXCERPT_CHARS = 500
# Statements that never commit implicitly on MariaDB: a script of only these can be atomic there.
_DATA_KEYWORDS = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE", "SELECT"})


class DbScriptError(OperationError):
    """A script failed on the target database; details name the version, script, statement and
    the driver's error, `result` holds what was applied before it."""

    default_code = "db_script_failed"


def _is_data_only(statements: Sequence[str]) -> bool:
    for statement in statements:
        first = sqlparse.parse(statement)[0].token_first(skip_cm=True)
        if first is None or first.normalized.upper() not in _DATA_KEYWORDS:
            return False
    return True


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _run_script(
    conn: Connection,
    script: DbScript,
    *,
    completes: bool,
    record: dict[str, Any],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Run one script and record it; a failing statement raises DbScriptError."""
    statements = split_statements(script.sql)
    is_atomic = conn.dialect.name == "postgresql" or _is_data_only(statements)
    started = time.monotonic()
    done = 0

    def execute(statement: str) -> None:
        nonlocal done
        # no_parameters: the SQL reaches the driver as written, so a % in a string stays a %.
        conn.exec_driver_sql(statement, execution_options={"no_parameters": True})
        done += 1

    def record_success() -> None:
        record_run(
            conn,
            script,
            success=True,
            completes_version=completes,
            duration_ms=_ms_since(started),
            **record,
        )

    try:
        if is_atomic:
            with conn.begin():
                for statement in statements:
                    execute(statement)
                record_success()
        else:
            for statement in statements:
                with conn.begin():
                    execute(statement)
            with conn.begin():
                record_success()
    except DBAPIError as exc:
        if done == len(statements):
            raise ExternalServiceError(
                f"{_label(script)} ran but could not be recorded in {HISTORY_TABLE}: "
                f"{driver_message(exc)}",
                code="db_history_failed",
            ) from None
        failure = _ScriptFailure(script, statements, done + 1, is_atomic, driver_message(exc))
        raise failure.report(conn, _ms_since(started), record, log) from None
    duration_ms = _ms_since(started)
    log(f"{_label(script)}: {len(statements)} statements, {duration_ms} ms")
    return {
        "version": script.version,
        "action": script.action,
        "script": script.name,
        "statements": len(statements),
        "duration_ms": duration_ms,
    }


def _label(script: DbScript) -> str:
    return f"{script.version} {script.action} {script.name}"


@dataclass(frozen=True)
class _ScriptFailure:
    script: DbScript
    statements: list[str]
    number: int  # of the failing statement, from 1
    is_atomic: bool
    error: str

    @property
    def committed(self) -> int:
        return 0 if self.is_atomic else self.number - 1

    @property
    def note(self) -> str:
        if self.is_atomic:
            return "the script's transaction was rolled back: none of its statements remain"
        if self.committed:
            return f"statements before {self.number} were committed; MariaDB cannot roll DDL back"
        return "none of its statements ran"

    def report(
        self,
        conn: Connection,
        duration_ms: int,
        record: dict[str, Any],
        log: Callable[[str], None],
    ) -> DbScriptError:
        """Log and record the failure; the error to raise."""
        label, total = _label(self.script), len(self.statements)
        log(f"{label}: statement {self.number} of {total} failed after {duration_ms} ms")
        log(f"{label}: {self.error}")
        log(f"{label}: {self.note}")
        try:
            with conn.begin():
                record_run(
                    conn,
                    self.script,
                    success=False,
                    completes_version=False,
                    error=f"statement {self.number}: {self.error} ({self.note})",
                    duration_ms=duration_ms,
                    **record,
                )
        except DBAPIError as exc:
            # The failure itself is what matters; a lost connection must not hide it.
            log(f"{label}: the failure could not be recorded: {driver_message(exc)}")
        statement = self.statements[self.number - 1]
        if len(statement) > STATEMENT_EXCERPT_CHARS:
            statement = statement[: STATEMENT_EXCERPT_CHARS - 1] + "…"
        return DbScriptError(
            f"{label} failed at statement {self.number} of {total}: {self.error}; {self.note}",
            details={
                "version": self.script.version,
                "action": self.script.action,
                "script": self.script.name,
                "statement_number": self.number,
                "statement": statement,
                "error": self.error,
                "committed_statements": self.committed,
            },
        )


def apply(
    db: TargetDatabase,
    plan: DeltaPlan,
    *,
    package: str,
    log: Callable[[str], None],
    check: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Run `plan` on `db`, recording each script in the history; stops at the first failure
    (DbScriptError, its `result` says what ran before it) or when `check` raises."""
    result: dict[str, Any] = {
        "installed_before": plan.installed,
        "installed_after": plan.installed,
        "applied": [],
    }
    if not plan.scripts:
        log(f"{db.display_url}: nothing to do, installed version {plan.installed or 'none'}")
        return result
    with connect(db) as conn:
        lock(conn, db)
        user = prepare_history(conn, db)
        installed = installed_of(read_states(conn))
        if key_or_none(installed) != key_or_none(plan.installed):
            raise ConflictError(
                f"{db.display_url} changed since the plan was made: {installed or 'nothing'} is "
                f"installed, the plan expected {plan.installed or 'nothing'}; plan again",
                code="db_changed",
                details={"installed": installed, "planned_from": plan.installed},
            )
        log(
            f"{plan.action} {db.display_url} from {plan.installed or 'nothing'} to "
            f"{plan.target or 'nothing'}: {len(plan.scripts)} scripts as {user}"
        )
        # Plans run each version through its last script, so the last one in the plan completes it.
        last_of_version = {version_key(s.version): i for i, s in enumerate(plan.scripts)}
        record = {"package": package[:255], "installed_by": user[:255]}
        try:
            for index, script in enumerate(plan.scripts):
                try:
                    check()
                except Exception:
                    log(f"stopped before {_label(script)}")
                    raise
                completes = last_of_version[version_key(script.version)] == index
                result["applied"].append(
                    _run_script(conn, script, completes=completes, record=record, log=log)
                )
        except DbScriptError as exc:
            try:
                result["installed_after"] = installed_of(read_states(conn))
            except DBAPIError as read_exc:
                # installed_after stays the planned-from version; the log says it is unverified.
                log(f"could not re-read the installed version: {driver_message(read_exc)}")
            exc.result = result
            raise
        result["installed_after"] = installed_of(read_states(conn))
    log(f"{db.display_url}: installed version {result['installed_after'] or 'none'}")
    return result
