"""One host's part of a deployment or rollback: the recorded steps, and putting it back on failure.

Every step is one or a few commands on one SSH connection. A host that fails is put back on the
release it ran before (versioned: `current` switched back; flat: the backup restored) and that
release is started again. A cancel (or a worker asked to stop) is honoured between steps: a host
that has not switched yet is put back, one that has switched keeps the new release, started.
Either way every host ends on a whole release, and `HostOutcome` says which.
"""

from __future__ import annotations

import asyncio
import io
import re
import shlex
import tarfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slipway.core.errors import RemoteCommandError, SlipwayError
from slipway.releases.models import FLAT_STEPS, VERSIONED_STEPS, HostStatus
from slipway.releases.profiles import Profile
from slipway.remote import ssh

_VERSION_SUFFIX = re.compile(r"_(\d+\.\d+\.\d+)$")
q = shlex.quote


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
    target: ssh.SSHTarget
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


class HostRun:
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

    def _exports(self, release_dir: str, version: str | None) -> str:
        values = {
            "SLIPWAY_RELEASE_DIR": release_dir,
            "SLIPWAY_DEPLOY_ROOT": self.s.root,
            "SLIPWAY_STATE_DIR": self.state_dir,
            "SLIPWAY_PACKAGE_NAME": self.release.name,
            "SLIPWAY_VERSION": version or "",
            "SLIPWAY_PREVIOUS_VERSION": self.previous or "",
            "SLIPWAY_HOST": self.host.name,
        }
        for name, value in self.host.variables.items():
            key = re.sub(r"[^A-Za-z0-9_]", "_", name).upper()
            values[f"SLIPWAY_VAR_{key}"] = value
        return "".join(f"export {k}={q(v)}; " for k, v in values.items())

    async def _script(self, which: str, release_dir: str, version: str | None) -> str | None:
        """Run the start/stop/deploy script(s) of a release; a note for the step record."""
        prefix = f"cd {q(release_dir)} && {self._exports(release_dir, version)}"
        profile = self.s.profile
        if profile is not None:
            text = profile.scripts.get(which)
            if not text:
                return f"profile {profile.name} has no {which} script"
            await self.sh(f"{prefix}exec sh -s", input=text)
            return f"profile {profile.name}"
        if which == "deploy":
            scripts = self.release.scripts.get("deploy") or []
            for script in scripts:
                self.log(f"running {script}", "system")
                await self.sh(f"{prefix}exec sh {q(script)}")
            return f"{len(scripts)} script(s)" if scripts else "no deploy scripts"
        if release_dir == self.release_dir and self.release.scripts.get(which):
            script = self.release.scripts[which]
            await self.sh(f"{prefix}exec sh {q(script)}")
            return script
        # An older release: whatever its own script is called on the host, found and run in
        # one round trip.
        result = await self.sh(
            f"{prefix}for f in bin/{which}.sh {which}.sh; do "
            f'if [ -f "$f" ]; then echo "slipway: running $f" >&2; exec sh "$f"; fi; done; '
            f"echo 'slipway: no {which} script'"
        )
        return f"no {which} script" if "slipway: no" in result.stdout else f"{which}.sh"

    # --- steps ---------------------------------------------------------------------------------

    async def _connect(self) -> str | None:
        self.conn = await ssh.connect(self.host.target)
        return None

    async def _prepare(self) -> str | None:
        """What the host runs now, and whether it has the package already (one round trip)."""
        root, state, package = q(self.s.root), q(self.state_dir), q(self.package_path)
        if self.s.layout == "flat":
            running = f"cat {state}/version 2>/dev/null || true"
        else:
            running = (
                f"cd {root} && if [ -e current ] && [ ! -L current ]; then "
                "echo 'current exists and is not a symbolic link' >&2; exit 3; fi; "
                "readlink current || true"
            )
        probe = (
            f"echo --; if [ -f {package} ]; then {ssh.sha256_command(self.package_path)}; fi"
            if self.release.filename
            else "echo --"
        )
        if self.host.rollback_to is not None:
            probe = (
                f"test -d {q(self.release_dir)} || {{ echo 'release {self.host.rollback_to} "
                f"is no longer on the host' >&2; exit 4; }}; {probe}"
            )
        result = await self.sh(
            f"mkdir -p {state}/packages && rm -rf {q(self.staging)} && {{ {running}; }} && {probe}"
        )
        head, _, tail = result.stdout.partition("--\n")
        self.package_on_host = tail.split()[0].lower() if tail.split() else None
        found = head.strip().rstrip("/")
        if self.s.layout == "flat":
            self.previous = found or None
            self.previous_dir = self.s.root if self.previous else None
        elif found:
            dirname = found.rsplit("/", 1)[-1]
            match = _VERSION_SUFFIX.search(dirname)
            self.previous = match.group(1) if match else dirname
            self.previous_dir = found if found.startswith("/") else f"{self.s.root}/{found}"
        return f"runs {self.previous}" if self.previous else "no release yet"

    async def _upload(self) -> str | None:
        assert self.conn is not None and self.release.local_path is not None
        if self.package_on_host == self.release.sha256:
            return "already on the host"
        # Unpacked into staging as it arrives: the package crosses the disk once.
        await self.conn.upload(
            self.release.local_path,
            self.package_path,
            sha256=self.release.sha256,
            unpack_into=self.staging,
        )
        self.unpacked = True
        return None

    async def _extract(self) -> str | None:
        unpack = (
            ""
            if self.unpacked
            else f"rm -rf {q(self.staging)}; mkdir -p {q(self.staging)}; "
            f"tar -xzf {q(self.package_path)} -C {q(self.staging)} --no-same-owner; "
        )
        if self.s.layout == "flat":
            if unpack:
                await self.sh(f"set -e; {unpack}")
            return None if unpack else "unpacked during the upload"
        root = self.release.content_root
        source = f"{self.staging}/{root}" if root else self.staging
        is_current = self.previous_dir == self.release_dir
        replaced = f"{self.state_dir}/replaced-{self.s.deployment_id}"
        move_old = (
            f"rm -rf {q(replaced)} && mv {q(self.release_dir)} {q(replaced)}"
            if is_current
            else f"rm -rf {q(self.release_dir)}"
        )
        await self.sh(
            f"set -e; {unpack}"
            f"if [ -e {q(self.release_dir)} ] || [ -L {q(self.release_dir)} ]; then "
            f"{move_old}; fi; "
            f"mv {q(source)} {q(self.release_dir)}; rm -rf {q(self.staging)}"
        )
        self.release_created = True
        self.replaced_current = is_current
        return None

    def _render_base(self) -> str:
        if self.s.layout == "flat":
            root = self.release.content_root
            return f"{self.staging}/{root}" if root else self.staging
        return self.release_dir

    async def _render(self) -> str | None:
        if not self.host.files:
            return "no config files"
        base = q(self._render_base())
        # One round trip for every file: a tar of the rendered files, each then copied over its
        # original with `cat >`, which keeps the package's mode and owner (a 0600 file stays so).
        await self.sh(
            f'tmp=$(mktemp -d) && tar -xf - -C "$tmp" && cd "$tmp" && '
            f'find . -type f | while IFS= read -r f; do cat "$f" > {base}/"$f" || exit 1; '
            f'done; status=$?; rm -rf "$tmp"; exit $status',
            input=_tar_of(self.host.files),
        )
        return f"{len(self.host.files)} file(s)"

    async def _deploy_scripts(self) -> str | None:
        where = self.s.root if self.s.layout == "flat" else self.release_dir
        return await self._script("deploy", where, self.release.version)

    async def _stop_old(self) -> str | None:
        if self.previous_dir is None:
            return "nothing runs yet"
        note = await self._script("stop", self.previous_dir, self.previous)
        self.old_stopped = True
        return note

    async def _switch_to(self, dirname: str) -> None:
        temp = f"{self.s.root}/.current-{self.s.deployment_id}"
        await self.sh(f"ln -sfn {q(dirname)} {q(temp)} && mv -T {q(temp)} {q(self.current)}")

    async def _switch(self) -> str | None:
        await self._switch_to(self.release_dirname)
        self.switched = True
        return f"current -> {self.release_dirname}"

    async def _backup(self) -> str | None:
        source = self._render_base()
        listing = await self.sh(f"cd {q(source)} && ls -A")
        entries = [line for line in listing.stdout.splitlines() if line and line != ".slipway"]
        backup = f"{self.state_dir}/backup-{self.s.deployment_id}.tar"
        names = " ".join(q(e) for e in entries)
        await self.sh(
            f"cd {q(self.s.root)} && existing=; for e in {names}; do "
            '[ -e "$e" ] || [ -L "$e" ] && existing="$existing $e"; done; '
            f"tar -cf {q(backup)} --files-from /dev/null $existing"
            if entries
            else f"tar -cf {q(backup)} --files-from /dev/null"
        )
        self.backup_entries = entries
        return f"{len(entries)} top-level entries"

    async def _install(self) -> str | None:
        self.installed = True
        await self.sh(
            f"cp -a {q(self._render_base())}/. {q(self.s.root)}/ && rm -rf {q(self.staging)}"
        )
        return None

    async def _start(self) -> str | None:
        where = self.s.root if self.s.layout == "flat" else self.release_dir
        self.started = True
        return await self._script("start", where, self.release.version)

    async def _health(self) -> str | None:
        check = self.s.health_check
        if not check:
            return "no health check configured"
        if check.get("command"):
            command = check["command"]
        else:
            url = q(check["url"])
            command = (
                f"if command -v curl >/dev/null; then curl -fsS -o /dev/null -m 10 {url}; "
                f"else wget -q -O /dev/null -T 10 {url}; fi"
            )
        deadline = time.monotonic() + float(check.get("timeout", 60))
        interval = float(check.get("interval", 1))
        attempts = 0
        while True:
            attempts += 1
            result = await self.sh(command, check=False, timeout=max(5.0, interval * 5))
            if result.ok:
                return f"passed after {attempts} attempt(s)"
            if time.monotonic() + interval > deadline:
                last = (result.stderr or result.stdout).strip().splitlines()[-1:] or [""]
                raise RemoteCommandError(
                    f"health check did not pass within {check.get('timeout', 60)} s "
                    f"({attempts} attempts; last exit {result.exit_status}: {last[0][:200]})",
                    result=result,
                    code="health_check_failed",
                )
            if self.hooks.should_stop():
                raise HostStop("health")
            await asyncio.sleep(interval)

    async def _cleanup(self) -> str | None:
        state = q(self.state_dir)
        if self.s.layout == "flat":
            await self.sh(
                f"echo {q(self.release.version)} > {state}/version && "
                f"rm -f {state}/backup-{self.s.deployment_id}.tar && rm -rf {q(self.staging)}"
            )
            self.host.kept_versions = [self.release.version]
            return None
        kept = [v for v in self.host.kept_versions if v != self.release.version]
        kept.append(self.release.version)
        last_good = next(
            (v for v in reversed(self.host.good_versions) if v != self.release.version), None
        )
        protect = {self.release.version, last_good}
        removable = [v for v in kept if v not in protect]
        remove: list[str] = []
        while len(kept) - len(remove) > self.s.keep_releases and removable:
            remove.append(removable.pop(0))
        paths = []
        for version in remove:
            paths.append(q(f"{self.s.root}/{self.release.name}_{version}"))
            paths.append(f"{state}/packages/{q(self.release.name)}_{q(version)}_*")
        paths.append(q(f"{self.state_dir}/replaced-{self.s.deployment_id}"))
        await self.sh(f"rm -rf {' '.join(paths)}")
        self.host.kept_versions = [v for v in kept if v not in remove]
        return f"removed {', '.join(remove)}" if remove else f"{len(kept)} release(s) kept"

    # --- putting it back ----------------------------------------------------------------------

    async def _restore(self) -> str | None:
        """Put the host back on the release it ran before; returns that version."""
        if self.s.layout == "flat":
            return await self._restore_flat()
        if self.switched or self.started:
            await self._best_effort(
                "stop the new release", self._script("stop", self.release_dir, self.release.version)
            )
        if self.switched:
            if self.previous_dir is not None:
                await self._best_effort(
                    "switch back", self._switch_to(self.previous_dir.rsplit("/", 1)[-1])
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
                self._script("start", self.previous_dir, self.previous),
            )
        return self.previous

    async def _restore_flat(self) -> str | None:
        if self.started:
            await self._best_effort(
                "stop the new release", self._script("stop", self.s.root, self.release.version)
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
                "start the previous release", self._script("start", self.s.root, self.previous)
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

    def _steps(self) -> list[tuple[str, Callable[[], Awaitable[str | None]]]]:
        table = {
            "connect": self._connect, "prepare": self._prepare, "upload": self._upload,
            "extract": self._extract, "render": self._render,
            "deploy_scripts": self._deploy_scripts, "stop_old": self._stop_old,
            "switch": self._switch, "backup": self._backup, "install": self._install,
            "start": self._start, "health": self._health, "cleanup": self._cleanup,
        }  # fmt: skip
        names = FLAT_STEPS if self.s.layout == "flat" else VERSIONED_STEPS
        return [(name, table[name]) for name in names]

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
                await self._best_effort("start the new release", self._start())
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
            return await self._stop_old()

        table: list[tuple[str, Callable[[], Awaitable[str | None]]]] = [
            ("connect", self._connect),
            ("prepare", self._prepare),
            ("stop_old", check_and_stop),
            ("switch", self._switch),
            ("start", self._start),
            ("health", self._health),
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


def _tar_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o600
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _error_of(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, SlipwayError):
        error: dict[str, Any] = {"code": exc.code, "message": exc.message}
        if exc.details:
            error["details"] = exc.details
        return error
    return {"code": "internal", "message": f"{type(exc).__name__}: {exc}"}
