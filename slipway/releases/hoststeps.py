"""The steps of one host's pipeline: what each does on the host, over the run's SSH connection.

Each step is a function of the `HostRun` (releases/hostdeploy.py) that runs one or a few commands,
sets what the run must know to put the host back (switched, installed, ...) and returns a note
for the step record. `STEPS` maps the step names of models.VERSIONED_STEPS and FLAT_STEPS to
them; the run decides their order, records them and restores the host when one fails.
"""

from __future__ import annotations

import asyncio
import io
import re
import tarfile
import time
from collections.abc import Awaitable, Callable
from shlex import quote as q
from typing import TYPE_CHECKING

from slipway.core.errors import RemoteCommandError
from slipway.releases.hostplan import HostStop
from slipway.remote import ssh

if TYPE_CHECKING:
    from slipway.releases.hostdeploy import HostRun

_VERSION_SUFFIX = re.compile(r"_(\d+\.\d+\.\d+)$")


# --- a release's scripts -----------------------------------------------------------------------


def exports(run: HostRun, release_dir: str, version: str | None) -> str:
    values = {
        "SLIPWAY_RELEASE_DIR": release_dir,
        "SLIPWAY_DEPLOY_ROOT": run.s.root,
        "SLIPWAY_STATE_DIR": run.state_dir,
        "SLIPWAY_PACKAGE_NAME": run.release.name,
        "SLIPWAY_VERSION": version or "",
        "SLIPWAY_PREVIOUS_VERSION": run.previous or "",
        "SLIPWAY_HOST": run.host.name,
    }
    for name, value in run.host.variables.items():
        key = re.sub(r"[^A-Za-z0-9_]", "_", name).upper()
        values[f"SLIPWAY_VAR_{key}"] = value
    return "".join(f"export {k}={q(v)}; " for k, v in values.items())


async def script(run: HostRun, which: str, release_dir: str, version: str | None) -> str | None:
    """Run the start/stop/deploy script(s) of a release; a note for the step record."""
    prefix = f"cd {q(release_dir)} && {exports(run, release_dir, version)}"
    profile = run.s.profile
    if profile is not None:
        text = profile.scripts.get(which)
        if not text:
            return f"profile {profile.name} has no {which} script"
        await run.sh(f"{prefix}exec sh -s", input=text)
        return f"profile {profile.name}"
    if which == "deploy":
        scripts = run.release.scripts.get("deploy") or []
        for name in scripts:
            run.log(f"running {name}", "system")
            await run.sh(f"{prefix}exec sh {q(name)}")
        return f"{len(scripts)} script(s)" if scripts else "no deploy scripts"
    if release_dir == run.release_dir and run.release.scripts.get(which):
        name = run.release.scripts[which]
        await run.sh(f"{prefix}exec sh {q(name)}")
        return name
    # An older release: whatever its own script is called on the host, found and run in
    # one round trip.
    result = await run.sh(
        f"{prefix}for f in bin/{which}.sh {which}.sh; do "
        f'if [ -f "$f" ]; then echo "slipway: running $f" >&2; exec sh "$f"; fi; done; '
        f"echo 'slipway: no {which} script'"
    )
    return f"no {which} script" if "slipway: no" in result.stdout else f"{which}.sh"


# --- the steps ---------------------------------------------------------------------------------


async def connect(run: HostRun) -> str | None:
    run.conn = await ssh.connect(run.host.target)
    return None


