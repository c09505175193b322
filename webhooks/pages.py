"""The HTML report: the rooms; a room's roster, sessions and series matrix; a session's figures, statuses,
attendance table and timeline.

Server-rendered with Jinja (autoescaped: participant names come from anyone who joins a call) and inline SVG
computed in webhooks.timeline; works without JavaScript. HTTP Basic auth, the API token as the password.
Times are on the organizer's clock (the room's `timeZone`), each naming its zone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, render_template, request
from sqlalchemy.orm import Session

from webhooks import runtime_of
from webhooks.auth import require_basic
from webhooks.csrf import form_token
from webhooks.errors import invalid_fields
from webhooks.pagination import page_of, requested_page, whole_number
from webhooks.reports import room_sessions_or_404, session_or_404
from webhooks.series import requested_range
from webhooks.timeline import build_timeline
from workers.humanize import percent_text, span_text, yes_no
from workers.models import MeetingSession, Room, RosterMember
from workers.models.base import utcnow
from workers.reports import (
    attendance_in_join_order,
    judge_sessions,
    roster_in_force,
    session_position,
    stays_of,
)
from workers.rooms import list_rooms
from workers.roster import history as roster_history
from workers.series import series_report
from workers.statuses import Status
from workers.timefmt import local_text, zone_of
from workers.wire import RoomPage, SeriesReport, SessionPage, room_out, session_out

blueprint = Blueprint("pages", __name__)

# People per page of a session: the table and chart of 10,000 people would be megabytes of HTML and a chart
# too tall to read. The concurrency curve and the figures always cover everyone; the API and CSV list all.
ROWS_PER_PAGE = 200
LAST_MOMENT = datetime.max.replace(tzinfo=UTC)
ROSTER_CHANGES_SHOWN = 10  # the latest; the API lists them all
ROSTER_FORMS = ("roster-add", "roster-remove", "roster-import")


@dataclass(frozen=True)
class PeoplePage:
    """Which of a session's people a page shows: page `number` of `count`, `ROWS_PER_PAGE` a page."""

    number: int
    people: int

    @property
    def count(self) -> int:
        """Return how many pages the session's people fill (an empty session has one)."""
        return max(1, -(-self.people // ROWS_PER_PAGE))

    @property
    def offset(self) -> int:
        """Return how many people come before this page."""
        return (self.number - 1) * ROWS_PER_PAGE

    @property
    def last(self) -> int:
        """Return the position (from 1) of the page's last person."""
        return min(self.offset + ROWS_PER_PAGE, self.people)


@blueprint.get("/")
@require_basic
def home_page() -> str:
    """List every room, archived ones marked, oldest first, each linking to its page."""
    page = requested_page()
    found = list_rooms(
        runtime_of(current_app).Db, limit=page.limit + 1, after=page.after, include_archived=True
    )
    listing = page_of(RoomPage, found, page, room_out, lambda room: room.id)
    return render_template("home.html", rooms=listing.items, cursor=listing.next_cursor)


@blueprint.get("/sessions/<id:meeting_session_id>")
@require_basic
def session_page(meeting_session_id: str) -> str:
    """Show a meeting session: its figures and statuses, one page of the attendance table and the timeline,
    and the roster members who did not come."""
    asked = request.args.get("page", "1")
    with runtime_of(current_app).Db() as db:
        meeting, room_name = session_or_404(db, meeting_session_id)
        everyone = stays_of(db, meeting)
        people = _people_page(asked, len(everyone), "page")
        attendance = attendance_in_join_order(db, meeting, people.offset, ROWS_PER_PAGE)
        summary = session_out(meeting, room_name)
        room = db.get_one(Room, meeting.room_id)
        judged, counts = judge_sessions(db, room, [meeting])[meeting.id]
        roster = {member.participant_key: member for member in roster_in_force(db, room.id, meeting.began_at)}
    attendance.sort(key=lambda a: (a.first_join_at, a.participant_key))  # the timeline's order
    stale_after = timedelta(seconds=runtime_of(current_app).settings.stale_session_seconds)
    zone = zone_of(room.options)
    timeline = build_timeline(
        attendance, summary.started_at, summary.ended_at, utcnow(), stale_after, everyone, zone
    )
    # Judged people who never came: roster members absent (or excused), and overrides for people not seen.
    missing = [person for person in judged if person.computed == Status.ABSENT]
    missing.sort(
        key=lambda person: (_roster_name(roster, person.participant_key).casefold(), person.participant_key)
    )
    return render_template(
        "session.html",
        session=summary,
        attendance=attendance,
        timeline=timeline,
        people=people,
        zone=zone,
        statuses={person.participant_key: person for person in judged},
        counts=counts,
        missing=missing,
        roster=roster,
    )


def _roster_name(roster: dict[str, RosterMember], key: str) -> str:
    member = roster.get(key)
    return (member.name if member else None) or key


def _people_page(asked: str, people: int, field: str) -> PeoplePage:
    # Not a cursor as in the API: a person reading a report wants "page 3 of 50" and a link to the last.
    count = PeoplePage(1, people).count
    number = whole_number(asked, 1, count)
    if number is None:
        raise invalid_fields([{"field": field, "message": f"must be a whole number from 1 to {count}"}])
    return PeoplePage(number, people)


@blueprint.get("/rooms/<room_name>")
@require_basic
def room_page(room_name: str) -> str:
    """Show a room: its roster in force with forms to change it, the roster's latest changes, its meeting
    sessions newest first, and the series matrix of those (or of the sessions begun in ?from=&to=)."""
    return render_room_page(room_name)


def render_room_page(room_name: str, problems: Sequence[Mapping[str, str]] = ()) -> str:
    """Render a room's page, with the problems of a refused roster form above the roster."""
    page = requested_page("at")
    asked = request.args.get("matrixPage", "1")
    runtime = runtime_of(current_app)
    with runtime.Db() as db:
        room, rows = room_sessions_or_404(db, room_name, page)
        listing = page_of(SessionPage, rows, page, lambda m: session_out(m, room_name), session_position)
        roster = sorted(roster_in_force(db, room.id, utcnow()), key=_by_name)
        zone = zone_of(room.options)
        series = _series(db, room, zone, rows[: page.limit])
        matrix = series.people if series else []
        people = _people_page(asked, len(matrix), "matrixPage")  # a session of thousands: a page of rows
        archived = room.archived_at is not None
    changes = roster_history(runtime, room_name, None, ROSTER_CHANGES_SHOWN)
    return render_template(
        "room.html",
        room_name=room_name,
        archived=archived,
        zone=zone,
        roster=roster,
        changes=changes,
        problems=problems,
        form_tokens={purpose: form_token(f"{purpose}:{room_name}") for purpose in ROSTER_FORMS},
        sessions=listing.items,
        cursor=listing.next_cursor,
        series=series,
        matrix=matrix[people.offset : people.offset + ROWS_PER_PAGE],
        people=people,
    )


def _series(db: Session, room: Room, zone: ZoneInfo, shown: list[MeetingSession]) -> SeriesReport | None:
    # ?from=&to= as the series API reads them; without them, the sessions listed: from the oldest one's
    # beginning to the newest one's, inclusive.
    if "from" in request.args or "to" in request.args:
        return series_report(db, room, *requested_range(zone))
    return series_report(db, room, shown[-1].began_at, _just_after(shown[0].began_at)) if shown else None


def _just_after(moment: datetime) -> datetime:
    # A series' range ends before its `to`; the calendar's last microsecond has nothing after it.
    return moment if moment == LAST_MOMENT else moment + timedelta(microseconds=1)


def _by_name(member: RosterMember) -> tuple[str, str]:
    return ((member.name or member.participant_key).casefold(), member.participant_key)


def status_text(status: Status) -> str:
    """Format a status as people read it, e.g. left early."""
    return status.value.replace("_", " ")


# The templates' filters: the same wording as the emails.
blueprint.add_app_template_filter(local_text, "local")
blueprint.add_app_template_filter(span_text, "span")
blueprint.add_app_template_filter(percent_text, "percent")
blueprint.add_app_template_filter(yes_no, "yes_no")
blueprint.add_app_template_filter(status_text, "status")
