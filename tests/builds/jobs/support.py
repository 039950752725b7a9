"""Helpers for tests of the build job: the local engine, builds queued as the API would, waits."""

from __future__ import annotations

from typing import Any

from slipway.builds.dockerfile import MANAGED_LABEL
from slipway.builds.models import Build, BuildStatus
from slipway.builds.service import lock_key
from slipway.core.config import Settings
from slipway.core.db import session_scope
from slipway.jobs import service as jobs
from slipway.jobs.models import Operation
from tests.conftest import bearer, wait_for

BUSYBOX = "local/busybox:1"


def add_registry(client: Any, admin: str, registry: Any, *, name: str = "test-registry") -> None:
    answer = client.post(
        "/api/v1/registries",
        json={
            "name": name,
            "url": registry.address,
            "username": registry.username,
            "password": registry.password,
        },
        headers=bearer(admin),
    )
    assert answer.status_code == 201, answer.text


def queue_build(
    settings: Settings,
    *,
    dockerfile: str,
    target: str,
    registry: str | None = "test-registry",
    callback_url: str | None = None,
    endpoint: str = "local",
    task_name: str = "test-task",
) -> tuple[int, str]:
    """A build of `dockerfile` queued as `POST /builds` would queue it, the spec step skipped.

    Like a rendered Dockerfile, it ends with the label the dangling-image cleanup looks for.
    """
    dockerfile += f'LABEL {MANAGED_LABEL}="true"\n'
    with session_scope(settings) as session:
        build = Build(
            task_name=task_name,
            source_format="native",
            base_image=dockerfile.split("\n", 1)[0].removeprefix("FROM ").strip(),
            target_image=target,
            endpoint=endpoint,
            registry_name=registry,
            push=registry is not None,
            callback_url=callback_url,
            spec={},
            spec_hash="0" * 64,
            dockerfile=dockerfile,
            context_files={},
            status=BuildStatus.queued,
            actor="admin",
        )
        session.add(build)
        session.flush()
        operation = jobs.submit(
            session,
            settings,
            kind="build.image",
            subject=f"build:{build.id}",
            params={"build_id": build.id},
            actor="admin",
            lock_keys=[lock_key(endpoint, settings)],
        )
        build.operation_id = operation.id
        session.commit()
        return build.id, operation.id


def build_row(settings: Settings, build_id: int) -> Build:
    with session_scope(settings) as session:
        build = session.get(Build, build_id)
        assert build is not None
        session.expunge(build)
        return build


def operation_row(settings: Settings, operation_id: str) -> Operation:
    with session_scope(settings) as session:
        operation = session.get(Operation, operation_id)
        assert operation is not None
        session.expunge(operation)
        return operation


def wait_until_final(settings: Settings, operation_id: str, timeout: float = 120) -> Operation:
    final = ("succeeded", "failed", "canceled")
    wait_for(
        lambda: operation_row(settings, operation_id).status in final,
        timeout=timeout,
        what=f"operation {operation_id} to end",
    )
    return operation_row(settings, operation_id)


def assert_succeeded(settings: Settings, operation_id: str, timeout: float = 120) -> Operation:
    """Waits for the operation to end and fails with its error and the end of its log unless it
    succeeded (a build that fails once in a full run says why)."""
    final = wait_until_final(settings, operation_id, timeout)
    tail = "\n".join(log_text(settings, operation_id).splitlines()[-30:])
    assert final.status == "succeeded", f"{final.status}: {final.error}\n{tail}"
    return final


def log_text(settings: Settings, operation_id: str) -> str:
    from slipway.jobs.logs import read_lines

    with session_scope(settings) as session:
        lines = read_lines(session, operation_id, limit=100_000)
        return "\n".join(line.text for line in lines)


class Receiver:
    """A real HTTP server on 127.0.0.1 that records every request (a requester's callback URL)."""

    def __init__(self) -> None:
        import json
        import threading
        import time
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests: list[dict[str, Any]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append(
                    {
                        "at": time.time(),
                        "path": self.path,
                        "headers": dict(self.headers),
                        "json": json.loads(body),
                    }
                )
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/callback"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
