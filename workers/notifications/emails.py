"""Notifications: post-meeting emails, composed from the report API's shapes: data in, EmailMessage out,
no I/O or clock (the sender stamps the Date header).

Names and emails come from whoever joins a meeting: they are shown as `Typed` text, one short line that is
escaped in HTML and broken where a mail program would make it a link.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from datetime import UTC
from email.message import EmailMessage
from email.utils import parseaddr
from html import escape

from workers.humanize import moment_text, percent_text, span_text, yes_no
from workers.reports import attendance_csv
from workers.statuses import Status
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
    session: SessionWithAttendance, sender: str, recipient: str, message_id: str
) -> EmailMessage:
    """Compose the organizer's summary: the figures, the table (who was missing or late first), the CSV."""
    figures = _session_figures(session)
    # The organizer's first question is who was missing, then who was late.
    late = [row for row in session.attendance if row.status == Status.LATE]
    others = [row for row in session.attendance if row.status != Status.LATE]
    rows = [*map(_absentee_cells, session.absentees), *map(_attendee_cells, [*late, *others])]
    opening = f"Attendance for the meeting in {session.room_name}."
    text = "\n".join([opening, "", *_text_pairs(figures), "", *_text_table(rows)])
    html = (
        f"<p>Attendance for the meeting in <b>{escape(session.room_name)}</b>.</p>"
        f"{_html_pairs(figures)}{_html_table(ATTENDEE_COLUMNS, rows)}"
    )
    subject = f"Attendance summary: {session.room_name}, {_day(session)}"
    message = _message(sender, recipient, message_id, subject)
    _add_bodies(message, text, html)
    message.add_attachment(
        attendance_csv(session).encode(),
        maintype="text",
        subtype="csv",
        filename=f"attendance-{session.room_name}-{_day(session)}.csv",
    )
    return message


def thank_you_email(
    session: SessionWithAttendance, attendee: AttendanceOut, sender: str, recipient: str, message_id: str
) -> EmailMessage:
    """Compose an attendee's thank-you with their own times in the meeting."""
    name = Typed.clean(attendee.name or "")
    greeting = f"Hello {name}," if name else "Hello,"
    opening = f"Thank you for attending the meeting in {session.room_name} on {_day(session)}."
    figures = [
        ("First joined", moment_text(attendee.first_join_at)),
        ("Last left", moment_text(attendee.last_left_at)),
        ("Time attended", span_text(attendee.attended_seconds)),
        ("Share of the meeting", percent_text(attendee.attendance_percent)),
        ("Joins", str(attendee.join_count)),
    ]
    times = [(moment_text(s.joined_at), moment_text(s.left_at)) for s in attendee.segments]
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


def _session_figures(session: SessionWithAttendance) -> list[tuple[str, str]]:
    figures = [
        ("Started", moment_text(session.started_at)),
        ("Ended", moment_text(session.ended_at)),
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


def _day(session: SessionWithAttendance) -> str:
    moment = session.started_at or session.ended_at
    return moment.astimezone(UTC).strftime("%Y-%m-%d") if moment else "unknown date"


def absence_email(streak: AbsenceStreak, sender: str, recipient: str, message_id: str) -> EmailMessage:
    """Compose the organizer's alert: a roster member absent from the room's last meetings, running."""
    who = Typed.clean(streak.name or streak.email or streak.participant_key)
    opening = f"{who} has been absent from the last {streak.absences} meetings in {streak.room_name}."
    figures = [
        ("Person", who),
        ("Email", Typed.clean(streak.email or "")),
        ("Group", Typed.clean(streak.group or "")),
        ("Absences running", str(streak.absences)),
        ("Latest meeting", streak.meeting_session_id),
    ]
    text = "\n".join([opening, "", *_text_pairs(figures)])
    html = f"<p>{_html(Typed(opening))}</p>{_html_pairs(figures)}"
    message = _message(sender, recipient, message_id, f"Absent {streak.absences} times running: {who}")
    _add_bodies(message, text, html)
    return message
