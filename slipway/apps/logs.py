"""Container logs of an app, read through the engine's API: a snapshot, or followed as SSE."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import docker
from sqlalchemy.orm import Session

from slipway.apps import service
from slipway.apps.status import PROJECT_LABEL, SERVICE_LABEL
from slipway.core.config import Settings
from slipway.core.errors import InputError
from slipway.remote.docker import EngineSpec, describe_failure, docker_client
from slipway.targets import service as targets

KEEPALIVE_SECONDS = 15.0


@dataclass(frozen=True)
class LogTarget:
    spec: EngineSpec
    project: str
    service: str | None


def resolve(
    session: Session, settings: Settings, name: str, *, endpoint: str | None, only: str | None
) -> LogTarget:
    """Where the app's logs are; `only` names one compose service."""
    app = service.get_or_raise(session, name, endpoint=endpoint)
    spec = targets.engine_spec(session, settings, app.endpoint)
    target = LogTarget(spec=spec, project=app.name, service=only)
    if only is not None:
        known = {c.labels.get(SERVICE_LABEL) for c in _containers(target, any_service=True)}
        if only not in known:
            raise InputError(
                f"app {name!r} has no service {only!r}; its services: "
                f"{', '.join(sorted(s for s in known if s)) or 'none'}",
                field="service",
            )
    return target


def _containers(target: LogTarget, *, any_service: bool = False) -> list[Any]:
    filters = {"label": [f"{PROJECT_LABEL}={target.project}"]}
    if target.service and not any_service:
        filters["label"].append(f"{SERVICE_LABEL}={target.service}")
    try:
        with docker_client(target.spec) as client:
            return list(client.containers.list(all=True, filters=filters))
    except docker.errors.DockerException as exc:
        raise describe_failure(target.spec, exc) from None


def _split(raw: bytes) -> tuple[str, str]:
    text = raw.decode(errors="replace").rstrip("\n")
    stamp, _, line = text.partition(" ")
    return stamp, line


def read(target: LogTarget, *, tail: int, since: int | None) -> str:
    """Every container's last `tail` lines, merged in time order, as `service | line`."""
    entries: list[tuple[str, str]] = []
    try:
        with docker_client(target.spec) as client:
            for summary in _containers(target):
                container = client.containers.get(summary.id)
                label = container.labels.get(SERVICE_LABEL, container.name)
                raw = container.logs(timestamps=True, tail=tail, since=since)
                for line in raw.splitlines():
                    stamp, text = _split(line)
                    entries.append((stamp, f"{label} | {text}"))
    except docker.errors.DockerException as exc:
        raise describe_failure(target.spec, exc) from None
    entries.sort(key=lambda entry: entry[0])
    return "".join(text + "\n" for _, text in entries)


async def follow(target: LogTarget, *, tail: int, since: int | None) -> AsyncIterator[str]:
    """SSE events `{service, time, text}` from every container until all streams end."""
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[dict[str, str] | None] = asyncio.Queue(maxsize=10_000)
    stop = threading.Event()
    containers = _containers(target)

    def pump(container_id: str) -> None:
        try:
            with docker_client(target.spec, timeout=3600) as client:
                container = client.containers.get(container_id)
                label = container.labels.get(SERVICE_LABEL, container.name)
                stream = container.logs(
                    stream=True, follow=True, timestamps=True, tail=tail, since=since
                )
                for raw in stream:
                    if stop.is_set():
                        break
                    stamp, text = _split(raw)
                    item = {"service": label, "time": stamp, "text": text}
                    asyncio.run_coroutine_threadsafe(lines.put(item), loop).result()
        except docker.errors.DockerException:
            pass
        finally:
            asyncio.run_coroutine_threadsafe(lines.put(None), loop)

    threads = [threading.Thread(target=pump, args=(c.id,), daemon=True) for c in containers]
    for thread in threads:
        thread.start()
    open_streams = len(threads)
    try:
        while open_streams:
            try:
                item = await asyncio.wait_for(lines.get(), timeout=KEEPALIVE_SECONDS)
            except TimeoutError:
                yield ": keepalive\n\n"
                continue
            if item is None:
                open_streams -= 1
                continue
            yield f"data: {json.dumps(item)}\n\n"
        yield 'event: end\ndata: {"reason": "all containers stopped"}\n\n'
    finally:
        stop.set()
