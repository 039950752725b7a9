"""Two slipway instances on one machine share nothing: data dirs, databases, Redis, ports."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_lib
from sqlalchemy.orm import Session

from slipway.auth import service as auth_service
from slipway.auth.models import Role
from slipway.core.config import Settings
from slipway.core.db import make_engine
from tests.cli.helpers import outputs, start, throwaway_postgres_database
from tests.conftest import (
    FAST_TIMINGS,
    REDIS_URL,
    ROOT,
    SECOND_REDIS_URL,
    Processes,
    bearer,
    free_port,
    wait_for,
)

PASSWORD = "correct-horse-1\n"
# The second instance's Redis: the test database's neighbour, flushed like it.
OTHER_REDIS_URL = SECOND_REDIS_URL


@pytest.fixture
def two_instances(
    tmp_path: Path, redis_client: redis_lib.Redis
) -> Iterator[tuple[dict[str, str], dict[str, str], Processes]]:
    """Instance A: SQLite in its data dir; instance B: a PostgreSQL database of its own."""
    other_redis = redis_lib.Redis.from_url(OTHER_REDIS_URL)
    other_redis.flushdb()
    common = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(ROOT),
        "SLIPWAY_PLUGINS": "tests.support.kinds",
        **FAST_TIMINGS,
    }
    with throwaway_postgres_database() as postgres_url:
        a = {
            **common,
            "SLIPWAY_DATA_DIR": str(tmp_path / "a" / "data"),
            "SLIPWAY_REDIS_URL": REDIS_URL,
        }
        b = {
            **common,
            "SLIPWAY_DATA_DIR": str(tmp_path / "b" / "data"),
            "SLIPWAY_DATABASE_URL": postgres_url,
            "SLIPWAY_REDIS_URL": OTHER_REDIS_URL,
        }
        processes = Processes(a, tmp_path)
        try:
            yield a, b, processes
        finally:
            processes.stop_all()
    other_redis.flushdb()
    other_redis.close()


def answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/v1/health", timeout=1).status_code in (200, 503)
    except httpx.HTTPError:
        return False


def final(http: httpx.Client, operation_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        operation = dict(http.get(f"/api/v1/operations/{operation_id}").json())
        return operation if operation["status"] in ("succeeded", "failed") else None

    return dict(wait_for(done, timeout=30, what=f"operation {operation_id}"))


def operation_ids(http: httpx.Client, **filters: str) -> list[str]:
    return [op["id"] for op in http.get("/api/v1/operations", params=filters).json()["items"]]


def instance_settings(env: dict[str, str]) -> Settings:
    return Settings(
        data_dir=Path(env["SLIPWAY_DATA_DIR"]),
        database_url=env.get("SLIPWAY_DATABASE_URL", ""),
        redis_url=env["SLIPWAY_REDIS_URL"],
    )


@contextmanager
def instance_session(settings: Settings) -> Iterator[Session]:
    """A session on one instance's database, through an engine of its own."""
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as session, session.begin():
            yield session
    finally:
        engine.dispose()


def api_token(settings: Settings, user: str) -> str:
    with instance_session(settings) as session:
        token, _ = auth_service.create_api_token(session, user_name=user, name="test")
    return token


def user_names(settings: Settings) -> list[str]:
    with instance_session(settings) as session:
        return [user.name for user in auth_service.list_users(session)]


def seen_workers(check: dict[str, Any]) -> list[str]:
    workers = next(c for c in check["result"]["checks"] if c["name"] == "workers")
    return [worker["name"] for worker in workers["details"]["workers"]]


def test_two_instances_side_by_side_share_nothing(
    two_instances: tuple[dict[str, str], dict[str, str], Processes],
) -> None:
    a, b, processes = two_instances
    data_a, data_b = Path(a["SLIPWAY_DATA_DIR"]), Path(b["SLIPWAY_DATA_DIR"])
    port_a, port_b, unused = free_port(), free_port(), free_port()
    # The flags beat the environment: A's SLIPWAY_HOST and SLIPWAY_PORT point elsewhere.
    a_api = {**a, "SLIPWAY_HOST": "127.0.0.2", "SLIPWAY_PORT": str(unused)}

    outputs(start("db", "upgrade", env=a), start("db", "upgrade", env=b))
    outputs(
        start(
            "users", "create", "alice", "--role", "admin", "--password-stdin", env=a, stdin=PASSWORD
        )
    )
    processes.spawn(
        "api", "--host", "127.0.0.1", "--port", str(port_a), log_name="api-a", extra_env=a_api
    )
    processes.spawn("api", "--port", str(port_b), log_name="api-b", extra_env=b)
    processes.spawn("worker", "--name", "worker-a", log_name="worker-a", extra_env=a)
    processes.spawn("worker", "--name", "worker-b", log_name="worker-b", extra_env=b)
    settings_a, settings_b = instance_settings(a), instance_settings(b)
    with instance_session(settings_b) as session:
        auth_service.create_user(session, name="bob", password="correct-horse-1", role=Role.admin)
    token_a, token_b = api_token(settings_a, "alice"), api_token(settings_b, "bob")
    url_a, url_b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
    wait_for(lambda: answers(url_a) and answers(url_b), timeout=30, what="both APIs")
    assert not answers(f"http://127.0.0.2:{port_a}") and not answers(f"http://127.0.0.1:{unused}")
    http_a = httpx.Client(base_url=url_a, headers=bearer(token_a), timeout=10)
    http_b = httpx.Client(base_url=url_b, headers=bearer(token_b), timeout=10)
    wait_for(
        lambda: all(h.get("/api/v1/health").status_code == 200 for h in (http_a, http_b)),
        timeout=30,
        what="both workers",
    )

    check_a = http_a.post("/api/v1/system/check").json()["operation"]["id"]
    check_b = http_b.post("/api/v1/system/check").json()["operation"]["id"]
    done_a, done_b = final(http_a, check_a), final(http_b, check_b)

    assert (done_a["status"], done_b["status"]) == ("succeeded", "succeeded")
    # Each check saw its own instance's worker only, and ran on it (each logs in its own dir).
    assert seen_workers(done_a) == ["worker-a"] and seen_workers(done_b) == ["worker-b"]
    log_a, log_b = (data / "logs" / "worker.log" for data in (data_a, data_b))
    for log, check in ((log_a, check_a), (log_b, check_b)):
        ran = f"operation {check} kind=system.check status=succeeded"
        wait_for(lambda: ran in log.read_text(), timeout=10, what=f"{ran} in {log}")  # noqa: B023
    assert check_b not in log_a.read_text() and check_a not in log_b.read_text()
    assert operation_ids(http_a, kind="system.check") == [check_a]
    assert operation_ids(http_b, kind="system.check") == [check_b]
    assert not set(operation_ids(http_a)) & set(operation_ids(http_b))  # maintenance ops too
    assert http_b.get(f"/api/v1/operations/{check_a}").status_code == 404
    # Each user, and each token, exists in one instance only.
    assert httpx.get(f"{url_b}/api/v1/me", headers=bearer(token_a), timeout=10).status_code == 401
    assert httpx.get(f"{url_a}/api/v1/me", headers=bearer(token_b), timeout=10).status_code == 401
    assert user_names(settings_a) == ["alice"] and user_names(settings_b) == ["bob"]
    assert (data_a / "slipway.db").exists() and not (data_b / "slipway.db").exists()
    assert (data_a / "secret.key").read_text() != (data_b / "secret.key").read_text()
