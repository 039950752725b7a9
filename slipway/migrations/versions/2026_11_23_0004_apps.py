"""apps

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "apps",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("endpoint", sa.String(length=63), nullable=False),
        sa.Column("catalog_key", sa.String(length=128), nullable=True),
        sa.Column("source", sa.String(length=63), nullable=True),
        sa.Column("edition", sa.String(length=64), nullable=True),
        sa.Column("version", sa.String(length=64), nullable=True),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("secret_settings", sa.JSON(), nullable=False),
        sa.Column("app_dir", sa.String(length=1024), nullable=False),
        sa.Column("install_state", sa.String(length=16), nullable=False),
        sa.Column("is_redeploy_pending", sa.Boolean(), nullable=False),
        sa.Column("last_operation_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_apps")),
        sa.UniqueConstraint("endpoint", "name", name=op.f("uq_apps_endpoint")),
    )


def downgrade() -> None:
    op.drop_table("apps")
