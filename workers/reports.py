"""The read side: the queries behind the report API, its pages and the notifications, and the CSV."""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import TypeVarTuple
from urllib.parse import quote
from zoneinfo import ZoneInfo

from sqlalchemy import Row, Select, and_, or_, select
from sqlalchemy.orm import Session

from workers.models import (
    AttendanceRow,
    MeetingSession,
    Room,
    RosterMember,
    RosterRole,
    SessionChange,
    StatusOverride,
)
from workers.statuses import (
    Attended,
    Expected,
    Judged,
    Override,
    Status,
    StatusRules,
    StatusTally,
    judge,
    tally,
)
from workers.timefmt import iso_ms, local_text
from workers.wire import (
    AttendanceOut,
    HistoryEntry,
    JudgedAttendanceOut,
    PersonStatus,
    SessionWithAttendance,
    attendance_out,
    judged_attendance_out,
    person_status_out,
    session_out,
)

CSV_COLUMNS = [
    "participantKey",
    "name",
    "email",
    "externalUserId",
    "firstJoinAt",
    "lastLeftAt",
    "attendedSeconds",
    "attendancePercent",
    "joinCount",
    "present",
    "inferred",
    "status",
    "host",
    # The organizer's clock: the two times again on the room's timeZone, and the zone's IANA name.
    "firstJoinLocal",
    "lastLeftLocal",
    "timeZone",
]
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def find_session(db: Session, meeting_session_id: str) -> tuple[MeetingSession, str] | None:
    """Return a meeting session and its room's name, or None."""
    found = db.execute(
        select(MeetingSession, Room.room_name)
        .join(Room, Room.id == MeetingSession.room_id)
        .where(MeetingSession.meeting_session_id == meeting_session_id)
    ).first()
    return None if found is None else (found[0], found[1])


Columns = TypeVarTuple("Columns")


def session_position(meeting: MeetingSession) -> tuple[datetime, int]:
    """Return where a session sits in newest-first lists: when it began, then its id."""
    return (meeting.began_at, meeting.id)


def _newest_first(query: Select[*Columns], after: tuple[datetime, int] | None) -> Select[*Columns]:
    began_at = MeetingSession.began_at
    if after is not None:
        began, session_id = after
        query = query.where(or_(began_at < began, and_(began_at == began, MeetingSession.id < session_id)))
    return query.order_by(began_at.desc(), MeetingSession.id.desc())


def sessions_of_room(
    db: Session, room_name: str, after: tuple[datetime, int] | None, limit: int
) -> tuple[Room, list[MeetingSession]] | None:
    """Return a room and up to `limit` of its sessions after `after`, newest first; None: no such room."""
    room = db.scalar(select(Room).where(Room.room_name == room_name))
    if room is None:
        return None
    query = _newest_first(select(MeetingSession).where(MeetingSession.room_id == room.id), after)
    return room, list(db.scalars(query.limit(limit)))


def attendance_of_person(
    db: Session, participant_key: str, after: tuple[datetime, int] | None, limit: int
) -> Sequence[Row[AttendanceRow, MeetingSession, Room]]:
    """Return up to `limit` of one person's (attendance, session, room) rows after `after`, newest first."""
    query = (
        select(AttendanceRow, MeetingSession, Room)
        .join(MeetingSession, MeetingSession.id == AttendanceRow.session_id)
        .join(Room, Room.id == MeetingSession.room_id)
        .where(AttendanceRow.participant_key == participant_key)
    )
    return db.execute(_newest_first(query, after).limit(limit)).all()


def attendance_of(
    db: Session, meeting: MeetingSession, room: Room, after_key: str | None, limit: int
) -> list[JudgedAttendanceOut]:
    """Return one page of a session's attendance, with each person's status, by participant key."""
    query = select(AttendanceRow).where(AttendanceRow.session_id == meeting.id)
    if after_key is not None:
        query = query.where(AttendanceRow.participant_key > after_key)
    rows = list(db.scalars(query.order_by(AttendanceRow.participant_key).limit(limit)))
    # A person's status depends on their own row, the roster and their override alone: the page's rows are
    # judged, not the whole session's.
    people, _ = judge_sessions(db, room, [meeting], {meeting.id: [_attended(row) for row in rows]})[
        meeting.id
    ]
    judged = {person.participant_key: person for person in people}
    return [judged_attendance_out(row, judged[row.participant_key]) for row in rows]


def attendance_in_join_order(
    db: Session, meeting: MeetingSession, offset: int, limit: int
) -> list[AttendanceOut]:
    """Return one page of a session's attendance in order of first join (the timeline's order)."""
    query = (
        select(AttendanceRow)
        .where(AttendanceRow.session_id == meeting.id)
        .order_by(AttendanceRow.first_join_at, AttendanceRow.participant_key)
    )
    query = query.offset(offset).limit(limit)
    return [attendance_out(row) for row in db.scalars(query)]


