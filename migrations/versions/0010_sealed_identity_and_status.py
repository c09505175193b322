"""sealed identity apart from the body, and sealed status

A sealed record's redactable parts are hashed in two: its identity (externalUserId, email and name, which
folding reads to tell who attended; an audit record's subject) apart from its body. A processed delivery's
status is sealed too: failing it would take it out of its session's figures. Seals made before this
revision cannot be checked that way: they are dropped, and the next hourly seal job seals every closed day
again, as the rows are now.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 19:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("DELETE FROM sealed_records")
    op.execute("DELETE FROM seals")
    with op.batch_alter_table("sealed_records", schema=None) as batch_op:
        batch_op.drop_column("personal_hash")
        batch_op.add_column(sa.Column("identity_hash", sa.String(length=64), nullable=False))
        batch_op.add_column(sa.Column("body_hash", sa.String(length=64), nullable=False))
        batch_op.add_column(sa.Column("status", sa.String(length=16), nullable=True))


def downgrade() -> None:
    op.execute("DELETE FROM sealed_records")
    op.execute("DELETE FROM seals")
    with op.batch_alter_table("sealed_records", schema=None) as batch_op:
        batch_op.drop_column("status")
        batch_op.drop_column("body_hash")
        batch_op.drop_column("identity_hash")
        batch_op.add_column(sa.Column("personal_hash", sa.String(length=64), nullable=False))
