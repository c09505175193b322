"""session status rules

The rules a session's statuses are judged by (lateAfterSeconds, earlyLeaveSeconds,
includeHostsInAttendance) stamped on the session, as minAttendancePercent is, so that a later change to the
room's options does not re-judge its past sessions. Existing sessions take their room's options as they are
now: the rules they were judged by until this revision.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 19:00:00.000000
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("meeting_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("late_after_seconds", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("early_leave_seconds", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("include_hosts_in_attendance", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    rooms = sa.table("rooms", sa.column("id", sa.Integer()), sa.column("options", sa.JSON()))
    sessions = sa.table(
        "meeting_sessions",
        sa.column("room_id", sa.Integer()),
        sa.column("late_after_seconds", sa.BigInteger()),
        sa.column("early_leave_seconds", sa.BigInteger()),
        sa.column("include_hosts_in_attendance", sa.Boolean()),
    )
    connection = op.get_bind()
    # Read in Python rather than with each dialect's JSON operators: one reading, as the code of this
    # revision read the options (a whole number of seconds, not a boolean; hosts only when exactly true).
    for room_id, options in connection.execute(sa.select(rooms.c.id, rooms.c.options)).all():
        stamps = _stamps(options if isinstance(options, dict) else {})  # no object, no options to read
        if any(value not in (None, False) for value in stamps.values()):
            connection.execute(sa.update(sessions).where(sessions.c.room_id == room_id).values(**stamps))


def _stamps(options: dict[str, Any]) -> dict[str, Any]:
    def seconds(name: str) -> int | None:
        value = options.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    return {
        "late_after_seconds": seconds("lateAfterSeconds"),
        "early_leave_seconds": seconds("earlyLeaveSeconds"),
        "include_hosts_in_attendance": options.get("includeHostsInAttendance") is True,
    }


def downgrade() -> None:
    with op.batch_alter_table("meeting_sessions", schema=None) as batch_op:
        batch_op.drop_column("include_hosts_in_attendance")
        batch_op.drop_column("early_leave_seconds")
        batch_op.drop_column("late_after_seconds")
