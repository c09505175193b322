"""Notifications: post-meeting emails, composed from the report API's shapes: data in, EmailMessage out,
no I/O or clock (the sender stamps the Date header).

Times are on the organizer's clock (the room's timeZone), each naming its zone; the summary links to the
session's page. Names and emails come from whoever joins a meeting: they are shown as `Typed` text, one
short line that is escaped in HTML and broken where a mail program would make it a link.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from datetime import date
from email.message import EmailMessage
from email.utils import parseaddr
from html import escape
from urllib.parse import quote
from zoneinfo import ZoneInfo

from workers.humanize import percent_text, span_text, yes_no
from workers.reports import attendance_csv
from workers.statuses import Status
from workers.timefmt import local_text, on_clock
from workers.wire import (
    AbsenceStreak,
    AttendanceOut,
    JudgedAttendanceOut,
    PersonStatus,
    SessionWithAttendance,
)

ATTENDEE_COLUMNS = ("Name", "Status", "Attended", "%", "Present", "Joins", "Inferred")
TYPED_LIMIT = 60
# A zero-width space after each of these keeps mail programs from finding a link or an address in the text.
UNLINKED = str.maketrans({mark: mark + "\u200b" for mark in ":./@"})


class Typed(str):
    """Text a participant typed (a name, an address): one short line, and never a link in the HTML part."""

    __slots__ = ()

    @classmethod
    def clean(cls, value: str) -> Typed:
        """Drop control and format characters, fold whitespace to single spaces, cap at TYPED_LIMIT."""
        kept = "".join(" " if unicodedata.category(c).startswith("C") else c for c in value)
        line = " ".join(kept.split())
        if len(line) > TYPED_LIMIT:
            line = line[: TYPED_LIMIT - 1].rstrip() + "…"
        return cls(line)


def summary_email(
    session: SessionWithAttendance,
    sender: str,
    recipient: str,
    message_id: str,
    zone: ZoneInfo,
    public_base_url: str,
) -> EmailMessage:
    """Compose the organizer's summary: the figures, the table (who was missing or late first), a link to
    the page, the CSV."""
    figures = _session_figures(session, zone)
    # The organizer's first question is who was missing, then who was late.
    late = [row for row in session.attendance if row.status == Status.LATE]
    others = [row for row in session.attendance if row.status != Status.LATE]
    rows = [*map(_absentee_cells, session.absentees), *map(_attendee_cells, [*late, *others])]
    opening = f"Attendance for the meeting in {session.room_name}."
    link = session_page_url(public_base_url, session.meeting_session_id)
    text = "\n".join(
        [opening, "", *_text_pairs(figures), "", *_text_table(rows), "", f"The session's page: {link}"]
    )
    html = (
        f"<p>Attendance for the meeting in <b>{escape(session.room_name)}</b>.</p>"
        f"{_html_pairs(figures)}{_html_table(ATTENDEE_COLUMNS, rows)}"
        f'<p><a href="{escape(link)}">The session\'s page</a></p>'
    )
    subject = f"Attendance summary: {session.room_name}, {_day(session, zone)}"
    message = _message(sender, recipient, message_id, subject)
    _add_bodies(message, text, html)
    message.add_attachment(
        attendance_csv(session, zone).encode(),
        maintype="text",
        subtype="csv",
        filename=f"attendance-{session.room_name}-{_day(session, zone)}.csv",
    )
    return message


def session_page_url(public_base_url: str, meeting_session_id: str) -> str:
    """Return the address of a session's HTML page, its id percent-encoded as one path segment."""
    return f"{public_base_url.rstrip('/')}/sessions/{quote(meeting_session_id, safe='')}"


def thank_you_email(
    session: SessionWithAttendance,
    attendee: AttendanceOut,
    sender: str,
    recipient: str,
    message_id: str,
    zone: ZoneInfo,
) -> EmailMessage:
    """Compose an attendee's thank-you with their own times in the meeting (no link: the page is the
    organizer's, behind the API token)."""
    name = Typed.clean(attendee.name or "")
    greeting = f"Hello {name}," if name else "Hello,"
    opening = f"Thank you for attending the meeting in {session.room_name} on {_day(session, zone)}."
    figures = [
        ("First joined", local_text(attendee.first_join_at, zone)),
        ("Last left", local_text(attendee.last_left_at, zone)),
        ("Time attended", span_text(attendee.attended_seconds)),
        ("Share of the meeting", percent_text(attendee.attendance_percent)),
        ("Joins", str(attendee.join_count)),
    ]
    times = [(local_text(s.joined_at, zone), local_text(s.left_at, zone)) for s in attendee.segments]
    text = "\n".join(
        [greeting, "", opening, "", *_text_pairs(figures), "", "You were there:"]
        + [f"  {joined} to {left}" for joined, left in times]
    )
    html = (
        f"<p>{_html(Typed(greeting))}</p><p>{escape(opening)}</p>{_html_pairs(figures)}"
        f"<p>You were there:</p>{_html_table(('From', 'To'), times)}"
    )
    message = _message(sender, recipient, message_id, f"Thank you for attending {session.room_name}")
    _add_bodies(message, text, html)
    return message


