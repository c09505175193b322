"""The report API: meeting sessions and attendance, as JSON or CSV."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request
from sqlalchemy.orm import Session

from webhooks import runtime_of
from webhooks.auth import require_token
from webhooks.errors import Problem
from webhooks.pagination import Page, page_of, requested_page
from workers.models import AttendanceRow, MeetingSession, Room
from workers.notifications.ledger import notifications_for
from workers.reports import (
    attendance_csv,
    attendance_of,
    attendance_of_person,
    csv_disposition,
    find_session,
    session_position,
    session_report,
    sessions_of_room,
    trail,
)
from workers.timefmt import zone_of
from workers.wire import (
    AttendanceList,
    PersonAttendance,
    PersonAttendancePage,
    SessionHistory,
    SessionPage,
    SessionReport,
    attendance_out,
    session_out,
)

blueprint = Blueprint("reports", __name__)


def session_or_404(db: Session, meeting_session_id: str) -> tuple[MeetingSession, str]:
    """Return a meeting session and its room's name; 404 problem if there is no such session."""
    found = find_session(db, meeting_session_id)
    if found is None:
        raise Problem(404, "Not Found", f"no meeting session {meeting_session_id!r}")
    return found


def room_sessions_or_404(db: Session, room_name: str, page: Page) -> tuple[Room, list[MeetingSession]]:
    """Return a room and the page of its sessions asked for (one extra, for the cursor); 404 if no room."""
    found = sessions_of_room(db, room_name, page.after_at, page.limit + 1)
    if found is None:
        raise Problem(404, "Not Found", f"no room {room_name!r}")
    return found


def wants_csv() -> bool:
    """Return whether the request asks for CSV: `?format=csv`, or an Accept that prefers text/csv."""
    if request.args.get("format") == "csv":
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/csv"])
    return best == "text/csv"


@blueprint.get("/api/rooms/<room_name>/sessions")
@require_token
def room_sessions(room_name: str) -> dict[str, Any]:
    """List a room's meeting sessions, newest first."""
    page = requested_page("at")
    with runtime_of(current_app).Db() as db:
        _, rows = room_sessions_or_404(db, room_name, page)
        return page_of(
            SessionPage, rows, page, lambda m: session_out(m, room_name), session_position
        ).answer()


@blueprint.get("/api/sessions/<id:meeting_session_id>")
@require_token
def show_session(meeting_session_id: str) -> dict[str, Any]:
    """Show one meeting session with its attendance list and its post-meeting notifications."""
    with runtime_of(current_app).Db() as db:
        meeting, _ = session_or_404(db, meeting_session_id)
        report = session_report(db, meeting, db.get_one(Room, meeting.room_id))
        notifications = notifications_for(db, meeting.id)
    return SessionReport(**dict(report), notifications=notifications).answer()


@blueprint.get("/api/sessions/<id:meeting_session_id>/attendance")
@require_token
def session_attendance(meeting_session_id: str) -> Response | dict[str, Any]:
    """List a session's attendance, as JSON (paginated) or (Accept: text/csv, ?format=csv) CSV (all of it)."""
    page = None if wants_csv() else requested_page("key")
    with runtime_of(current_app).Db() as db:
        meeting, _ = session_or_404(db, meeting_session_id)
        room = db.get_one(Room, meeting.room_id)
        if page is not None:
            rows = attendance_of(db, meeting, room, page.after_key, page.limit + 1)
            listing = page_of(AttendanceList, rows, page, lambda row: row, lambda row: row.participant_key)
            return listing.answer()
        report = session_report(db, meeting, room)
    return Response(
        attendance_csv(report, zone_of(room.options)),
        mimetype="text/csv",
        headers={"Content-Disposition": csv_disposition(meeting_session_id)},
    )


@blueprint.get("/api/people/<id:participant_key>/attendance")
@require_token
def person_attendance(participant_key: str) -> dict[str, Any]:
    """List one person's attendance across sessions, newest first."""
    page = requested_page("at")
    with runtime_of(current_app).Db() as db:
        rows = attendance_of_person(db, participant_key, page.after_at, page.limit + 1)
        listing = page_of(
            PersonAttendancePage, rows, page, _person_item, lambda row: session_position(row[1])
        )
        return listing.answer()


def _person_item(row: tuple[AttendanceRow, MeetingSession, Room]) -> PersonAttendance:
    attendance, meeting, room = row
    return PersonAttendance(**dict(attendance_out(attendance)), session=session_out(meeting, room.room_name))


@blueprint.get("/api/sessions/<id:meeting_session_id>/history")
@require_token
def session_history(meeting_session_id: str) -> dict[str, Any]:
    """List every change to the session's results, oldest first, with its cause."""
    page = requested_page()
    with runtime_of(current_app).Db() as db:
        meeting, _ = session_or_404(db, meeting_session_id)
        entries = trail(db, meeting, page.after, page.limit + 1)
    return page_of(SessionHistory, entries, page, lambda entry: entry, lambda entry: entry.id).answer()
