"""An app's status: its operation in progress merged with the engine's view of its containers.

The engine is asked once per endpoint for every container with a compose project label, so a list
of fifty apps costs one API call, not fifty (Websoft9's status table, seed 001, plus `upgrading`,
`uninstalling` and `partial`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from slipway.remote.docker import EngineSpec, docker_client

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
WORKDIR_LABEL = "com.docker.compose.project.working_dir"


class AppStatus(StrEnum):
    installing = "installing"
    running = "running"
    exited = "exited"
    restarting = "restarting"
    failed = "failed"
    upgrading = "upgrading"
    uninstalling = "uninstalling"
    partial = "partial"
    unknown = "unknown"  # the engine does not answer


class AppAction(StrEnum):
    start = "start"
    stop = "stop"
    restart = "restart"
    upgrade = "upgrade"
    redeploy = "redeploy"
    uninstall = "uninstall"
    logs = "logs"


_A = AppAction
ALLOWED_ACTIONS: dict[AppStatus, tuple[AppAction, ...]] = {
    AppStatus.installing: (),
    AppStatus.upgrading: (_A.logs,),
    AppStatus.uninstalling: (),
    AppStatus.running: (_A.stop, _A.restart, _A.upgrade, _A.redeploy, _A.uninstall, _A.logs),
    AppStatus.exited: (_A.start, _A.restart, _A.upgrade, _A.redeploy, _A.uninstall, _A.logs),
    AppStatus.restarting: (_A.stop, _A.restart, _A.redeploy, _A.uninstall, _A.logs),
    AppStatus.partial: (_A.start, _A.stop, _A.restart, _A.redeploy, _A.uninstall, _A.logs),
    AppStatus.failed: (_A.redeploy, _A.uninstall, _A.logs),
    AppStatus.unknown: (_A.uninstall,),
}

# Operation kinds in progress that decide the status on their own.
PROGRESS_STATUS = {
    "app.install": AppStatus.installing,
    "app.upgrade": AppStatus.upgrading,
    "app.uninstall": AppStatus.uninstalling,
}


@dataclass
class ContainerState:
    name: str
    service: str
    state: str  # created, running, restarting, exited, paused, dead, removing
    health: str | None  # starting, healthy, unhealthy, or None without a health check
    exit_code: int
    image: str
    ports: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "service": self.service,
            "state": self.state,
            "health": self.health,
            "exit_code": self.exit_code,
            "image": self.image,
            "ports": self.ports,
        }


@dataclass
class Project:
    name: str
    working_dir: str | None
    containers: list[ContainerState]


def snapshot(spec: EngineSpec) -> dict[str, Project]:
    """Every compose project on the engine, by name, from one container listing."""
    with docker_client(spec, timeout=30) as client:
        raw = client.api.containers(all=True, filters={"label": PROJECT_LABEL})
    grouped: dict[str, list[ContainerState]] = defaultdict(list)
    workdirs: dict[str, str | None] = {}
    for item in raw:
        labels = item.get("Labels") or {}
        project = labels.get(PROJECT_LABEL, "")
        status_text = str(item.get("Status", ""))
        health = None
        for marker in ("healthy", "unhealthy", "health: starting"):
            if f"({marker})" in status_text:
                health = "starting" if marker == "health: starting" else marker
                break
        grouped[project].append(
            ContainerState(
                name=(item.get("Names") or ["?"])[0].lstrip("/"),
                service=labels.get(SERVICE_LABEL, ""),
                state=str(item.get("State", "")),
                health=health,
                exit_code=_exit_code(status_text),
                image=str(item.get("Image", "")),
                ports=[
                    {
                        "private": p.get("PrivatePort"),
                        "public": p.get("PublicPort"),
                        "ip": p.get("IP"),
                    }
                    for p in item.get("Ports") or []
                    if p.get("PublicPort")
                ],
            )
        )
        workdirs.setdefault(project, labels.get(WORKDIR_LABEL))
    return {
        name: Project(name=name, working_dir=workdirs.get(name), containers=containers)
        for name, containers in grouped.items()
    }


def _exit_code(status_text: str) -> int:
    # "Exited (137) 3 seconds ago"
    if status_text.startswith("Exited (") and ")" in status_text:
        code = status_text[len("Exited (") : status_text.index(")")]
        return int(code) if code.lstrip("-").isdigit() else 0
    return 0


def engine_status(containers: list[ContainerState]) -> AppStatus:
    """The status the containers alone imply."""
    if not containers:
        return AppStatus.failed
    states = [c.state for c in containers]
    if any(state == "restarting" for state in states):
        return AppStatus.restarting
    up = [c for c in containers if c.state == "running" and c.health != "unhealthy"]
    if len(up) == len(containers):
        return AppStatus.running
    if up:
        return AppStatus.partial
    if any(state == "created" for state in states):
        return AppStatus.failed
    return AppStatus.exited


def app_status(
    *, operation_kind: str | None, install_failed: bool, containers: list[ContainerState] | None
) -> AppStatus:
    """Merge the operation in progress (if any), the install outcome and the engine's view."""
    if operation_kind in PROGRESS_STATUS:
        return PROGRESS_STATUS[operation_kind]
    if install_failed:
        return AppStatus.failed
    if containers is None:
        return AppStatus.unknown
    return engine_status(containers)
