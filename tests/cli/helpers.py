"""Running the real `slipway` command (a process, or in this process where start-up cost matters),
throwaway databases, and what every CLI error must look like: one line on stderr."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import psycopg

from tests.conftest import PG_ADMIN_URL, SLIPWAY

Result = subprocess.CompletedProcess[str]


def start(
    *args: str, env: Mapping[str, str], stdin: str | None = None, cwd: Path | None = None
) -> subprocess.Popen[str]:
    """`slipway ARGS…` started in the background; collect it with `finish`."""
    process = subprocess.Popen(
        [SLIPWAY, *args],
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
        text=True,
        cwd=cwd,
    )
    if process.stdin is not None:
        process.stdin.write(stdin or "")
        process.stdin.close()
        process.stdin = None  # so that communicate() does not flush the closed pipe
    return process


def finish(process: subprocess.Popen[str], timeout: float = 60) -> Result:
    stdout, stderr = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def run(
    *args: str, env: Mapping[str, str], stdin: str | None = None, cwd: Path | None = None
) -> Result:
    """`slipway ARGS…` with exactly this environment, to its end."""
    return finish(start(*args, env=env, stdin=stdin, cwd=cwd))


def run_together(commands: Sequence[Sequence[str]], *, env: Mapping[str, str]) -> list[Result]:
    """Start every command at once (each costs ~0.7 s of imports), then collect them in order."""
    started = [start(*command, env=env) for command in commands]
    return [finish(process) for process in started]


def outputs(*started: subprocess.Popen[str]) -> list[str]:
    """The stdout of each command started together; every one must succeed."""
    return [ok(finish(process)) for process in started]


def invoke(*args: str, stdin: str | None = None, env: Mapping[str, str] | None = None) -> Result:
    """`slipway ARGS…` run in this process: the same commands and error handling without the
    start-up cost of a process; `env` adds variables for this one call."""
    from typer.testing import CliRunner

    from slipway.cli.main import app
    from slipway.core.config import get_settings

    get_settings.cache_clear()
    try:
        outcome = CliRunner().invoke(app, list(args), input=stdin, env=env, prog_name="slipway")
    finally:
        get_settings.cache_clear()
    assert outcome.exception is None or isinstance(outcome.exception, SystemExit), outcome.exception
    return subprocess.CompletedProcess(
        ["slipway", *args], outcome.exit_code, outcome.stdout, outcome.stderr
    )


def ok(result: Result) -> str:
    """The stdout of a command that must succeed."""
    assert result.returncode == 0, f"{result.args}: exit {result.returncode}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


def one_error_line(result: Result, *, exit_code: int, contains: str = "") -> str:
    """A refusal: the expected exit code and exactly one line on stderr, never a traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == exit_code, (
        f"{result.args}: exit {result.returncode}, expected {exit_code}\n{result.stderr}"
    )
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one stderr line, got:\n{result.stderr}"
    assert contains in lines[0], lines[0]
    return lines[0]


@contextmanager
def throwaway_postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database (SQLAlchemy URL), dropped afterwards."""
    name = f"slipway_fresh_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


@contextmanager
def fresh_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database nobody has migrated: a SQLite file to be, or a throwaway PostgreSQL one."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'slipway.db'}"
        return
    with throwaway_postgres_database() as url:
        yield url