async def prepare(run: HostRun) -> str | None:
    """What the host runs now, and whether it has the package already (one round trip)."""
    root, state, package = q(run.s.root), q(run.state_dir), q(run.package_path)
    if run.s.layout == "flat":
        running = f"cat {state}/version 2>/dev/null || true"
    else:
        running = (
            f"cd {root} && if [ -e current ] && [ ! -L current ]; then "
            "echo 'current exists and is not a symbolic link' >&2; exit 3; fi; "
            "readlink current || true"
        )
    probe = (
        f"echo --; if [ -f {package} ]; then {ssh.sha256_command(run.package_path)}; fi"
        if run.release.filename
        else "echo --"
    )
    if run.host.rollback_to is not None:
        probe = (
            f"test -d {q(run.release_dir)} || {{ echo 'release {run.host.rollback_to} "
            f"is no longer on the host' >&2; exit 4; }}; {probe}"
        )
    result = await run.sh(
        f"mkdir -p {state}/packages && rm -rf {q(run.staging)} && {{ {running}; }} && {probe}"
    )
    head, _, tail = result.stdout.partition("--\n")
    run.package_on_host = tail.split()[0].lower() if tail.split() else None
    found = head.strip().rstrip("/")
    if run.s.layout == "flat":
        run.previous = found or None
        run.previous_dir = run.s.root if run.previous else None
    elif found:
        dirname = found.rsplit("/", 1)[-1]
        match = _VERSION_SUFFIX.search(dirname)
        run.previous = match.group(1) if match else dirname
        run.previous_dir = found if found.startswith("/") else f"{run.s.root}/{found}"
    return f"runs {run.previous}" if run.previous else "no release yet"


async def upload(run: HostRun) -> str | None:
    assert run.conn is not None and run.release.local_path is not None
    if run.package_on_host == run.release.sha256:
        return "already on the host"
    # Unpacked into staging as it arrives: the package crosses the disk once.
    await run.conn.upload(
        run.release.local_path,
        run.package_path,
        sha256=run.release.sha256,
        unpack_into=run.staging,
    )
    run.unpacked = True
    return None


async def extract(run: HostRun) -> str | None:
    unpack = (
        ""
        if run.unpacked
        else f"rm -rf {q(run.staging)}; mkdir -p {q(run.staging)}; "
        f"tar -xzf {q(run.package_path)} -C {q(run.staging)} --no-same-owner; "
    )
    if run.s.layout == "flat":
        if unpack:
            await run.sh(f"set -e; {unpack}")
        return None if unpack else "unpacked during the upload"
    root = run.release.content_root
    source = f"{run.staging}/{root}" if root else run.staging
    is_current = run.previous_dir == run.release_dir
    replaced = f"{run.state_dir}/replaced-{run.s.deployment_id}"
    move_old = (
        f"rm -rf {q(replaced)} && mv {q(run.release_dir)} {q(replaced)}"
        if is_current
        else f"rm -rf {q(run.release_dir)}"
    )
    await run.sh(
        f"set -e; {unpack}"
        f"if [ -e {q(run.release_dir)} ] || [ -L {q(run.release_dir)} ]; then "
        f"{move_old}; fi; "
        f"mv {q(source)} {q(run.release_dir)}; rm -rf {q(run.staging)}"
    )
    run.release_created = True
    run.replaced_current = is_current
    return None


def render_base(run: HostRun) -> str:
    if run.s.layout == "flat":
        root = run.release.content_root
        return f"{run.staging}/{root}" if root else run.staging
    return run.release_dir


async def render(run: HostRun) -> str | None:
    if not run.host.files:
        return "no config files"
    base = q(render_base(run))
    # One round trip for every file: a tar of the rendered files, each then copied over its
    # original with `cat >`, which keeps the package's mode and owner (a 0600 file stays so).
    await run.sh(
        f'tmp=$(mktemp -d) && tar -xf - -C "$tmp" && cd "$tmp" && '
        f'find . -type f | while IFS= read -r f; do cat "$f" > {base}/"$f" || exit 1; '
        f'done; status=$?; rm -rf "$tmp"; exit $status',
        input=_tar_of(run.host.files),
    )
    return f"{len(run.host.files)} file(s)"


async def deploy_scripts(run: HostRun) -> str | None:
    where = run.s.root if run.s.layout == "flat" else run.release_dir
    return await script(run, "deploy", where, run.release.version)


