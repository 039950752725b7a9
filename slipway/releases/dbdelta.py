"""Database deltas: the version directories of a DB package, applied to a target database.

A DB package (`name-db_X.Y.Z_build.tar.gz`, WeCube's 数据库发布包) holds one directory per
application version that changed the schema::

    app_v1.0/increment/1_create_tables.sql   run in number order to go up to 1.0
    app_v1.0/rollback/1_delete_data.sql      run in number order to undo 1.0
    app_v1.1/...

Upgrading from A to B runs the increment scripts of every version in (A, B]; B need not be a
directory (versions without SQL changes have none). Rolling back to A runs the rollback scripts
of every applied version above A, newest version first.

What ran is recorded in the target database itself, in `slipway_db_history` (created by the first
`apply`), one row per script run, failures included. The installed version is derived from it:

- rows are replayed in id order; failed rows change nothing (they record an attempt);
- a successful increment row starts (after a rollback) or continues the version's install; the
  row of the version's last increment script has `completes_version` and marks it installed;
- a successful rollback row makes the version not installed at once; the row of its last
  rollback script has `completes_version` and marks it rolled back (as if never applied);
- the installed version is the highest version marked installed.

So a version whose scripts stopped half-way (failure, cancel, lost worker) is not installed, the
next upgrade resumes it at its first script that has not succeeded, and the next rollback finishes
a half-done rollback.

Scripts run statement by statement (`sqlparse.split`), so a failure names its statement.
PostgreSQL runs each script in one transaction together with its history row: a failing script
leaves nothing behind. MariaDB commits DDL implicitly and cannot roll it back, so a script with
anything but INSERT/UPDATE/DELETE/REPLACE/SELECT commits statement by statement and a failure
leaves the statements before it applied (the log and the error say so); a data-only script runs
in one transaction as on PostgreSQL. Statements that cannot run in a transaction (PostgreSQL's
CREATE INDEX CONCURRENTLY) and MySQL `DELIMITER` blocks are not supported.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlparse
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import NullPool

from slipway.core.errors import (
    ConflictError,
    ExternalServiceError,
    InputError,
    InvalidStateError,
    OperationError,
)

HISTORY_TABLE = "slipway_db_history"
INCREMENT = "increment"
ROLLBACK = "rollback"
NONE = "none"
CONNECT_TIMEOUT_SECONDS = 10
STATEMENT_EXCERPT_CHARS = 500
# pg_try_advisory_lock key: "slip" in ASCII; MariaDB's GET_LOCK takes a name per database instead.
_PG_LOCK_KEY = 0x736C6970

_VERSION_DIR = re.compile(r"^(?:[\w.-]*_)?v(?P<version>\d+(?:\.\d+)*)$", re.IGNORECASE)
_SCRIPT_NAME = re.compile(r"^(?P<number>\d+)(?:[_-][^/]*)?\.sql$", re.IGNORECASE)
_VERSION = re.compile(r"^[vV]?(\d+(?:\.\d+)*)$")
_PG_LOGIN_REFUSED = re.compile(
    r'password authentication failed|no password supplied|role ".*" does not exist'
)
# Statements that never commit implicitly on MariaDB: a script of only these can be atomic there.
_DATA_KEYWORDS = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE", "SELECT"})
_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mysql+pymysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
    "mariadb+pymysql": "mariadb+pymysql",
}


class DbScriptError(OperationError):
    """A script failed on the target database; details name the version, script, statement and
    the driver's error, `result` holds what was applied before it."""

    default_code = "db_script_failed"


# --- the package ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DbScript:
    version: str
    action: str  # INCREMENT | ROLLBACK
    name: str
    path: str
    checksum: str  # sha256 hex of the file's bytes
    sql: str


@dataclass(frozen=True)
class DbVersion:
    dir: str
    version: str
    key: tuple[int, ...]
    increment: list[DbScript]
    rollback: list[DbScript]


def version_key(version: str) -> tuple[int, ...]:
    """The sort key of a version: "1.0" → (1, 0, 0); "1.0", "1.0.0" and "1.0.0.0" are equal."""
    match = _VERSION.match(version.strip())
    if not match:
        raise InputError(
            f"{version!r} is not a version (numbers separated by dots, like 1.2.0)",
            code="bad_version",
            details={"version": version},
        )
    parts = [int(part) for part in match.group(1).split(".")]
    while len(parts) > 3 and parts[-1] == 0:
        parts.pop()
    return tuple(parts + [0] * (3 - len(parts)))


