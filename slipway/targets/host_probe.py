"""Logging in to hosts to learn what they are: on save, on `POST /hosts/{id}/test`, in system.check.

A probe is one SSH connection (handshake, login, one small script) that reports the OS, kernel,
the user's rights (uid, groups, root, password-less sudo) and the free disk under the deploy root.
The service layer is synchronous (routes run in a thread pool), so each probe runs its own event
loop; check_hosts probes every host at once on one loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from slipway.core.config import Settings
from slipway.core.db import utcnow
from slipway.core.errors import SlipwayError
from slipway.remote.ssh_types import HostKeyChangedError, SSHError, SSHTarget
from slipway.targets import hosts
from slipway.targets.models import Host

T = TypeVar("T")
CHECK_PARALLELISM = 16
KEY_FIELDS = ("host_key", "host_key_fingerprint")
# On save, which request field a failed login points at.
FIELD_OF_CODE = {
    "host_unreachable": "address",
    "ssh_auth_failed": "credential",
    "ssh_key_unreadable": "credential",
    "host_key_changed": "host_key",
}


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` to its end from synchronous code (a route's worker thread, the CLI)."""
    return asyncio.run(coroutine)


@dataclass(frozen=True)
class Probe:
    """What a login found: the facts to store, and the key the host offered."""

    facts: dict[str, Any]
    host_key: str
    host_key_fingerprint: str


def _as_probe(found: dict[str, Any], path: str | None) -> Probe:
    facts = {key: value for key, value in found.items() if key not in KEY_FIELDS}
    facts["path"] = path
    return Probe(facts, found["host_key"], found["host_key_fingerprint"])


def probe_target(target: SSHTarget, *, path: str | None) -> Probe:
    """Log in to `target` now (pinned key enforced when it has one) and read its facts."""
    from slipway.remote import ssh as remote_ssh  # asyncssh, loaded when a host is first tested

    return _as_probe(run_sync(remote_ssh.probe(target, path=path)), path)


def verify_for_save(target: SSHTarget, *, path: str | None) -> Probe:
    """probe_target for a host about to be saved: a failure names the field to fix."""
    try:
        return probe_target(target, path=path)
    except SSHError as error:
        field = FIELD_OF_CODE.get(error.code)
        if field is None:
            raise
        details = dict(error.details) if isinstance(error.details, dict) else {}
        error.details = {**details, "field": field}
        raise


def record_success(host: Host, probe: Probe) -> None:
    host.facts = probe.facts
    host.last_checked_at = utcnow()
    host.last_error = None


def record_failure(host: Host, error: SlipwayError) -> None:
    host.last_checked_at = utcnow()
    host.last_error = {"code": error.code, "message": error.message, "details": error.details}


@dataclass(frozen=True)
class HostCheck:
    """The outcome of a test: facts, or why it failed; `pinned_now` when it pinned the key."""

    host: Host
    probe: Probe | None
    error: SlipwayError | None
    pinned_now: bool = False


def _settle(
    session: Session, host: Host, outcome: Probe | SlipwayError, *, actor: str | None
) -> HostCheck:
    """Record a probe's outcome on `host`, pinning the key of a first successful login."""
    if isinstance(outcome, SlipwayError):
        record_failure(host, outcome)
        session.flush()
        return HostCheck(host, None, outcome)
    pinned_now = host.host_key is None
    if pinned_now:
        try:
            hosts.pin_host_key(session, host.id, outcome.host_key, actor=actor)
        except HostKeyChangedError as error:  # another connect pinned meanwhile
            record_failure(host, error)
            session.flush()
            return HostCheck(host, None, error)
    record_success(host, outcome)
    session.flush()
    return HostCheck(host, outcome, None, pinned_now)


def probe_host(
    session: Session, settings: Settings, *, ref: str, actor: str | None = None
) -> HostCheck:
    """Log in to the host now and record the outcome on it (the caller commits).

    The pinned key is enforced; a host without one gets the key it offers pinned.
    """
    host = hosts.get_host_or_raise(session, ref)
    target = hosts.ssh_target(session, settings, host)
    try:
        outcome: Probe | SlipwayError = probe_target(target, path=host.deploy_root)
    except SlipwayError as error:
        outcome = error
    return _settle(session, host, outcome, actor=actor)


async def _probe_all(
    targets: list[tuple[SSHTarget, str | None]],
) -> list[dict[str, Any] | Exception]:
    from slipway.remote import ssh as remote_ssh  # asyncssh, loaded when a host is first tested

    async def one(item: tuple[SSHTarget, str | None]) -> dict[str, Any]:
        target, path = item
        return await remote_ssh.probe(target, path=path)

    return await remote_ssh.fan_out(targets, one, limit=CHECK_PARALLELISM)


def check_hosts(session: Session, settings: Settings) -> list[dict[str, Any]]:
    """Test every host at once; one result per host, recorded on it (the caller commits).

    Each result is `{"name": "host:<name>", "ok", "message", "details"}`, the shape of
    system.check's results.
    """
    every = hosts.list_hosts(session)
    targets = [(hosts.ssh_target(session, settings, host), host.deploy_root) for host in every]
    if not targets:
        return []
    found = run_sync(_probe_all(targets))
    results = []
    for host, (_, path), outcome in zip(every, targets, found, strict=True):
        if isinstance(outcome, Exception) and not isinstance(outcome, SlipwayError):
            raise outcome
        settled = outcome if isinstance(outcome, SlipwayError) else _as_probe(outcome, path)
        check = _settle(session, host, settled, actor=hosts.SYSTEM_ACTOR)
        results.append(_check_result(check))
    return results


def _check_result(check: HostCheck) -> dict[str, Any]:
    host = check.host
    details: dict[str, Any] = {"host": host.name, "address": f"{host.address}:{host.port}"}
    if check.error is not None:
        details["code"] = check.error.code
        return {
            "name": f"host:{host.name}",
            "ok": False,
            "message": check.error.message,
            "details": details,
        }
    assert check.probe is not None
    facts = check.probe.facts
    free = facts.get("free_bytes")
    free_text = f"{free / 2**30:.1f} GiB free" if isinstance(free, int) else "free disk unknown"
    rights = "root" if facts.get("is_root") else ("sudo" if facts.get("sudo") else "no sudo")
    details.update(facts)
    return {
        "name": f"host:{host.name}",
        "ok": True,
        "message": f"{facts.get('os') or 'unknown OS'} as {facts.get('user')} ({rights}), "
        f"{free_text}",
        "details": details,
    }
