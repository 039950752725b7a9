"""One host's part of a deployment or rollback: the recorded steps, and putting it back on failure.

Every step is one or a few commands on one SSH connection (releases/hoststeps.py says what each
does). A host that fails is put back on the release it ran before (versioned: `current` switched
back; flat: the backup restored) and that release is started again. A cancel (or a worker asked
to stop) is honoured between steps: a host that has not switched yet is put back, one that has
switched keeps the new release, started. Either way every host ends on a whole release, and
`HostOutcome` says which.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import partial
from shlex import quote as q
from typing import Any

from slipway.core.errors import RemoteCommandError, SlipwayError
from slipway.releases import hoststeps
from slipway.releases.hostplan import Hooks, HostOutcome, HostPlan, HostStop, Release, Settings
from slipway.releases.models import FLAT_STEPS, VERSIONED_STEPS, HostStatus
from slipway.remote import ssh


class HostRun:
    """One host's pass; the flags say how far it got, which is what putting it back undoes."""

    def __init__(self, settings: Settings, release: Release, host: HostPlan, hooks: Hooks) -> None:
        self.s = settings
        self.release = release
        self.host = host
        self.hooks = hooks
        self.conn: ssh.SSHSession | None = None
        self.previous: str | None = None  # the version it ran before
        self.previous_dir: str | None = None
        self.old_stopped = False
        self.switched = False
        self.started = False
        self.release_created = False
        self.replaced_current = False
        self.backup_entries: list[str] | None = None
        self.installed = False
        self.unpacked = False  # the package was unpacked into staging while it was uploaded
        self.package_on_host: str | None = None  # the sha256 of the host's copy, if any
        state = f"{settings.root}/.slipway"
        self.state_dir = state
        self.package_path = f"{state}/packages/{release.filename}"
        self.staging = f"{state}/staging-{settings.deployment_id}"
        self.release_dirname = f"{release.name}_{release.version}"
        self.release_dir = f"{settings.root}/{self.release_dirname}"
        self.current = f"{settings.root}/current"

    # --- plumbing ------------------------------------------------------------------------------

    def log(self, text: str, stream: str = "stdout") -> None:
        self.hooks.log(f"[{self.host.name}] {text}", stream)

    def _on_line(self, stream: str, line: str) -> None:
        self.log(line, stream)

    async def sh(
        self, command: str, *, check: bool = True, timeout: float | None = None, **kw: Any
    ) -> ssh.RemoteResult:
        assert self.conn is not None
        return await self.conn.run(
            command,
            check=check,
            timeout=timeout or self.s.step_timeout,
            on_line=self._on_line,
            **kw,
        )

    async def step(self, name: str, action: Callable[[], Awaitable[str | None]]) -> None:
        if self.hooks.should_stop():
            raise HostStop(name)
        started = time.monotonic()
        self.hooks.record(name, {"status": "running"})
        try:
            note = await action()
        except BaseException as exc:
            message = (
                exc.message if isinstance(exc, SlipwayError) else str(exc) or type(exc).__name__
            )
            self.hooks.record(
                name,
                {
                    "status": "failed",
                    "seconds": round(time.monotonic() - started, 3),
                    "message": message,
                },
            )
            raise
        seconds = round(time.monotonic() - started, 3)
        self.hooks.record(name, {"status": "done", "seconds": seconds, "message": note})
        self.log(f"{name}: done in {seconds:.2f} s" + (f" ({note})" if note else ""), "system")

    # --- putting it back ----------------------------------------------------------------------

    async def _restore(self) -> str | None:
        """Put the host back on the release it ran before; returns that version."""
        if self.s.layout == "flat":
            return await self._restore_flat()
        if self.switched or self.started:
            await self._best_effort(
                "stop the new release",
                hoststeps.script(self, "stop", self.release_dir, self.release.version),
            )
        if self.switched:
            if self.previous_dir is not None:
                await self._best_effort(
                    "switch back", hoststeps.switch_to(self, self.previous_dir.rsplit("/", 1)[-1])
                )
            else:
                await self._best_effort("remove current", self.sh(f"rm -f {q(self.current)}"))
        if self.replaced_current:
            replaced = f"{self.state_dir}/replaced-{self.s.deployment_id}"
            await self._best_effort(
                "put back the replaced release",
                self.sh(f"rm -rf {q(self.release_dir)} && mv {q(replaced)} {q(self.release_dir)}"),
            )
        elif self.release_created and self.previous_dir != self.release_dir:
            await self._best_effort(
                "remove the new release", self.sh(f"rm -rf {q(self.release_dir)}")
            )
        await self._best_effort("remove staging", self.sh(f"rm -rf {q(self.staging)}"))
        if self.old_stopped and self.previous_dir is not None:
            await self._best_effort(
                "start the previous release",
                hoststeps.script(self, "start", self.previous_dir, self.previous),
            )
        return self.previous

    async def _restore_flat(self) -> str | None:
        if self.started:
            await self._best_effort(
                "stop the new release",
                hoststeps.script(self, "stop", self.s.root, self.release.version),
            )
        if self.installed and self.backup_entries is not None:
            backup = q(f"{self.state_dir}/backup-{self.s.deployment_id}.tar")
            names = " ".join(q(e) for e in self.backup_entries)
            await self._best_effort(
                "restore the backup",
                self.sh(
                    f"cd {q(self.s.root)} && rm -rf {names} && tar -xf {backup} && rm -f {backup}"
                ),
            )
        await self._best_effort("remove staging", self.sh(f"rm -rf {q(self.staging)}"))
        if self.old_stopped and self.previous_dir is not None:
            await self._best_effort(
                "start the previous release",
                hoststeps.script(self, "start", self.s.root, self.previous),
            )
        return self.previous

    async def _best_effort(self, what: str, action: Awaitable[Any]) -> None:
        try:
            await action
            self.log(f"restore: {what}: done", "system")
        except Exception as exc:  # the next restore action may still work
            message = exc.message if isinstance(exc, SlipwayError) else str(exc)
            self.log(f"restore: {what} failed: {message}", "stderr")

    # --- the whole host ------------------------------------------------------------------------

    def _action(self, name: str) -> Callable[[], Awaitable[str | None]]:
        return partial(hoststeps.STEPS[name], self)

    def _steps(self) -> list[tuple[str, Callable[[], Awaitable[str | None]]]]:
        names = FLAT_STEPS if self.s.layout == "flat" else VERSIONED_STEPS
        return [(name, self._action(name)) for name in names]

    def _is_on_new(self) -> bool:
        return self.switched if self.s.layout != "flat" else self.installed

    async def deploy(self) -> HostOutcome:
        try:
            for name, action in self._steps():
                await self.step(name, action)
            return HostOutcome(
                HostStatus.succeeded,
                self.release.version,
                self.previous,
                kept_versions=self.host.kept_versions,
                verified=True,
                host_key=self._seen_key(),
            )
        except HostStop:
            return await self._stopped()
        except Exception as exc:
            return await self._failed(exc)
        finally:
            await self._close()

    async def _stopped(self) -> HostOutcome:
        if self._is_on_new() and self.conn is not None:
            if not self.started:
                await self._best_effort("start the new release", hoststeps.start(self))
            self.log(
                f"stopped by cancel; runs {self.release.version} (not health-checked)", "system"
            )
            return HostOutcome(HostStatus.canceled, self.release.version, self.previous,
                               kept_versions=self.host.kept_versions + [self.release.version],
                               host_key=self._seen_key())  # fmt: skip
        version = await self._restore() if self.conn is not None else self.previous
        self.log(f"stopped by cancel; runs {version or 'nothing'}", "system")
        return HostOutcome(HostStatus.canceled, version, self.previous, host_key=self._seen_key())

    async def _failed(self, exc: BaseException) -> HostOutcome:
        error = _error_of(exc)
        self.log(f"failed: {error['message']}", "stderr")
        version = self.previous
        if self.conn is not None:
            try:
                version = await self._restore()
            except Exception as restore_exc:  # reported; the host state is then unknown
                self.log(f"restore failed: {restore_exc}", "stderr")
            self.log(f"restored; runs {version or 'nothing'}", "system")
        return HostOutcome(
            HostStatus.failed, version, self.previous, error=error, host_key=self._seen_key()
        )

    # --- rollback ------------------------------------------------------------------------------

    async def rollback(self) -> HostOutcome:
        target = self.host.rollback_to
        assert target is not None
        target_dirname = f"{self.release.name}_{target}"
        self.release_dirname = target_dirname
        self.release_dir = f"{self.s.root}/{target_dirname}"

        async def check_and_stop() -> str | None:
            if self.previous_dir == self.release_dir:
                raise RemoteCommandError(
                    f"{self.host.name} runs {target} already", code="already_current"
                )
            return await hoststeps.stop_old(self)

        table: list[tuple[str, Callable[[], Awaitable[str | None]]]] = [
            ("connect", self._action("connect")),
            ("prepare", self._action("prepare")),
            ("stop_old", check_and_stop),
            ("switch", self._action("switch")),
            ("start", self._action("start")),
            ("health", self._action("health")),
        ]
        try:
            for name, action in table:
                await self.step(name, action)
            return HostOutcome(
                HostStatus.succeeded,
                target,
                self.previous,
                verified=True,
                host_key=self._seen_key(),
            )
        except HostStop:
            return await self._stopped()
        except Exception as exc:
            return await self._failed(exc)
        finally:
            await self._close()

    def _seen_key(self) -> str | None:
        return self.conn.host_key if self.conn is not None else None

    async def _close(self) -> None:
        if self.conn is not None:
            try:
                await self.conn.close()
            except Exception:  # closing a dead connection
                pass


def _error_of(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, SlipwayError):
        error: dict[str, Any] = {"code": exc.code, "message": exc.message}
        if exc.details:
            error["details"] = exc.details
        return error
    return {"code": "internal", "message": f"{type(exc).__name__}: {exc}"}
