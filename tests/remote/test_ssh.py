"""slipway.remote.ssh against real sshd hosts (tests.support.sshd): what a user would notice."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from slipway.core.errors import InputError, RemoteCommandError
from slipway.remote import ssh
from tests.support.sshd import PASSWORD_USER, PASSWORD_USER_PASSWORD, FarmHost, SSHFarm

pytestmark = pytest.mark.anyio


async def wait_until(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what} after {timeout} s")
        await asyncio.sleep(0.02)


def processes_like(farm: SSHFarm, host: FarmHost, needle: str) -> list[str]:
    return [line for line in farm.processes(host) if needle in line]


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("uploads") / "big.bin"
    path.write_bytes(os.urandom(20 * 1024 * 1024))
    return path


@pytest.fixture
def host(ssh_farm: SSHFarm) -> FarmHost:
    """A host that tests only read from or write under /srv/tests."""
    return ssh_farm.hosts[0]


# --- commands -------------------------------------------------------------------------------


async def test_run_returns_output_and_exit_status(ssh_farm: SSHFarm, host: FarmHost) -> None:
    async with await ssh.connect(ssh_farm.target(host)) as session:
        result = await session.run("echo out; echo err >&2; exit 0")
        failed = await session.run("echo partial; exit 3", check=False)

    assert (result.stdout, result.stderr, result.exit_status, result.ok) == (
        "out\n",
        "err\n",
        0,
        True,
    )
    assert result.duration > 0
    assert (failed.exit_status, failed.ok, failed.stdout) == (3, False, "partial\n")


async def test_a_failing_command_raises_with_its_result(ssh_farm: SSHFarm, host: FarmHost) -> None:
    async with await ssh.connect(ssh_farm.target(host)) as session:
        with pytest.raises(RemoteCommandError) as caught:
            await session.run("echo doing; echo 'bad sign' >&2; echo 'disk on fire' >&2; exit 7")

    error = caught.value
    assert error.code == "remote_command_failed"
    assert error.result.exit_status == 7
    assert error.result.stdout == "doing\n"
    assert "h0" in error.message and "exit status 7" in error.message
    assert "disk on fire" in error.message  # the last stderr line says why


async def test_a_syntax_error_is_reported_not_swallowed(ssh_farm: SSHFarm, host: FarmHost) -> None:
    async with await ssh.connect(ssh_farm.target(host)) as session:
        result = await session.run("echo unbalanced (", check=False)

    assert result.exit_status != 0
    assert "syntax error" in result.stderr


async def test_lines_stream_while_the_command_runs(ssh_farm: SSHFarm, host: FarmHost) -> None:
    seen: list[tuple[str, str, float]] = []
    script = "echo one; echo warn-one >&2; sleep 0.6; echo two; echo warn-two >&2; printf tail"

    async with await ssh.connect(ssh_farm.target(host)) as session:
        result = await session.run(
            script, on_line=lambda stream, line: seen.append((stream, line, time.monotonic()))
        )

    lines = [(stream, line) for stream, line, _ in seen]
    assert [line for stream, line in lines if stream == "stdout"] == ["one", "two", "tail"]
    assert [line for stream, line in lines if stream == "stderr"] == ["warn-one", "warn-two"]
    arrival = {line: at for _, line, at in seen}
    assert arrival["two"] - arrival["one"] > 0.4  # "one" came before the command ended
    assert result.stdout == "one\ntwo\ntail"


async def test_env_and_input_reach_the_command(ssh_farm: SSHFarm, host: FarmHost) -> None:
    tricky = 'it\'s "quoted" $HOME `date` ; exit 9'
    async with await ssh.connect(ssh_farm.target(host)) as session:
        env = await session.run('printf %s "$GREETING"', env={"GREETING": tricky})
        text = await session.run("tr a-z A-Z", input="hello\n")
        raw = await session.run("sha256sum", input=bytes(range(256)) * 1000)
        with pytest.raises(InputError):
            await session.run("true", env={"NOT A NAME": "x"})

    assert env.stdout == tricky
    assert text.stdout == "HELLO\n"
    assert raw.stdout.split()[0] == hashlib.sha256(bytes(range(256)) * 1000).hexdigest()


async def test_a_timeout_kills_the_remote_command(ssh_farm: SSHFarm, host: FarmHost) -> None:
    async with await ssh.connect(ssh_farm.target(host)) as session:
        started = time.monotonic()
        with pytest.raises(RemoteCommandError) as caught:
            await session.run("echo started; sh -c 'sleep 311; :'", timeout=0.5)
        elapsed = time.monotonic() - started

        assert caught.value.code == "timeout"
        assert caught.value.result.stdout == "started\n"
        assert elapsed < 3
        await wait_until(lambda: not processes_like(ssh_farm, host, "sleep 311"), "no sleep 311")
        assert (await session.run("echo still usable")).stdout == "still usable\n"


@pytest.mark.parametrize(
    "command, needle",
    [("sleep 312", "sleep 312"), ("sh -c 'sleep 313; :'", "sleep 313")],
    ids=["simple", "child-of-a-shell"],
)
async def test_cancel_kills_the_remote_command(
    ssh_farm: SSHFarm, host: FarmHost, command: str, needle: str
) -> None:
    async with await ssh.connect(ssh_farm.target(host)) as session:
        task = asyncio.create_task(session.run(command))
        await wait_until(lambda: processes_like(ssh_farm, host, needle), f"{needle} running")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Killed while the connection stays open: not a side effect of closing it.
        await wait_until(lambda: not processes_like(ssh_farm, host, needle), f"{needle} gone", 3)
        assert (await session.run("echo still usable")).ok


async def test_cancel_kills_what_a_plain_user_ran(ssh_farm: SSHFarm, host: FarmHost) -> None:
    async with await ssh.connect(ssh_farm.password_target(host)) as session:
        task = asyncio.create_task(session.run("sh -c 'sleep 315; :' & sleep 316"))
        await wait_until(lambda: processes_like(ssh_farm, host, "sleep 316"), "sleep 316")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    # close() waited for the kill; a background job of the command went with it.
    assert processes_like(ssh_farm, host, "sleep 31") == []


async def test_many_commands_share_one_connection(ssh_farm: SSHFarm, host: FarmHost) -> None:
    async with await ssh.connect(ssh_farm.target(host)) as session:
        results = await asyncio.gather(*(session.run(f"echo {n}") for n in range(40)))

    assert [result.stdout for result in results] == [f"{n}\n" for n in range(40)]


# --- files ----------------------------------------------------------------------------------


async def test_upload_checks_the_sha256_and_overwrites(
    ssh_farm: SSHFarm, host: FarmHost, tmp_path: Path
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_bytes(b"release 1\n")
    second.write_bytes(b"release 2, longer\n")
    expected = hashlib.sha256(b"release 1\n").hexdigest()

    async with await ssh.connect(ssh_farm.target(host)) as session:
        reported = await session.upload(first, "/srv/tests/up/app.tar", sha256=expected.upper())
        assert reported == expected
        assert await session.sha256("/srv/tests/up/app.tar") == expected
        await session.upload(second, "/srv/tests/up/app.tar")  # no sha256 given: ours is used

    assert (host.root / "tests/up/app.tar").read_bytes() == b"release 2, longer\n"
    assert not (host.root / "tests/up/app.tar.part").exists()


async def test_upload_with_the_wrong_sha256_leaves_nothing(
    ssh_farm: SSHFarm, host: FarmHost, tmp_path: Path
) -> None:
    local = tmp_path / "package.tar"
    local.write_bytes(b"not what was promised")

    async with await ssh.connect(ssh_farm.target(host)) as session:
        with pytest.raises(RemoteCommandError) as caught:
            await session.upload(local, "/srv/tests/wrong/package.tar", sha256="0" * 64)
        assert await session.sha256("/srv/tests/wrong/package.tar") is None

    assert caught.value.code == "checksum_mismatch"
    assert "0" * 64 in caught.value.message
    assert list((host.root / "tests/wrong").iterdir()) == []  # no file, no .part


async def test_a_20_mb_upload_arrives_identical(
    ssh_farm: SSHFarm, host: FarmHost, big_file: Path
) -> None:
    expected = hashlib.sha256(big_file.read_bytes()).hexdigest()

    async with await ssh.connect(ssh_farm.target(host)) as session:
        reported = await session.upload(big_file, "/srv/tests/big/big.bin", sha256=expected)

    assert reported == expected
    assert (host.root / "tests/big/big.bin").read_bytes() == big_file.read_bytes()


async def test_write_file_and_read_file_are_atomic(ssh_farm: SSHFarm, host: FarmHost) -> None:
    data = bytes(range(256)) * 64
    final = host.root / "tests/conf/app.env"

    async with await ssh.connect(ssh_farm.target(host)) as session:
        await session.write_file("/srv/tests/conf/app.env", b"OLD=1\n")
        old_inode = final.stat().st_ino
        await session.write_file("/srv/tests/conf/app.env", data, mode=0o600)
        assert await session.read_file("/srv/tests/conf/app.env") == data
        with pytest.raises(RemoteCommandError) as missing:
            await session.read_file("/srv/tests/conf/nothing-here")

    assert final.stat().st_ino != old_inode  # renamed into place, never rewritten in place
    assert final.stat().st_mode & 0o777 == 0o600
    assert not final.with_name("app.env.part").exists()
    assert "nothing-here" in missing.value.message


# --- faults ---------------------------------------------------------------------------------


async def test_cut_connection_mid_upload_leaves_no_file(ssh_farm: SSHFarm, tmp_path: Path) -> None:
    host = ssh_farm.hosts[2]
    local = tmp_path / "huge.bin"
    local.write_bytes(os.urandom(1024 * 1024) * 80)
    part = host.root / "tests/cut/huge.bin.part"

    async with await ssh.connect(ssh_farm.target(host)) as session:
        upload = asyncio.create_task(session.upload(local, "/srv/tests/cut/huge.bin"))
        await wait_until(lambda: part.exists() and part.stat().st_size > 1024 * 1024, "bytes")
        await asyncio.to_thread(ssh_farm.kill_sessions, host)
        with pytest.raises(ssh.SSHConnectionLostError) as caught:
            await upload

    assert caught.value.code == "connection_lost"
    assert "h2" in caught.value.message
    assert not (host.root / "tests/cut/huge.bin").exists()
    async with await ssh.connect(ssh_farm.target(host)) as session:  # the host still answers
        assert (await session.run("echo back")).ok


async def test_cut_connection_mid_command(ssh_farm: SSHFarm) -> None:
    host = ssh_farm.hosts[2]
    async with await ssh.connect(ssh_farm.target(host)) as session:
        running = asyncio.create_task(session.run("sleep 314"))
        await wait_until(lambda: processes_like(ssh_farm, host, "sleep 314"), "sleep 314")
        await asyncio.to_thread(ssh_farm.kill_sessions, host)
        with pytest.raises(ssh.SSHConnectionLostError):
            await running


async def test_a_full_disk_is_a_clear_error(ssh_farm: SSHFarm, tmp_path: Path) -> None:
    host = ssh_farm.hosts[5]
    local = tmp_path / "too-big.bin"
    local.write_bytes(os.urandom(3 * 1024 * 1024))
    ssh_farm.mount_small_disk(host, "/srv/small", "2m")
    try:
        async with await ssh.connect(ssh_farm.target(host)) as session:
            with pytest.raises(RemoteCommandError) as by_command:
                await session.run("sh -c 'head -c 5000000 /dev/zero > /srv/small/x'")
            await session.run("rm -f /srv/small/x")
            with pytest.raises(RemoteCommandError) as by_upload:
                await session.upload(local, "/srv/small/too-big.bin")
            facts = await ssh.probe(ssh_farm.target(host), path="/srv/small/not/yet/there")
        left = ssh_farm.run_on(host, "ls -A /srv/small").stdout
    finally:
        ssh_farm.run_on(host, "umount /srv/small", check=False)

    assert "No space left on device" in by_command.value.message
    assert by_command.value.result.exit_status != 0
    assert by_upload.value.code == "upload_incomplete"
    assert "No space left on device" in by_upload.value.message
    assert left == ""  # neither the file nor its .part
    assert 0 < facts["free_bytes"] <= 2 * 1024 * 1024


# --- connecting -----------------------------------------------------------------------------


async def test_the_host_key_is_reported_and_a_pin_is_honoured(
    ssh_farm: SSHFarm, host: FarmHost
) -> None:
    async with await ssh.connect(ssh_farm.target(host)) as first:
        reported, fingerprint = first.host_key, first.host_key_fingerprint

    pinned = ssh_farm.target(host, host_key=reported)
    async with await ssh.connect(pinned) as again:
        assert (await again.run("echo pinned")).ok

    assert reported == host.host_public_key
    assert fingerprint == ssh.key_fingerprint(reported)
    assert fingerprint.startswith("SHA256:")


async def test_a_changed_host_key_is_refused_before_the_password_is_sent(
    ssh_farm: SSHFarm,
) -> None:
    host = ssh_farm.hosts[3]
    old_key = host.host_public_key
    ssh_farm.restart_with_new_host_key(host)
    log_before = len(ssh_farm.log(host))

    with pytest.raises(ssh.HostKeyChangedError) as caught:
        await ssh.connect(ssh_farm.password_target(host, host_key=old_key))

    error = caught.value
    assert error.code == "host_key_changed"
    assert error.details == {
        "host": f"h3 ({host.address}:2222)",
        "pinned": ssh.key_fingerprint(old_key),
        "offered": ssh.key_fingerprint(host.host_public_key),
    }
    assert PASSWORD_USER_PASSWORD not in str(error)
    # The host logs a connection that ended before anyone tried to log in.
    await wait_until(lambda: "not trusted" in ssh_farm.log(host)[log_before:], "sshd's log line")
    attempt = ssh_farm.log(host)[log_before:]
    assert "password" not in attempt.lower() and PASSWORD_USER not in attempt
    # Unpinned, the same host is reachable and reports its new key for the caller to re-pin.
    async with await ssh.connect(ssh_farm.password_target(host)) as session:
        assert session.host_key == host.host_public_key


async def test_a_wrong_password_is_an_auth_error_without_the_password(
    ssh_farm: SSHFarm, host: FarmHost
) -> None:
    wrong = "Wrong-horse-battery-1"
    async with await ssh.connect(ssh_farm.password_target(host)) as session:
        assert (await session.run("id -un")).stdout == f"{PASSWORD_USER}\n"

    with pytest.raises(ssh.SSHAuthError) as caught:
        await ssh.connect(ssh_farm.password_target(host, password=wrong))

    assert caught.value.code == "ssh_auth_failed"
    assert "h0" in str(caught.value) and PASSWORD_USER in str(caught.value)
    assert wrong not in str(caught.value) and wrong not in repr(caught.value)
    assert wrong not in repr(ssh_farm.password_target(host, password=wrong))


async def test_a_stopped_host_is_unreachable_at_once(ssh_farm: SSHFarm) -> None:
    host = ssh_farm.hosts[4]
    ssh_farm.stop_host(host)
    try:
        started = time.monotonic()
        with pytest.raises(ssh.SSHUnreachableError) as caught:
            await ssh.connect(ssh_farm.target(host, connect_timeout=5))
        elapsed = time.monotonic() - started
    finally:
        ssh_farm.start_host(host)

    assert elapsed < 2  # refused at once, not after the 5 s connect timeout
    assert caught.value.code == "host_unreachable"
    assert "h4" in caught.value.message


@pytest.fixture
def silent_server() -> Iterator[tuple[str, int]]:
    """A TCP port that accepts connections and never says a word (a hung host)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server.getsockname()


