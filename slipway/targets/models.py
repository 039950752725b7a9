"""Docker endpoints, SSH credentials, hosts and host groups, each with append-only revisions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from slipway.core.db import Base, utcnow
from slipway.core.types import BigIntPK


class DockerEndpoint(Base):
    """A Docker engine slipway may act on: its current (newest) revision, plus the last check.

    The client key lives in the secrets table (`key_secret_id`); the CA and client certificate
    are public and kept here as PEM text.
    """

    __tablename__ = "docker_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    url: Mapped[str] = mapped_column(String(255))
    is_builtin: Mapped[bool] = mapped_column(default=False)
    description: Mapped[str] = mapped_column(Text, default="")
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    ca_pem: Mapped[str | None] = mapped_column(Text, default=None)
    cert_pem: Mapped[str | None] = mapped_column(Text, default=None)
    key_secret_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("secrets.id"), default=None
    )
    ca_fingerprint: Mapped[str | None] = mapped_column(String(64), default=None)
    cert_fingerprint: Mapped[str | None] = mapped_column(String(64), default=None)
    tls_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    revision: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The last save, test or check that reached the engine, and what it said.
    last_checked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    engine: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)

    @property
    def has_tls(self) -> bool:
        return self.key_secret_id is not None


class DockerEndpointRevision(Base):
    """One saved state of an endpoint. Never updated; never holds the key, only fingerprints."""

    __tablename__ = "docker_endpoint_revisions"
    __table_args__ = (UniqueConstraint("endpoint_id", "revision"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    # Indexed by the unique constraint, whose first column it is.
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("docker_endpoints.id", ondelete="CASCADE"))
    revision: Mapped[int]
    url: Mapped[str] = mapped_column(String(255))
    has_tls: Mapped[bool]
    ca_fingerprint: Mapped[str | None] = mapped_column(String(64), default=None)
    cert_fingerprint: Mapped[str | None] = mapped_column(String(64), default=None)
    tls_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    description: Mapped[str] = mapped_column(Text, default="")
    changes: Mapped[list[str]] = mapped_column(JSON, default=list)
    actor: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- SSH credentials, hosts and host groups -------------------------------------------------------


class Credential(Base):
    """How slipway logs in to hosts: a private key (with its passphrase) or a password.

    The secret lives in the vault (`secret_id`, a JSON object); only public facts are kept here.
    """

    __tablename__ = "credentials"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text, default="")
    secret_id: Mapped[str] = mapped_column(String(36), ForeignKey("secrets.id"))
    has_passphrase: Mapped[bool] = mapped_column(default=False)
    # OpenSSH one-line public key and its "SHA256:…" fingerprint; None for a password.
    public_key: Mapped[str | None] = mapped_column(Text, default=None)
    fingerprint: Mapped[str | None] = mapped_column(String(128), default=None)
    revision: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CredentialRevision(Base):
    """One saved state of a credential. Never updated; never holds the secret."""

    __tablename__ = "credential_revisions"
    __table_args__ = (UniqueConstraint("credential_id", "revision"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    credential_id: Mapped[int] = mapped_column(ForeignKey("credentials.id", ondelete="CASCADE"))
    revision: Mapped[int]
    kind: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text, default="")
    has_passphrase: Mapped[bool] = mapped_column(default=False)
    fingerprint: Mapped[str | None] = mapped_column(String(128), default=None)
    changes: Mapped[list[str]] = mapped_column(JSON, default=list)
    actor: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Host(Base):
    """A server reached over SSH, with the host key pinned on the first successful connect."""

    __tablename__ = "hosts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    address: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(default=22)
    user: Mapped[str] = mapped_column(String(64))
    # No ON DELETE: the service refuses to delete a credential hosts use, naming them.
    credential_id: Mapped[int] = mapped_column(ForeignKey("credentials.id"), index=True)
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    deploy_root: Mapped[str | None] = mapped_column(String(1024), default=None)
    description: Mapped[str] = mapped_column(Text, default="")
    # The server's public key (OpenSSH one-line) and fingerprint; None until first pinned.
    host_key: Mapped[str | None] = mapped_column(Text, default=None)
    host_key_fingerprint: Mapped[str | None] = mapped_column(String(128), default=None)
    host_key_pinned_at: Mapped[datetime | None] = mapped_column(default=None)
    # What the last save or test found: os, kernel, rights, free disk; or why it failed.
    facts: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    last_checked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    revision: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class HostRevision(Base):
    """One saved state of a host (its credential by name: credentials may go, history stays)."""

    __tablename__ = "host_revisions"
    __table_args__ = (UniqueConstraint("host_id", "revision"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"))
    revision: Mapped[int]
    address: Mapped[str] = mapped_column(String(255))
    port: Mapped[int]
    user: Mapped[str] = mapped_column(String(64))
    credential: Mapped[str] = mapped_column(String(63))
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    deploy_root: Mapped[str | None] = mapped_column(String(1024), default=None)
    description: Mapped[str] = mapped_column(Text, default="")
    host_key_fingerprint: Mapped[str | None] = mapped_column(String(128), default=None)
    changes: Mapped[list[str]] = mapped_column(JSON, default=list)
    actor: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class HostGroup(Base):
    """An ordered list of hosts (`host_ids`) or a label selector (`selector`): exactly one."""

    __tablename__ = "host_groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    host_ids: Mapped[list[int] | None] = mapped_column(JSON, default=None)
    selector: Mapped[dict[str, str] | None] = mapped_column(JSON, default=None)
    revision: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class HostGroupRevision(Base):
    """One saved state of a group; members by host name, as they read at the time."""

    __tablename__ = "host_group_revisions"
    __table_args__ = (UniqueConstraint("group_id", "revision"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("host_groups.id", ondelete="CASCADE"))
    revision: Mapped[int]
    description: Mapped[str] = mapped_column(Text, default="")
    hosts: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    selector: Mapped[dict[str, str] | None] = mapped_column(JSON, default=None)
    changes: Mapped[list[str]] = mapped_column(JSON, default=list)
    actor: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- container registries -------------------------------------------------------------------------


class Registry(Base):
    """A Docker registry (Harbor, distribution) slipway logs in to: pushes, manifests, tags.

    The password (or robot token) lives in the vault (`secret_id`); `base_url` is the address
    that answered the last successful login, with the scheme that worked.
    """

    __tablename__ = "registries"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    url: Mapped[str] = mapped_column(String(255))
    username: Mapped[str] = mapped_column(String(255))
    secret_id: Mapped[str] = mapped_column(String(36), ForeignKey("secrets.id"))
    dns_alias: Mapped[str | None] = mapped_column(String(255), default=None)
    is_insecure: Mapped[bool] = mapped_column(default=False)
    description: Mapped[str] = mapped_column(Text, default="")
    base_url: Mapped[str | None] = mapped_column(String(255), default=None)
    auth_scheme: Mapped[str | None] = mapped_column(String(16), default=None)
    last_checked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    revision: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class RegistryRevision(Base):
    """One saved state of a registry. Never updated; never holds the password (a change of it
    shows as "password" in `changes`)."""

    __tablename__ = "registry_revisions"
    __table_args__ = (UniqueConstraint("registry_id", "revision"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    registry_id: Mapped[int] = mapped_column(ForeignKey("registries.id", ondelete="CASCADE"))
    revision: Mapped[int]
    url: Mapped[str] = mapped_column(String(255))
    username: Mapped[str] = mapped_column(String(255))
    dns_alias: Mapped[str | None] = mapped_column(String(255), default=None)
    is_insecure: Mapped[bool] = mapped_column(default=False)
    description: Mapped[str] = mapped_column(Text, default="")
    changes: Mapped[list[str]] = mapped_column(JSON, default=list)
    actor: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
