"""audit record ids 64-bit

The management audit is kept for ever and its ids are the export's cursor, as deliveries' are: 64-bit
like theirs, so a cursor past 2**31 is an id like any other on PostgreSQL (SQLite's ids are 64-bit already).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 19:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.alter_column("audit_records", "id", type_=sa.BigInteger(), existing_type=sa.Integer())
    op.execute("ALTER SEQUENCE audit_records_id_seq AS bigint")


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute("ALTER SEQUENCE audit_records_id_seq AS integer")
    op.alter_column("audit_records", "id", type_=sa.Integer(), existing_type=sa.BigInteger())