async def test_connect_timeout_is_respected(silent_server: tuple[str, int]) -> None:
    address, port = silent_server
    target = ssh.SSHTarget(address, port, connect_timeout=0.5, name="hung")

    started = time.monotonic()
    with pytest.raises(ssh.SSHUnreachableError) as caught:
        await ssh.connect(target)

    assert time.monotonic() - started < 2
    assert "hung" in caught.value.message and "0.5 s" in caught.value.message


async def test_probe_reports_the_facts(ssh_farm: SSHFarm, host: FarmHost) -> None:
    as_root = await ssh.probe(ssh_farm.target(host))
    as_user = await ssh.probe(ssh_farm.password_target(host), path="/srv")

    assert as_root["user"] == "root" and as_root["uid"] == 0 and as_root["is_root"]
    assert as_root["kernel"] == os.uname().release
    assert as_root["os"]
    assert as_root["free_bytes"] > 0
    assert as_root["host_key"] == host.host_public_key
    assert as_root["host_key_fingerprint"] == ssh.key_fingerprint(host.host_public_key)
    assert as_user["user"] == PASSWORD_USER and not as_user["is_root"]
    assert PASSWORD_USER in as_user["groups"]
    assert as_user["sudo"] is False


# --- fan-out and keys -----------------------------------------------------------------------


