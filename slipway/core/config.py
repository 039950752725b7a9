"""Process settings: environment variables with the SLIPWAY_ prefix, or a `.env` file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class Settings(BaseSettings):
    """Everything a slipway process needs to start; external targets are configured via the API."""

    # An empty variable (`SLIPWAY_SECRET_KEY=` in a compose file) means "not set", not "".
    model_config = SettingsConfigDict(
        env_prefix="SLIPWAY_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
    )

    data_dir: Path = Path("./data")
    database_url: str = ""
    redis_url: str = "redis://127.0.0.1:6379/0"
    log_dir: Path | None = None
    log_level: str = "INFO"
    log_retention_days: int = Field(14, ge=1)
    operation_log_retention_days: int = Field(30, ge=1)
    secret_key: SecretStr | None = None
    secret_key_file: Path | None = None
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    queues: Annotated[list[str], NoDecode] = ["default"]
    # Modules imported at start by the API and workers; they may register operation kinds.
    plugins: Annotated[list[str], NoDecode] = []
    docker_host: str = "unix:///var/run/docker.sock"  # endpoint `local` at first start
    # First-start catalog sources: `:`-separated directories that each hold app folders.
    catalog_dirs: Annotated[list[Path], NoDecode] = []
    # Where the newest release's version.json is: a file path or an http(s) URL; "" = none.
    release_manifest: str = ""
    # First-start outbound allow-list: comma-separated CIDRs and host names that URLs fetched on a
    # user's behalf may reach although private; parsed by core/outbound_allow.py, the API's value
    # wins.
    outbound_allow: str = ""

    # Liveness of running operations: a worker refreshes each running operation's heartbeat every
    # `heartbeat_interval` seconds; one not refreshed for `worker_lost_after` seconds is failed.
    heartbeat_interval: float = Field(5.0, gt=0)
    worker_lost_after: float = Field(30.0, gt=0)
    maintenance_interval: float = Field(5.0, gt=0)

    # Releases: where uploaded packages are kept (default <data dir>/artifacts), how big one may
    # be, how many hosts one deployment works on at once, and extra profile directories.
    artifact_dir: Path | None = None
    release_max_package_bytes: int = Field(4 * 2**30, ge=1)
    release_parallel_limit: int = Field(20, ge=1)
    release_profile_dirs: Annotated[list[Path], NoDecode] = []

    # Builds: how many run at once on one Docker endpoint (the rest wait in order), how long one
    # may take, and whether dangling images slipway's builds leave behind are removed.
    build_concurrency: int = Field(2, ge=1)
    build_timeout: int = Field(3600, ge=60)
    build_prune_dangling: bool = True
    # The network RUN steps use (`host` reaches mirrors on the engine's own loopback); empty means
    # the engine's default bridge.
    build_network: str = ""

    # FastBuild's legacy [aes] key and IV (16 ASCII characters each), to decrypt the
    # webSSHSecret / jupyterLabSecret of its build requests; unset = such secrets are refused.
    fastbuild_aes_key: SecretStr | None = None
    fastbuild_aes_iv: SecretStr | None = None

    token_ttl_minutes: int = Field(12 * 60, ge=1)
    login_max_failures: int = Field(5, ge=1)
    login_lockout_seconds: int = Field(300, ge=1)

    # For the CLI's HTTP client commands.
    url: str = "http://127.0.0.1:8000"
    token: SecretStr | None = None

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if value and scheme.split("+", 1)[0] not in ("sqlite", "postgresql"):
            raise ValueError(
                "use sqlite:////path/to/slipway.db or postgresql+psycopg://user:password@host/db"
            )
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("use redis://host:port/db, rediss://host:port/db or unix:///path")
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"use one of {', '.join(LOG_LEVELS)}")
        return value.upper()

    @field_validator("queues", "plugins", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("catalog_dirs", "release_profile_dirs", mode="before")
    @classmethod
    def _split_colons(cls, value: object) -> object:
        if isinstance(value, str):
            return [Path(p.strip()).expanduser().resolve() for p in value.split(":") if p.strip()]
        return value

    @model_validator(mode="after")
    def _fill_derived_paths(self) -> Settings:
        # Absolute, so every part of the process (and its log lines) agrees whatever the cwd.
        self.data_dir = self.data_dir.expanduser().resolve()
        self.log_dir = (self.log_dir or self.data_dir / "logs").expanduser().resolve()
        self.secret_key_file = (
            (self.secret_key_file or self.data_dir / "secret.key").expanduser().resolve()
        )
        self.artifact_dir = (
            (self.artifact_dir or self.data_dir / "artifacts").expanduser().resolve()
        )
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'slipway.db'}"
        return self

    @property
    def logs_path(self) -> Path:
        assert self.log_dir is not None
        return self.log_dir

    @property
    def key_file(self) -> Path:
        assert self.secret_key_file is not None
        return self.secret_key_file

    @property
    def artifacts_path(self) -> Path:
        assert self.artifact_dir is not None
        return self.artifact_dir

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
