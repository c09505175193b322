"""sealed record salts

A sealed record's identity and body hashes are keyed by a random salt of its own (sealed_records.salt), so
that they cannot confirm a guessed name or email, and an erasure destroys the salt (crypto-shredding).
Seals made before this revision hold plain hashes, which outlive an erasure: they are dropped, and the next
hourly seal job seals every closed day again, as the rows are now.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 21:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("DELETE FROM sealed_records")
    op.execute("DELETE FROM seals")
    with op.batch_alter_table("sealed_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("salt", sa.String(length=32), nullable=True))


def downgrade() -> None:
    op.execute("DELETE FROM sealed_records")
    op.execute("DELETE FROM seals")
    with op.batch_alter_table("sealed_records", schema=None) as batch_op:
        batch_op.drop_column("salt")
