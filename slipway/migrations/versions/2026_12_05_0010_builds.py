"""builds

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "builds",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("task_name", sa.String(length=255), nullable=False),
        sa.Column("source_format", sa.String(length=16), nullable=False),
        sa.Column("base_image", sa.String(length=512), nullable=False),
        sa.Column("target_image", sa.String(length=512), nullable=False),
        sa.Column("endpoint", sa.String(length=63), nullable=False),
        sa.Column("registry_name", sa.String(length=63), nullable=True),
        sa.Column("push", sa.Boolean(), nullable=False),
        sa.Column("callback_url", sa.String(length=2048), nullable=True),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("spec_hash", sa.String(length=64), nullable=False),
        sa.Column("dockerfile", sa.Text(), nullable=False),
        sa.Column("context_files", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("operation_id", sa.String(length=36), nullable=True),
        sa.Column("callback_operation_id", sa.String(length=36), nullable=True),
        sa.Column("actor", sa.String(length=64), nullable=True),
        sa.Column("image_id", sa.String(length=128), nullable=True),
        sa.Column("digest", sa.String(length=128), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("timings", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_builds")),
    )
    op.create_index("ix_builds_task_name", "builds", ["task_name"], unique=False)
    op.create_index("ix_builds_status_id", "builds", ["status", "id"], unique=False)
    op.create_index(op.f("ix_builds_operation_id"), "builds", ["operation_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_builds_operation_id"), table_name="builds")
    op.drop_index("ix_builds_status_id", table_name="builds")
    op.drop_index("ix_builds_task_name", table_name="builds")
    op.drop_table("builds")
