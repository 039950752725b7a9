"""App operations, run on workers: install, start, stop, restart, upgrade, redeploy, uninstall."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

from slipway.apps import compose
from slipway.apps.catalog import load_catalog
from slipway.apps.catalog_env import parse_env, render_env
from slipway.apps.models import App, InstallState
from slipway.apps.service import env_values
from slipway.apps.status import AppStatus, engine_status, snapshot
from slipway.core.errors import OperationError, SlipwayError
from slipway.jobs.context import OperationContext
from slipway.jobs.kinds import operation_kind
from slipway.remote.docker import EngineSpec, compose_invocation, docker_client, ping
from slipway.targets import service as targets

READY_TIMEOUT = 300.0
# A container restarting for this long (or exited) means the app will not come up by itself.
GIVE_UP_AFTER = 20.0
# A container without a health check counts as up once it has kept running this long: one that
# crashes at start is often seen `running` for an instant first.
SETTLE_SECONDS = 2.0


@dataclass
class Target:
    app: App
    spec: EngineSpec
    directory: Path
    values: dict[str, str]


def _load(ctx: OperationContext) -> Target:
    with ctx.session() as session:
        app = session.get(App, ctx.params["app_id"])
        if app is None:
            raise OperationError("the app no longer exists", code="app_not_found")
        session.expunge(app)
        spec = targets.engine_spec(session, ctx.settings, app.endpoint)
        values = env_values(session, ctx.settings, app)
    for name, value in values.items():
        if name in app.secret_settings:
            ctx.add_secret(value)
    return Target(app=app, spec=spec, directory=Path(app.app_dir), values=values)


def _update_app(ctx: OperationContext, **fields: Any) -> None:
    with ctx.session() as session:
        app = session.get(App, ctx.params["app_id"])
        if app is not None:
            for name, value in fields.items():
                setattr(app, name, value)
            session.commit()


def _compose(ctx: OperationContext, target: Target, *args: str, check: bool = True) -> bool:
    """Run a compose command on the app's project; False when it failed and `check` is off."""
    file = compose.compose_file(target.directory)
    with compose_invocation(target.spec) as (program, env):
        result = ctx.run(
            [*program, "-p", target.app.name, "-f", file.name, *args],
            cwd=str(target.directory),
            env=env,
            check=False,
        )
    if check and not result.ok:
        _raise_engine_or(ctx, target, f"docker compose {args[0]} failed (exit {result.exited})")
    return result.ok


def _raise_engine_or(ctx: OperationContext, target: Target, message: str) -> None:
    """Blame the engine when it is gone, else the command."""
    try:
        ping(target.spec)
    except SlipwayError as exc:
        raise OperationError(exc.message, code="endpoint_unreachable") from None
    raise OperationError(message, code="compose_failed")


def _write_env(ctx: OperationContext, target: Target, template: str | None = None) -> None:
    env_file = target.directory / ".env"
    base = template if template is not None else env_file.read_text() if env_file.exists() else ""
    values = {**target.values, "W9_ID": target.app.name}
    if target.app.version:
        values["W9_VERSION"] = target.app.version
    if target.app.edition:
        values["W9_DIST"] = target.app.edition
    compose.write_private(env_file, render_env(base, values))


def _ensure_networks(ctx: OperationContext, target: Target) -> None:
    env_file = target.directory / ".env"
    defaults = parse_env(env_file.read_text()) if env_file.exists() else {}
    report = compose.inspect(
        compose.compose_file(target.directory), compose.resolved_env(defaults, {})
    )
    if not report.external_networks:
        return
    with docker_client(target.spec) as client:
        for network in report.external_networks:
            # The engine's name filter matches substrings: `slipway` finds `slipway-test`.
            if not any(n.name == network for n in client.networks.list(names=[network])):
                client.networks.create(network, driver="bridge")
                ctx.log(f"created network {network}", "system")


