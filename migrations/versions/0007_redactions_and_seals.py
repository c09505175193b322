"""redactions and daily seals

Deliveries and audit records say when retention or erasure redacted them; each UTC day's deliveries and
audit records are sealed (per-record hashes, a Merkle root, a hash chained to the day before).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 18:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import workers.models.base

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("deliveries", "audit_records"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("redacted_at", workers.models.base.UTCDateTime(), nullable=True))
            batch_op.add_column(sa.Column("redaction", sa.String(length=16), nullable=True))

    op.create_table(
        "seals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("record_count", sa.Integer(), nullable=False),
        sa.Column("merkle_root", sa.String(length=64), nullable=False),
        sa.Column("previous_hash", sa.String(length=64), nullable=True),
        sa.Column("seal_hash", sa.String(length=64), nullable=False),
        sa.Column("sealed_at", workers.models.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_seals")),
        sa.UniqueConstraint("day", name=op.f("uq_seals_day")),
    )
    op.create_table(
        "sealed_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seal_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("record_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("facts_hash", sa.String(length=64), nullable=False),
        sa.Column("personal_hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["seal_id"], ["seals.id"], name=op.f("fk_sealed_records_seal_id_seals")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sealed_records")),
        sa.UniqueConstraint("kind", "record_id", name=op.f("uq_sealed_records_kind_record_id")),
    )
    with op.batch_alter_table("sealed_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sealed_records_seal_id"), ["seal_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sealed_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sealed_records_seal_id"))
    op.drop_table("sealed_records")
    op.drop_table("seals")
    for table in ("audit_records", "deliveries"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("redaction")
            batch_op.drop_column("redacted_at")
