"""The HTML report: a session's figures, attendance table and timeline, and a room's sessions.

Server-rendered with Jinja (autoescaped: participant names come from anyone who joins a call) and inline SVG
computed in webhooks.timeline; works without JavaScript. HTTP Basic auth, the API token as the password.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, current_app, render_template
from sqlalchemy.orm import Session

from webhooks import runtime_of
from webhooks.auth import require_basic
from webhooks.pagination import page_body, requested_page
from webhooks.reports import room_sessions_or_404, session_or_404
from webhooks.timeline import build_timeline
from workers.humanize import moment_text, percent_text, span_text, yes_no
from workers.models.base import utcnow
from workers.reports import (
    AttendanceOut,
    SessionOut,
    attendance_of,
    session_out,
    session_position,
)

blueprint = Blueprint("pages", __name__)


@blueprint.get("/sessions/<id:meeting_session_id>")
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
    page = requested_page("at")
    with runtime_of(current_app).Session() as db:
        room, rows = room_sessions_or_404(db, room_name, page)
        listing = page_body(rows, page, lambda m: session_out(m, room_name), session_position)
        archived = room.archived_at is not None
    return render_template(
        "room.html",
        room_name=room_name,
        archived=archived,
        sessions=listing["items"],
        cursor=listing["nextCursor"],
    )


def _load_session(db: Session, meeting_session_id: str) -> tuple[SessionOut, list[AttendanceOut]]:
    meeting, room_name = session_or_404(db, meeting_session_id)
    return session_out(meeting, room_name), attendance_of(db, meeting)


# The templates' filters: the same wording as the emails.
blueprint.add_app_template_filter(moment_text, "utc")
blueprint.add_app_template_filter(span_text, "span")
blueprint.add_app_template_filter(percent_text, "percent")
blueprint.add_app_template_filter(yes_no, "yes_no")
