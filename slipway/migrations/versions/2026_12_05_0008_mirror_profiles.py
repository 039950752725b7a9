"""mirror profiles and their revisions

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Revision ids: BIGINT on PostgreSQL; SQLite only auto-increments a plain INTEGER primary key.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "mirror_profiles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("file_name", sa.String(length=64), nullable=False),
        sa.Column("manager", sa.String(length=8), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mirror_profiles")),
        sa.UniqueConstraint("type", "file_name", name=op.f("uq_mirror_profiles_type")),
    )
    op.create_table(
        "mirror_profile_revisions",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["mirror_profiles.id"],
            name=op.f("fk_mirror_profile_revisions_profile_id_mirror_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mirror_profile_revisions")),
        sa.UniqueConstraint(
            "profile_id", "revision", name=op.f("uq_mirror_profile_revisions_profile_id")
        ),
    )


def downgrade() -> None:
    op.drop_table("mirror_profile_revisions")
    op.drop_table("mirror_profiles")
