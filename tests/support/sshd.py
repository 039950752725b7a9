"""A farm of real OpenSSH "hosts" on this machine, for tests and benches (needs root).

Each host is one `/usr/sbin/sshd -D -E LOG` on a loopback address of its own (port 2222), in a
mount namespace of its own where a per-host directory is bind-mounted on `/srv` (so two hosts never
see each other's files, and deploys write under `/srv` as on a real server) and an empty one on
`/root` (so this machine's root dotfiles, a slow .bashrc say, stay out of every command). Each sshd
reads a config generated here (`-f`), so the machine's `/etc/ssh` does not matter; it logs to
`host.log_path` (-E: with -e a session's debug lines would reach the client's stderr).

    farm = SSHFarm(tmp_path, first_address="127.0.0.11", count=4)
    farm.start()                     # all hosts in parallel; stop() ends what start() started
    host = farm.hosts[0]             # FarmHost: name "h0", address, port, root (its /srv here),
                                     #           home (its /root), host_public_key, listener_pid
    farm.target(host)                # SSHTarget: root, logged in with farm.client_private_key
    farm.password_target(host)       # SSHTarget: user PASSWORD_USER with PASSWORD_USER_PASSWORD
    farm.run_on(host, "cat /srv/x")  # a shell command in that host's mount namespace
    farm.processes(host)             # command lines of every process in that namespace
    farm.kill_sessions(host)         # cut its live connections (its sshd children die)
    farm.stop_host(host); farm.start_host(host)      # a host that is down, then up again
    farm.restart_with_new_host_key(host)             # what a reinstalled (or spoofed) host offers
    farm.mount_small_disk(host, "/srv/small", "2m")  # a tmpfs only that host sees: "disk full"
    farm.log(host)                   # what its sshd logged (LogLevel VERBOSE)
    start_farm(base_dir, count=N)    # a started farm on the first free block 127.0.K.11

Fixtures: `ssh_farm` (session scope, FARM_SIZE hosts, skipped when not root or without sshd);
import it into a conftest with `from tests.support.sshd import ssh_farm`. Concurrent test sessions
on one machine each claim a block of their own (127.0.K.11 onwards) with a lock file, and a bench
can run its own farm from 127.0.0.101 at the same time.
"""

from __future__ import annotations

import fcntl
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address
from pathlib import Path
from typing import IO, Any

import asyncssh
import psutil
import pytest

from slipway.remote.ssh import SSHTarget

SSHD = "/usr/sbin/sshd"
PORT = 2222
FARM_SIZE = 10
PASSWORD_USER = "slipway-pw"
PASSWORD_USER_PASSWORD = "pw-Slipway-test-7"  # a test account on a test machine, nothing more
START_TIMEOUT = 10.0
LOCK_DIR = Path("/tmp")


class FarmBusyError(RuntimeError):
    """Another farm (another test session, a stale one) holds this farm's addresses."""


@dataclass
class FarmHost:
    """One sshd "host" of the farm."""

    name: str
    address: str
    port: int
    directory: Path  # config, keys, log; `root` lives under it
    host_public_key: str = ""
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def root(self) -> Path:
        """The directory this host sees as /srv."""
        return self.directory / "srv"

    @property
    def home(self) -> Path:
        """The directory this host sees as /root (empty: the machine's dotfiles stay out)."""
        return self.directory / "root"

    @property
    def listener_pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.name} is not running")
        return self.process.pid

    @property
    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def log_path(self) -> Path:
        return self.directory / "sshd.log"

    @property
    def host_key_path(self) -> Path:
        return self.directory / "ssh_host_ed25519_key"


