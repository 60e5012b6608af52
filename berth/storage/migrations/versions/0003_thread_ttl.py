"""thread ttl

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:

    with op.batch_alter_table("threads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ttl_strategy", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("ttl_minutes", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_threads_expires_at"), ["expires_at"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("threads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_threads_expires_at"))
        batch_op.drop_column("expires_at")
        batch_op.drop_column("ttl_minutes")
        batch_op.drop_column("ttl_strategy")
