"""Process settings: defaults that work on a fresh machine, every SLIPWAY_* variable, `.env`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from slipway.core.config import Settings, get_settings
from tests.cli.helpers import one_error_line, run
from tests.conftest import ROOT


@pytest.fixture
def clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No SLIPWAY_* variable set, working directory an empty temp dir."""
    for name in list(os.environ):
        if name.startswith("SLIPWAY_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_defaults_work_on_a_fresh_machine(clean: Path) -> None:
    settings = Settings()

    data = clean / "data"
    assert settings.data_dir == data and settings.data_dir.is_absolute()
    assert settings.logs_path == data / "logs"
    assert settings.key_file == data / "secret.key"
    assert settings.database_url == f"sqlite:///{data}/slipway.db"
    assert settings.is_sqlite
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.operation_log_retention_days == 30
    assert settings.log_retention_days == 14
    assert settings.secret_key is None
    assert settings.queues == ["default"]
    assert settings.plugins == []
    assert settings.url == "http://127.0.0.1:8000"
    assert settings.token is None
    # Reading the settings creates nothing: a fresh machine stays untouched until a command runs.
    assert list(clean.iterdir()) == []


def test_every_documented_variable_is_honoured(
    clean: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = {
        "SLIPWAY_DATABASE_URL": "postgresql+psycopg://slipway@db.example:5432/slipway",
        "SLIPWAY_REDIS_URL": "redis://cache.example:6380/4",
        "SLIPWAY_DATA_DIR": str(clean / "var"),
        "SLIPWAY_LOG_DIR": str(clean / "logs-here"),
        "SLIPWAY_SECRET_KEY": "x" * 43 + "=",
        "SLIPWAY_SECRET_KEY_FILE": str(clean / "keys" / "master.key"),
        "SLIPWAY_HOST": "0.0.0.0",
        "SLIPWAY_PORT": "9100",
        "SLIPWAY_LOG_RETENTION_DAYS": "7",
        "SLIPWAY_OPERATION_LOG_RETENTION_DAYS": "90",
        "SLIPWAY_URL": "https://slipway.example",
        "SLIPWAY_TOKEN": "slw_abc",
        "SLIPWAY_QUEUES": "default, builds ,deploys",
        "SLIPWAY_PLUGINS": "tests.support.kinds,acme.kinds",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)

    settings = get_settings()

    assert settings.database_url == values["SLIPWAY_DATABASE_URL"]
    assert not settings.is_sqlite
    assert settings.redis_url == "redis://cache.example:6380/4"
    assert settings.data_dir == clean / "var"
    assert settings.logs_path == clean / "logs-here"
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == values["SLIPWAY_SECRET_KEY"]
    assert "x" * 43 not in repr(settings)  # a secret never shows in a repr or a log line
    assert settings.key_file == clean / "keys" / "master.key"
    assert (settings.host, settings.port) == ("0.0.0.0", 9100)
    assert settings.log_retention_days == 7
    assert settings.operation_log_retention_days == 90
    assert settings.url == "https://slipway.example"
    assert settings.token is not None and settings.token.get_secret_value() == "slw_abc"
    assert settings.queues == ["default", "builds", "deploys"]
    assert settings.plugins == ["tests.support.kinds", "acme.kinds"]


def test_data_dir_moves_everything_derived_from_it(
    clean: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLIPWAY_DATA_DIR", "srv/slipway")

    settings = Settings()

    data = clean / "srv" / "slipway"
    assert settings.data_dir == data
    assert settings.logs_path == data / "logs"
    assert settings.key_file == data / "secret.key"
    assert settings.database_url == f"sqlite:///{data}/slipway.db"


def test_relative_paths_are_made_absolute_against_the_working_directory(
    clean: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLIPWAY_LOG_DIR", "logs")
    monkeypatch.setenv("SLIPWAY_SECRET_KEY_FILE", "conf/secret.key")

    settings = Settings()

    assert settings.logs_path == clean / "logs"
    assert settings.key_file == clean / "conf" / "secret.key"


def test_dot_env_in_the_working_directory_is_read_and_the_environment_beats_it(
    clean: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean / ".env").write_text(
        "SLIPWAY_PORT=9001\n"
        "SLIPWAY_HOST=0.0.0.0\n"
        "SLIPWAY_QUEUES=builds,deploys\n"
        "SLIPWAY_REDIS_URL=redis://from-dotenv:6379/1\n"
        "UNRELATED=ignored\n"
    )
    monkeypatch.setenv("SLIPWAY_PORT", "9002")

    settings = Settings()

    assert settings.port == 9002
    assert settings.host == "0.0.0.0"
    assert settings.queues == ["builds", "deploys"]
    assert settings.redis_url == "redis://from-dotenv:6379/1"


def test_an_empty_variable_means_not_set(clean: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # What a compose file passes for `SLIPWAY_SECRET_KEY: ${SLIPWAY_SECRET_KEY}` when it is unset.
    for name in ("SLIPWAY_SECRET_KEY", "SLIPWAY_TOKEN", "SLIPWAY_QUEUES", "SLIPWAY_PORT"):
        monkeypatch.setenv(name, "")

    settings = Settings()

    assert settings.secret_key is None
    assert settings.token is None
    assert settings.queues == ["default"]
    assert settings.port == 8000


def test_log_level_is_case_insensitive(clean: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLIPWAY_LOG_LEVEL", "debug")

    assert Settings().log_level == "DEBUG"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SLIPWAY_DATABASE_URL", "mysql://root@localhost/slipway"),
        ("SLIPWAY_DATABASE_URL", "postgres://slipway@db/slipway"),
        ("SLIPWAY_DATABASE_URL", "slipway.db"),
        ("SLIPWAY_REDIS_URL", "127.0.0.1:6379"),
        ("SLIPWAY_LOG_LEVEL", "verbose"),
        ("SLIPWAY_PORT", "0"),
        ("SLIPWAY_LOG_RETENTION_DAYS", "0"),
        ("SLIPWAY_HEARTBEAT_INTERVAL", "-1"),
    ],
)
def test_a_value_slipway_cannot_use_is_refused_when_read(
    clean: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(ValidationError) as refused:
        Settings()

    assert [error["loc"] for error in refused.value.errors()] == [
        (name.removeprefix("SLIPWAY_").lower(),)
    ]


@pytest.mark.parametrize(
    ("value", "command", "problem"),
    [
        ("abc", ["version", "--json"], "valid integer"),
        ("70000", ["db", "upgrade"], "less than or equal to 65535"),
    ],
)
def test_an_invalid_value_stops_the_command_with_one_line_naming_the_variable(
    clean: Path, value: str, command: list[str], problem: str
) -> None:
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "SLIPWAY_PORT": value}

    result = run(*command, env=env, cwd=clean)

    line = one_error_line(result, exit_code=2, contains="error: invalid setting SLIPWAY_PORT")
    assert problem in line
    assert not (clean / "data").exists()  # refused before touching anything


def test_an_invalid_value_in_dot_env_is_named_too(clean: Path) -> None:
    (clean / ".env").write_text("SLIPWAY_OPERATION_LOG_RETENTION_DAYS=0\n")
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)}

    result = run("db", "upgrade", env=env, cwd=clean)

    one_error_line(
        result, exit_code=2, contains="invalid setting SLIPWAY_OPERATION_LOG_RETENTION_DAYS"
    )
