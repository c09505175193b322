"""The read side across a room's sessions: the series report, billable time, and runs of absences.

Every status comes from workers.reports.judge_sessions, the one loader that judges sessions, and every rule
from the pure functions of workers.statuses; this module only reads rows and lays the results out.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from workers.models import AttendanceRow, MeetingSession, Room, RosterMember
from workers.reports import FORMULA_PREFIXES, chunked, judge_sessions, session_position, sessions_of_room
from workers.statuses import (
    Judged,
    Status,
    absence_run,
    attendance_rate,
    billable_ms,
    billing_increment,
    counts_in_rates,
)
from workers.timefmt import local_text
from workers.wire import (
    AbsenceStreak,
    BilledPerson,
    BilledSession,
    BillingReport,
    SeriesCell,
    SeriesPerson,
    SeriesReport,
    SessionOut,
    session_out,
)

MIN_RUN_PAGE = 10  # sessions judged at a time when counting a run back


@dataclass(frozen=True)
class Seen:
    """What a person's attendance row says beyond their status: who they said they were, how long."""

    name: str | None
    email: str | None
    attended_ms: int


def sessions_between(
    db: Session, room: Room, began_from: datetime, began_to: datetime
) -> list[MeetingSession]:
    """Return the room's sessions that began in [began_from, began_to), oldest first."""
    query = (
        select(MeetingSession)
        .where(MeetingSession.room_id == room.id)
        .where(MeetingSession.began_at >= began_from, MeetingSession.began_at < began_to)
        .order_by(MeetingSession.began_at, MeetingSession.id)
    )
    return list(db.scalars(query))


def series_report(db: Session, room: Room, began_from: datetime, began_to: datetime) -> SeriesReport:
    """Return the person-by-session matrix of a room's sessions in the range, with rates and runs."""
    meetings = sessions_between(db, room, began_from, began_to)
    judged = judge_sessions(db, room, meetings)
    roster = _latest_roster(db, room, began_to)
    cells: dict[str, list[Judged | None]] = {}
    for column, meeting in enumerate(meetings):
        for person in judged[meeting.id][0]:
            cells.setdefault(person.participant_key, [None] * len(meetings))[column] = person
    people = [
        _series_person(key, row, roster.get(key))
        for key, row in sorted(cells.items(), key=lambda item: (item[0] not in roster, item[0]))
    ]
    return SeriesReport(
        room_name=room.room_name,
        began_from=began_from,
        began_to=began_to,
        sessions=[session_out(meeting, room.room_name) for meeting in meetings],
        people=people,
    )


def _series_person(key: str, row: list[Judged | None], member: RosterMember | None) -> SeriesPerson:
    facts = [cell.attended for cell in row if cell is not None and cell.attended is not None]
    said = facts[-1] if facts else None  # the latest words win
    return SeriesPerson(
        participant_key=key,
        name=member.name if member and member.name else said and said.name,
        email=member.email if member and member.email else said and said.email,
        group=member.group if member else None,
        cells=[
            None
            if cell is None
            else SeriesCell(
                status=cell.status,
                attended_minutes=round((cell.attended.attended_ms if cell.attended else 0) / 60_000, 1),
                host=cell.is_host,
            )
            for cell in row
        ],
        attendance_rate=attendance_rate(row),
        absence_run=absence_run(reversed(row)).length,
    )


def _attendance(db: Session, meetings: Sequence[MeetingSession]) -> dict[int, dict[str, Seen]]:
    """Return what each session's attendance rows say, by session id and person (billing judges no one)."""
    found: dict[int, dict[str, Seen]] = {meeting.id: {} for meeting in meetings}
    for ids in chunked(list(found)):
        query = select(
            AttendanceRow.session_id,
            AttendanceRow.participant_key,
            AttendanceRow.name,
            AttendanceRow.email,
            AttendanceRow.attended_ms,
        ).where(AttendanceRow.session_id.in_(ids))
        for session_id, key, name, email, attended_ms in db.execute(query):
            found[session_id][key] = Seen(name, email, attended_ms)
    return found


def _latest_roster(db: Session, room: Room, before: datetime) -> dict[str, RosterMember]:
    """Return each person's latest roster version that came into force before `before`."""
    query = (
        select(RosterMember)
        .where(RosterMember.room_id == room.id, RosterMember.valid_from < before)
        .order_by(RosterMember.valid_from, RosterMember.id)
    )
    return {member.participant_key: member for member in db.scalars(query)}


def series_csv(report: SeriesReport, zone: ZoneInfo) -> str:
    """Render a series as CSV: a row per person, a status and a minutes cell per session, rate and run.

    Each session's columns are headed by its start on the organizer's clock, e.g. `2026-04-01 16:00 (w-1)
    status`; every row names that clock in its timeZone cell, so a row pasted elsewhere keeps it.
    """
    header: list[object] = ["participantKey", "name", "email", "group", "timeZone"]
    for meeting in report.sessions:
        heading = session_heading(meeting, zone)
        header += [f"{heading} status", f"{heading} minutes"]
    rows: list[list[object]] = [[*header, "attendanceRate", "absenceRun"]]
    for person in report.people:
        row: list[object] = [person.participant_key, person.name, person.email, person.group, zone.key]
        for cell in person.cells:
            row += [None, None] if cell is None else [cell.status.value, cell.attended_minutes]
        rows.append([*row, person.attendance_rate, person.absence_run])
    return _csv(rows)


