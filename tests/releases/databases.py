"""Fresh target databases for tests that run SQL on them, on the machine's real servers.

Each test gets a database of its own, owned by a login user of its own that is not a superuser and
has a password; both are dropped afterwards. PostgreSQL: `CREATE ROLE … LOGIN PASSWORD` and a
database it owns. MariaDB: `CREATE USER 'u'@'%' IDENTIFIED BY …` with `GRANT ALL ON db.*`.

Fixtures (a test module takes the ones it uses by assignment, `fresh_db = databases.fresh_db`,
since a plain import looks unused to ruff and a parameter would then redefine it):

    fresh_db      FreshDatabase, parametrized over DB_KINDS ("postgresql", "mariadb")
    postgres_db   FreshDatabase on the machine's PostgreSQL
    mariadb_db    FreshDatabase on the machine's MariaDB
    password_db   FreshDatabase on a server that checks passwords, both kinds. The machine's
                  PostgreSQL trusts every loopback login, so when it does, the PostgreSQL half
                  runs on a private cluster with scram-sha-256 (started once per session on
                  first use, stopped at its end).

Outside fixtures, `fresh_database(kind)` is the same as a context manager.
`FreshDatabase.target()` is the TargetDatabase handed to the code under test; `.tables()`,
`.rows()` and `.scalar()` read the real state as the superuser, independently of that code.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from slipway.releases.dbtarget import TargetDatabase
from tests.conftest import PG_ADMIN_URL, free_port

MARIADB_ADMIN_URL = os.environ.get(
    "SLIPWAY_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"
)
DB_KINDS = ("postgresql", "mariadb")


@dataclass(frozen=True)
class FreshDatabase:
    kind: str  # "postgresql" | "mariadb"
    name: str
    user: str
    password: str = field(repr=False)
    url: str  # SQLAlchemy URL as `user`, without the password
    admin_url: str = field(repr=False)  # SQLAlchemy URL as the superuser, on this database

    def target(self, password: str | None = None) -> TargetDatabase:
        """The database as the code under test sees it: `user` with its password (or another)."""
        return TargetDatabase(self.url, password=self.password if password is None else password)

    def rows(self, query: str, **params: Any) -> list[tuple[Any, ...]]:
        """Run `query` as the superuser and return its rows."""
        engine = create_engine(self.admin_url, poolclass=NullPool)
        try:
            with engine.begin() as conn:
                result = conn.execute(text(query), params)
                return [tuple(row) for row in result] if result.returns_rows else []
        finally:
            engine.dispose()

    def scalar(self, query: str, **params: Any) -> Any:
        rows = self.rows(query, **params)
        return rows[0][0] if rows else None

    def tables(self) -> set[str]:
        """The tables of the database, lower-case."""
        if self.kind == "postgresql":
            query = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        else:
            query = (
                "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()"
            )
        return {str(row[0]).lower() for row in self.rows(query)}


def _names() -> tuple[str, str, str]:
    token = uuid.uuid4().hex[:12]
    # Hex only: safe inside identifiers and string literals without quoting tricks.
    return f"sw_db_{token}", f"sw_user_{token}", f"pw-{uuid.uuid4().hex}"


@contextmanager
def fresh_postgres(admin_url: str = PG_ADMIN_URL) -> Iterator[FreshDatabase]:
    """A database owned by a new login role on the PostgreSQL at `admin_url` (a superuser URL)."""
    name, user, password = _names()
    libpq_url = make_url(admin_url).set(drivername="postgresql")
    with psycopg.connect(libpq_url.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} NOSUPERUSER NOCREATEDB NOCREATEROLE").format(
                sql.Identifier(user), sql.Literal(password)
            )
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(user)
            )
        )
    base = make_url(admin_url).set(drivername="postgresql+psycopg", database=name)
    try:
        yield FreshDatabase(
            kind="postgresql",
            name=name,
            user=user,
            password=password,
            url=base._replace(username=user, password=None).render_as_string(hide_password=False),
            admin_url=base.render_as_string(hide_password=False),
        )
    finally:
        with psycopg.connect(
            libpq_url.render_as_string(hide_password=False), autocommit=True
        ) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(user)))


@contextmanager
def fresh_mariadb(admin_url: str = MARIADB_ADMIN_URL) -> Iterator[FreshDatabase]:
    """A database with a new user granted everything on it, on the MariaDB at `admin_url`."""
    name, user, password = _names()
    engine = create_engine(admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
            conn.execute(text(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"))
            conn.execute(text(f"GRANT ALL PRIVILEGES ON `{name}`.* TO '{user}'@'%'"))
        base = make_url(admin_url).set(database=name)
        try:
            yield FreshDatabase(
                kind="mariadb",
                name=name,
                user=user,
                password=password,
                url=base._replace(username=user, password=None).render_as_string(
                    hide_password=False
                ),
                admin_url=base.render_as_string(hide_password=False),
            )
        finally:
            with engine.connect() as conn:
                # A connection the test left open would hold metadata locks and stall the DROP.
                sessions = conn.execute(
                    text("SELECT id FROM information_schema.processlist WHERE user = :user"),
                    {"user": user},
                ).scalars()
                for session_id in list(sessions):
                    conn.execute(text(f"KILL {int(session_id)}"))
                conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
                conn.execute(text(f"DROP USER IF EXISTS '{user}'@'%'"))
    finally:
        engine.dispose()


@contextmanager
def fresh_database(kind: str, admin_url: str | None = None) -> Iterator[FreshDatabase]:
    """A fresh database of `kind` ("postgresql" or "mariadb")."""
    if kind == "postgresql":
        with fresh_postgres(admin_url or PG_ADMIN_URL) as db:
            yield db
    elif kind == "mariadb":
        with fresh_mariadb(admin_url or MARIADB_ADMIN_URL) as db:
            yield db
    else:
        raise ValueError(f"unknown database kind {kind!r}; expected one of {DB_KINDS}")


# --- a PostgreSQL that checks passwords -----------------------------------------------------------


class PasswordPostgres:
    """A throw-away PostgreSQL cluster in a temporary directory, scram-sha-256 on 127.0.0.1.

    Run as the `postgres` account when we are root (PostgreSQL refuses to run as root)."""

    def __init__(self) -> None:
        self.directory = ""
        self.port = 0
        self.admin_password = f"admin-{uuid.uuid4().hex}"

    @staticmethod
    def problem() -> str | None:
        """Why no private cluster can be started here, or None."""
        if not _pg_bindir():
            return "no PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql"
        if os.geteuid() == 0 and not shutil.which("runuser"):
            return "running as root without runuser to start PostgreSQL as `postgres`"
        return None

    def _run(self, *argv: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        completed = subprocess.run(
            [*prefix, *argv], capture_output=True, text=True, timeout=60, check=False
        )
        if completed.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {completed.stderr or completed.stdout}")

    def start(self) -> str:
        """Start the cluster; its superuser URL."""
        bindir = _pg_bindir()
        self.directory = tempfile.mkdtemp(prefix="slipway-pg-")
        data, pwfile = f"{self.directory}/data", f"{self.directory}/pwfile"
        with open(pwfile, "w") as handle:
            handle.write(self.admin_password)
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres")
            shutil.chown(pwfile, "postgres")
        self._run(
            f"{bindir}/initdb",
            "-D",
            data,
            "-U",
            "postgres",
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "-N",
        )
        self.port = free_port()
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.directory} -c fsync=off"
        )
        self._run(
            f"{bindir}/pg_ctl",
            "-D",
            data,
            "-l",
            f"{self.directory}/log",
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        return f"postgresql://postgres:{self.admin_password}@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        if not self.directory:
            return
        try:
            self._run(
                f"{_pg_bindir()}/pg_ctl",
                "-D",
                f"{self.directory}/data",
                "-m",
                "immediate",
                "-w",
                "stop",
            )
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = ""


def _pg_bindir() -> str | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(path.split("/")[4]) if path.split("/")[4].isdigit() else 0,
    )
    return os.path.dirname(found[-1]) if found else None


def machine_postgres_checks_passwords() -> bool:
    """Whether the machine's PostgreSQL refuses a wrong password (it is set up with trust)."""
    with fresh_postgres() as db:
        try:
            psycopg.connect(
                make_url(db.url)
                .set(drivername="postgresql", password="surely-wrong")
                .render_as_string(hide_password=False),
                connect_timeout=10,
            ).close()
        except psycopg.OperationalError:
            return True
        return False


