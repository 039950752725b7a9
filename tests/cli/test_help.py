"""`--help` on every command, and `slipway version`: they work anywhere, with nothing set up."""

from __future__ import annotations

import os
from pathlib import Path

import typer.main
from typer.testing import CliRunner

from slipway import __version__
from slipway.cli.main import app
from tests.cli.helpers import ok, run
from tests.conftest import ROOT


def command_paths() -> list[tuple[list[str], str]]:
    """Every group and command of the Typer app, with the first line of its help."""
    paths: list[tuple[list[str], str]] = []

    def walk(command: object, path: list[str]) -> None:
        paths.append((path, (getattr(command, "help", None) or "").strip().splitlines()[0]))
        for name, child in (getattr(command, "commands", None) or {}).items():
            walk(child, [*path, name])

    walk(typer.main.get_command(app), [])
    return paths


def test_every_command_and_group_has_a_working_help() -> None:
    paths = command_paths()
    names = {" ".join(path) for path, _ in paths}
    # The commands DESIGN.md names for the CLI are all there.
    for expected in (
        "api",
        "worker",
        "check",
        "version",
        "db upgrade",
        "users create",
        "tokens create",
        "tokens revoke",
        "secrets rotate-key",
        "secrets generate-key",
        "ops list",
        "ops logs",
        "ops cancel",
    ):
        assert expected in names
    runner = CliRunner()

    for path, summary in paths:
        result = runner.invoke(app, [*path, "--help"], prog_name="slipway")
        assert result.exit_code == 0, (path, result.output)
        assert f"Usage: slipway {' '.join(path)}".rstrip() in result.output
        assert summary, f"`slipway {' '.join(path)}` has no help text"
        assert summary.split(".")[0][:40] in " ".join(result.output.split())


def test_help_and_version_need_no_settings_database_or_redis(tmp_path: Path) -> None:
    # Even a broken setting does not stop them: they read none.
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "SLIPWAY_PORT": "abc"}

    top = ok(run("--help", env=env, cwd=tmp_path))
    version = ok(run("version", env=env, cwd=tmp_path))

    for group in ("api", "worker", "db", "users", "tokens", "secrets", "check", "ops"):
        assert group in top
    assert "SLIPWAY_URL" in top
    assert version == f"{__version__}\n"
    assert list(tmp_path.iterdir()) == []
