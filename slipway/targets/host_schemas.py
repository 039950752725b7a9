"""API models of credentials, hosts and host groups. Secrets are accepted, never returned."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from slipway.targets.models import (
    Credential,
    CredentialRevision,
    Host,
    HostGroup,
    HostGroupRevision,
    HostRevision,
)

NAME_FIELD = Field(max_length=63, description="a DNS label (not all digits), unique")
REF_DESCRIPTION = "a name or an id"


class CredentialKind(StrEnum):
    ssh_key = "ssh_key"
    password = "password"


# --- credentials --------------------------------------------------------------------------------


class CredentialCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = NAME_FIELD
    kind: CredentialKind
    private_key: str | None = Field(None, description="ssh_key: OpenSSH or PEM private key text")
    passphrase: str | None = Field(None, description="ssh_key: the key's passphrase, if any")
    password: str | None = Field(None, description="password: the login password")
    description: str = Field("", max_length=2048)


class CredentialUpdate(BaseModel):
    """A new secret (of the same kind) or description; what is left out stays."""

    model_config = ConfigDict(extra="forbid")

    private_key: str | None = None
    passphrase: str | None = None
    password: str | None = None
    description: str | None = Field(None, max_length=2048)


class CredentialRead(BaseModel):
    id: int
    name: str
    kind: CredentialKind
    description: str
    has_private_key: bool
    has_passphrase: bool
    has_password: bool
    public_key: str | None = Field(description="the key's OpenSSH public line, for authorized_keys")
    fingerprint: str | None = Field(description='"SHA256:…" of the public key')
    revision: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, credential: Credential) -> CredentialRead:
        is_key = credential.kind == CredentialKind.ssh_key
        return cls(
            id=credential.id,
            name=credential.name,
            kind=CredentialKind(credential.kind),
            description=credential.description,
            has_private_key=is_key,
            has_passphrase=credential.has_passphrase,
            has_password=not is_key,
            public_key=credential.public_key,
            fingerprint=credential.fingerprint,
            revision=credential.revision,
            created_at=credential.created_at,
            updated_at=credential.updated_at,
        )


class CredentialList(BaseModel):
    items: list[CredentialRead]
    next_cursor: str | None = None


class CredentialRevisionRead(BaseModel):
    revision: int
    kind: CredentialKind
    description: str
    has_passphrase: bool
    fingerprint: str | None
    changes: list[str] = Field(description='what this revision changed, or ["created"]')
    actor: str | None
    created_at: datetime

    @classmethod
    def of(cls, revision: CredentialRevision) -> CredentialRevisionRead:
        return cls(
            revision=revision.revision,
            kind=CredentialKind(revision.kind),
            description=revision.description,
            has_passphrase=revision.has_passphrase,
            fingerprint=revision.fingerprint,
            changes=revision.changes,
            actor=revision.actor,
            created_at=revision.created_at,
        )


class CredentialRevisionList(BaseModel):
    items: list[CredentialRevisionRead]
    next_cursor: str | None = None


# --- hosts --------------------------------------------------------------------------------------


class HostCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = NAME_FIELD
    address: str = Field(max_length=255, description="host name or IP address")
    port: int = Field(22, ge=1, le=65535)
    user: str = Field("root", max_length=64, description="the login user")
    credential: str = Field(description=f"the credential to log in with: {REF_DESCRIPTION}")
    labels: dict[str, str] = Field(default_factory=dict)
    deploy_root: str | None = Field(None, description="where releases go, e.g. /data")
    description: str = Field("", max_length=2048)
    verify: bool = Field(
        True,
        description="connect and log in before saving, pinning the host key; false saves an "
        "unreachable host as is (the key is pinned on its first successful connect)",
    )


class HostUpdate(BaseModel):
    """Changes to a host; what is left out stays (`deploy_root: null` clears it)."""

    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(None, max_length=255)
    port: int | None = Field(None, ge=1, le=65535)
    user: str | None = Field(None, max_length=64)
    credential: str | None = None
    labels: dict[str, str] | None = None
    deploy_root: str | None = None
    description: str | None = Field(None, max_length=2048)
    verify: bool = Field(True, description="log in with the new address/user/credential first")


class CheckError(BaseModel):
    code: str
    message: str
    details: Any = None


class HostFacts(BaseModel):
    """What the host said about itself when last tested."""

    os: str | None = None
    kernel: str | None = None
    user: str | None = None
    uid: int | None = None
    groups: list[str] = Field(default_factory=list)
    is_root: bool = False
    sudo: bool = Field(False, description="whether the user may sudo without a password")
    free_bytes: int | None = Field(None, description="free disk where releases go")
    path: str | None = Field(None, description="the directory free_bytes was measured at")


class HostRead(BaseModel):
    id: int
    name: str
    address: str
    port: int
    user: str
    credential: str
    labels: dict[str, str]
    deploy_root: str | None
    description: str
    host_key: str | None = Field(description="the pinned server key (OpenSSH line), if pinned")
    host_key_fingerprint: str | None
    host_key_pinned_at: datetime | None
    facts: HostFacts | None
    last_checked_at: datetime | None
    last_error: CheckError | None = Field(description="why the last test failed, if it did")
    revision: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, host: Host, credential_name: str) -> HostRead:
        return cls(
            id=host.id,
            name=host.name,
            address=host.address,
            port=host.port,
            user=host.user,
            credential=credential_name,
            labels=host.labels,
            deploy_root=host.deploy_root,
            description=host.description,
            host_key=host.host_key,
            host_key_fingerprint=host.host_key_fingerprint,
            host_key_pinned_at=host.host_key_pinned_at,
            facts=HostFacts.model_validate(host.facts) if host.facts else None,
            last_checked_at=host.last_checked_at,
            last_error=CheckError.model_validate(host.last_error) if host.last_error else None,
            revision=host.revision,
            created_at=host.created_at,
            updated_at=host.updated_at,
        )


class HostList(BaseModel):
    items: list[HostRead]
    next_cursor: str | None = None


class HostRevisionRead(BaseModel):
    revision: int
    address: str
    port: int
    user: str
    credential: str
    labels: dict[str, str]
    deploy_root: str | None
    description: str
    host_key_fingerprint: str | None
    changes: list[str] = Field(description='what this revision changed, or ["created"]')
    actor: str | None
    created_at: datetime

    @classmethod
    def of(cls, revision: HostRevision) -> HostRevisionRead:
        return cls(
            revision=revision.revision,
            address=revision.address,
            port=revision.port,
            user=revision.user,
            credential=revision.credential,
            labels=revision.labels,
            deploy_root=revision.deploy_root,
            description=revision.description,
            host_key_fingerprint=revision.host_key_fingerprint,
            changes=revision.changes,
            actor=revision.actor,
            created_at=revision.created_at,
        )


class HostRevisionList(BaseModel):
    items: list[HostRevisionRead]
    next_cursor: str | None = None


class HostTestResult(BaseModel):
    name: str
    ok: bool = True
    checked_at: datetime
    facts: HostFacts
    host_key_fingerprint: str
    pinned_now: bool = Field(description="true when this test pinned the host key")


# --- host groups --------------------------------------------------------------------------------


class HostGroupCreate(BaseModel):
    """Either `hosts` (an ordered list of names or ids) or `selector` (labels), not both."""

    model_config = ConfigDict(extra="forbid")

    name: str = NAME_FIELD
    hosts: list[str] | None = Field(None, description="hosts in deploy order")
    selector: dict[str, str] | None = Field(
        None, description="every host whose labels hold all these pairs, by name"
    )
    description: str = Field("", max_length=2048)


class HostGroupUpdate(BaseModel):
    """`hosts` or `selector` replaces the membership (switching kind); not both."""

    model_config = ConfigDict(extra="forbid")

    hosts: list[str] | None = None
    selector: dict[str, str] | None = None
    description: str | None = Field(None, max_length=2048)


class HostGroupRead(BaseModel):
    id: int
    name: str
    description: str
    hosts: list[str] | None = Field(description="the listed hosts in order (a list group)")
    selector: dict[str, str] | None = Field(description="the label selector (a selector group)")
    members: list[str] = Field(description="the hosts the group stands for now, in deploy order")
    revision: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, group: HostGroup, *, listed: list[str] | None, members: list[str]) -> HostGroupRead:
        return cls(
            id=group.id,
            name=group.name,
            description=group.description,
            hosts=listed,
            selector=group.selector,
            members=members,
            revision=group.revision,
            created_at=group.created_at,
            updated_at=group.updated_at,
        )


class HostGroupList(BaseModel):
    items: list[HostGroupRead]
    next_cursor: str | None = None


class HostGroupRevisionRead(BaseModel):
    revision: int
    description: str
    hosts: list[str] | None
    selector: dict[str, str] | None
    changes: list[str] = Field(description='what this revision changed, or ["created"]')
    actor: str | None
    created_at: datetime

    @classmethod
    def of(cls, revision: HostGroupRevision) -> HostGroupRevisionRead:
        return cls(
            revision=revision.revision,
            description=revision.description,
            hosts=revision.hosts,
            selector=revision.selector,
            changes=revision.changes,
            actor=revision.actor,
            created_at=revision.created_at,
        )


class HostGroupRevisionList(BaseModel):
    items: list[HostGroupRevisionRead]
    next_cursor: str | None = None
