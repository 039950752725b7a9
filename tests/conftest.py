"""Real services for the tests: Redis, SQLite and PostgreSQL, slipway workers and API servers.

Every test that touches the database runs twice, once per backend (the `backend` parameter).
Redis is the machine's (SLIPWAY_TEST_REDIS_URL); each test session claims a database number of
its own (so two sessions on one machine never flush each other's keys), flushed around each test.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis as redis_lib
from sqlalchemy import text

from slipway.core import db as core_db
from slipway.core import schema
from slipway.core.config import Settings, get_settings
from slipway.core.db import make_engine
from tests.support.forker import Forker
from tests.support.sshd import ssh_farm  # noqa: F401 - one farm per session, for every package

ROOT = Path(__file__).resolve().parent.parent
SLIPWAY = str(Path(sys.executable).parent / "slipway")
REDIS_BASE_URL = os.environ.get("SLIPWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379")
SESSION_CLAIM_KEY = "slipway-test-session"


def _is_alive(pid: str) -> bool:
    if not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _claim_redis_database() -> str:
    """The first even Redis database (14 down to 2) no other live test session has claimed; the
    odd one above it is the session's too, for tests that run a second instance."""
    base = REDIS_BASE_URL.rstrip("/")
    if base.rsplit("/", 1)[-1].isdigit():
        return base  # a database was named explicitly
    for number in range(14, 0, -2):
        client = redis_lib.Redis.from_url(f"{base}/{number}")
        holder = client.get(SESSION_CLAIM_KEY)
        if holder is not None and not _is_alive(holder.decode().rsplit(" ", 1)[-1]):
            # A session or bench that was killed never released its claim.
            client.delete(SESSION_CLAIM_KEY)
        if client.set(SESSION_CLAIM_KEY, str(os.getpid()), nx=True, ex=4 * 3600):
            client.close()
            return f"{base}/{number}"
        client.close()
    raise RuntimeError("every Redis database is claimed by a test session; flush stale claims")


REDIS_URL = _claim_redis_database()
SECOND_REDIS_URL = f"{REDIS_URL.rsplit('/', 1)[0]}/{int(REDIS_URL.rsplit('/', 1)[1]) + 1}"
PG_ADMIN_URL = os.environ.get("SLIPWAY_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", "postgresql"]

