"""one open roster row per person

A partial unique index: at most one roster row in force (valid_to IS NULL) per room and person.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 18:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "uq_roster_members_open",
        "roster_members",
        ["room_id", "participant_key"],
        unique=True,
        sqlite_where=sa.text("valid_to IS NULL"),
        postgresql_where=sa.text("valid_to IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_roster_members_open", table_name="roster_members")