def session_heading(meeting: SessionOut, zone: ZoneInfo) -> str:
    """Name a session for a column heading: its start on the zone's clock, to the minute, then its id."""
    started = local_text(meeting.started_at, zone, named=False)[:16]
    return f"{started} ({meeting.meeting_session_id})"


def billing_report(db: Session, room: Room, began_from: datetime, began_to: datetime) -> BillingReport:
    """Return each attendee's time per session in the range, rounded up to the room's increment; totals."""
    meetings = sessions_between(db, room, began_from, began_to)
    increment = billing_increment(room.options)
    seen = _attendance(db, meetings)
    people: dict[str, list[tuple[MeetingSession, Seen]]] = {}
    for meeting in meetings:  # oldest first, so each person's visits are too
        for key, fact in seen[meeting.id].items():
            people.setdefault(key, []).append((meeting, fact))
    billed = [_billed_person(key, visits, increment) for key, visits in sorted(people.items())]
    return BillingReport(
        room_name=room.room_name,
        began_from=began_from,
        began_to=began_to,
        increment_minutes=increment,
        sessions=[session_out(meeting, room.room_name) for meeting in meetings],
        people=billed,
        billed_minutes=sum(person.billed_minutes for person in billed),
    )


def _billed_person(key: str, visits: list[tuple[MeetingSession, Seen]], increment: int) -> BilledPerson:
    sessions = [
        BilledSession(
            meeting_session_id=meeting.meeting_session_id,
            attended_seconds=fact.attended_ms / 1000,
            billed_minutes=billable_ms(fact.attended_ms, increment) // 60_000,
        )
        for meeting, fact in visits
    ]
    latest = visits[-1][1]
    return BilledPerson(
        participant_key=key,
        name=latest.name,
        email=latest.email,
        sessions=sessions,
        attended_seconds=sum(fact.attended_ms for _, fact in visits) / 1000,
        billed_minutes=sum(session.billed_minutes for session in sessions),
    )


def billing_csv(report: BillingReport, zone: ZoneInfo) -> str:
    """Render billable time as CSV: a row per person, billed minutes per session, then their total.

    Session columns are headed as series_csv heads them, and each row names the clock in its timeZone cell.
    """
    ids = [meeting.meeting_session_id for meeting in report.sessions]
    headings = [f"{session_heading(meeting, zone)} billedMinutes" for meeting in report.sessions]
    rows: list[list[object]] = [["participantKey", "name", "email", "timeZone", *headings, "billedMinutes"]]
    for person in report.people:
        billed = {session.meeting_session_id: session.billed_minutes for session in person.sessions}
        row = [person.participant_key, person.name, person.email, zone.key, *(billed.get(i) for i in ids)]
        rows.append([*row, person.billed_minutes])
    return _csv(rows)


def _csv(rows: Iterable[list[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows([_cell(value) for value in row] for row in rows)
    return buffer.getvalue()


def _cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value  # names and ids come from whoever joins: keep spreadsheets from running them
    return "" if value is None else value


@dataclass(frozen=True)
class Streak:
    """A run of absences that reached the alert, with the id of its first absent session: its identity."""

    first_session_id: int
    alert: AbsenceStreak


def absence_streaks(db: Session, room: Room, meeting: MeetingSession, reach: int) -> list[Streak]:
    """Return each roster member whose run of absences reaches exactly `reach` with `meeting`.

    Earlier sessions are judged a page at a time, newest first, only until every run has ended or passed
    `reach`: a room that has met for years costs what its latest runs need, not its whole history.
    """
    judged, _ = judge_sessions(db, room, [meeting])[meeting.id]
    absent = {
        person.participant_key: person
        for person in judged
        if person.status == Status.ABSENT and counts_in_rates(person)
    }
    runs: dict[str, list[Judged | None]] = {key: [person] for key, person in absent.items()}
    columns = [meeting]  # the session of each cell, newest first
    reached: dict[str, MeetingSession] = {}
    page_size = max(2 * reach, MIN_RUN_PAGE)
    while runs:
        _, older = sessions_of_room(db, room.room_name, session_position(columns[-1]), page_size) or (
            room,
            [],
        )
        page = judge_sessions(db, room, older)
        columns += older
        for earlier in older:
            found = {person.participant_key: person for person in page[earlier.id][0]}
            for key, cells in runs.items():
                cells.append(found.get(key))
        for key, cells in list(runs.items()):
            run = absence_run(cells)
            if run.ended or run.length > reach or len(older) < page_size:  # settled, or no older session
                del runs[key]
                if run.length == reach and run.first is not None:
                    reached[key] = columns[run.first]
        if len(older) < page_size:
            break
    return [_streak(room, meeting, absent[key], reached[key], reach) for key in sorted(reached)]


def _streak(room: Room, meeting: MeetingSession, person: Judged, first: MeetingSession, reach: int) -> Streak:
    member = person.member
    assert member is not None  # counted in a run: on the roster in force
    alert = AbsenceStreak(
        room_name=room.room_name,
        meeting_session_id=meeting.meeting_session_id,
        run_began_with=first.meeting_session_id,
        participant_key=person.participant_key,
        name=member.name,
        email=member.email,
        group=member.group,
        absences=reach,
    )
    return Streak(first.id, alert)
