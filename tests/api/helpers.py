"""Assertions on the API's one error shape, and reading what the database holds."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import inspect, select, text

from slipway.audit.models import AuditEntry
from slipway.auth.models import ApiToken, User
from slipway.builds.models import Build
from slipway.core.config import Settings
from slipway.core.db import get_engine, session_factory
from slipway.jobs.models import Operation
from slipway.releases.models import Deployment, Environment, Package, Project
from slipway.targets.models import Registry

ERROR_KEYS = {"code", "message", "details", "request_id"}


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is `status` with the one error shape and `code`; returns the error object."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    if response.request.url.path.startswith("/api/fast-build/"):
        # FastBuild's routes wrap the same error in its {code, message, data} shape.
        assert set(body) == {"code", "message", "data"}, body
        assert body["code"] == status and body["message"] == body["data"]["error"]["message"]
        body = body["data"]
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == ERROR_KEYS, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    assert error["request_id"] == response.headers["x-request-id"]
    return error


def assert_invalid(
    response: httpx.Response, field: str, code: str = "invalid_input"
) -> dict[str, Any]:
    """A 422 that names `field`, in details.field and among details.errors."""
    error = assert_error(response, 422, code)
    assert error["details"]["field"] == field, error
    assert field in [problem["field"] for problem in error["details"]["errors"]], error
    return error


def audit_rows(settings: Settings) -> list[AuditEntry]:
    """Every audit row, oldest first."""
    with session_factory(settings)() as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def token_row(settings: Settings, token_hash: str) -> ApiToken:
    with session_factory(settings)() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash))
        assert row is not None
        return row


def state_of(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    """What a refused request must not change: users, tokens and operations (not the audit log,
    and not `last_used_at`, which authenticating the refused caller itself refreshes)."""
    with session_factory(settings)() as session:
        return {
            "users": sorted(
                session.execute(
                    select(User.name, User.role, User.is_active, User.password_hash)
                ).all()
            ),
            "tokens": sorted(
                session.execute(
                    select(ApiToken.id, ApiToken.user_id, ApiToken.name, ApiToken.revoked_at)
                ).all()
            ),
            "releases": [
                sorted(session.execute(select(model.id)).scalars().all())
                for model in (Project, Environment, Package, Deployment)
            ],
            "builds": sorted(session.execute(select(Build.id, Build.status)).all()),
            "registries": sorted(session.execute(select(Registry.name, Registry.revision)).all()),
            "operations": sorted(
                session.execute(
                    select(
                        Operation.id,
                        Operation.status,
                        Operation.position,
                        Operation.cancel_requested,
                    )
                ).all()
            ),
        }


def database_text(settings: Settings) -> str:
    """Every row of every table, as one string to search for something that must not be there."""
    engine = get_engine(settings)
    parts = []
    with engine.connect() as connection:
        for table in inspect(engine).get_table_names():
            for row in connection.execute(text(f'SELECT * FROM "{table}"')):
                parts.append(repr(tuple(row)))
    return "\n".join(parts)


def keys_anywhere(value: Any) -> set[str]:
    """Every key of every object nested in a JSON value."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys_anywhere(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys_anywhere(v)}
    return set()