def stays_of(db: Session, meeting: MeetingSession) -> list[list[tuple[datetime, datetime | None]]]:
    """Return every person's segments in a session as (join, leave) pairs, leave None while present."""
    # Read as stored, without the wire models: a timeline of 10,000 people needs only these times.
    query = select(AttendanceRow.segments).where(AttendanceRow.session_id == meeting.id)
    parse = datetime.fromisoformat  # reads the form iso_ms stored, "Z" and all
    return [
        [(parse(s["joinedAt"]), None if s["leftAt"] is None else parse(s["leftAt"])) for s in segments]
        for segments in db.scalars(query)
    ]


def session_report(db: Session, meeting: MeetingSession, room: Room) -> SessionWithAttendance:
    """Return a session with its attendance and everyone's status, as the API shows it."""
    query = select(AttendanceRow).where(AttendanceRow.session_id == meeting.id)
    rows = list(db.scalars(query.order_by(AttendanceRow.participant_key)))
    # Judged from the rows just read, not read again: a fold committing in between cannot split the two.
    people, tallied = judge_sessions(db, room, [meeting], {meeting.id: [_attended(row) for row in rows]})[
        meeting.id
    ]
    judged = {person.participant_key: person for person in people}
    attendance = [judged_attendance_out(row, judged.pop(row.participant_key)) for row in rows]
    absentees = [
        person_status_out(person, None)
        for _, person in sorted(judged.items())
        if person.computed == Status.ABSENT
    ]
    return SessionWithAttendance(
        **dict(session_out(meeting, room.room_name)),
        attendance=attendance,
        status_counts=tallied.counts,
        expected_count=tallied.expected,
        attendance_rate=tallied.rate,
        absentees=absentees,
    )


def person_status(
    db: Session, meeting: MeetingSession, room: Room, participant_key: str
) -> PersonStatus | None:
    """Return one person's status in a session; None if they neither came, were expected, nor overridden."""
    row = db.scalar(
        select(AttendanceRow).where(
            AttendanceRow.session_id == meeting.id, AttendanceRow.participant_key == participant_key
        )
    )
    # Their own row is all of the attendance their status depends on: the session's others are not read.
    came = [] if row is None else [_attended(row)]
    people, _ = judge_sessions(db, room, [meeting], {meeting.id: came})[meeting.id]
    judged = next((person for person in people if person.participant_key == participant_key), None)
    return None if judged is None else person_status_out(judged, row)


def trail(
    db: Session, meeting: MeetingSession, after: int | None = None, limit: int | None = None
) -> list[HistoryEntry]:
    """Return the session's changes to its results, oldest first: all, or a page after id `after`."""
    query = select(SessionChange).where(SessionChange.session_id == meeting.id)
    if after is not None:
        query = query.where(SessionChange.id > after)
    entries = db.scalars(query.order_by(SessionChange.id).limit(limit))
    return [HistoryEntry.model_validate(entry, from_attributes=True) for entry in entries]


def attendance_csv(report: SessionWithAttendance, zone: ZoneInfo) -> str:
    """Render a session's attendance as CSV with the contract's columns, in order, then a row per absentee;
    local times on `zone`'s clock."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in report.attendance:
        writer.writerow(_csv_cells(row, row.status, row.host, zone))
    for person in report.absentees:
        writer.writerow(_csv_cells(person, person.status, person.host, zone))
    return buffer.getvalue()


def csv_disposition(meeting_session_id: str) -> str:
    """Return the attendance CSV download's Content-Disposition."""
    return attachment_disposition(f"attendance-{meeting_session_id}.csv")


def attachment_disposition(name: str) -> str:
    """Return a download's Content-Disposition: an ASCII filename, and the exact one (RFC 6266)."""
    # The fallback holds printable ASCII only (no quote, backslash or %, which some browsers decode); a
    # line break in a header would split it, and non-ASCII is not allowed there at all.
    decomposed = (c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\%/' else "_" for c in decomposed)
    if fallback == name:
        return f'attachment; filename="{name}"'
    # RFC 5987's attr-chars stay as they are, as Werkzeug's send_file writes them.
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='!#$&+^`|')}"


