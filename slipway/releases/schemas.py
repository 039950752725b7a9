"""Request and response bodies of the release API."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from slipway.jobs.schemas import OperationRead, Progress

_PERCENT = re.compile(r"^([1-9][0-9]?|100)%$")


class Strategy(BaseModel):
    """How a deployment walks its hosts: batches, a canary first, pauses, a failure budget."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int | str | None = Field(
        None, description="hosts per batch, or a percent of the hosts ('25%'); default: all"
    )
    canary: int = Field(0, ge=0, description="hosts in a first batch of their own")
    pause: float | Literal["manual"] = Field(
        0, description="seconds between batches, or 'manual': wait for POST …/continue"
    )
    max_failures: int = Field(0, ge=0, description="failed hosts tolerated before stopping")
    parallel: int | None = Field(None, ge=1, description="hosts at once within a batch")
    serial: bool = Field(False, description="one host at a time (same as parallel = 1)")
    step_timeout: float = Field(
        900, gt=0, le=86400, description="seconds one remote step (a script, the upload) may take"
    )

    @field_validator("batch_size")
    @classmethod
    def _batch_size(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and value < 1:
            raise ValueError("batch_size must be at least 1 (or a percent like '25%')")
        if isinstance(value, str) and not _PERCENT.match(value):
            raise ValueError("batch_size must be a number of hosts or a percent like '25%'")
        return value

    @field_validator("pause")
    @classmethod
    def _pause(cls, value: float | str) -> float | str:
        if isinstance(value, float | int) and not 0 <= value <= 86400:
            raise ValueError("pause must be between 0 and 86400 seconds, or 'manual'")
        return value


class HealthCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: str | None = Field(None, max_length=4096, description="run on the host; exit 0 = up")
    url: str | None = Field(None, max_length=2048, description="fetched from the host; 2xx = up")
    timeout: float = Field(60, gt=0, le=3600, description="give up after this many seconds")
    interval: float = Field(1, gt=0, le=300)

    @model_validator(mode="after")
    def _one_of(self) -> HealthCheck:
        if (self.command is None) == (self.url is None):
            raise ValueError("give exactly one of command or url")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return self


class DatabaseTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=1,
        max_length=2048,
        description="postgresql+psycopg://user@host:5432/db or mysql+pymysql://user@host:3306/db",
    )
    password: str | None = Field(None, max_length=4096, description="write-only")
    credential: str | None = Field(None, max_length=63, description="a password credential")


class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=63)
    kind: str = Field("wecube", max_length=63, description="wecube, or a profile: jar, war, …")
    description: str = Field("", max_length=2048)
    config_globs: list[str] = Field(default_factory=lambda: ["conf/**"], max_length=64)
    literal_placeholders: list[str] = Field(
        default_factory=list,
        max_length=256,
        description="names in [%name] form that are not variables (logback's [%thread])",
    )


class ProjectUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(None, max_length=2048)
    config_globs: list[str] | None = Field(None, max_length=64)
    literal_placeholders: list[str] | None = Field(None, max_length=256)


class ProjectRead(BaseModel):
    id: int
    name: str
    kind: str
    description: str
    config_globs: list[str]
    literal_placeholders: list[str]
    environments: list[str]
    created_at: datetime
    updated_at: datetime


class ProjectList(BaseModel):
    items: list[ProjectRead]
    next_cursor: str | None = None


class EnvironmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=63)
    host_group: str = Field(min_length=1, max_length=63)
    deploy_root: str = Field(min_length=2, max_length=1024)
    layout: Literal["versioned", "flat"] = "versioned"
    variables: dict[str, str] = Field(default_factory=dict)
    secret_variables: dict[str, str] = Field(default_factory=dict, description="write-only")
    host_variables: dict[str, dict[str, str]] = Field(default_factory=dict)
    strategy: Strategy = Field(default_factory=Strategy)
    keep_releases: int = Field(5, ge=1, le=1000)
    database: DatabaseTarget | None = None
    health_check: HealthCheck | None = None
    requires_approval: bool = False
    public_key: str | None = Field(None, max_length=16384, description="the app's RSA public key")
    generate_key_pair: bool = Field(
        False, description="make an RSA key pair; the private key is shown once in the answer"
    )


class EnvironmentUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host_group: str | None = Field(None, max_length=63)
    deploy_root: str | None = Field(None, min_length=2, max_length=1024)
    layout: Literal["versioned", "flat"] | None = None
    variables: dict[str, str] | None = None
    # Merged into the stored ones; a null value removes that secret.
    secret_variables: dict[str, str | None] | None = None
    host_variables: dict[str, dict[str, str]] | None = None
    strategy: Strategy | None = None
    keep_releases: int | None = Field(None, ge=1, le=1000)
    database: DatabaseTarget | None = None
    remove_database: bool = False
    health_check: HealthCheck | None = None
    remove_health_check: bool = False
    requires_approval: bool | None = None
    public_key: str | None = Field(None, max_length=16384)
    generate_key_pair: bool = False


class HostReleaseRead(BaseModel):
    host: str
    current_version: str | None
    good_versions: list[str]
    kept_versions: list[str]
    deployment: int | None
    updated_at: datetime


class EnvironmentRead(BaseModel):
    id: int
    project: str
    name: str
    host_group: str
    deploy_root: str
    layout: str
    variables: dict[str, str]
    secret_variables: list[str] = Field(description="names only; values are never returned")
    host_variables: dict[str, dict[str, str]]
    strategy: dict[str, Any]
    keep_releases: int
    database: dict[str, Any] | None
    health_check: dict[str, Any] | None
    requires_approval: bool
    public_key: str | None
    hosts: list[HostReleaseRead]
    created_at: datetime
    updated_at: datetime


class EnvironmentCreated(EnvironmentRead):
    generated_private_key: str | None = Field(
        None, description="shown once: give it to the application; slipway keeps no copy"
    )


class EnvironmentList(BaseModel):
    items: list[EnvironmentRead]
    next_cursor: str | None = None


class PackageFromUrl(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=8, max_length=2048)
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")


class PackageRead(BaseModel):
    id: int
    project: str
    name: str
    version: str
    build: str
    kind: Literal["app", "db"]
    filename: str
    size: int
    sha256: str
    source_url: str | None
    layout: str | None
    scripts: dict[str, Any]
    config_files: list[str]
    variables: dict[str, list[str]] = Field(description="variables the config files use")
    db_versions: list[dict[str, Any]]
    uploaded_by: str | None
    created_at: datetime


class PackageList(BaseModel):
    items: list[PackageRead]
    next_cursor: str | None = None


class DeploymentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    package: str | None = Field(None, max_length=32, description="app package version")
    db_package: str | None = Field(None, max_length=32, description="DB package version")
    hosts: list[str] | None = Field(None, description="only these hosts of the group")
    strategy: Strategy | None = Field(None, description="overrides the environment's")
    dry_run: bool = Field(False, description="plan and preflight only; nothing is touched")

    @model_validator(mode="after")
    def _something(self) -> DeploymentCreate:
        if self.package is None and self.db_package is None:
            raise ValueError("give package (an app version), db_package, or both")
        return self


class RollbackCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str | None = Field(None, max_length=32, description="default: the previous good release")
    db: bool = Field(False, description="also run the DB rollback scripts of the versions left")
    hosts: list[str] | None = None


class StepRead(BaseModel):
    name: str
    status: str
    seconds: float | None = None
    message: str | None = None


class DeploymentHostRead(BaseModel):
    host: str
    batch: int
    status: str
    previous_version: str | None
    version: str | None
    steps: list[StepRead]
    error: dict[str, Any] | None
    started_at: datetime | None
    finished_at: datetime | None


class DeploymentRead(BaseModel):
    id: int
    project: str
    environment: str
    kind: str
    version: str | None
    db_version: str | None
    status: str
    operation_id: str | None
    batches: list[list[str]]
    next_batch: int
    strategy: dict[str, Any]
    hosts: list[DeploymentHostRead]
    progress: Progress
    estimated_seconds_left: float | None
    db: dict[str, Any] | None
    error: dict[str, Any] | None
    actor: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class DeploymentList(BaseModel):
    items: list[DeploymentRead]
    next_cursor: str | None = None


class DeploymentAccepted(BaseModel):
    operation: OperationRead | None
    deployment: DeploymentRead


class DeploymentPlanRead(BaseModel):
    """A dry run: what a deployment would do, after the same preflight a real one passes."""

    version: str | None
    db_version: str | None
    batches: list[list[str]]
    hosts: list[dict[str, Any]]
    db: dict[str, Any] | None
    variables: dict[str, list[str]]
