"""What a deployment job and one host's pipeline (releases/hostdeploy.py) hand each other.

The release to put on the host, the environment's settings, the host's plan, the hooks back into
the job, and the outcome. Plain data: the job imports this module with the API, so it loads
neither asyncssh nor the SSH code (the target's type is named for type checkers only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slipway.releases.models import HostStatus
from slipway.releases.profiles import Profile

if TYPE_CHECKING:
    from slipway.remote.ssh_types import SSHTarget


class HostStop(Exception):
    """Raised between steps when the deployment is canceled or the worker is stopping."""


@dataclass(frozen=True)
class Release:
    """What goes onto the hosts."""

    name: str
    version: str
    filename: str = ""
    sha256: str = ""
    local_path: Path | None = None
    content_root: str = ""
    scripts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Settings:
    """The environment's settings one host pipeline needs."""

    deployment_id: int
    root: str
    layout: str
    keep_releases: int
    step_timeout: float
    health_check: dict[str, Any] | None
    profile: Profile | None


@dataclass
class HostPlan:
    host_id: int
    name: str
    target: SSHTarget
    files: dict[str, bytes] = field(default_factory=dict)
    good_versions: list[str] = field(default_factory=list)
    kept_versions: list[str] = field(default_factory=list)
    rollback_to: str | None = None
    # Plain variables (environment, then this host's overrides), exported as SLIPWAY_VAR_<NAME>.
    variables: dict[str, str] = field(default_factory=dict)


@dataclass
class HostOutcome:
    status: HostStatus
    version: str | None
    previous_version: str | None
    error: dict[str, Any] | None = None
    kept_versions: list[str] | None = None
    verified: bool = False
    host_key: str | None = None


class Hooks:
    """What the job gives a host pipeline: logging, step records, and the stop signal."""

    def __init__(
        self,
        log: Callable[[str, str], None],
        record: Callable[[str, dict[str, Any]], None],
        should_stop: Callable[[], bool],
    ) -> None:
        self.log = log
        self.record = record
        self.should_stop = should_stop
