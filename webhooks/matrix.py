"""The room page's series matrix: a row per person, a column per session, a status and minutes in each cell.

Statuses come from workers.reports.judge_sessions, the one loader that judges sessions, so the matrix says
what the session pages, the CSV and the emails say; the minutes from the attendance rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from workers.models import AttendanceRow, MeetingSession, Room, RosterMember
from workers.reports import judge_sessions
from workers.statuses import Judged


@dataclass(frozen=True)
class Cell:
    """One person in one session: the status (after any override) and the minutes attended."""

    judged: Judged
    minutes: int | None  # None: did not attend


@dataclass(frozen=True)
class PersonRow:
    """One person across the sessions, oldest first (None: neither expected nor there)."""

    participant_key: str
    name: str
    on_roster: bool
    is_host: bool
    cells: list[Cell | None]


def series_matrix(db: Session, room: Room, meetings: Sequence[MeetingSession]) -> list[PersonRow]:
    """Return the matrix of a room's `meetings` (oldest first): roster members, then guests, each by name."""
    judged = judge_sessions(db, room, meetings)
    ids = [meeting.id for meeting in meetings]
    attended: dict[tuple[int, str], int] = {}
    names: dict[str, str] = {}
    rows = db.execute(
        select(
            AttendanceRow.session_id,
            AttendanceRow.participant_key,
            AttendanceRow.name,
            AttendanceRow.attended_ms,
        ).where(AttendanceRow.session_id.in_(ids))
    )
    for session_id, key, name, attended_ms in rows:
        attended[session_id, key] = round(attended_ms / 60_000)
        if name:
            names[key] = name
    # A roster member goes by the roster's name (its latest version), whatever they typed when joining.
    roster = select(RosterMember.participant_key, RosterMember.name).where(RosterMember.room_id == room.id)
    for key, name in db.execute(roster.order_by(RosterMember.valid_from)):
        if name:
            names[key] = name
    people: dict[str, list[Cell | None]] = {}
    for column, meeting in enumerate(meetings):
        for person in judged[meeting.id][0]:
            cells = people.setdefault(person.participant_key, [None] * len(meetings))
            cells[column] = Cell(person, attended.get((meeting.id, person.participant_key)))
    matrix = [
        PersonRow(
            participant_key=key,
            name=names.get(key, key),
            on_roster=any(cell and cell.judged.on_roster for cell in cells),
            is_host=any(cell and cell.judged.is_host for cell in cells),
            cells=cells,
        )
        for key, cells in people.items()
    ]
    return sorted(matrix, key=lambda row: (not row.on_roster, row.name.casefold(), row.participant_key))
