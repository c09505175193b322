"""delivery alerts in the notification ledger

A delivery that fails for good is announced by a signed delivery.failed event, sent through the same
ledger as the session events; such a delivery may never have reached a session, so a ledger row is now
about a session or a delivery, each with its own unique key.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 18:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        delivery_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
        batch_op.add_column(sa.Column("delivery_id", delivery_id, nullable=True))
        batch_op.alter_column("session_id", existing_type=sa.Integer(), nullable=True)
        batch_op.create_foreign_key(
            batch_op.f("fk_notifications_delivery_id_deliveries"), "deliveries", ["delivery_id"], ["id"]
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_notifications_delivery_id_recipient_kind"), ["delivery_id", "recipient", "kind"]
        )


def downgrade() -> None:
    op.execute("DELETE FROM notifications WHERE session_id IS NULL")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_notifications_delivery_id_recipient_kind"), type_="unique")
        batch_op.drop_constraint(batch_op.f("fk_notifications_delivery_id_deliveries"), type_="foreignkey")
        batch_op.alter_column("session_id", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column("delivery_id")
