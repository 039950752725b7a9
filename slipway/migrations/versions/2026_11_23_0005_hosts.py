"""SSH credentials, hosts, host groups and their revisions

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Revision ids: BIGINT on PostgreSQL; SQLite only auto-increments a plain INTEGER primary key.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _times() -> list[sa.Column]:
    """The revision counter and timestamps every current-state table has."""
    return [
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def _revision_columns(owner: str) -> list[sa.Column]:
    """id, owner id and number: the head of every append-only revision table."""
    return [
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column(f"{owner}_id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
    ]


def _revision_constraints(owner: str, parent: str, table: str) -> list[sa.Constraint]:
    return [
        sa.ForeignKeyConstraint(
            [f"{owner}_id"],
            [f"{parent}.id"],
            name=op.f(f"fk_{table}_{owner}_id_{parent}"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
        sa.UniqueConstraint(f"{owner}_id", "revision", name=op.f(f"uq_{table}_{owner}_id")),
    ]


def _history() -> list[sa.Column]:
    """What changed, who changed it and when: the tail of every revision table."""
    return [
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "credentials",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("secret_id", sa.String(length=36), nullable=False),
        sa.Column("has_passphrase", sa.Boolean(), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=True),
        sa.Column("fingerprint", sa.String(length=128), nullable=True),
        *_times(),
        sa.ForeignKeyConstraint(
            ["secret_id"], ["secrets.id"], name=op.f("fk_credentials_secret_id_secrets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credentials")),
        sa.UniqueConstraint("name", name=op.f("uq_credentials_name")),
    )
    op.create_table(
        "credential_revisions",
        *_revision_columns("credential"),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("has_passphrase", sa.Boolean(), nullable=False),
        sa.Column("fingerprint", sa.String(length=128), nullable=True),
        *_history(),
        *_revision_constraints("credential", "credentials", "credential_revisions"),
    )
    op.create_table(
        "hosts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("address", sa.String(length=255), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("user", sa.String(length=64), nullable=False),
        sa.Column("credential_id", sa.Integer(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("deploy_root", sa.String(length=1024), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("host_key", sa.Text(), nullable=True),
        sa.Column("host_key_fingerprint", sa.String(length=128), nullable=True),
        sa.Column("host_key_pinned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("facts", sa.JSON(), nullable=True),
        sa.Column("last_checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.JSON(), nullable=True),
        *_times(),
        sa.ForeignKeyConstraint(
            ["credential_id"], ["credentials.id"], name=op.f("fk_hosts_credential_id_credentials")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hosts")),
        sa.UniqueConstraint("name", name=op.f("uq_hosts_name")),
    )
    with op.batch_alter_table("hosts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hosts_credential_id"), ["credential_id"], unique=False)
    op.create_table(
        "host_revisions",
        *_revision_columns("host"),
        sa.Column("address", sa.String(length=255), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("user", sa.String(length=64), nullable=False),
        sa.Column("credential", sa.String(length=63), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("deploy_root", sa.String(length=1024), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("host_key_fingerprint", sa.String(length=128), nullable=True),
        *_history(),
        *_revision_constraints("host", "hosts", "host_revisions"),
    )
    op.create_table(
        "host_groups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("host_ids", sa.JSON(), nullable=True),
        sa.Column("selector", sa.JSON(), nullable=True),
        *_times(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_host_groups")),
        sa.UniqueConstraint("name", name=op.f("uq_host_groups_name")),
    )
    op.create_table(
        "host_group_revisions",
        *_revision_columns("group"),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("hosts", sa.JSON(), nullable=True),
        sa.Column("selector", sa.JSON(), nullable=True),
        *_history(),
        *_revision_constraints("group", "host_groups", "host_group_revisions"),
    )


def downgrade() -> None:
    op.drop_table("host_group_revisions")
    op.drop_table("host_groups")
    op.drop_table("host_revisions")
    with op.batch_alter_table("hosts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hosts_credential_id"))
    op.drop_table("hosts")
    op.drop_table("credential_revisions")
    op.drop_table("credentials")
