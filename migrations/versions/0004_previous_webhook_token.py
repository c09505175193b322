"""previous webhook token

A rotated room keeps the SHA-256 of its previous webhook token, and when that token stops working, so
that Metered's retries in flight to the old URL are not lost.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 13:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import workers.models.base

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("rooms", schema=None) as batch_op:
        batch_op.add_column(sa.Column("previous_token_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("previous_token_expires_at", workers.models.base.UTCDateTime(), nullable=True)
        )
        batch_op.create_unique_constraint(batch_op.f("uq_rooms_previous_token_hash"), ["previous_token_hash"])


def downgrade() -> None:
    with op.batch_alter_table("rooms", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_rooms_previous_token_hash"), type_="unique")
        batch_op.drop_column("previous_token_expires_at")
        batch_op.drop_column("previous_token_hash")