_password_postgres: dict[str, str] = {}


def _password_postgres_url(config: pytest.Config) -> str:
    """The superuser URL of a PostgreSQL that checks passwords: the machine's when it does, else a
    private cluster started on first use and stopped when the test session ends."""
    if "url" not in _password_postgres:
        if machine_postgres_checks_passwords():
            _password_postgres["url"] = PG_ADMIN_URL
        else:
            problem = PasswordPostgres.problem()
            if problem:
                pytest.skip(f"no PostgreSQL that checks passwords: {problem}")
            server = PasswordPostgres()
            _password_postgres["url"] = server.start()

            def stop() -> None:
                server.stop()
                _password_postgres.clear()

            config.add_cleanup(stop)
    return _password_postgres["url"]


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def postgres_db() -> Iterator[FreshDatabase]:
    with fresh_postgres() as db:
        yield db


@pytest.fixture
def mariadb_db() -> Iterator[FreshDatabase]:
    with fresh_mariadb() as db:
        yield db


@pytest.fixture(params=DB_KINDS)
def fresh_db(request: pytest.FixtureRequest) -> Iterator[FreshDatabase]:
    with fresh_database(request.param) as db:
        yield db


@pytest.fixture(params=DB_KINDS)
def password_db(request: pytest.FixtureRequest) -> Iterator[FreshDatabase]:
    admin_url = _password_postgres_url(request.config) if request.param == "postgresql" else None
    with fresh_database(request.param, admin_url) as db:
        yield db
