"""API models of registries. The password is accepted, never returned: only `has_password`."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from slipway.targets.models import Registry, RegistryRevision
from slipway.targets.registry_checks import MAX_PASSWORD, MAX_URL, parse_address
from slipway.targets.schemas import CheckError

URL_DESCRIPTION = (
    "as for `docker login`: 10.101.12.128, 127.0.0.1:5000, harbor.example.com or "
    "https://harbor.example.com (without a scheme https is tried first)"
)
ALIAS_DESCRIPTION = (
    "another host name image references use for this registry (FastBuild's registry_dns)"
)
INSECURE_DESCRIPTION = (
    "allow plain http and TLS without certificate checks (Docker's insecure registry); "
    "loopback addresses are treated so anyway"
)


class RegistryCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=63, description="a DNS label, unique")
    url: str = Field(max_length=MAX_URL, description=URL_DESCRIPTION)
    username: str = Field(max_length=255, description="e.g. a Harbor robot account robot$project")
    password: str = Field(max_length=MAX_PASSWORD, description="the password or robot token")
    dns_alias: str | None = Field(None, max_length=MAX_URL, description=ALIAS_DESCRIPTION)
    insecure: bool = Field(False, description=INSECURE_DESCRIPTION)
    description: str = Field("", max_length=2048)


class RegistryUpdate(BaseModel):
    """Changes to a registry; what is left out stays (`dns_alias: null` removes the alias)."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, max_length=MAX_URL, description=URL_DESCRIPTION)
    username: str | None = Field(None, max_length=255)
    password: str | None = Field(None, max_length=MAX_PASSWORD)
    dns_alias: str | None = Field(None, max_length=MAX_URL, description=ALIAS_DESCRIPTION)
    insecure: bool | None = Field(None, description=INSECURE_DESCRIPTION)
    description: str | None = Field(None, max_length=2048)


class RegistryRead(BaseModel):
    name: str
    url: str
    server: str = Field(description="host[:port], as image references and `docker login` name it")
    dns_alias: str | None
    username: str
    has_password: bool = Field(description="always true: the password is set, never shown")
    insecure: bool
    description: str
    base_url: str | None = Field(description="the address that answered the last login")
    auth_scheme: str | None = Field(description="basic, bearer or none, as the registry asked")
    revision: int
    created_at: datetime
    updated_at: datetime
    last_checked_at: datetime | None
    last_error: CheckError | None = Field(description="why the last test failed, if it did")

    @classmethod
    def of(cls, registry: Registry) -> RegistryRead:
        return cls(
            name=registry.name,
            url=registry.url,
            server=parse_address(registry.url).server,
            dns_alias=registry.dns_alias,
            username=registry.username,
            has_password=bool(registry.secret_id),
            insecure=registry.is_insecure,
            description=registry.description,
            base_url=registry.base_url,
            auth_scheme=registry.auth_scheme,
            revision=registry.revision,
            created_at=registry.created_at,
            updated_at=registry.updated_at,
            last_checked_at=registry.last_checked_at,
            last_error=CheckError.model_validate(registry.last_error)
            if registry.last_error
            else None,
        )


class RegistryList(BaseModel):
    items: list[RegistryRead]
    next_cursor: str | None = None


class RegistryRevisionRead(BaseModel):
    revision: int
    url: str
    username: str
    dns_alias: str | None
    insecure: bool
    description: str
    changes: list[str] = Field(
        description='what this revision changed ("password" when it was replaced), or ["created"]'
    )
    actor: str | None
    created_at: datetime

    @classmethod
    def of(cls, revision: RegistryRevision) -> RegistryRevisionRead:
        return cls(
            revision=revision.revision,
            url=revision.url,
            username=revision.username,
            dns_alias=revision.dns_alias,
            insecure=revision.is_insecure,
            description=revision.description,
            changes=revision.changes,
            actor=revision.actor,
            created_at=revision.created_at,
        )


class RegistryRevisionList(BaseModel):
    items: list[RegistryRevisionRead]
    next_cursor: str | None = None


class RegistryTestResult(BaseModel):
    name: str
    ok: bool = True
    checked_at: datetime
    base_url: str
    auth_scheme: str
    api_version: str | None
