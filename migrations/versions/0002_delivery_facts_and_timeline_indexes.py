"""delivery facts and timeline indexes

The fields a rebuild needs are kept as read at receipt (old rows keep facts_version 0 and are re-read
from their raw body); two partial indexes find a room's starts and ends, and its deliveries naming no
meeting session, by time.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 21:24:58.159774
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import workers.models.base

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("external_user_id", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("email", sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column("name", sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column("facts_version", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
        batch_op.create_index(
            "ix_deliveries_room_marks",
            ["room_id", "event_time"],
            unique=False,
            sqlite_where=sa.text("event IN ('meeting-started', 'meeting-ended')"),
            postgresql_where=sa.text("event IN ('meeting-started', 'meeting-ended')"),
        )
        batch_op.create_index(
            "ix_deliveries_room_unnamed",
            ["room_id", "event_time"],
            unique=False,
            sqlite_where=sa.text("meeting_session_ref IS NULL"),
            postgresql_where=sa.text("meeting_session_ref IS NULL"),
        )
    with op.batch_alter_table("meeting_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sweep_cut_at", workers.models.base.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("meeting_sessions", schema=None) as batch_op:
        batch_op.drop_column("sweep_cut_at")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_deliveries_room_unnamed",
            sqlite_where=sa.text("meeting_session_ref IS NULL"),
            postgresql_where=sa.text("meeting_session_ref IS NULL"),
        )
        batch_op.drop_index(
            "ix_deliveries_room_marks",
            sqlite_where=sa.text("event IN ('meeting-started', 'meeting-ended')"),
            postgresql_where=sa.text("event IN ('meeting-started', 'meeting-ended')"),
        )
        batch_op.drop_column("facts_version")
        batch_op.drop_column("name")
        batch_op.drop_column("email")
        batch_op.drop_column("external_user_id")
