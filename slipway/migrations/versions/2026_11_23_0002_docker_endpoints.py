"""docker endpoints and their revisions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "docker_endpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("url", sa.String(length=255), nullable=False),
        sa.Column("is_builtin", sa.Boolean(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("ca_pem", sa.Text(), nullable=True),
        sa.Column("cert_pem", sa.Text(), nullable=True),
        sa.Column("key_secret_id", sa.String(length=36), nullable=True),
        sa.Column("ca_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("cert_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("tls_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.JSON(), nullable=True),
        sa.Column("engine", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["key_secret_id"],
            ["secrets.id"],
            name=op.f("fk_docker_endpoints_key_secret_id_secrets"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_docker_endpoints")),
        sa.UniqueConstraint("name", name=op.f("uq_docker_endpoints_name")),
    )
    op.create_table(
        "docker_endpoint_revisions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=255), nullable=False),
        sa.Column("has_tls", sa.Boolean(), nullable=False),
        sa.Column("ca_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("cert_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("tls_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["docker_endpoints.id"],
            name=op.f("fk_docker_endpoint_revisions_endpoint_id_docker_endpoints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_docker_endpoint_revisions")),
        sa.UniqueConstraint(
            "endpoint_id", "revision", name=op.f("uq_docker_endpoint_revisions_endpoint_id")
        ),
    )


def downgrade() -> None:
    op.drop_table("docker_endpoint_revisions")
    op.drop_table("docker_endpoints")