def split_statements(sql: str) -> list[str]:
    """The statements of a script, without pieces that hold only comments or semicolons."""
    statements = []
    for piece in sqlparse.split(sql):
        if sqlparse.format(piece, strip_comments=True).strip().strip(";").strip():
            statements.append(piece.strip())
    return statements


def load_versions(files: Mapping[str, bytes]) -> list[DbVersion]:
    """The version directories of a DB package, oldest first; refuses a malformed package with
    every problem found, not just the first."""
    problems: list[str] = []
    scripts: dict[tuple[str, str], dict[str, list[tuple[int, DbScript]]]] = {}  # (dir, version)
    for raw_path in sorted(files):
        path = raw_path.removeprefix("./").strip("/")
        parts = path.split("/")
        directory = parts[0]
        dir_match = _VERSION_DIR.match(directory)
        if not dir_match:
            problems.append(f"{directory}: not a version directory (expected a name like app_v1.0)")
            continue
        if len(parts) != 3 or parts[1] not in (INCREMENT, ROLLBACK):
            problems.append(f"{path}: scripts belong in {directory}/increment/ or /rollback/")
            continue
        action, name = parts[1], parts[2]
        name_match = _SCRIPT_NAME.match(name)
        if not name.lower().endswith(".sql"):
            problems.append(f"{path}: not an SQL script (only .sql files are allowed)")
            continue
        if not name_match:
            problems.append(f"{path}: no number prefix giving its order (like 1_create.sql)")
            continue
        data = files[raw_path]
        try:
            sql = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            problems.append(f"{path}: not UTF-8 text")
            continue
        if not sql.strip():
            problems.append(f"{path}: empty script")
            continue
        script = DbScript(
            version=dir_match.group("version"),
            action=action,
            name=name,
            path=path,
            checksum=hashlib.sha256(data).hexdigest(),
            sql=sql,
        )
        by_action = scripts.setdefault((directory, script.version), {INCREMENT: [], ROLLBACK: []})
        by_action[action].append((int(name_match.group("number")), script))

    versions: list[DbVersion] = []
    seen: dict[tuple[int, ...], str] = {}
    for (directory, version), by_action in scripts.items():
        key = version_key(version)
        if key in seen:
            problems.append(f"{directory}: the same version as {seen[key]}")
            continue
        seen[key] = directory
        if not by_action[INCREMENT]:
            problems.append(f"{directory}: no increment scripts")
        for action, numbered in by_action.items():
            numbers = [number for number, _ in numbered]
            for number in sorted({n for n in numbers if numbers.count(n) > 1}):
                problems.append(f"{directory}/{action}: more than one script numbered {number}")
        versions.append(
            DbVersion(
                dir=directory,
                version=version,
                key=key,
                increment=[s for _, s in sorted(by_action[INCREMENT], key=lambda n: n[0])],
                rollback=[s for _, s in sorted(by_action[ROLLBACK], key=lambda n: n[0])],
            )
        )
    if not files:
        problems.append("the package holds no files")
    elif not versions and not problems:
        problems.append("no version directories (like app_v1.0/increment/1_create.sql)")
    if problems:
        unique = list(dict.fromkeys(problems))
        more = f" (and {len(unique) - 1} more)" if len(unique) > 1 else ""
        raise InputError(
            f"bad DB package: {unique[0]}{more}",
            code="bad_db_package",
            details={"problems": unique},
        )
    return sorted(versions, key=lambda v: v.key)


# --- the target database --------------------------------------------------------------------------


def check_url(url: str) -> str:
    """Refuse a URL that is not a PostgreSQL or MariaDB/MySQL database URL; the URL as it may be
    shown (without a password)."""
    return TargetDatabase(url).display_url