def _wait_ready(ctx: OperationContext, target: Target, timeout: float = READY_TIMEOUT) -> None:
    """Until every container runs (healthy, where it has a health check)."""
    deadline = time.monotonic() + timeout
    trouble_since: float | None = None
    running_since: float | None = None
    last = ""
    while True:
        ctx.check()
        try:
            project = snapshot(target.spec).get(target.app.name)
        except Exception as exc:
            raise OperationError(
                f"engine {target.spec.name} stopped answering: {exc}", code="endpoint_unreachable"
            ) from None
        containers = project.containers if project else []
        status = engine_status(containers)
        summary = ", ".join(
            f"{c.service}={c.state}{'/' + c.health if c.health else ''}" for c in containers
        )
        if summary != last:
            ctx.log(f"containers: {summary or 'none'}", "system")
            last = summary
        starting = any(c.health == "starting" for c in containers)
        if status == AppStatus.running and not starting:
            if all(c.health == "healthy" for c in containers):
                return
            running_since = running_since or time.monotonic()
            if time.monotonic() - running_since >= SETTLE_SECONDS:
                return
            ctx.sleep(0.5)
            continue
        running_since = None
        bad = [
            c
            for c in containers
            if c.state in ("exited", "dead", "restarting", "created") or c.health == "unhealthy"
        ]
        if bad and not starting:
            trouble_since = trouble_since or time.monotonic()
            if (
                time.monotonic() - trouble_since > GIVE_UP_AFTER
                or all(c.state in ("exited", "dead") for c in bad)
                and time.monotonic() - trouble_since > 3
            ):
                _log_tail(ctx, target, [c.name for c in bad])
                names = ", ".join(f"{c.service} ({c.state}, exit {c.exit_code})" for c in bad)
                raise OperationError(f"the app did not come up: {names}", code="app_not_ready")
        else:
            trouble_since = None
        if time.monotonic() > deadline:
            raise OperationError(f"the app was not ready within {timeout:g} s", code="timeout")
        ctx.sleep(1.0)


def _log_tail(ctx: OperationContext, target: Target, names: list[str]) -> None:
    try:
        with docker_client(target.spec) as client:
            for name in names:
                text = client.containers.get(name).logs(tail=20).decode(errors="replace")
                for line in text.splitlines():
                    ctx.log(f"{name} | {line}", "stderr")
    except docker.errors.DockerException:
        pass


# --- kinds --------------------------------------------------------------------------------------


@operation_kind("app.install", timeout=3600)
def install(ctx: OperationContext) -> dict[str, Any]:
    target = _load(ctx)
    try:
        with ctx.step("prepare the app folder"):
            _materialize(ctx, target)
        with ctx.step("create networks"):
            _ensure_networks(ctx, target)
        with ctx.step("docker compose up"):
            _compose(ctx, target, "up", "-d", "--remove-orphans")
        with ctx.step("wait until running"):
            _wait_ready(ctx, target)
    except BaseException as exc:
        _clean_failed_install(ctx, target, exc)
        raise
    _update_app(ctx, install_state=InstallState.installed, is_redeploy_pending=False)
    return _summary(target)


