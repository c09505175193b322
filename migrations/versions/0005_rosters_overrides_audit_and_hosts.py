"""rosters, status overrides, the management audit, and hosts

Who a room expects (versioned, so a session is judged against the roster in force when it began), an
organizer's status override per person and session, the audit trail of such changes, and Metered's isAdmin
kept from deliveries through participant sessions to the person's attendance row.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 17:32:54.490898
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import workers.models.base

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "roster_members",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("room_id", sa.Integer(), nullable=False),
        sa.Column("participant_key", sa.String(length=646), nullable=False),
        sa.Column("external_user_id", sa.String(length=200), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("group", sa.String(length=200), nullable=True),
        sa.Column("valid_from", workers.models.base.UTCDateTime(), nullable=False),
        sa.Column("valid_to", workers.models.base.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["room_id"], ["rooms.id"], name=op.f("fk_roster_members_room_id_rooms")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_roster_members")),
    )
    with op.batch_alter_table("roster_members", schema=None) as batch_op:
        batch_op.create_index(
            "ix_roster_members_room_id_participant_key", ["room_id", "participant_key"], unique=False
        )

    op.create_table(
        "audit_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", workers.models.base.UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("room_id", sa.Integer(), nullable=True),
        sa.Column("session_id", sa.Integer(), nullable=True),
        sa.Column("subject", sa.String(length=646), nullable=True),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["room_id"], ["rooms.id"], name=op.f("fk_audit_records_room_id_rooms")),
        sa.ForeignKeyConstraint(
            ["session_id"], ["meeting_sessions.id"], name=op.f("fk_audit_records_session_id_meeting_sessions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_records")),
    )
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_records_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_records_room_id"), ["room_id"], unique=False)

    op.create_table(
        "status_overrides",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("participant_key", sa.String(length=646), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=True),
        sa.Column("set_by", sa.String(length=200), nullable=False),
        sa.Column("set_at", workers.models.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["meeting_sessions.id"],
            name=op.f("fk_status_overrides_session_id_meeting_sessions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_overrides")),
        sa.UniqueConstraint(
            "session_id", "participant_key", name=op.f("uq_status_overrides_session_id_participant_key")
        ),
    )
    with op.batch_alter_table("attendance", schema=None) as batch_op:
        batch_op.add_column(sa.Column("is_host", sa.Boolean(), server_default=sa.false(), nullable=False))

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("is_admin", sa.Boolean(), nullable=True))

    with op.batch_alter_table("participant_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("is_admin", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("participant_sessions", schema=None) as batch_op:
        batch_op.drop_column("is_admin")

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("is_admin")

    with op.batch_alter_table("attendance", schema=None) as batch_op:
        batch_op.drop_column("is_host")

    op.drop_table("status_overrides")
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_records_room_id"))
        batch_op.drop_index(batch_op.f("ix_audit_records_at"))

    op.drop_table("audit_records")
    with op.batch_alter_table("roster_members", schema=None) as batch_op:
        batch_op.drop_index("ix_roster_members_room_id_participant_key")

    op.drop_table("roster_members")
