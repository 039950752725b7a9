"""`build.image`, run on a worker: build on the chosen engine, push, verify, call back.

The job gets a build id and makes everything else itself — its own Docker client and registry
client, closed when it ends — so nothing is shared between jobs (FastBuild's `_proxy_configs`).
"""

from __future__ import annotations

import io
import re
import time
from typing import Any

import docker
import docker.errors

from slipway.builds import callbacks  # noqa: F401  (registers build.callback)
from slipway.builds.dockerfile import MANAGED_LABEL, BuildContext
from slipway.builds.imageref import registry_path, split_image
from slipway.builds.models import Build, BuildStatus
from slipway.builds.streams import CancelableStreams, stream_error
from slipway.core.db import utcnow
from slipway.core.errors import OperationError, SlipwayError
from slipway.jobs.context import OperationCanceledError, OperationContext
from slipway.jobs.kinds import operation_kind
from slipway.remote.docker import EngineSpec, describe_failure, docker_client
from slipway.targets import registries
from slipway.targets import service as targets
from slipway.targets.registry_client import RegistryClient, RegistryLogin

# The classic builder announces each Dockerfile instruction like this; it drives the progress.
_STEP = re.compile(r"^Step (\d+)/(\d+) :")


class BuildRun:
    """One run of a build, as the worker sees it."""

    def __init__(self, ctx: OperationContext) -> None:
        self.ctx = ctx
        self.build_id = int(ctx.params["build_id"])
        self.started = time.monotonic()
        self.timings: dict[str, float] = {}
        self.result: dict[str, Any] = {}
        with ctx.session() as session:
            build = session.get(Build, self.build_id)
            if build is None:
                raise OperationError("the build no longer exists", code="build_not_found")
            session.expunge(build)
            self.build = build
            self.engine: EngineSpec = targets.engine_spec(session, ctx.settings, build.endpoint)
            self.login: RegistryLogin | None = None
            if build.push and build.registry_name:
                registry = registries.get_registry_or_raise(session, build.registry_name)
                self.login = registries.registry_login(session, ctx.settings, registry)
            # The base image may come from a private registry too: the engine pulls it with these.
            base = registries.registry_for_image(session, build.base_image)
            self.base_login = (
                registries.registry_login(session, ctx.settings, base) if base else None
            )
        for login in (self.login, self.base_login):
            if login is not None:
                ctx.add_secret(login.password)

    # --- the build row -------------------------------------------------------------------------

    def update(self, **fields: Any) -> None:
        with self.ctx.session() as session:
            build = session.get(Build, self.build_id)
            if build is not None:
                for name, value in fields.items():
                    setattr(build, name, value)
                session.commit()

    # --- phases ---------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        self.update(status=BuildStatus.running, started_at=utcnow())
        with docker_client(self.engine, timeout=self.ctx.settings.build_timeout) as client:
            self._log_in(client)
            streams = CancelableStreams(client, self.ctx)
            with streams.watching():
                with self.ctx.step("build"):
                    self.image_id = self._build(client, streams)
                if self.build.push:
                    with self.ctx.step("push"):
                        pushed_digest = self._push(client, streams)
                    with self.ctx.step("verify"):
                        self._verify(pushed_digest)
            if self.ctx.settings.build_prune_dangling:
                prune_dangling(client, self.ctx)
        return self.result

    def _log_in(self, client: docker.DockerClient) -> None:
        """Log this job's own client in where the engine pulls the base image from.

        The push carries its credentials itself (auth_config), so a build whose base image is
        local pays no login round trip.
        """
        login = self.base_login
        if login is None:
            return
        try:
            client.login(login.username, login.password, registry=login.server, reauth=True)
        except docker.errors.APIError as exc:
            raise OperationError(
                f"the engine could not log in to {login.server}: {exc.explanation or exc}",
                code="registry_login_failed",
            ) from None

    def _build(self, client: docker.DockerClient, streams: CancelableStreams) -> str:
        started = time.monotonic()
        self.ctx.log(f"building {self.build.target_image} on endpoint {self.engine.name}", "system")
        image_id: str | None = None
        context = BuildContext(
            dockerfile=self.build.dockerfile,
            files={name: text.encode() for name, text in (self.build.context_files or {}).items()},
        )
        chunks = streams.follow(
            client.api.build(
                fileobj=io.BytesIO(context.tar()),
                custom_context=True,
                tag=self.build.target_image,
                rm=True,
                forcerm=True,
                pull=False,
                network_mode=self.ctx.settings.build_network or None,
                decode=True,
            )
        )
        for chunk in chunks:
            error = stream_error(chunk)
            if error:
                raise OperationError(f"the build failed: {error}", code="build_failed")
            text = chunk.get("stream")
            if isinstance(text, str):
                for line in text.rstrip("\n").split("\n"):
                    self._build_line(line)
            aux = chunk.get("aux")
            if isinstance(aux, dict) and isinstance(aux.get("ID"), str):
                image_id = aux["ID"]
        if image_id is None:
            raise OperationError(
                "the engine ended the build without reporting an image", code="build_failed"
            )
        self.timings["build"] = round(time.monotonic() - started, 3)
        self.result["image_id"] = image_id
        self.update(image_id=image_id)
        return image_id

    def _build_line(self, line: str) -> None:
        if not line.strip():
            return
        self.ctx.log(line)
        match = _STEP.match(line)
        if match:
            step, total = int(match.group(1)), int(match.group(2))
            self.ctx.progress(step - 1, total)

    def _push(self, client: docker.DockerClient, streams: CancelableStreams) -> str:
        assert self.login is not None
        started = time.monotonic()
        repository, tag = split_image(self.build.target_image)
        self.ctx.log(f"pushing {self.build.target_image} to {self.login.server}", "system")
        digest: str | None = None
        last_status: dict[str, str] = {}
        chunks = streams.follow(
            client.api.push(
                repository,
                tag=tag,
                auth_config={"username": self.login.username, "password": self.login.password},
                stream=True,
                decode=True,
            )
        )
        for chunk in chunks:
            error = stream_error(chunk)
            if error:
                raise OperationError(f"the registry refused the push: {error}", code="push_failed")
            aux = chunk.get("aux")
            if isinstance(aux, dict) and isinstance(aux.get("Digest"), str):
                digest = aux["Digest"]
            status = chunk.get("status")
            layer = chunk.get("id")
            # One line per layer state change, not per progress tick.
            if isinstance(status, str) and last_status.get(str(layer)) != status:
                last_status[str(layer)] = status
                self.ctx.log(f"{layer}: {status}" if layer else status)
        if digest is None:
            raise OperationError(
                "the push ended without the registry confirming a digest", code="push_failed"
            )
        self.timings["push"] = round(time.monotonic() - started, 3)
        return digest

    def _verify(self, pushed_digest: str) -> None:
        assert self.login is not None
        started = time.monotonic()
        path, tag = registry_path(self.build.target_image)
        try:
            with RegistryClient(self.login) as registry:
                manifest = registry.manifest(path, tag)
        except SlipwayError as exc:
            raise OperationError(
                f"the push could not be verified: {exc.message}", code="push_unverified"
            ) from None
        if manifest is None:
            raise OperationError(
                f"the registry has no manifest for {self.build.target_image} after the push",
                code="push_unverified",
            )
        if manifest.digest != pushed_digest:
            raise OperationError(
                f"the registry holds {manifest.digest} for {self.build.target_image}, not the "
                f"pushed {pushed_digest}: another push replaced it",
                code="push_unverified",
            )
        self.timings["verify"] = round(time.monotonic() - started, 3)
        image = f"{self.build.target_image}@{manifest.digest}"
        self.ctx.log(f"verified {image} ({manifest.size} bytes)")
        self.result.update(digest=manifest.digest, size=manifest.size)
        self.update(digest=manifest.digest, size=manifest.size)

    # --- the end -------------------------------------------------------------------------------

    def finish(self, status: BuildStatus, error: dict[str, Any] | None) -> None:
        self.timings["total"] = round(time.monotonic() - self.started, 3)
        self.update(status=status, error=error, timings=self.timings, finished_at=utcnow())
        if self.build.callback_url:
            self._call_back(status, error)

    def _call_back(self, status: BuildStatus, error: dict[str, Any] | None) -> None:
        payload = callback_payload(self.build, status=status, error=error, result=self.result)
        payload["duration"] = self.timings["total"]
        with self.ctx.session() as session:
            operation = callbacks.request_callback(
                session,
                self.ctx.settings,
                url=self.build.callback_url or "",
                payload=payload,
                build_id=str(self.build_id),
                actor=self.build.actor or "system",
            )
            operation_id = operation.id
        self.update(callback_operation_id=operation_id)
        self.ctx.log(f"callback to {self.build.callback_url} queued as {operation_id}", "system")


