"""wide durations and texts sized from the parser's limits

Durations in milliseconds overflow a 32-bit integer after 24.8 days, so they become BIGINT; the dedupe
key and participant keys are widened to hold the longest ids and emails the receiver accepts
(workers.deliveries.parsing). SQLite ignores both, so only its declared types change.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 13:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column, type before, type after)
_CHANGES = (
    ("meeting_sessions", "duration_ms", sa.Integer(), sa.BigInteger()),
    ("meeting_sessions", "reconnect_grace_seconds", sa.Integer(), sa.BigInteger()),
    ("attendance", "attended_ms", sa.Integer(), sa.BigInteger()),
    ("attendance", "participant_key", sa.String(length=400), sa.String(length=646)),
    ("participant_sessions", "participant_key", sa.String(length=400), sa.String(length=646)),
    ("deliveries", "dedupe_key", sa.String(length=255), sa.String(length=434)),
)


def upgrade() -> None:
    for table in dict.fromkeys(change[0] for change in _CHANGES):  # one batch (one SQLite rebuild) a table
        with op.batch_alter_table(table, schema=None) as batch_op:
            for _, column, before, after in (change for change in _CHANGES if change[0] == table):
                batch_op.alter_column(column, existing_type=before, type_=after)


def downgrade() -> None:
    for table in dict.fromkeys(change[0] for change in reversed(_CHANGES)):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for _, column, before, after in (change for change in _CHANGES if change[0] == table):
                batch_op.alter_column(column, existing_type=after, type_=before)