def _csv_cells(
    person: AttendanceOut | PersonStatus, status: Status, host: bool, zone: ZoneInfo
) -> list[object]:
    def cell(value: object) -> object:
        if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
            return "'" + value  # names come from anyone who joins: keep spreadsheets from running them
        return "" if value is None else str(value).lower() if isinstance(value, bool) else value

    identity = (person.participant_key, person.name, person.email, person.external_user_id)
    figures: tuple[object, ...] = (None,) * 7  # someone who did not come has none
    local: tuple[object, ...] = (None, None)
    if isinstance(person, AttendanceOut):
        figures = (
            iso_ms(person.first_join_at),
            None if person.last_left_at is None else iso_ms(person.last_left_at),
            person.attended_seconds,
            person.attendance_percent,
            person.join_count,
            person.present,
            person.inferred,
        )
        local = (
            local_text(person.first_join_at, zone, named=False),
            None if person.last_left_at is None else local_text(person.last_left_at, zone, named=False),
        )
    return [cell(value) for value in (*identity, *figures, str(status), host, *local, zone.key)]


def roster_in_force(db: Session, room_id: int, at: datetime) -> list[RosterMember]:
    """Return the room's roster rows in force at `at` (valid_from <= at < valid_to), by participant key."""
    query = (
        select(RosterMember)
        .where(RosterMember.room_id == room_id, RosterMember.valid_from <= at)
        .where(or_(RosterMember.valid_to.is_(None), RosterMember.valid_to > at))
        .order_by(RosterMember.participant_key)
    )
    return list(db.scalars(query))


IN_LIST_SIZE = 500  # ids per IN list: a series of years must not meet a driver's limit on parameters


def chunked(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    """Yield `ids` in slices of IN_LIST_SIZE, one query's IN list each."""
    for start in range(0, len(ids), IN_LIST_SIZE):
        yield ids[start : start + IN_LIST_SIZE]


def judge_sessions(
    db: Session,
    room: Room,
    meetings: Sequence[MeetingSession],
    attendance: Mapping[int, list[Attended]] | None = None,
) -> dict[int, tuple[list[Judged], StatusTally]]:
    """Return each session's statuses and tally, judged against the roster in force when it began.

    `attendance`: the sessions' attendance as the caller already read it (by session id); else read here.
    """
    ids = [meeting.id for meeting in meetings]
    attended = _read_attended(db, ids) if attendance is None else attendance
    overrides: dict[int, dict[str, Override]] = {meeting_id: {} for meeting_id in ids}
    for chunk in chunked(ids):
        for row in db.scalars(select(StatusOverride).where(StatusOverride.session_id.in_(chunk))):
            overrides[row.session_id][row.participant_key] = Override(
                Status(row.status), row.reason, row.set_by, row.set_at
            )
    roster = list(db.scalars(select(RosterMember).where(RosterMember.room_id == room.id)))
    judged: dict[int, tuple[list[Judged], StatusTally]] = {}
    for meeting in meetings:
        began = meeting.began_at
        expected = [
            Expected(
                member.participant_key,
                member.name,
                member.email,
                member.external_user_id,
                member.role == RosterRole.HOST,
                member.group,
            )
            for member in roster
            if member.valid_from <= began and (member.valid_to is None or member.valid_to > began)
        ]
        rules = stamped_rules(meeting)
        people = judge(began, meeting.ended_at, attended[meeting.id], expected, overrides[meeting.id], rules)
        judged[meeting.id] = (people, tally(people))
    return judged


def _read_attended(db: Session, ids: Sequence[int]) -> dict[int, list[Attended]]:
    # Only the columns judging needs: a long series reads tens of thousands of rows, segments and all else.
    attended: dict[int, list[Attended]] = {meeting_id: [] for meeting_id in ids}
    for chunk in chunked(ids):
        rows = db.execute(
            select(
                AttendanceRow.session_id,
                AttendanceRow.participant_key,
                AttendanceRow.first_join_at,
                AttendanceRow.last_left_at,
                AttendanceRow.is_host,
                AttendanceRow.name,
                AttendanceRow.email,
                AttendanceRow.attended_ms,
            ).where(AttendanceRow.session_id.in_(chunk))
        )
        for session_id, key, first_join_at, last_left_at, is_host, name, email, attended_ms in rows:
            attended[session_id].append(
                Attended(key, first_join_at, last_left_at, is_host, name, email, attended_ms)
            )
    return attended


def _attended(row: AttendanceRow) -> Attended:
    return Attended(
        row.participant_key,
        row.first_join_at,
        row.last_left_at,
        row.is_host,
        row.name,
        row.email,
        row.attended_ms,
    )


def stamped_rules(meeting: MeetingSession) -> StatusRules:
    """Return the judging rules stamped on a session when it was created."""
    return StatusRules(
        late_after_seconds=meeting.late_after_seconds,
        early_leave_seconds=meeting.early_leave_seconds,
        include_hosts=meeting.include_hosts_in_attendance,
    )