def callback_payload(
    build: Build, *, status: BuildStatus, error: dict[str, Any] | None, result: dict[str, Any]
) -> dict[str, Any]:
    """What the requester is told when a build ends (FastBuild's task fields, and more)."""
    return {
        "task_name": build.task_name,
        "build_id": build.id,
        "status": str(status),
        "image": build.target_image,
        "digest": result.get("digest"),
        "size": result.get("size"),
        "error": error,
    }


def prune_dangling(client: docker.DockerClient, ctx: OperationContext) -> None:
    """Remove the untagged images slipway's builds left (an older build of a moved tag)."""
    try:
        pruned = client.images.prune(filters={"dangling": True, "label": MANAGED_LABEL})
    except docker.errors.APIError as exc:
        ctx.log(f"could not remove dangling images: {exc.explanation or exc}", "system")
        return
    removed = pruned.get("ImagesDeleted") or []
    if removed:
        ctx.log(f"removed {len(removed)} dangling image layer(s)", "system")


def _error_of(exc: BaseException, ctx: OperationContext) -> dict[str, Any]:
    if isinstance(exc, SlipwayError):
        return {"code": exc.code, "message": ctx.masker.mask(exc.message)}
    return {"code": "internal", "message": ctx.masker.mask(f"{type(exc).__name__}: {exc}")}


@operation_kind("build.image", timeout=3600)
def build_image(ctx: OperationContext) -> dict[str, Any]:
    run = BuildRun(ctx)
    try:
        result = run.run()
    except BaseException as exc:
        failure = (
            describe_failure(run.engine, exc)
            if isinstance(exc, docker.errors.DockerException)
            else exc
        )
        # A cut-off stream fails in many ways; after a cancel each of them means "canceled".
        if isinstance(exc, OperationCanceledError) or ctx.is_canceled:
            run.finish(
                BuildStatus.canceled, {"code": "canceled", "message": "the build was canceled"}
            )
            raise OperationCanceledError("the operation was canceled") from None
        run.finish(BuildStatus.failed, _error_of(failure, ctx))
        if failure is exc:
            raise
        raise failure from None
    run.finish(BuildStatus.succeeded, None)
    return result
