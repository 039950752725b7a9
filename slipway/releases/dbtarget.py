"""The target database of a DB package: connecting to it, and the history of what ran on it.

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
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

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

from slipway.core.errors import ConflictError, ExternalServiceError, InputError
from slipway.releases.dbpackage import INCREMENT, ROLLBACK, DbScript, version_key

HISTORY_TABLE = "slipway_db_history"
CONNECT_TIMEOUT_SECONDS = 10
# pg_try_advisory_lock key: "slip" in ASCII; MariaDB's GET_LOCK takes a name per database instead.
_PG_LOCK_KEY = 0x736C6970
_PG_LOGIN_REFUSED = re.compile(
    r'password authentication failed|no password supplied|role ".*" does not exist'
)
_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mysql+pymysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
    "mariadb+pymysql": "mariadb+pymysql",
}


# --- connecting -----------------------------------------------------------------------------------


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


def driver_message(exc: DBAPIError) -> str:
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
    message = driver_message(exc)
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
def connect(db: TargetDatabase) -> Iterator[Connection]:
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


def lock(conn: Connection, db: TargetDatabase) -> None:
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
class VersionState:
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


def _replay(rows: Sequence[Any]) -> dict[tuple[int, ...], VersionState]:
    states: dict[tuple[int, ...], VersionState] = {}
    for row in rows:
        if not row.success:
            continue
        state = states.setdefault(version_key(row.version), VersionState(row.version))
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


def installed_of(states: Mapping[tuple[int, ...], VersionState]) -> str | None:
    installed = [key for key, state in states.items() if state.is_installed]
    return states[max(installed)].version if installed else None


def read_states(conn: Connection) -> dict[tuple[int, ...], VersionState]:
    with conn.begin():
        if not inspect(conn).has_table(HISTORY_TABLE):
            return {}
        rows = conn.execute(select(history_table).order_by(history_table.c.id)).all()
    return _replay(rows)


def installed_version(db: TargetDatabase) -> str | None:
    """The version the history of `db` says is installed; None when nothing is."""
    with connect(db) as conn:
        return installed_of(read_states(conn))


# --- writing the history ------------------------------------------------------------------------


def prepare_history(conn: Connection, db: TargetDatabase) -> str:
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
            f"cannot create {HISTORY_TABLE} in {db.display_url}: {driver_message(exc)}",
            code="db_history_failed",
        ) from None
    return str(user)


def record_run(conn: Connection, script: DbScript, **values: Any) -> None:
    """Add the history row of one run of `script` (inside the caller's transaction)."""
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