class SSHFarm:
    """`count` sshd hosts from `first_address` on; see the module docstring."""

    def __init__(
        self, base_dir: Path | str, *, first_address: str = "127.0.0.11", count: int = FARM_SIZE
    ) -> None:
        self.base_dir = Path(base_dir)
        first = IPv4Address(first_address)
        self.hosts = [
            FarmHost(f"h{index}", str(first + index), PORT, self.base_dir / f"h{index}")
            for index in range(count)
        ]
        key = asyncssh.generate_private_key("ssh-ed25519", comment="slipway-farm-client")
        self.client_private_key = key.export_private_key("openssh").decode()
        self.client_public_key = key.export_public_key("openssh").decode().strip()
        self._lock: IO[str] | None = None

    # --- the whole farm -----------------------------------------------------------------------

    def start(self) -> None:
        """Claim the addresses, then start every host at once and wait until all answer."""
        self._claim_addresses()
        try:
            self.base_dir.mkdir(parents=True, exist_ok=True)
            Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privsep chroot
            Path("/srv").mkdir(exist_ok=True)  # the mount point each namespace covers
            (self.base_dir / "authorized_keys").write_text(self.client_public_key + "\n")
            ensure_password_user()
            for host in self.hosts:
                host.root.mkdir(parents=True, exist_ok=True)
                host.home.mkdir(mode=0o700, exist_ok=True)
                self._write_host_key(host)
                self._spawn(host)
            for host in self.hosts:
                self._wait_until_answers(host)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """End every process the farm started (listeners and their sessions), release the claim."""
        for host in self.hosts:
            self._terminate(host)
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> SSHFarm:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- credentials --------------------------------------------------------------------------

    def target(self, host: FarmHost, **changes: Any) -> SSHTarget:
        """How to log in to `host` as root with the farm's client key; `changes` override fields."""
        target = SSHTarget(
            address=host.address,
            port=host.port,
            user="root",
            private_key=self.client_private_key,
            connect_timeout=5.0,
            name=host.name,
        )
        return replace(target, **changes)

    def password_target(self, host: FarmHost, **changes: Any) -> SSHTarget:
        """How to log in to `host` as PASSWORD_USER with its password (and no key)."""
        target = SSHTarget(
            address=host.address,
            port=host.port,
            user=PASSWORD_USER,
            password=PASSWORD_USER_PASSWORD,
            connect_timeout=5.0,
            name=host.name,
        )
        return replace(target, **changes)

    # --- one host -----------------------------------------------------------------------------

    def stop_host(self, host: FarmHost) -> None:
        """Take `host` down: its listener and every session under it end; its files stay."""
        self._terminate(host)

    def start_host(self, host: FarmHost) -> None:
        """Bring a stopped `host` back with the same address, host key and files."""
        if host.is_running:
            return
        self._spawn(host)
        self._wait_until_answers(host)

    def restart_with_new_host_key(self, host: FarmHost) -> None:
        """Restart `host` with a freshly generated host key, as a reinstalled host would be."""
        self._terminate(host)
        host.host_key_path.unlink(missing_ok=True)
        self._write_host_key(host)
        self.start_host(host)

    def kill_sessions(self, host: FarmHost) -> int:
        """Kill every process under `host`'s listener, cutting its live connections; returns how
        many were killed. The listener stays, so new connections still work."""
        victims = psutil.Process(host.listener_pid).children(recursive=True)
        for process in victims:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        _wait_dead(victims)
        return len(victims)

    def mount_small_disk(self, host: FarmHost, path: str = "/srv/small", size: str = "2m") -> None:
        """Mount a `size` tmpfs at `path`, seen only inside `host`'s namespace (it vanishes with
        the host): writing more than `size` there fails with "No space left on device"."""
        where = shlex.quote(path)
        options = shlex.quote(f"size={size}")
        self.run_on(host, f"mkdir -p {where} && mount -t tmpfs -o {options} slipway-small {where}")

    def run_on(
        self, host: FarmHost, command: str, *, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell command as root inside `host`'s mount namespace (sees its /srv)."""
        return subprocess.run(
            ["nsenter", "-t", str(host.listener_pid), "-m", "sh", "-c", command],
            capture_output=True,
            text=True,
            check=check,
            timeout=60,
        )

    def processes(self, host: FarmHost) -> list[str]:
        """Command lines of every live process in `host`'s mount namespace, the listener's too:
        a remote process that escaped its session still shows up here."""
        namespace = os.readlink(f"/proc/{host.listener_pid}/ns/mnt")
        found = []
        for process in psutil.process_iter(["cmdline"]):
            try:
                if os.readlink(f"/proc/{process.pid}/ns/mnt") == namespace:
                    found.append(" ".join(process.info["cmdline"] or []))
            except OSError:
                continue  # gone meanwhile
        return found

    def log(self, host: FarmHost) -> str:
        """What `host`'s sshd has logged so far (LogLevel VERBOSE)."""
        return host.log_path.read_text(errors="replace")

    # --- internals ----------------------------------------------------------------------------

    def _claim_addresses(self) -> None:
        first = self.hosts[0].address
        # Held open for as long as the farm runs; the kernel drops the lock if the process dies.
        self._lock = open(LOCK_DIR / f"slipway-sshfarm-{first}.lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            self._lock = None
            raise FarmBusyError(f"another farm holds {first}:{PORT}") from None
        for host in self.hosts:
            if not _port_is_free(host.address, host.port):
                self._lock.close()
                self._lock = None
                raise FarmBusyError(f"{host.address}:{host.port} is in use (a stale farm?)")

    def _write_host_key(self, host: FarmHost) -> None:
        if not host.host_key_path.exists():
            key = asyncssh.generate_private_key("ssh-ed25519")
            key.write_private_key(host.host_key_path, "openssh")
            host.host_key_path.chmod(0o600)
        public = asyncssh.read_private_key(host.host_key_path).export_public_key("openssh")
        host.host_public_key = public.decode().strip()

    def _write_config(self, host: FarmHost) -> Path:
        lines = [
            f"Port {host.port}",
            f"ListenAddress {host.address}",
            f"HostKey {host.host_key_path}",
            f"PidFile {host.directory / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.base_dir / 'authorized_keys'}",
            "StrictModes no",
            "UsePAM no",
            "PermitRootLogin yes",
            "PubkeyAuthentication yes",
            "PasswordAuthentication yes",
            "KbdInteractiveAuthentication no",
            "UseDNS no",
            "PrintMotd no",
            "LogLevel VERBOSE",
            # Parallel deploys open many connections and many channels per connection.
            "MaxSessions 100",
            "MaxStartups 200",
            "MaxAuthTries 20",
            "Subsystem sftp internal-sftp",
        ]
        if _sshd_version() >= (9, 8):
            # Tests fail logins and cut sessions on purpose; that must not lock out 127.0.0.1.
            lines.append("PerSourcePenalties no")
        path = host.directory / "sshd_config"
        path.write_text("\n".join(lines) + "\n")
        return path

    def _spawn(self, host: FarmHost) -> None:
        config = self._write_config(host)
        log = host.log_path.open("ab")
        # `unshare` without --fork execs sh, which execs sshd: the Popen pid is the listener.
        host.process = subprocess.Popen(
            [
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                'mount --bind "$0" /srv && mount --bind "$1" /root && shift && exec "$@"',
                str(host.root),
                str(host.home),
                SSHD,
                "-D",
                "-E",
                str(host.log_path),
                "-f",
                str(config),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            preexec_fn=_die_with_parent,  # a crashed test session leaves no sshd behind
        )
        log.close()

    def _wait_until_answers(self, host: FarmHost) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if host.process is None or host.process.poll() is not None:
                raise RuntimeError(f"sshd of {host.name} exited at start:\n{self._tail(host)}")
            if _answers(host.address, host.port):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"sshd of {host.name} did not answer:\n{self._tail(host)}")
            time.sleep(0.01)

    def _terminate(self, host: FarmHost) -> None:
        if host.process is None:
            return
        try:
            family = [psutil.Process(host.process.pid)]
            family += family[0].children(recursive=True)
        except psutil.NoSuchProcess:
            family = []
        for process in family:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        host.process.wait(timeout=10)
        _wait_dead(family)
        host.process = None

    def _tail(self, host: FarmHost) -> str:
        return "\n".join(self.log(host).splitlines()[-15:])


def ensure_password_user() -> None:
    """Create the password-only login user if missing and (re)set its known password."""
    if subprocess.run(["id", PASSWORD_USER], capture_output=True).returncode != 0:
        subprocess.run(
            ["useradd", "--system", "--create-home", "--shell", "/bin/sh", PASSWORD_USER],
            check=True,
            capture_output=True,
        )
    for attempt in range(20):  # another session may hold the /etc/shadow lock for a moment
        done = subprocess.run(
            ["chpasswd"],
            input=f"{PASSWORD_USER}:{PASSWORD_USER_PASSWORD}\n",
            text=True,
            capture_output=True,
        )
        if done.returncode == 0:
            return
        time.sleep(0.1 * (attempt + 1))
    raise RuntimeError(f"chpasswd failed for {PASSWORD_USER}: {done.stderr.strip()}")


def _wait_dead(processes: list[psutil.Process], timeout: float = 5.0) -> None:
    """Until each is gone or a zombie: an orphan's zombie lingers where pid 1 does not reap."""
    deadline = time.monotonic() + timeout
    for process in processes:
        while time.monotonic() < deadline:
            try:
                if process.status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            time.sleep(0.01)


def _die_with_parent() -> None:
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _sshd_version() -> tuple[int, int]:
    banner = subprocess.run([SSHD, "-V"], capture_output=True, text=True).stderr
    match = re.search(r"OpenSSH_(\d+)\.(\d+)", banner)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def _port_is_free(address: str, port: int) -> bool:
    with socket.socket() as probe:
        # As sshd binds: an earlier farm's connections in TIME_WAIT do not count, a listener does.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def _answers(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.2):
            return True
    except OSError:
        return False


def farm_unavailable_reason() -> str | None:
    """Why no farm can run here, or None when one can."""
    if os.geteuid() != 0:
        return "the sshd farm needs root (mount namespaces, a login user)"
    for tool in (SSHD, "unshare", "nsenter", "useradd"):
        if shutil.which(tool) is None:
            return f"{tool} is missing (apt-get install openssh-server util-linux passwd)"
    return None


def start_farm(base_dir: Path, *, count: int = FARM_SIZE, blocks: int = 16) -> SSHFarm:
    """Start a farm on the first free address block 127.0.K.11 (K = 0, 1, ...)."""
    for block in range(blocks):
        farm = SSHFarm(base_dir / f"block{block}", first_address=f"127.0.{block}.11", count=count)
        try:
            farm.start()
        except FarmBusyError:
            continue
        return farm
    raise FarmBusyError(f"all {blocks} farm address blocks are in use")


@pytest.fixture(scope="session")
def ssh_farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHFarm]:
    """FARM_SIZE running sshd hosts for the whole test session."""
    reason = farm_unavailable_reason()
    if reason:
        pytest.skip(reason)
    farm = start_farm(tmp_path_factory.mktemp("sshfarm"))
    try:
        yield farm
    finally:
        farm.stop()
