"""Composing the organizer's summary and the attendee's thank-you: pure functions, checked on their output."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.message import EmailMessage
from zoneinfo import ZoneInfo

from workers.notifications.emails import TYPED_LIMIT, Typed, summary_email, thank_you_email
from workers.reports import attendance_csv
from workers.statuses import Status
from workers.timefmt import UTC_ZONE
from workers.wire import JudgedAttendanceOut, PersonStatus, SegmentOut, SessionWithAttendance

START = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
BASE = "https://rollcall.example.com/"
PARIS = ZoneInfo("Europe/Paris")


def at(minutes: float) -> datetime:
    return datetime.fromtimestamp(START.timestamp() + minutes * 60, tz=UTC)


def person(
    key: str,
    name: str | None,
    email: str | None,
    minutes: float,
    joins: int = 1,
    status: Status = Status.GUEST,
    host: bool = False,
) -> JudgedAttendanceOut:
    return JudgedAttendanceOut(
        participant_key=key,
        identified_by="email" if email else "name",
        name=name,
        email=email,
        external_user_id=None,
        first_join_at=at(0),
        last_left_at=at(minutes),
        attended_seconds=minutes * 60,
        attendance_percent=round(minutes / 60 * 100, 1),
        join_count=joins,
        present=minutes >= 30,
        inferred=False,
        segments=[
            SegmentOut(
                participant_session_id=f"ps-{key}", joined_at=at(0), left_at=at(minutes), inferred=False
            )
        ],
        status=status,
        host=host,
        override=None,
    )


SESSION = SessionWithAttendance(
    meeting_session_id="ms-1",
    room_name="weekly-sync",
    status="final",
    started_at=START,
    ended_at=at(60),
    duration_seconds=3600.0,
    participant_count=2,
    peak_concurrency=2,
    inferred=False,
    min_attendance_percent=50.0,
    attendance=[
        person("ada@example.com", "Ada <script>alert(1)</script>", "ada@example.com", 45, joins=2),
        person("=cmd", "=HYPERLINK(1)", None, 6.5),
    ],
    # No roster: everyone who came is a guest, and nobody is missing.
    status_counts={**dict.fromkeys(Status, 0), Status.GUEST: 2},
    expected_count=0,
    attendance_rate=None,
    absentees=[],
)


def absentee(key: str, name: str, status: Status) -> PersonStatus:
    return PersonStatus(
        participant_key=key,
        name=name,
        email=None,
        external_user_id=None,
        status=status,
        host=False,
        override=None,
    )


WITH_ROSTER = SESSION.model_copy(
    update={
        "attendance": [
            person("ext:ann", "Ann", None, 60, status=Status.PRESENT),
            person("ext:bo", "Bo", None, 50, status=Status.LATE),
            person("ext:teacher", "Teacher", None, 60, status=Status.PRESENT, host=True),
            person("ext:zed", "Zed", None, 20, status=Status.LEFT_EARLY),
        ],
        "status_counts": {**dict.fromkeys(Status, 0), Status.PRESENT: 1, Status.LATE: 1},
        "expected_count": 5,
        "attendance_rate": 0.4,
        "absentees": [absentee("ext:cy", "Cy", Status.ABSENT), absentee("ext:di", "Di", Status.EXCUSED)],
    }
)


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def test_summary_names_the_room_and_date() -> None:
    message = summary_email(
        SESSION, "Rollcall <rollcall@example.com>", "organizer@example.com", "msg_abc", UTC_ZONE, BASE
    )
    assert message["Subject"] == "Attendance summary: weekly-sync, 2024-05-01"
    assert message["To"] == "organizer@example.com"
    assert message["Message-ID"] == "<msg_abc@example.com>"
    assert message["Auto-Submitted"] == "auto-generated"


def test_summary_has_the_figures_and_the_attendee_table() -> None:
    text, html = parts(summary_email(SESSION, "rollcall@example.com", "o@example.com", "m", UTC_ZONE, BASE))
    for body in (text, html):
        assert "2024-05-01 09:00:00 UTC" in body and "2024-05-01 10:00:00 UTC" in body
        assert "1h 00m 00s" in body  # duration
        assert "45m 00s" in body and "75.0%" in body and "6m 30s" in body and "10.8%" in body
    lines = [re.split(r"\s{2,}|:\s+", line) for line in text.splitlines()]
    assert ["Participants", "2"] in lines and ["Peak concurrency", "2"] in lines
    assert ["Name", "Status", "Attended", "%", "Present", "Joins", "Inferred"] in lines
    assert ["Ada <script>alert(1)</script>", "guest", "45m 00s", "75.0%", "yes", "2", "no"] in lines
    assert ["=HYPERLINK(1)", "guest", "6m 30s", "10.8%", "no", "1", "no"] in lines
    assert "Expected" not in text and "Attendance rate" not in text  # no roster, no rate


def test_summary_lists_who_did_not_come_and_who_came_late_first() -> None:
    text, html = parts(
        summary_email(WITH_ROSTER, "rollcall@example.com", "o@example.com", "m", UTC_ZONE, BASE)
    )
    lines = [re.split(r"\s{2,}|:\s+", line) for line in text.splitlines()]
    assert ["Expected", "5"] in lines and ["Attendance rate", "40.0%"] in lines
    head = lines.index(["Name", "Status", "Attended", "%", "Present", "Joins", "Inferred"])
    table = lines[head + 1 : lines.index([""], head)]  # up to the blank line before the page's link
    assert [row[:2] for row in table] == [
        ["Cy", "absent"],
        ["Di", "excused"],
        ["Bo", "late"],
        ["Ann", "present"],
        ["Teacher", "present, host"],
        ["Zed", "left early"],
    ]
    assert table[0] == ["Cy", "absent", "-", "-", "-", "-", "-"]
    assert html.index("Cy") < html.index("Di") < html.index("Bo") < html.index("Ann")


def test_summary_html_escapes_names() -> None:
    _, html = parts(summary_email(SESSION, "rollcall@example.com", "o@example.com", "m", UTC_ZONE, BASE))
    assert "<script>" not in html
    assert "Ada &lt;script&gt;alert(1)&lt;/\u200bscript&gt;" in html  # escaped, and unlinked


def test_summary_attaches_the_contract_csv() -> None:
    message = summary_email(SESSION, "rollcall@example.com", "o@example.com", "m", UTC_ZONE, BASE)
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == "text/csv"
    assert attachment.get_filename() == "attendance-weekly-sync-2024-05-01.csv"
    content = attachment.get_content()
    csv = content.decode() if isinstance(content, bytes) else content
    assert csv == attendance_csv(SESSION, UTC_ZONE)
    assert csv.startswith("participantKey,name,email,externalUserId,firstJoinAt,lastLeftAt,")


def test_the_csv_appends_status_and_host_and_a_row_per_absentee() -> None:
    rows = attendance_csv(WITH_ROSTER, PARIS).splitlines()
    assert rows[0].endswith(",joinCount,present,inferred,status,host,firstJoinLocal,lastLeftLocal,timeZone")
    assert rows[3] == (
        "ext:teacher,Teacher,,,2024-05-01T09:00:00.000Z,2024-05-01T10:00:00.000Z,3600.0,100.0,1,true,false,"
        "present,true,2024-05-01 11:00:00,2024-05-01 12:00:00,Europe/Paris"
    )
    assert rows[5:] == [
        "ext:cy,Cy,,,,,,,,,,absent,false,,,Europe/Paris",
        "ext:di,Di,,,,,,,,,,excused,false,,,Europe/Paris",
    ]


def test_thank_you_has_only_their_own_times() -> None:
    ada = SESSION.attendance[0]
    message = thank_you_email(SESSION, ada, "rollcall@example.com", "ada@example.com", "msg_t", UTC_ZONE)
    text, html = parts(message)
    assert message["Subject"] == "Thank you for attending weekly-sync"
    assert message["To"] == "ada@example.com"
    assert "45m 00s" in text and "75.0%" in text and "2024-05-01 09:45:00 UTC" in text
    assert "6m 30s" not in text and "HYPERLINK" not in text  # nobody else's figures
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert list(message.iter_attachments()) == []


HOSTILE = (
    "Eve\r\nBcc: x@evil.example\r\n\u202e<a href='https://evil.example/win'>prize</a> https://evil.example/p"
)


def test_typed_text_is_one_short_line_without_controls() -> None:
    assert Typed.clean("Ann\r\nBcc: x@evil\t\x00\u202eLee") == "Ann Bcc: x@evil Lee"
    capped = Typed.clean("x" * 200)
    assert len(capped) == TYPED_LIMIT and capped.endswith("…")
    assert Typed.clean("\r\n\x07") == ""


def test_a_hostile_name_is_one_line_and_no_link_in_either_email() -> None:
    eve = person("email:eve@example.com", HOSTILE, "eve@example.com", 40)
    session = SESSION.model_copy(update={"attendance": [eve]})
    page_link = '<a href="https://rollcall.example.com/sessions/ms-1">'
    for message, links in (
        (thank_you_email(session, eve, "rollcall@example.com", "eve@example.com", "msg_e", UTC_ZONE), []),
        (
            summary_email(session, "rollcall@example.com", "o@example.com", "msg_s", UTC_ZONE, BASE),
            [page_link],
        ),
    ):
        text, html = parts(message)
        [line] = [line for line in text.splitlines() if "Eve" in line]
        assert "Bcc: x@evil" in line and len(line) < TYPED_LIMIT + 50  # the name, cut; then the figures
        assert re.findall(r"<a [^>]*>", html) == links  # escaped (&lt;a href=…): only the page's own link
        assert "evil.example" not in html
        assert "\u202e" not in text + html


def test_the_summary_is_on_the_organizers_clock_and_links_to_the_sessions_page() -> None:
    late = SESSION.model_copy(update={"meeting_session_id": "ms/1 é", "started_at": at(-9 * 60 - 30)})
    message = summary_email(late, "rollcall@example.com", "o@example.com", "m", PARIS, BASE)
    text, html = parts(message)
    # 23:30 UTC on April 30th is 01:30 on May 1st in Paris (summer time): the organizer's date names it.
    assert message["Subject"] == "Attendance summary: weekly-sync, 2024-05-01"
    assert "2024-05-01 01:30:00 Europe/Paris" in text and "2024-05-01 12:00:00 Europe/Paris" in text
    assert "UTC" not in text
    page = "https://rollcall.example.com/sessions/ms%2F1%20%C3%A9"
    assert f"The session's page: {page}" in text
    assert f'<a href="{page}">' in html
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "attendance-weekly-sync-2024-05-01.csv"


def test_the_thank_you_is_on_the_organizers_clock() -> None:
    ada = SESSION.attendance[0]
    text, _ = parts(thank_you_email(SESSION, ada, "rollcall@example.com", "ada@example.com", "msg_t", PARIS))
    assert "First joined:         2024-05-01 11:00:00 Europe/Paris" in text
    assert "  2024-05-01 11:00:00 Europe/Paris to 2024-05-01 11:45:00 Europe/Paris" in text
    assert "on 2024-05-01." in text
