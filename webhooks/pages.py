"""The HTML report: a session's figures, attendance table and timeline, and a room's sessions.

Server-rendered with Jinja (autoescaped: participant names come from anyone who joins a call) and inline SVG
computed in webhooks.timeline; works without JavaScript. HTTP Basic auth, the API token as the password.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Blueprint, current_app, render_template
from sqlalchemy import select
from sqlalchemy.orm import Session

from webhooks import runtime_of
from webhooks.auth import require_basic
from webhooks.errors import Problem
from webhooks.pagination import page_body, requested_page
from webhooks.timeline import build_timeline
from workers.models import MeetingSession, Room
from workers.models.base import utcnow
from workers.reports import AttendanceOut, SessionOut, attendance_of, find_session, session_out

blueprint = Blueprint("pages", __name__)


@blueprint.get("/sessions/<meeting_session_id>")
@require_basic
def session_page(meeting_session_id: str) -> str:
    """Show a meeting session: its figures, the attendance table and the timeline."""
    with runtime_of(current_app).Session() as db:
        summary, attendance = _load_session(db, meeting_session_id)
    attendance.sort(key=lambda a: (a.first_join_at, a.participant_key))  # the timeline's order
    stale_after = timedelta(seconds=runtime_of(current_app).settings.stale_session_seconds)
    timeline = build_timeline(attendance, summary.started_at, summary.ended_at, utcnow(), stale_after)
    return render_template("session.html", session=summary, attendance=attendance, timeline=timeline)


@blueprint.get("/rooms/<room_name>")
@require_basic
def room_page(room_name: str) -> str:
    """List a room's meeting sessions, newest first, each linking to its page."""
    page = requested_page()
    with runtime_of(current_app).Session() as db:
        room = db.scalar(select(Room).where(Room.room_name == room_name))
        if room is None:
            raise Problem(404, "Not Found", f"no room {room_name!r}")
        query = select(MeetingSession).where(MeetingSession.room_id == room.id)
        if page.after is not None:
            query = query.where(MeetingSession.id < page.after)
        rows = db.scalars(query.order_by(MeetingSession.id.desc()).limit(page.limit + 1)).all()
        listing = page_body(rows, page, lambda m: session_out(m, room_name), lambda m: m.id)
        archived = room.archived_at is not None
    return render_template(
        "room.html",
        room_name=room_name,
        archived=archived,
        sessions=listing["items"],
        cursor=listing["nextCursor"],
    )


def _load_session(db: Session, meeting_session_id: str) -> tuple[SessionOut, list[AttendanceOut]]:
    found = find_session(db, meeting_session_id)
    if found is None:
        raise Problem(404, "Not Found", f"no meeting session {meeting_session_id!r}")
    meeting, room_name = found
    return session_out(meeting, room_name), attendance_of(db, meeting)


@blueprint.app_template_filter("utc")
def utc_filter(moment: datetime | None, zone: bool = True) -> str:
    """Format a moment as e.g. 2026-03-02 09:00:00 UTC (zone=False: in a column headed UTC), or a dash."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S" + " UTC" * zone) if moment else "-"


@blueprint.app_template_filter("span")
def span_filter(seconds: float | None) -> str:
    """Format a duration as e.g. 1h 02m 05s, or a dash."""
    if seconds is None:
        return "-"
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


@blueprint.app_template_filter("percent")
def percent_filter(value: float | None) -> str:
    """Format a percentage with one decimal, or a dash (a live session has none yet)."""
    return "-" if value is None else f"{value:.1f}%"


@blueprint.app_template_filter("yes_no")
def yes_no_filter(value: bool | None) -> str:
    """Format a flag as yes or no, or a dash when it is not known yet."""
    return "-" if value is None else "yes" if value else "no"