async def test_fan_out_keeps_order_and_limit() -> None:
    active, peak = 0, 0

    async def work(n: int) -> int:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.01 * (10 - n))
        active -= 1
        if n == 4:
            raise ValueError("four")
        return n * n

    results = await ssh.fan_out(range(10), work, limit=3)

    assert peak == 3
    assert [r for i, r in enumerate(results) if i != 4] == [n * n for n in range(10) if n != 4]
    assert isinstance(results[4], ValueError)


async def test_fan_out_over_hosts_reads_each_host(ssh_farm: SSHFarm) -> None:
    hosts = ssh_farm.hosts[:6]
    for host in hosts:
        (host.root / "tests").mkdir(exist_ok=True)
        (host.root / "tests/name").write_text(host.name)

    async def read_name(host: FarmHost) -> str:
        async with await ssh.connect(ssh_farm.target(host)) as session:
            return (await session.read_file("/srv/tests/name")).decode()

    assert await ssh.fan_out(hosts, read_name, limit=4) == [host.name for host in hosts]


def test_public_key_of_and_fingerprints(ssh_farm: SSHFarm) -> None:
    assert ssh.public_key_of(ssh_farm.client_private_key) == " ".join(
        ssh_farm.client_public_key.split()[:2]
    )
    with pytest.raises(ssh.SSHAuthError) as unreadable:
        ssh.public_key_of("-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n")
    with pytest.raises(InputError):
        ssh.key_fingerprint("ssh-ed25519 not-base64")
    assert "not a key" not in str(unreadable.value)