@dataclass(frozen=True)
class TargetDatabase:
    url: str  # postgresql+psycopg://user@host:port/db or mysql+pymysql://user@host:port/db
    password: str | None = field(default=None, repr=False)  # overrides the URL's password

    def __post_init__(self) -> None:
        self._parsed()  # refuse a bad URL when the target is made, not at first use

    def __repr__(self) -> str:
        return f"TargetDatabase(url={self.display_url!r})"

    def _parsed(self) -> URL:
        try:
            url = make_url(self.url)
        except (ArgumentError, ValueError):  # ValueError: a port that is not a number
            # The message of ArgumentError quotes the URL, which may hold a password.
            raise InputError(
                "the target database URL is not a valid URL", code="bad_db_url"
            ) from None
        driver = _DRIVERS.get(url.drivername)
        if driver is None or not url.database:
            raise InputError(
                "the target database URL must be postgresql+psycopg://user@host:port/db or "
                f"mysql+pymysql://user@host:port/db, not {url.drivername}://…",
                code="bad_db_url",
            )
        return url.set(drivername=driver)

    @property
    def display_url(self) -> str:
        """The URL for messages and logs: never with a password."""
        # URL.set() ignores None, so the password is dropped with the NamedTuple's _replace.
        return self._parsed()._replace(password=None).render_as_string(hide_password=True)

    def engine(self) -> Engine:
        """An engine without a pool: every run opens its own connection and closes it."""
        url = self._parsed()
        if self.password is not None:
            url = url.set(password=self.password)
        if url.get_backend_name() in ("mysql", "mariadb") and "charset" not in url.query:
            url = url.update_query_dict({"charset": "utf8mb4"})
        return create_engine(
            url,
            poolclass=NullPool,
            hide_parameters=True,
            connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
        )


def _driver_message(exc: DBAPIError) -> str:
    """The driver's own message, on one line."""
    orig = exc.orig
    args = getattr(orig, "args", ())
    if len(args) >= 2 and isinstance(args[0], int):  # PyMySQL: (errno, message)
        return f"({args[0]}) {args[1]}"
    # psycopg adds a LINE/caret excerpt of the statement, which the caller reports anyway.
    lines = [line.strip() for line in str(orig).splitlines()]
    kept = [line for line in lines if line and not line.startswith("LINE ") and set(line) != {"^"}]
    return " ".join(kept) or type(orig).__name__


def _connect_error(db: TargetDatabase, exc: DBAPIError) -> ExternalServiceError:
    message = _driver_message(exc)
    for secret in (db.password, make_url(db.url).password):
        if secret:
            message = message.replace(str(secret), "***")
    args = getattr(exc.orig, "args", ())
    # PyMySQL: 1044/1045/1698 access denied; psycopg has no SQLSTATE before login, only the text.
    is_auth = bool(args and args[0] in (1044, 1045, 1698)) or bool(
        _PG_LOGIN_REFUSED.search(message)
    )
    user = make_url(db.url).username or "the default user"
    if is_auth:
        return ExternalServiceError(
            f"{db.display_url} refused the login of {user}: {message}; check the user and password",
            code="db_auth_failed",
            details={"database": db.display_url, "error": message},
        )
    return ExternalServiceError(
        f"cannot connect to {db.display_url}: {message}",
        code="db_unreachable",
        details={"database": db.display_url, "error": message},
    )


@contextmanager
def _connect(db: TargetDatabase) -> Iterator[Connection]:
    engine = db.engine()
    try:
        try:
            conn = engine.connect()
        except DBAPIError as exc:
            raise _connect_error(db, exc) from None
        with conn:
            yield conn
    finally:
        engine.dispose()


# --- the history ----------------------------------------------------------------------------------

_metadata = MetaData()
history_table = Table(
    HISTORY_TABLE,
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("version", String(64), nullable=False),
    Column("script", String(255), nullable=False),
    Column("action", String(16), nullable=False),
    Column("checksum", String(64), nullable=False),
    Column("success", Boolean, nullable=False),
    Column("completes_version", Boolean, nullable=False),
    Column("error", Text),
    Column(
        "applied_at",
        DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"),
        nullable=False,
        comment="UTC",
    ),
    Column("duration_ms", Integer, nullable=False),
    Column("package", String(255), nullable=False),
    Column("installed_by", String(255), nullable=False),
)


@dataclass
class _VersionState:
    """One version as the history leaves it; a version never seen is fully rolled back."""

    version: str
    phase: str = ROLLBACK  # the action of its latest successful row
    is_complete: bool = True  # whether that action ran to the version's last script
    increments: dict[str, str] = field(default_factory=dict)  # script → checksum, this install
    rollbacks: dict[str, str] = field(default_factory=dict)  # script → checksum, this rollback

    @property
    def is_installed(self) -> bool:
        return self.phase == INCREMENT and self.is_complete

    @property
    def is_applied(self) -> bool:
        return not (self.phase == ROLLBACK and self.is_complete)


