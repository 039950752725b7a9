"""Issue 5's figures: release fan-out over SSH beside plain OpenSSH and Ansible, in the same run.

1. A 50 MB package (`benchapp_1.0.0_…tar.gz`, random "jars" that compress as badly as real ones)
   to 10 hosts: slipway (API POST -> deployment succeeded, real API + worker on PostgreSQL) beside
   `ssh host 'mkdir -p R/REL && tar -xz -C R/REL && ln -sfn REL R/.current-tmp && mv -T …' < pkg`
   on every host at once, and beside ansible-core 2.19 (forks = hosts, pipelining; file, copy,
   unarchive remote_src, file state=link). Median of 3 each, the contenders taking turns.
2. A 1 MB package to 20 hosts: slipway beside OpenSSH, median of 3, taking turns.
3. Rollback of those 20 hosts (a second release deployed first): API POST -> succeeded.
4. A command on an open connection: `SSHSession.run("true")` beside `ssh` over a ControlMaster.
5. Atomic switch: a reader resolving `current` in a loop on the host while one remote shell loop
   switches it 10,000 times the way slipway does (`ln -sfn NEW .current-tmp && mv -T …`).

Every contender gets deploy roots of its own (fresh per run); roots are deleted and the page cache
written back (`sync`) between runs. The sshd farm runs from 127.0.0.101 (tests/support/sshd.py).
Ansible goes into /tmp/slipway-bench-ansible (a venv of its own) the first time.

SLIPWAY_BENCH_PROFILE=DIR: py-spy the worker during the first 50 MB deploy and the first rollback
(flame graphs DIR/*.svg and collapsed stacks DIR/*.txt); `pip install py-spy` into the venv first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncssh
import httpx
import psycopg
from _common import BENCH_DIR, Instance, Table, cpu_seconds, finish, ms, percentile

sys.path.insert(0, str(BENCH_DIR.parent))  # tests.support.sshd

from slipway.remote import ssh as slipway_ssh  # noqa: E402
from tests.support.sshd import SSHFarm, farm_unavailable_reason  # noqa: E402

FIRST_ADDRESS = "127.0.0.101"
HOSTS = 20
BIG_HOSTS = 10
BIG_MB = 50
SMALL_MB = 1
RUNS = 3
SWITCHES = 10_000
COMMANDS = 200
ANSIBLE_VENV = Path("/tmp/slipway-bench-ansible")
ANSIBLE_VERSION = "2.19.14"
PROJECT = "bench"
PACKAGE = "benchapp"
BUILD = "20261123001"
# Keep the whole bench under ~6 minutes: Ansible gets fewer runs once this much time has passed.
ANSIBLE_BUDGET = 200.0
FINAL = ("succeeded", "failed", "canceled")


# --- packages -------------------------------------------------------------------------------------


def make_package(directory: Path, version: str, megabytes: float) -> Path:
    """`benchapp_<version>_<build>.tar.gz`: start/stop scripts, a config file, a VERSION file and
    `megabytes` MiB of random bytes in lib/*.jar (jars are zip files: they hardly compress)."""
    path = directory / f"{PACKAGE}_{version}_{BUILD}.tar.gz"
    total = int(megabytes * 1024 * 1024)
    jars = max(1, round(megabytes / 5))
    files: dict[str, bytes] = {
        "VERSION": f"{version}\n".encode(),
        "bin/start.sh": b"#!/bin/sh\necho started\n",
        "bin/stop.sh": b"#!/bin/sh\necho stopped\n",
        "conf/app.properties": b"server.port=8080\nlog.level=info\n",
    }
    for index in range(jars):
        files[f"lib/benchapp-{index}.jar"] = os.urandom(total // jars)
    with tarfile.open(path, "w:gz", compresslevel=6) as archive:
        for name in ("bin", "conf", "lib"):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1_700_000_000
            archive.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_700_000_000
            info.mode = 0o755 if name.endswith(".sh") else 0o644
            archive.addfile(info, io.BytesIO(data))
    return path


# --- the farm and plain OpenSSH -------------------------------------------------------------------


class Hosts:
    """The farm plus what the plain tools need to reach it."""

    def __init__(self, farm: SSHFarm, tmp: Path) -> None:
        self.farm = farm
        self.tmp = tmp
        self.key = tmp / "client_key"
        self.key.write_text(farm.client_private_key)
        self.key.chmod(0o600)

    def ssh(self, host: Any, *extra: str) -> list[str]:
        return [
            "ssh", "-F", "/dev/null", "-i", str(self.key), "-p", str(host.port),
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", *extra, f"root@{host.address}",
        ]  # fmt: skip

    def clean(self, root: str, hosts: list[Any] | None = None) -> None:
        """Remove a deploy root on every host, then write dirty pages back: the next contender
        starts from the same host state and does not pay for this one's writeback."""
        procs = [
            subprocess.Popen(
                ["nsenter", "-t", str(h.listener_pid), "-m", "rm", "-rf", root],
                stdout=subprocess.DEVNULL,
            )
            for h in (hosts or self.farm.hosts)
        ]
        for proc in procs:
            proc.wait()
        subprocess.run(["sync"], check=True)


def openssh_fanout(hosts: Hosts, targets: list[Any], package: Path, root: str) -> float:
    """Every host at once: stream the package into tar, then switch `current` like slipway."""
    release = package.name.removesuffix(".tar.gz").rsplit("_", 1)[0]  # benchapp_1.0.0
    command = (
        f"mkdir -p {root}/{release} && tar -xz -C {root}/{release} && "
        f"ln -sfn {release} {root}/.current-tmp && mv -T {root}/.current-tmp {root}/current"
    )
    started = time.perf_counter()
    procs = []
    for host in targets:
        with package.open("rb") as source:
            procs.append(
                subprocess.Popen(
                    [*hosts.ssh(host), command], stdin=source, stderr=subprocess.PIPE, text=True
                )
            )
    errors = [p.communicate()[1] for p in procs if p.wait() != 0]
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"OpenSSH fan-out failed on {len(errors)} host(s): {errors[0][-300:]}")
    return elapsed


# --- Ansible --------------------------------------------------------------------------------------


def ansible_ready() -> Path:
    playbook = ANSIBLE_VENV / "bin" / "ansible-playbook"
    version = ANSIBLE_VENV / ".ansible-core-version"
    if playbook.exists() and version.exists() and version.read_text().strip() == ANSIBLE_VERSION:
        return playbook
    print(f"installing ansible-core {ANSIBLE_VERSION} into {ANSIBLE_VENV} (first run only)")
    python = shutil.which("python3") or sys.executable
    shutil.rmtree(ANSIBLE_VENV, ignore_errors=True)
    subprocess.run([python, "-m", "venv", str(ANSIBLE_VENV)], check=True)
    subprocess.run(
        [str(ANSIBLE_VENV / "bin" / "pip"), "install", "-q", f"ansible-core=={ANSIBLE_VERSION}"],
        check=True,
    )
    version.write_text(ANSIBLE_VERSION + "\n")
    return playbook


PLAYBOOK = """\
- hosts: farm
  gather_facts: false
  tasks:
    - file: {path: "{{ root }}/{{ release }}", state: directory}
    - copy: {src: "{{ package }}", dest: "{{ root }}/{{ package | basename }}"}
    - unarchive:
        src: "{{ root }}/{{ package | basename }}"
        dest: "{{ root }}/{{ release }}"
        remote_src: true
    - file: {src: "{{ release }}", path: "{{ root }}/current", state: link, force: true}
"""


def ansible_fanout(
    playbook_bin: Path, hosts: Hosts, targets: list[Any], package: Path, root: str, run: str
) -> float:
    work = hosts.tmp / f"ansible-{run}"
    work.mkdir()
    lines = ["[farm]"] + [f"{h.name} ansible_host={h.address}" for h in targets]
    lines += [
        "[farm:vars]",
        f"ansible_port={targets[0].port}",
        "ansible_user=root",
        f"ansible_ssh_private_key_file={hosts.key}",
        "ansible_python_interpreter=/usr/bin/python3",
        "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'",
    ]
    (work / "inventory").write_text("\n".join(lines) + "\n")
    (work / "deploy.yml").write_text(PLAYBOOK)
    release = package.name.removesuffix(".tar.gz").rsplit("_", 1)[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_HOST_KEY_CHECKING="False",
        ANSIBLE_PIPELINING="True",
        ANSIBLE_FORKS=str(len(targets)),
        ANSIBLE_HOME=str(work / "home"),
        ANSIBLE_LOCAL_TEMP=str(work / "tmp"),
        # A control path of its own per run: every run starts with cold connections.
        ANSIBLE_SSH_CONTROL_PATH_DIR=str(work / "cp"),
        ANSIBLE_RETRY_FILES_ENABLED="False",
        ANSIBLE_NOCOLOR="1",
        PATH=f"{ANSIBLE_VENV / 'bin'}:{env.get('PATH', '')}",
    )
    argv = [str(playbook_bin), "-i", "inventory", "deploy.yml"]
    argv += ["-e", f"root={root} release={release} package={package}"]
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"ansible-playbook failed: {done.stdout[-800:]}{done.stderr[-400:]}")
    return elapsed


# --- slipway --------------------------------------------------------------------------------------


class Slipway:
    """The API driven like tests/releases/conftest.py, timed from the POST to the deployment's
    final status (read from its row every 10 ms, which costs the API nothing)."""

    def __init__(self, instance: Instance, url: str, worker_pid: int) -> None:
        self.instance = instance
        self.client = httpx.Client(base_url=url, headers=instance.headers, timeout=120)
        self.worker_pid = worker_pid
        self.db = psycopg.connect(
            instance.database_url.replace("postgresql+psycopg://", "postgresql://"),
            autocommit=True,
        )
        self.profile_dir = os.environ.get("SLIPWAY_BENCH_PROFILE")
        self.profiled: set[str] = set()

    def call(self, method: str, path: str, expect: int, **kw: Any) -> Any:
        answer = self.client.request(method, path, **kw)
        if answer.status_code != expect:
            raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text[:500]}")
        return answer.json() if answer.content else None

    def setup(self, hosts: Hosts) -> None:
        farm = hosts.farm
        self.call(
            "POST",
            "/api/v1/credentials",
            201,
            json={"name": "farm-key", "kind": "ssh_key", "private_key": farm.client_private_key},
        )
        for host in farm.hosts:
            body = {"name": host.name, "address": host.address, "port": host.port}
            body.update(user="root", credential="farm-key")
            self.call("POST", "/api/v1/hosts", 201, json=body)
        for group, members in (("big", farm.hosts[:BIG_HOSTS]), ("all", farm.hosts)):
            body = {"name": group, "hosts": [h.name for h in members]}
            self.call("POST", "/api/v1/host-groups", 201, json=body)
        self.call("POST", "/api/v1/projects", 201, json={"name": PROJECT, "kind": "wecube"})

    def upload(self, package: Path) -> None:
        with package.open("rb") as handle:
            self.call(
                "POST",
                f"/api/v1/projects/{PROJECT}/packages",
                201,
                files={"file": (package.name, handle, "application/gzip")},
            )

    def environment(self, name: str, group: str, root: str) -> str:
        body = {"name": name, "host_group": group, "deploy_root": root, "keep_releases": 10}
        self.call("POST", f"/api/v1/projects/{PROJECT}/environments", 201, json=body)
        return f"/api/v1/projects/{PROJECT}/environments/{name}"

    def _status(self, deployment_id: int) -> str:
        row = self.db.execute(
            "SELECT status FROM deployments WHERE id = %s", (deployment_id,)
        ).fetchone()
        return row[0] if row else ""

    def timed(self, env: str, path: str, body: dict[str, Any], profile: str = "") -> Run:
        spy = self._spy(profile)
        cpu = cpu_seconds(self.worker_pid)
        started = time.perf_counter()
        accepted = self.call("POST", f"{env}{path}", 202, json=body)
        deployment_id = accepted["deployment"]["id"]
        deadline = started + 120
        while (status := self._status(deployment_id)) not in FINAL:
            if time.perf_counter() > deadline:
                logs = sorted(self.instance.tmp.glob("worker-*.log"))
                tail = "\n".join(logs[0].read_text().splitlines()[-30:]) if logs else ""
                raise RuntimeError(
                    f"deployment {deployment_id} still {status} after 120 s; worker log:\n{tail}"
                )
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(self.worker_pid) - cpu
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
        view = self.call("GET", f"{env}/deployments/{deployment_id}", 200)
        return Run(elapsed, status, view, cpu)

    def _spy(self, name: str) -> subprocess.Popen[bytes] | None:
        if not self.profile_dir or not name or name in self.profiled:
            return None
        self.profiled.add(name)
        folder = Path(self.profile_dir)
        folder.mkdir(parents=True, exist_ok=True)
        spy = str(Path(sys.executable).parent / "py-spy")
        argv = [spy, "record", "--pid", str(self.worker_pid), "--rate", "250", "--nonblocking"]
        argv += ["--idle", "--threads", "--format", "raw", "-o", str(folder / f"{name}.txt")]
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # py-spy attaches
        return process


class Run:
    def __init__(self, seconds: float, status: str, view: dict[str, Any], cpu: float) -> None:
        self.seconds = seconds
        self.status = status
        self.view = view
        self.cpu = cpu

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    def error(self) -> str:
        error = self.view.get("error") or {}
        failed = [h for h in self.view["hosts"] if h.get("error")]
        first = failed[0]["error"]["message"] if failed else ""
        return f"{self.status}: {error.get('message', '')} {first}"[:400]

    def breakdown(self) -> str:
        """Median seconds per step over the hosts, and the phases around them."""
        steps: dict[str, list[float]] = defaultdict(list)
        for host in self.view["hosts"]:
            for step in host["steps"]:
                if step.get("seconds") is not None:
                    steps[step["name"]].append(step["seconds"])

        def at(value: str | None) -> float:
            return datetime.fromisoformat(value).timestamp() if value else float("nan")

        created, started = at(self.view["created_at"]), at(self.view.get("started_at"))
        finished = at(self.view.get("finished_at"))
        host_start = min(at(h["started_at"]) for h in self.view["hosts"])
        host_end = max(at(h["finished_at"]) for h in self.view["hosts"])
        parts = [f"{name} {statistics.median(values):.2f}" for name, values in steps.items()]
        return (
            f"POST->job started (dispatch + load) {started - created:.2f}, ->first host "
            f"{host_start - started:.2f}, hosts "
            f"{host_end - host_start:.2f} [step medians: {', '.join(parts)}], "
            f"end {finished - host_end:.2f}; worker CPU {self.cpu:.1f} s"
        )


# --- one open connection, and the atomic switch ---------------------------------------------------


async def session_commands(hosts: Hosts) -> tuple[list[float], list[float]]:
    """`SSHSession.run("true")`, then bare asyncssh's `run("true")` on a connection of its own
    (the floor for one more command in Python)."""
    host = hosts.farm.hosts[0]

    async def timed(run: Any) -> list[float]:
        times = []
        for index in range(COMMANDS + 10):
            started = time.perf_counter()
            await run()
            if index >= 10:
                times.append(time.perf_counter() - started)
        return times

    async with await slipway_ssh.connect(hosts.farm.target(host)) as session:
        ours = await timed(lambda: session.run("true"))
    key = asyncssh.import_private_key(hosts.farm.client_private_key)
    async with asyncssh.connect(
        host.address, host.port, username="root", client_keys=[key], known_hosts=None,
        config=[], agent_path=None, encryption_algs=list(slipway_ssh.CIPHERS),
    ) as conn:  # fmt: skip
        bare = await timed(lambda: conn.run("true", check=True))
    return ours, bare


def multiplexed_commands(hosts: Hosts) -> list[float]:
    host = hosts.farm.hosts[0]
    socket_path = str(hosts.tmp / "cm.sock")
    subprocess.run(
        hosts.ssh(host, "-o", "ControlMaster=yes", "-o", f"ControlPath={socket_path}")
        + ["-o", "ControlPersist=yes", "-fN"],
        check=True,
    )
    try:
        times = []
        for index in range(COMMANDS + 10):
            started = time.perf_counter()
            subprocess.run(
                [*hosts.ssh(host, "-o", f"ControlPath={socket_path}"), "true"], check=True
            )
            if index >= 10:
                times.append(time.perf_counter() - started)
        return times
    finally:
        subprocess.run(
            [*hosts.ssh(host, "-o", f"ControlPath={socket_path}", "-O", "exit")],
            capture_output=True,
        )


def atomic_switch(hosts: Hosts) -> tuple[int, int, int, int, float]:
    """(switch failures, reads of A, reads of B, failed reads, seconds for the switches)."""
    host = hosts.farm.hosts[0]
    root = "/srv/bench-switch"
    hosts.farm.run_on(
        host,
        f"rm -rf {root} && mkdir -p {root}/A {root}/B && echo A > {root}/A/VERSION && "
        f"echo B > {root}/B/VERSION && ln -s A {root}/current",
    )
    reader = textwrap.dedent(f"""\
        a=0; b=0; f=0; touch {root}/reading
        while [ ! -e {root}/stop ]; do
          case "$(cat {root}/current/VERSION 2>/dev/null)" in
            A) a=$((a+1)) ;; B) b=$((b+1)) ;; *) f=$((f+1)) ;;
          esac
        done
        echo "$a $b $f"
    """)
    switcher = textwrap.dedent(f"""\
        while [ ! -e {root}/reading ]; do sleep 0.01; done
        i=0; bad=0
        while [ $i -lt {SWITCHES} ]; do
          if [ $((i % 2)) -eq 0 ]; then new=B; else new=A; fi
          ln -sfn $new {root}/.current-tmp && mv -T {root}/.current-tmp {root}/current \\
            || bad=$((bad+1))
          i=$((i+1))
        done
        touch {root}/stop; echo $bad
    """)
    reading = subprocess.Popen([*hosts.ssh(host), reader], stdout=subprocess.PIPE, text=True)
    started = time.perf_counter()
    switched = subprocess.run(
        [*hosts.ssh(host), switcher], capture_output=True, text=True, check=True, timeout=300
    )
    elapsed = time.perf_counter() - started
    out, _ = reading.communicate(timeout=60)
    a, b, failed = (int(x) for x in out.split())
    hosts.farm.run_on(host, f"rm -rf {root}")
    return int(switched.stdout.strip()), a, b, failed, elapsed


# --- the bench ------------------------------------------------------------------------------------


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def runs_text(values: list[float]) -> str:
    return "/".join(f"{v:.1f}" for v in values)


def main() -> None:
    started = time.monotonic()
    reason = farm_unavailable_reason()
    if reason:
        print(f"skipped: {reason}")
        return
    playbook = ansible_ready()
    table = Table(
        f"releases over SSH (postgresql, 1 worker, {HOSTS} sshd hosts on loopback, "
        f"median of {RUNS} unless noted)"
    )
    notes: list[str] = []
    tmp = Path(tempfile.mkdtemp(prefix="slipway-bench-releases-"))
    farm = SSHFarm(tmp / "farm", first_address=FIRST_ADDRESS, count=HOSTS)
    try:
        farm.start()
        hosts = Hosts(farm, tmp)
        big = make_package(tmp, "1.0.0", BIG_MB)
        small = [make_package(tmp, v, SMALL_MB) for v in ("2.0.0", "2.0.1")]
        for package in (big, *small):  # every contender reads them from the page cache
            package.read_bytes()
        with contextlib.ExitStack() as stack:
            slipway = start_slipway(stack, hosts, [big, *small], notes)
            fan_out_big(table, notes, hosts, slipway, playbook, big, started)
            fan_out_small(table, notes, hosts, slipway, small)
        open_connection(table, hosts)
        switch_under_reader(table, hosts)
    finally:
        farm.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    if notes:
        print("\nwhere slipway's time went (seconds) and what failed:")
        for note in notes:
            print(f"  {note}")
    finish([table], started)


def start_slipway(
    stack: contextlib.ExitStack, hosts: Hosts, packages: list[Path], notes: list[str]
) -> Slipway | None:
    """API + worker with the farm's hosts and the packages uploaded; None (and a note) when that
    fails: the baselines still run."""
    try:
        instance = stack.enter_context(Instance("postgresql"))
        url, _ = instance.api()
        worker = instance.worker("w1")
        slipway = Slipway(instance, url, worker.pid)
        slipway.setup(hosts)
        for package in packages:
            slipway.upload(package)
        return slipway
    except Exception as exc:
        notes.append(f"slipway could not be set up, baselines only: {exc}"[:800])
        return None


def attempt(notes: list[str], what: str, action: Any) -> Run | None:
    """A slipway deployment (or rollback); a failure becomes a note, not the end of the bench."""
    try:
        result: Run = action()
    except Exception as exc:
        notes.append(f"{what}: {exc}"[:800])
        return None
    if not result.ok:
        notes.append(f"{what}: {result.error()}")
        return None
    return result


def fan_out_big(
    table: Table,
    notes: list[str],
    hosts: Hosts,
    slipway: Slipway | None,
    playbook: Path,
    big: Path,
    started: float,
) -> None:
    """1. 50 MB to 10 hosts: the three take turns, each on fresh roots."""
    targets = hosts.farm.hosts[:BIG_HOSTS]
    times: dict[str, list[float]] = defaultdict(list)
    loads: list[float] = []
    contenders = ["openssh", "slipway", "ansible"]
    for run in range(RUNS):
        for who in contenders[run:] + contenders[:run]:
            root = f"/srv/bench-big-{who}-{run}"
            loads.append(os.getloadavg()[0])
            if who == "openssh":
                times[who].append(openssh_fanout(hosts, targets, big, root))
            elif who == "ansible":
                if run and time.monotonic() - started > ANSIBLE_BUDGET:
                    notes.append(f"ansible: run {run + 1} skipped to stay in time")
                    continue
                try:
                    times[who].append(
                        ansible_fanout(playbook, hosts, targets, big, root, f"big{run}")
                    )
                except RuntimeError as exc:
                    notes.append(str(exc))
            elif slipway is not None:
                result = attempt(
                    notes,
                    f"slipway {BIG_MB} MB deploy run {run + 1}",
                    functools.partial(big_run, slipway, run, root),
                )
                if result is not None:
                    times[who].append(result.seconds)
                    notes.append(f"{BIG_MB} MB run {run + 1}: {result.breakdown()}")
            hosts.clean(root, targets)
    ossh, ours, ans = (med(times[k]) for k in ("openssh", "slipway", "ansible"))
    where = f"{BIG_MB} MB ({big.stat().st_size / 1e6:.0f} MB gz) to {BIG_HOSTS} hosts"
    table.add(
        f"{where}: slipway | OpenSSH",
        f"{ours:.2f} s | {ossh:.2f} s = {ours / ossh:.2f}x "
        f"(runs {runs_text(times['slipway'])} | {runs_text(times['openssh'])}; "
        f"load {med(loads):.1f})",
        "<= 1.25x OpenSSH",
        ours <= 1.25 * ossh,
    )
    table.add(
        f"{where}: slipway | Ansible",
        f"{ours:.2f} s | {ans:.2f} s = {ours / ans:.2f}x "
        f"(Ansible runs {runs_text(times['ansible'])})",
        "<= 0.25x Ansible",
        ours <= 0.25 * ans,
    )


def big_run(slipway: Slipway, run: int, root: str) -> Run:
    env = slipway.environment(f"big{run}", "big", root)
    return slipway.timed(env, "/deployments", {"package": "1.0.0"}, "big")


def fan_out_small(
    table: Table, notes: list[str], hosts: Hosts, slipway: Slipway | None, small: list[Path]
) -> None:
    """2. and 3. 1 MB to 20 hosts beside OpenSSH; then a second release, and a rollback."""
    times: dict[str, list[float]] = defaultdict(list)
    loads: list[float] = []
    rollback_loads: list[float] = []
    for run in range(RUNS):
        order = ["openssh", "slipway"] if run % 2 == 0 else ["slipway", "openssh"]
        for who in order:
            root = f"/srv/bench-small-{who}-{run}"
            loads.append(os.getloadavg()[0])
            if who == "openssh":
                times[who].append(openssh_fanout(hosts, hosts.farm.hosts, small[0], root))
            elif slipway is not None:
                small_run(notes, slipway, run, root, times, rollback_loads)
            hosts.clean(root)
    ossh, ours = med(times["openssh"]), med(times["slipway"])
    table.add(
        f"{SMALL_MB} MB to {HOSTS} hosts: slipway | OpenSSH",
        f"{ours:.2f} s | {ossh:.2f} s = {ours / ossh:.2f}x "
        f"(runs {runs_text(times['slipway'])} | {runs_text(times['openssh'])}; "
        f"load {med(loads):.1f})",
        "<= 1.25x OpenSSH",
        ours <= 1.25 * ossh,
    )
    table.add(
        f"  (info) second release, {SMALL_MB} MB to {HOSTS} hosts",
        f"{med(times['second']):.2f} s (runs {runs_text(times['second'])})",
    )
    rollbacks = times["rollback"]
    worst = max(rollbacks) if rollbacks else float("nan")
    table.add(
        f"rollback of {HOSTS} hosts: median | worst",
        f"{med(rollbacks):.2f} s | {worst:.2f} s (runs {runs_text(rollbacks)}; "
        f"load {med(rollback_loads):.1f})",
        "<= 2 s",
        bool(rollbacks) and worst <= 2.0,
    )


def small_run(
    notes: list[str],
    slipway: Slipway,
    run: int,
    root: str,
    times: dict[str, list[float]],
    rollback_loads: list[float],
) -> None:
    try:
        env = slipway.environment(f"small{run}", "all", root)
    except RuntimeError as exc:
        notes.append(f"slipway environment: {exc}"[:800])
        return
    first = attempt(
        notes,
        f"slipway {SMALL_MB} MB deploy run {run + 1}",
        lambda: slipway.timed(env, "/deployments", {"package": "2.0.0"}),
    )
    if first is None:
        return
    times["slipway"].append(first.seconds)
    notes.append(f"{SMALL_MB} MB run {run + 1}: {first.breakdown()}")
    second = attempt(
        notes,
        f"slipway second {SMALL_MB} MB deploy run {run + 1}",
        lambda: slipway.timed(env, "/deployments", {"package": "2.0.1"}),
    )
    if second is None:
        return
    times["second"].append(second.seconds)
    rollback_loads.append(os.getloadavg()[0])
    back = attempt(
        notes,
        f"slipway rollback run {run + 1}",
        lambda: slipway.timed(env, "/rollback", {}, "rollback"),
    )
    if back is not None:
        times["rollback"].append(back.seconds)
        notes.append(f"rollback run {run + 1}: {back.breakdown()}")


def open_connection(table: Table, hosts: Hosts) -> None:
    """4. One more command on an open connection."""
    ours, bare = asyncio.run(session_commands(hosts))
    theirs = multiplexed_commands(hosts)
    p95 = percentile(ours, 95)
    table.add(
        f'SSHSession.run("true") p50 | p95 over {COMMANDS}',
        f"{ms(percentile(ours, 50))} | {ms(p95)} (bare asyncssh: "
        f"{ms(percentile(bare, 50))} | {ms(percentile(bare, 95))}; ssh over ControlMaster: "
        f"{ms(percentile(theirs, 50))} | {ms(percentile(theirs, 95))}; {load()})",
        "<= 10 ms each",
        p95 <= 0.010,
    )


def switch_under_reader(table: Table, hosts: Hosts) -> None:
    """5. The atomic switch."""
    bad, seen_a, seen_b, failed_reads, seconds = atomic_switch(hosts)
    table.add(
        f"{SWITCHES} switches under a reader: failed reads",
        f"{failed_reads} of {seen_a + seen_b + failed_reads} reads "
        f"(saw A {seen_a}, B {seen_b}; {bad} failed switches; "
        f"{SWITCHES / seconds:.0f} switches/s; {load()})",
        "0, both seen",
        failed_reads == 0 and bad == 0 and seen_a > 0 and seen_b > 0,
    )


if __name__ == "__main__":
    sys.exit(main())