FAST_TIMINGS = {
    "SLIPWAY_HEARTBEAT_INTERVAL": "0.5",
    "SLIPWAY_WORKER_LOST_AFTER": "4",
    "SLIPWAY_MAINTENANCE_INTERVAL": "0.5",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Run the PostgreSQL half after the SQLite half so each backend's template is built once.
    items.sort(key=lambda item: "postgresql" in item.nodeid)


# --- databases ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database of our own, migrated once; dropped at the end."""
    name = f"slipway_test_{os.getpid()}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    url = f"{base}/{name}"
    yield url
    core_db._engine_for.cache_clear()
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture(scope="session")
def pg_migrated(pg_database: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    schema.upgrade(Settings(data_dir=tmp_path_factory.mktemp("pg"), database_url=pg_database))
    return pg_database


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("sqlite-template")
    path = directory / "template.db"
    schema.upgrade(Settings(data_dir=directory, database_url=f"sqlite:///{path}"))
    return path


def _reset_postgres(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            tables = [
                row[0]
                for row in conn.execute(
                    text(
                        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                        "AND tablename NOT IN ('alembic_version', 'mutexes')"
                    )
                )
            ]
            if tables:
                quoted = ", ".join(f'"{t}"' for t in tables)
                conn.execute(text(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        path = tmp_path / "slipway.db"
        shutil.copy(template, path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("pg_migrated")
    _reset_postgres(url)
    return str(url)


# --- redis ----------------------------------------------------------------------------------------


def _flush(client: redis_lib.Redis) -> None:
    """Empty this session's database but keep its claim."""
    client.flushdb()
    client.set(SESSION_CLAIM_KEY, str(os.getpid()), ex=4 * 3600)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    client = redis_lib.Redis.from_url(REDIS_URL)
    if client.get(SESSION_CLAIM_KEY) == str(os.getpid()).encode():
        client.flushdb()
    client.close()


@pytest.fixture
def redis_client() -> Iterator[redis_lib.Redis]:
    client = redis_lib.Redis.from_url(REDIS_URL)
    _flush(client)
    yield client
    _flush(client)
    client.close()


# --- settings -------------------------------------------------------------------------------------


@pytest.fixture
def env(
    database_url: str,
    redis_client: redis_lib.Redis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """The SLIPWAY_* environment of this test, for this process and the ones it starts."""
    values = {
        "SLIPWAY_DATA_DIR": str(tmp_path / "data"),
        "SLIPWAY_DATABASE_URL": database_url,
        "SLIPWAY_REDIS_URL": REDIS_URL,
        "SLIPWAY_PLUGINS": "tests.support.kinds",
        "SLIPWAY_LOG_LEVEL": "INFO",
        **FAST_TIMINGS,
    }
    for name in list(os.environ):
        if name.startswith("SLIPWAY_"):
            monkeypatch.delenv(name)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield dict(os.environ)
    get_settings.cache_clear()


@pytest.fixture
def settings(env: dict[str, str]) -> Iterator[Settings]:
    config = get_settings()
    from slipway.jobs.kinds import load_kinds

    load_kinds(config)
    yield config
    core_db.get_engine(config).dispose()


@pytest.fixture
def session(settings: Settings) -> Iterator[Any]:
    with core_db.session_factory(settings)() as db_session:
        yield db_session


# --- processes ------------------------------------------------------------------------------------


class Processes:
    """slipway processes started by a test; all stopped at its end."""

    def __init__(self, env: dict[str, str], tmp_path: Path, forker: Forker | None = None) -> None:
        self.env = env
        self.tmp_path = tmp_path
        self.forker = forker
        self.started: list[Any] = []

    def spawn(self, *args: str, log_name: str, extra_env: dict[str, str] | None = None) -> Any:
        """`slipway ARGS` with the test's environment, output in `<log_name>.log`: a
        subprocess.Popen, or its stand-in for a process forked by the forker."""
        env = {**self.env, **(extra_env or {})}
        log_path = self.tmp_path / f"{log_name}.log"
        if self.forker is not None:
            process = self.forker.spawn(list(args), env=env, cwd=self.tmp_path, log=log_path)
        else:
            process = subprocess.Popen(
                [SLIPWAY, *args],
                env=env,
                stdout=open(log_path, "ab"),  # noqa: SIM115 - the child keeps it
                stderr=subprocess.STDOUT,
                cwd=self.tmp_path,
            )
        self.started.append(process)
        return process

    def worker(self, name: str | None = None, *args: str) -> Any:
        return self.worker_on(REDIS_URL, name, *args)

    def worker_on(self, redis_url: str, name: str | None = None, *args: str) -> Any:
        """A worker on the Redis at `redis_url`, once it has announced itself."""
        name = name or f"w{len(self.started)}-{uuid.uuid4().hex[:6]}"
        process = self.spawn(
            "worker",
            "--name",
            name,
            *args,
            log_name=f"worker-{name}",
            extra_env={"SLIPWAY_REDIS_URL": redis_url},
        )
        client = redis_lib.Redis.from_url(redis_url)
        wait_for(
            lambda: client.exists(f"slipway:workers:{name}"), timeout=20, what=f"worker {name}"
        )
        process.worker_name = name  # type: ignore[attr-defined]
        return process

    def api(self) -> str:
        port = free_port()
        self.spawn("api", "--port", str(port), log_name=f"api-{port}")
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(url), timeout=20, what="the API")
        return url

    def log_of(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/v1/health", timeout=1).status_code in (200, 503)
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="session")
def forker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Forker | None]:
    if os.environ.get("SLIPWAY_TEST_FORK", "1") == "0":
        yield None
        return
    running = Forker(tmp_path_factory.mktemp("forker"))
    yield running
    running.stop()


@pytest.fixture
def processes(env: dict[str, str], tmp_path: Path, forker: Forker | None) -> Iterator[Processes]:
    procs = Processes(env, tmp_path, forker)
    yield procs
    procs.stop_all()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], Any], *, timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# --- API clients and users ------------------------------------------------------------------------


_shared_app: list[Any] = []


@pytest.fixture
def app(settings: Settings) -> Any:
    """The app, given this test's settings. One app object serves the whole session: FastAPI works
    out each route's dependencies the first time a request reaches it in an app (about 0.3 s for
    the whole route table, paid again by every new app), and an app reads its settings from
    `app.state.settings` when it uses them."""
    from slipway.api.app import create_app

    if not _shared_app:
        _shared_app.append(create_app(settings, run_maintenance=False))
    shared = _shared_app[0]
    shared.state.settings = settings
    return shared


@pytest.fixture
def client(app: Any) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    with TestClient(app) as test_client:
        yield test_client


def make_user(settings: Settings, name: str, role: str, password: str = "correct-horse-1") -> str:
    """Create a user and return a fresh session token for them."""
    from slipway.auth import service as auth_service
    from slipway.auth.models import Role

    with core_db.session_scope(settings) as db_session:
        auth_service.create_user(db_session, name=name, password=password, role=Role(role))
        token, _ = auth_service.login(
            db_session, settings, name=name, password=password, source_ip="test"
        )
    return token


@pytest.fixture
def tokens(settings: Settings) -> dict[str, str]:
    """A session token per role: {"admin": ..., "operator": ..., "viewer": ...}."""
    return {role: make_user(settings, role, role) for role in ("admin", "operator", "viewer")}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- registries -----------------------------------------------------------------------------------

# Session fixtures `registry` (htpasswd) and `token_registry` (Bearer tokens); see the module.
from tests.support.registry import registry, token_registry  # noqa: E402, F401

# `silent_server`: a TCP port that accepts connections and never answers.
from tests.support.silent import silent_server  # noqa: E402, F401
