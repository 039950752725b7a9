"""Docker build and push streams that a cancel can cut off at once.

A build step can stay silent for minutes (a long `RUN`), so checking for cancel between stream
chunks is not enough: a watcher thread shuts the stream's socket down when the operation is
canceled. The engine sees its client gone and stops the build (removing intermediate containers,
as `forcerm` asks), and the job's read ends at once.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import docker
import requests

from slipway.jobs.context import OperationContext

CANCEL_POLL_SECONDS = 0.2


def stream_error(chunk: dict[str, Any]) -> str | None:
    """The error a build or push stream reports in `chunk`, if any."""
    detail = chunk.get("errorDetail")
    if isinstance(detail, dict) and detail.get("message"):
        return str(detail["message"]).strip()
    if chunk.get("error"):
        return str(chunk["error"]).strip()
    return None


def _socket_of(response: requests.Response) -> socket.socket | None:
    # The same path docker-py itself takes to reach an attach stream's socket.
    try:
        raw = response.raw._fp.fp.raw  # type: ignore[union-attr]
        return getattr(raw, "_sock", raw)  # type: ignore[no-any-return]
    except AttributeError:
        return None


class CancelableStreams:
    """Tracks the streaming responses of one client; cuts them off when `ctx` is canceled."""

    def __init__(self, client: docker.DockerClient, ctx: OperationContext) -> None:
        self.ctx = ctx
        self._responses: list[requests.Response] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        client.api.hooks["response"].append(self._capture)

    def _capture(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            self._responses.append(response)

    def _cut_off(self) -> None:
        with self._lock:
            responses, self._responses = self._responses, []
        for response in responses:
            sock = _socket_of(response)
            try:
                if sock is not None:
                    sock.shutdown(socket.SHUT_RDWR)
                else:
                    response.close()
            except OSError:
                pass  # already closed: nothing left to cut

    def _watch(self) -> None:
        while not self._done.wait(CANCEL_POLL_SECONDS):
            if self.ctx.is_canceled:
                self._cut_off()
                return

    @contextmanager
    def watching(self) -> Iterator[None]:
        watcher = threading.Thread(target=self._watch, name="build-cancel", daemon=True)
        watcher.start()
        try:
            yield
        finally:
            self._done.set()
            watcher.join(timeout=5)

    def follow(self, chunks: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """The stream's chunks; stops with the cancel error as soon as the operation is canceled."""
        try:
            for chunk in chunks:
                self.ctx.check()
                yield chunk
            self.ctx.check()  # a cut-off stream may simply end
        except (OSError, requests.RequestException, docker.errors.DockerException):
            self.ctx.check()  # a cut-off stream: report the cancel, not the broken pipe
            raise
        finally:
            with self._lock:
                self._responses.clear()