def _materialize(ctx: OperationContext, target: Target) -> None:
    """The app folder from its catalog template, with the app's settings in its .env."""
    with ctx.session() as session:
        entry = load_catalog(session, ctx.settings).get(target.app.catalog_key or "")
    staging = target.directory.with_name(f".{target.app.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    entry.copy_to(staging)
    template = (staging / ".env").read_text() if (staging / ".env").exists() else ""
    shutil.rmtree(target.directory, ignore_errors=True)
    staging.rename(target.directory)
    _write_env(ctx, target, template)
    ctx.log(f"{entry.key} {target.app.edition} {target.app.version} in {target.directory}")


def _clean_failed_install(ctx: OperationContext, target: Target, exc: BaseException) -> None:
    """A failed install leaves no containers behind (and no folder), and says so."""
    ctx.log(f"install failed ({exc}); removing what it created", "system")
    if target.directory.exists():
        try:
            removed = _compose(ctx, target, "down", "-v", "--remove-orphans", check=False)
        except SlipwayError:
            removed = False
        if not removed:
            ctx.log(
                "could not remove the containers it created (is the engine reachable?); "
                "redeploy replaces them and uninstall removes them",
                "system",
            )
        shutil.rmtree(target.directory, ignore_errors=True)
    _update_app(ctx, install_state=InstallState.failed)


def _summary(target: Target) -> dict[str, Any]:
    project = snapshot(target.spec).get(target.app.name)
    containers = project.containers if project else []
    ports = sorted({p["public"] for c in containers for p in c.ports})
    return {
        "app": target.app.name,
        "version": target.app.version,
        "services": [c.to_dict() for c in containers],
        "ports": ports,
    }


@operation_kind("app.start", timeout=900)
def start(ctx: OperationContext) -> dict[str, Any]:
    target = _load(ctx)
    with ctx.step("docker compose start"):
        _compose(ctx, target, "up", "-d") if not _has_containers(target) else _compose(
            ctx, target, "start"
        )
    with ctx.step("wait until running"):
        _wait_ready(ctx, target)
    return _summary(target)


def _has_compose_file(directory: Path) -> bool:
    return any((directory / name).is_file() for name in compose.COMPOSE_FILES)


def _has_containers(target: Target) -> bool:
    project = snapshot(target.spec).get(target.app.name)
    return bool(project and project.containers)


@operation_kind("app.stop", timeout=900)
def stop(ctx: OperationContext) -> dict[str, Any]:
    target = _load(ctx)
    with ctx.step("docker compose stop"):
        _compose(ctx, target, "stop")
    return _summary(target)


@operation_kind("app.restart", timeout=900)
def restart(ctx: OperationContext) -> dict[str, Any]:
    target = _load(ctx)
    with ctx.step("docker compose restart"):
        _compose(ctx, target, "restart")
    with ctx.step("wait until running"):
        _wait_ready(ctx, target)
    return _summary(target)


@operation_kind("app.redeploy", timeout=1800)
def redeploy(ctx: OperationContext) -> dict[str, Any]:
    """Recreate the containers with the current settings (after PUT /env, or to repair)."""
    target = _load(ctx)
    with ctx.step("write settings"):
        if target.app.catalog_key and not _has_compose_file(target.directory):
            # A failed install removes the folder it made: this retry writes it again.
            ctx.log(f"{target.directory} is missing; writing it again from the catalog", "system")
            _materialize(ctx, target)
        else:
            _write_env(ctx, target)
    with ctx.step("create networks"):
        _ensure_networks(ctx, target)
    with ctx.step("docker compose up --force-recreate"):
        _compose(ctx, target, "up", "-d", "--force-recreate", "--remove-orphans")
    with ctx.step("wait until running"):
        _wait_ready(ctx, target)
    _update_app(ctx, install_state=InstallState.installed, is_redeploy_pending=False)
    return _summary(target)


@operation_kind("app.upgrade", timeout=3600)
def upgrade(ctx: OperationContext) -> dict[str, Any]:
    """Recreate on the new version, keeping volumes; on failure, back to the old version."""
    target = _load(ctx)
    old, new = target.app.version, str(ctx.params["version"])
    ctx.log(f"upgrading {target.app.name} from {old} to {new}")
    env_file = target.directory / ".env"
    before = env_file.read_text()
    try:
        with ctx.step("write settings"):
            target.app.version = new
            _write_env(ctx, target)
        with ctx.step("docker compose up"):
            _compose(ctx, target, "up", "-d", "--remove-orphans")
        with ctx.step("wait until running"):
            _wait_ready(ctx, target)
    except OperationError as exc:
        ctx.log(f"upgrade to {new} failed: {exc.message}; going back to {old}", "system")
        compose.write_private(env_file, before)
        target.app.version = old
        _compose(ctx, target, "up", "-d", "--remove-orphans", check=False)
        try:
            _wait_ready(ctx, target, timeout=120)
            state = f"rolled back to {old}, which is running again"
        except OperationError as again:
            state = f"rolling back to {old} did not bring it up either: {again.message}"
        raise OperationError(
            f"upgrade to {new} failed ({exc.message}); {state}", code="upgrade_failed"
        ) from None
    _update_app(ctx, version=new)
    return {**_summary(target), "previous_version": old}


@operation_kind("app.uninstall", timeout=1800)
def uninstall(ctx: OperationContext) -> dict[str, Any]:
    target = _load(ctx)
    purge = bool(ctx.params.get("purge"))
    volumes = _volumes(target)
    with ctx.step("docker compose down"):
        if target.directory.exists() and any(target.directory.iterdir()):
            _compose(ctx, target, "down", "--remove-orphans", *(["-v"] if purge else []))
        else:
            _remove_by_label(ctx, target, purge)
    with ctx.step("forget the app"):
        shutil.rmtree(target.directory, ignore_errors=True)
        with ctx.session() as session:
            app = session.get(App, target.app.id)
            if app is not None:
                from slipway.core.secrets import open_vault

                vault = open_vault(session, ctx.settings)
                for secret_id in app.secret_settings.values():
                    vault.forget(session, secret_id)
                session.delete(app)
                session.commit()
    if purge:
        ctx.log(f"removed volumes: {', '.join(volumes) or 'none'}")
        return {"app": target.app.name, "removed_volumes": volumes, "kept_volumes": []}
    if volumes:
        ctx.log(f"kept volumes (remove with docker volume rm): {', '.join(volumes)}")
    return {"app": target.app.name, "removed_volumes": [], "kept_volumes": volumes}


def _volumes(target: Target) -> list[str]:
    with docker_client(target.spec) as client:
        found = client.volumes.list(
            filters={"label": f"com.docker.compose.project={target.app.name}"}
        )
        return sorted(volume.name for volume in found)


def _remove_by_label(ctx: OperationContext, target: Target, purge: bool) -> None:
    """Without a compose folder (an adopted app), remove the project's containers directly."""
    with docker_client(target.spec) as client:
        for container in client.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={target.app.name}"}
        ):
            ctx.log(f"removing container {container.name}")
            container.remove(force=True)
        if purge:
            for volume in client.volumes.list(
                filters={"label": f"com.docker.compose.project={target.app.name}"}
            ):
                volume.remove(force=True)
