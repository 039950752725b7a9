"""runtime settings with revisions, callback attempts

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Revision and attempt ids: BIGINT on PostgreSQL; SQLite only auto-increments a plain INTEGER.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "runtime_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("secret_id", sa.String(length=36), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["secret_id"], ["secrets.id"], name=op.f("fk_runtime_settings_secret_id_secrets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runtime_settings")),
        sa.UniqueConstraint("key", name=op.f("uq_runtime_settings_key")),
    )
    op.create_table(
        "runtime_setting_revisions",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("setting_id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("is_secret", sa.Boolean(), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["setting_id"],
            ["runtime_settings.id"],
            name=op.f("fk_runtime_setting_revisions_setting_id_runtime_settings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runtime_setting_revisions")),
        sa.UniqueConstraint(
            "setting_id", "revision", name=op.f("uq_runtime_setting_revisions_setting_id")
        ),
    )
    op.create_table(
        "callback_attempts",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("build_id", sa.String(length=36), nullable=True),
        sa.Column("operation_id", sa.String(length=36), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("is_test", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response_excerpt", sa.Text(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_attempts")),
    )
    op.create_index(
        op.f("ix_callback_attempts_build_id"), "callback_attempts", ["build_id"], unique=False
    )
    op.create_index(
        op.f("ix_callback_attempts_operation_id"),
        "callback_attempts",
        ["operation_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_callback_attempts_operation_id"), table_name="callback_attempts")
    op.drop_index(op.f("ix_callback_attempts_build_id"), table_name="callback_attempts")
    op.drop_table("callback_attempts")
    op.drop_table("runtime_setting_revisions")
    op.drop_table("runtime_settings")