def _replay(rows: Sequence[Any]) -> dict[tuple[int, ...], _VersionState]:
    states: dict[tuple[int, ...], _VersionState] = {}
    for row in rows:
        if not row.success:
            continue
        state = states.setdefault(version_key(row.version), _VersionState(row.version))
        if row.action == INCREMENT:
            if state.phase == ROLLBACK:
                state.increments, state.rollbacks = {}, {}
            state.increments[row.script] = row.checksum
        else:
            if state.phase == INCREMENT:
                state.rollbacks = {}
            state.rollbacks[row.script] = row.checksum
        state.version = row.version
        state.phase = row.action
        state.is_complete = bool(row.completes_version)
    return states


def _installed(states: Mapping[tuple[int, ...], _VersionState]) -> str | None:
    installed = [key for key, state in states.items() if state.is_installed]
    return states[max(installed)].version if installed else None


def _read_states(conn: Connection) -> dict[tuple[int, ...], _VersionState]:
    with conn.begin():
        if not inspect(conn).has_table(HISTORY_TABLE):
            return {}
        rows = conn.execute(select(history_table).order_by(history_table.c.id)).all()
    return _replay(rows)


def installed_version(db: TargetDatabase) -> str | None:
    """The version the history of `db` says is installed; None when nothing is."""
    with _connect(db) as conn:
        return _installed(_read_states(conn))


# --- plans ----------------------------------------------------------------------------------------


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


def _verify(
    db: TargetDatabase,
    states: Mapping[tuple[int, ...], _VersionState],
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

    installed_key = _key_or_none(installed)
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
    with _connect(db) as conn:
        states = _read_states(conn)
    installed = _installed(states)
    installed_key = _key_or_none(installed)
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
        state = states.get(version.key) or _VersionState(version.version)
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
    with _connect(db) as conn:
        states = _read_states(conn)
    installed = _installed(states)
    if to is None and installed is not None:
        installed_key = version_key(installed)
        below = [k for k, s in states.items() if s.is_installed and k < installed_key]
        to = states[max(below)].version if below else None
    to_key = version_key(to) if to is not None else None
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


# --- applying -------------------------------------------------------------------------------------


def _lock(conn: Connection, db: TargetDatabase) -> None:
    """Take a lock held until the connection closes, so two runs never change one database."""
    with conn.begin():
        if conn.dialect.name == "postgresql":
            got = conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": _PG_LOCK_KEY})
        else:
            got = conn.execute(
                text("SELECT GET_LOCK(LEFT(CONCAT('slipway_db_history:', DATABASE()), 64), 0)")
            )
        if not got.scalar():
            raise ConflictError(
                f"another run is changing {db.display_url} right now; try again when it ends",
                code="db_busy",
            )


def _prepare_history(conn: Connection, db: TargetDatabase) -> str:
    """Create the history table if missing; the name of the user the scripts run as."""
    try:
        with conn.begin():
            _metadata.create_all(conn, checkfirst=True)
            if conn.dialect.name == "postgresql":
                user = conn.execute(text("SELECT current_user")).scalar()
            else:
                user = conn.execute(text("SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1)")).scalar()
    except DBAPIError as exc:
        raise ExternalServiceError(
            f"cannot create {HISTORY_TABLE} in {db.display_url}: {_driver_message(exc)}",
            code="db_history_failed",
        ) from None
    return str(user)


def _record(conn: Connection, script: DbScript, **values: Any) -> None:
    conn.execute(
        insert(history_table).values(
            version=script.version,
            script=script.name,
            action=script.action,
            checksum=script.checksum,
            applied_at=datetime.now(UTC).replace(tzinfo=None),
            **values,
        )
    )


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
        _record(
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
                f"{_driver_message(exc)}",
                code="db_history_failed",
            ) from None
        failure = _ScriptFailure(script, statements, done + 1, is_atomic, _driver_message(exc))
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
                _record(
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
            log(f"{label}: the failure could not be recorded: {_driver_message(exc)}")
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


def _key_or_none(version: str | None) -> tuple[int, ...] | None:
    return version_key(version) if version is not None else None


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
    with _connect(db) as conn:
        _lock(conn, db)
        user = _prepare_history(conn, db)
        installed = _installed(_read_states(conn))
        if _key_or_none(installed) != _key_or_none(plan.installed):
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
                result["installed_after"] = _installed(_read_states(conn))
            except DBAPIError as read_exc:
                # installed_after stays the planned-from version; the log says it is unverified.
                log(f"could not re-read the installed version: {_driver_message(read_exc)}")
            exc.result = result
            raise
        result["installed_after"] = _installed(_read_states(conn))
    log(f"{db.display_url}: installed version {result['installed_after'] or 'none'}")
    return result