async def stop_old(run: HostRun) -> str | None:
    if run.previous_dir is None:
        return "nothing runs yet"
    note = await script(run, "stop", run.previous_dir, run.previous)
    run.old_stopped = True
    return note


async def switch_to(run: HostRun, dirname: str) -> None:
    temp = f"{run.s.root}/.current-{run.s.deployment_id}"
    await run.sh(f"ln -sfn {q(dirname)} {q(temp)} && mv -T {q(temp)} {q(run.current)}")


async def switch(run: HostRun) -> str | None:
    await switch_to(run, run.release_dirname)
    run.switched = True
    return f"current -> {run.release_dirname}"


async def backup(run: HostRun) -> str | None:
    source = render_base(run)
    listing = await run.sh(f"cd {q(source)} && ls -A")
    entries = [line for line in listing.stdout.splitlines() if line and line != ".slipway"]
    archive = f"{run.state_dir}/backup-{run.s.deployment_id}.tar"
    names = " ".join(q(e) for e in entries)
    await run.sh(
        f"cd {q(run.s.root)} && existing=; for e in {names}; do "
        '[ -e "$e" ] || [ -L "$e" ] && existing="$existing $e"; done; '
        f"tar -cf {q(archive)} --files-from /dev/null $existing"
        if entries
        else f"tar -cf {q(archive)} --files-from /dev/null"
    )
    run.backup_entries = entries
    return f"{len(entries)} top-level entries"


async def install(run: HostRun) -> str | None:
    run.installed = True
    await run.sh(f"cp -a {q(render_base(run))}/. {q(run.s.root)}/ && rm -rf {q(run.staging)}")
    return None


async def start(run: HostRun) -> str | None:
    where = run.s.root if run.s.layout == "flat" else run.release_dir
    run.started = True
    return await script(run, "start", where, run.release.version)


async def health(run: HostRun) -> str | None:
    check = run.s.health_check
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
        result = await run.sh(command, check=False, timeout=max(5.0, interval * 5))
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
        if run.hooks.should_stop():
            raise HostStop("health")
        await asyncio.sleep(interval)


async def cleanup(run: HostRun) -> str | None:
    state = q(run.state_dir)
    if run.s.layout == "flat":
        await run.sh(
            f"echo {q(run.release.version)} > {state}/version && "
            f"rm -f {state}/backup-{run.s.deployment_id}.tar && rm -rf {q(run.staging)}"
        )
        run.host.kept_versions = [run.release.version]
        return None
    kept = [v for v in run.host.kept_versions if v != run.release.version]
    kept.append(run.release.version)
    last_good = next(
        (v for v in reversed(run.host.good_versions) if v != run.release.version), None
    )
    protect = {run.release.version, last_good}
    removable = [v for v in kept if v not in protect]
    remove: list[str] = []
    while len(kept) - len(remove) > run.s.keep_releases and removable:
        remove.append(removable.pop(0))
    paths = []
    for version in remove:
        paths.append(q(f"{run.s.root}/{run.release.name}_{version}"))
        paths.append(f"{state}/packages/{q(run.release.name)}_{q(version)}_*")
    paths.append(q(f"{run.state_dir}/replaced-{run.s.deployment_id}"))
    await run.sh(f"rm -rf {' '.join(paths)}")
    run.host.kept_versions = [v for v in kept if v not in remove]
    return f"removed {', '.join(remove)}" if remove else f"{len(kept)} release(s) kept"


# The names are those of models.VERSIONED_STEPS and FLAT_STEPS, which the progress counts.
STEPS: dict[str, Callable[[HostRun], Awaitable[str | None]]] = {
    "connect": connect, "prepare": prepare, "upload": upload, "extract": extract,
    "render": render, "deploy_scripts": deploy_scripts, "stop_old": stop_old, "switch": switch,
    "backup": backup, "install": install, "start": start, "health": health, "cleanup": cleanup,
}  # fmt: skip


def _tar_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o600
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
