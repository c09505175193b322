"""The organizer's absence alert: data in, an EmailMessage out, the person's typed name kept harmless."""

from __future__ import annotations

import re
from datetime import date

from tests.pure.test_notify import BASE, parts
from workers.notifications.emails import absence_email
from workers.wire import AbsenceStreak

STREAK = AbsenceStreak(
    room_name="algebra",
    meeting_session_id="week-3",
    run_began_with="week-1",
    participant_key="ext:bo",
    name="Bo Diddley",
    email="bo@school.example",
    group="4B",
    absences=3,
)


def test_the_alert_names_the_person_the_run_and_the_room() -> None:
    message = absence_email(
        STREAK, date(2026, 4, 20), "Rollcall <rollcall@example.com>", "teacher@school.example", "msg_1", BASE
    )
    assert message["Subject"] == "Absent 3 times running: Bo Diddley"
    assert (message["To"], message["Message-ID"]) == ("teacher@school.example", "<msg_1@example.com>")
    text, _ = parts(message)
    assert text.splitlines() == [
        "Bo Diddley has been absent from the last 3 meetings in algebra, the latest on 2026-04-20.",
        "",
        "Person:           Bo Diddley",
        "Email:            bo@school.example",
        "Group:            4B",
        "Absences running: 3",
        "Latest meeting:   2026-04-20 (week-3)",
        "",
        "The latest meeting's page: https://rollcall.example.com/sessions/week-3",
    ]


def test_a_hostile_roster_name_is_one_line_and_never_a_link() -> None:
    hostile = STREAK.model_copy(update={"name": "Eve\r\nBcc: all@example.com <b>http://evil.example</b>"})
    message = absence_email(
        hostile, date(2026, 4, 20), "rollcall@example.com", "teacher@school.example", "msg_2", BASE
    )
    assert "\n" not in message["Subject"] and "Bcc" not in message
    _, html = parts(message)
    assert "<b>" not in html and "http://evil.example" not in html
    assert re.findall(r"<a [^>]*>", html) == ['<a href="https://rollcall.example.com/sessions/week-3">']
    assert "http:\u200b/\u200b/\u200bevil.\u200bexample" in html