def _message(sender: str, recipient: str, message_id: str, subject: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = recipient
    # The same Message-ID on every attempt lets mail systems drop a duplicate if a resend ever happens.
    domain = parseaddr(sender)[1].rpartition("@")[2] or "rollcall.invalid"
    message["Message-ID"] = f"<{message_id}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: keeps vacation replies away
    return message


def _add_bodies(message: EmailMessage, text: str, html: str) -> None:
    message.set_content(text + "\n")
    message.add_alternative(f"<!doctype html><html><body>{html}</body></html>\n", subtype="html")


def _session_figures(session: SessionWithAttendance, zone: ZoneInfo) -> list[tuple[str, str]]:
    figures = [
        ("Started", local_text(session.started_at, zone)),
        ("Ended", local_text(session.ended_at, zone)),
        ("Duration", span_text(session.duration_seconds)),
        ("Participants", str(session.participant_count)),
        ("Peak concurrency", str(session.peak_concurrency)),
    ]
    if session.attendance_rate is None:  # no roster: nobody was expected
        return figures
    return [
        *figures,
        ("Expected", str(session.expected_count)),
        ("Attendance rate", percent_text(session.attendance_rate * 100)),
    ]


def _attendee_cells(row: JudgedAttendanceOut) -> tuple[str, ...]:
    return (
        Typed.clean(row.name or row.email or row.participant_key),
        _status_text(row.status, row.host),
        span_text(row.attended_seconds),
        percent_text(row.attendance_percent),
        yes_no(row.present),
        str(row.join_count),
        yes_no(row.inferred),
    )


def _absentee_cells(person: PersonStatus) -> tuple[str, ...]:
    name = Typed.clean(person.name or person.email or person.participant_key)
    return (name, _status_text(person.status, person.host), *(["-"] * (len(ATTENDEE_COLUMNS) - 2)))


def _status_text(status: Status, host: bool) -> str:
    return status.replace("_", " ") + (", host" if host else "")


def _text_pairs(pairs: list[tuple[str, str]]) -> list[str]:
    width = max(len(label) for label, _ in pairs) + 1
    return [f"{label + ':':<{width}} {value}" for label, value in pairs]


def _text_table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    if not rows:
        return ["Nobody attended."]
    table = [ATTENDEE_COLUMNS, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(ATTENDEE_COLUMNS))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in table]


def _html_pairs(pairs: list[tuple[str, str]]) -> str:
    cells = "".join(f"<tr><th align='left'>{escape(k)}</th><td>{_html(v)}</td></tr>" for k, v in pairs)
    return f"<table>{cells}</table>"


def _html_table(columns: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    head = "".join(f"<th align='left'>{escape(column)}</th>" for column in columns)
    body = "".join("<tr>" + "".join(f"<td>{_html(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table border='1' cellpadding='4' cellspacing='0'><tr>{head}</tr>{body}</table>"


def _html(text: str) -> str:
    return escape(text).translate(UNLINKED) if isinstance(text, Typed) else escape(text)


def _day(session: SessionWithAttendance, zone: ZoneInfo) -> str:
    # The organizer's date: a meeting at 23:30 UTC is the next day in Paris. isoformat pads year 1.
    moment = session.started_at or session.ended_at
    return on_clock(moment, zone).date().isoformat() if moment else "unknown date"


def absence_email(
    streak: AbsenceStreak, held_on: date, sender: str, recipient: str, message_id: str, public_base_url: str
) -> EmailMessage:
    """Compose the organizer's alert: a roster member absent from the room's last meetings, running, the
    latest held on `held_on` (the organizer's date), and a link to that meeting's page."""
    who = Typed.clean(streak.name or streak.email or streak.participant_key)
    opening = (
        f"{who} has been absent from the last {streak.absences} meetings in {streak.room_name},"
        f" the latest on {held_on.isoformat()}."
    )
    figures = [
        ("Person", who),
        ("Email", Typed.clean(streak.email or "")),
        ("Group", Typed.clean(streak.group or "")),
        ("Absences running", str(streak.absences)),
        ("Latest meeting", f"{held_on.isoformat()} ({streak.meeting_session_id})"),
    ]
    link = session_page_url(public_base_url, streak.meeting_session_id)
    text = "\n".join([opening, "", *_text_pairs(figures), "", f"The latest meeting's page: {link}"])
    html = (
        f"<p>{_html(Typed(opening))}</p>{_html_pairs(figures)}"
        f'<p><a href="{escape(link)}">The latest meeting\'s page</a></p>'
    )
    message = _message(sender, recipient, message_id, f"Absent {streak.absences} times running: {who}")
    _add_bodies(message, text, html)
    return message
