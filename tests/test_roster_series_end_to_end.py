"""Issue 13 end to end: a class of 30 on a roster uploaded as CSV, three weekly meetings played by the
Metered emulator through the room's real webhook URLs, folded and finalized by a real RQ worker, one
absence excused while its meeting runs, and what the organizer then sees: each session's statuses, the
summary emails and absence alerts (a real SMTP server on loopback), and the series as JSON and CSV.

Everything goes through the public surface over real HTTP: the room and its options through the rooms
API, the roster through POST .../roster/import, the excuse through PUT .../people/{key}/status.

The class (roster, imported effective from before the first meeting): Ada … Yan are known to Metered by
externalUserId s01 … s25, Zoe, Abe, Bea, Cal and Dot by their email alone (their joins carry it in mixed
case). The same two guests come every week: a parent (by email) and Sam Visitor (by name only).

Room options: lateAfterSeconds 300 (joined after 5:00 is late), earlyLeaveSeconds 600 (last left before
50:00 of the hour left early), absenceAlertAfter 2. Each meeting is an hour; everyone not named below joins
in its first four minutes and stays to the end.

| week | absent (roster members with no attendance)      | unusual                                          |
|------|-------------------------------------------------|--------------------------------------------------|
| 0    | Dev Kai Sol Zoe Dot (25 of 30 come)             | Ben joins 12:00 (late); Cleo at 5:00 exactly     |
|      |                                                 | (on time); Finn leaves 40:00 (left early); Gia   |
|      |                                                 | leaves 50:00 exactly (present); Hal 20:00-45:00  |
|      |                                                 | (late wins); Ivy drops at 15:00, back at 15:20   |
| 1    | Kai Sol Abe (27 of 30); Sol excused while the   | Ben joins 8:00 (late); Jon on two devices        |
|      | meeting runs, by the override API               | 0-30 and 25-60; Lea leaves 30:00 (left early);   |
|      |                                                 | Max 0-20 and 40-60 (present: first join and last |
|      |                                                 | leave are on time)                               |
| 2    | Eva Kai Sol Vic Abe Bea Cal Dot (22 of 30)      | Finn leaves 45:00 (left early); Nia joins 6:00   |
|      |                                                 | (late); Oto's leave never comes (closed at the   |
|      |                                                 | end: present)                                    |

Each session's counts (hosts: none), rate = (present + late) / (30 expected - excused):

| week | present | late | left_early | absent | excused | guest | rate   | participants |
|------|---------|------|------------|--------|---------|-------|--------|--------------|
| 0    | 22      | 2    | 1          | 5      | 0       | 2     | 0.8    | 25 + 2 = 27  |
| 1    | 25      | 1    | 1          | 2      | 1       | 2     | 0.8966 | 27 + 2 = 29  |
| 2    | 20      | 1    | 1          | 8      | 0       | 2     | 0.7    | 22 + 2 = 24  |

Absence alerts (a run reaching exactly 2 when a session becomes final): week 1, Kai (absent 0 and 1);
week 2, Abe (1 and 2) and Sol (0 and 2: the excused week 1 is passed over, so it does not break the run,
and Sol was not alerted in week 1 because the excuse came before that meeting was final). Kai's third
absence alerts nobody again. The series' table is SERIES below.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx

from devtools.emulator_meeting import play_meeting
from tests.conftest import API_TOKEN, run_worker
from tests.emulator_fixture import EMULATOR_SECRET, RunningEmulator
from tests.test_mailer import Mailbox, smtp_server
from webhooks import runtime_of
from workers.runtime.process import Runtime

ROOM = "maths-4b"
ORGANIZER = "teacher@school.example"
WEEK_0 = datetime(2026, 4, 6, 9, 0, tzinfo=UTC)
BY_EXTERNAL_ID = ["Ada", "Ben", "Cleo", "Dev", "Eva", "Finn", "Gia", "Hal", "Ivy", "Jon", "Kai", "Lea",
                  "Max", "Nia", "Oto", "Pia", "Quin", "Rui", "Sol", "Tao", "Uma", "Vic", "Wes", "Xia",
                  "Yan"]  # fmt: skip
BY_EMAIL = ["Zoe", "Abe", "Bea", "Cal", "Dot"]
CLASS = BY_EXTERNAL_ID + BY_EMAIL
GUESTS = {"A parent": {"email": "Parent@Home.example"}, "Sam Visitor": {}}
Stays = list[tuple[float, float | None]]  # each device's (join, leave) minutes; None: the leave never came

ABSENT = [
    {"Dev", "Kai", "Sol", "Zoe", "Dot"},
    {"Kai", "Sol", "Abe"},
    {"Eva", "Kai", "Sol", "Vic", "Abe", "Bea", "Cal", "Dot"},
]
UNUSUAL: list[dict[str, Stays]] = [
    {"Ben": [(12, 60)], "Cleo": [(5, 60)], "Finn": [(0, 40)], "Gia": [(0, 50)], "Hal": [(20, 45)],
     "Ivy": [(0, 15), (15 + 20 / 60, 60)], "A parent": [(10, 30)]},
    {"Ben": [(8, 60)], "Jon": [(0, 30), (25, 60)], "Lea": [(0, 30)], "Max": [(0, 20), (40, 60)]},
    {"Finn": [(0, 45)], "Nia": [(6, 60)], "Oto": [(0, None)]},
]  # fmt: skip

# By hand, from the tables above. Statuses in weeks 0, 1, 2 (P present, L late, E left early, A absent,
# X excused, G guest); rate = weeks present or late ÷ weeks expected, excused ones left out of both; the
# absence run counts back from week 2, passing over excused weeks.
SERIES: dict[str, tuple[str, float | None, int]] = {
    "Ada": ("PPP", 1.0, 0), "Ben": ("LLP", 1.0, 0), "Cleo": ("PPP", 1.0, 0), "Dev": ("APP", 0.6667, 0),
    "Eva": ("PPA", 0.6667, 1), "Finn": ("EPE", 0.3333, 0), "Gia": ("PPP", 1.0, 0), "Hal": ("LPP", 1.0, 0),
    "Ivy": ("PPP", 1.0, 0), "Jon": ("PPP", 1.0, 0), "Kai": ("AAA", 0.0, 3), "Lea": ("PEP", 0.6667, 0),
    "Max": ("PPP", 1.0, 0), "Nia": ("PPL", 1.0, 0), "Oto": ("PPP", 1.0, 0), "Pia": ("PPP", 1.0, 0),
    "Quin": ("PPP", 1.0, 0), "Rui": ("PPP", 1.0, 0), "Sol": ("AXA", 0.0, 2), "Tao": ("PPP", 1.0, 0),
    "Uma": ("PPP", 1.0, 0), "Vic": ("PPA", 0.6667, 1), "Wes": ("PPP", 1.0, 0), "Xia": ("PPP", 1.0, 0),
    "Yan": ("PPP", 1.0, 0), "Zoe": ("APP", 0.6667, 0), "Abe": ("PAA", 0.3333, 2), "Bea": ("PPA", 0.6667, 1),
    "Cal": ("PPA", 0.6667, 1), "Dot": ("APA", 0.3333, 1),
    "A parent": ("GGG", None, 0), "Sam Visitor": ("GGG", None, 0),
}  # fmt: skip
STATUS = {"P": "present", "L": "late", "E": "left_early", "A": "absent", "X": "excused", "G": "guest"}
LETTER = {status: letter for letter, status in STATUS.items()}
# Minutes attended, where the stays above make them worth checking.
MINUTES = {("Ivy", 0): 59.7, ("Hal", 0): 25.0, ("Jon", 1): 60.0, ("Max", 1): 40.0, ("Oto", 2): 60.0,
           ("Kai", 1): 0.0, ("A parent", 0): 20.0}  # fmt: skip
COUNTS = [
    {"present": 22, "late": 2, "left_early": 1, "absent": 5, "excused": 0, "guest": 2},
    {"present": 25, "late": 1, "left_early": 1, "absent": 2, "excused": 1, "guest": 2},
    {"present": 20, "late": 1, "left_early": 1, "absent": 8, "excused": 0, "guest": 2},
]
RATES = [0.8, 0.8966, 0.7]  # 24/30, 26/29 (Sol excused: in neither part), 21/30
PARTICIPANTS = [27, 29, 24]


def external_id(name: str) -> str | None:
    """Return s01 … s25 for the class members Metered knows by externalUserId, else None."""
    return f"s{CLASS.index(name) + 1:02d}" if name in BY_EXTERNAL_ID else None


def key_of(name: str) -> str:
    """Return the participant key the contract gives each person here (worked out, not asked)."""
    if name in BY_EXTERNAL_ID:
        return f"ext:{external_id(name)}"
    if name in BY_EMAIL:
        return f"email:{name.lower()}@school.example"
    return "email:parent@home.example" if name == "A parent" else f"name:{name}"


def roster_csv() -> str:
    """The class as the school's export has it: ids for most, an email alone for the last five."""
    lines = ["externalUserId,email,name,role,group"]
    for name in CLASS:
        lines.append(f"{external_id(name) or ''},{name.lower()}@school.example,{name},attendee,4B")
    return "\n".join(lines) + "\n"


def meeting_id(week: int) -> str:
    return f"maths-week-{week}"


def script(week: int) -> list[dict[str, Any]]:
    """The webhooks of one week's meeting, some delivered twice and some out of order."""

    def at(minute: float) -> str:
        return (WEEK_0 + timedelta(weeks=week, minutes=minute)).isoformat()

    m = {"meetingSessionId": meeting_id(week)}
    came = [name for name in CLASS if name not in ABSENT[week]] + list(GUESTS)
    steps: list[dict[str, Any]] = [{"event": "start", "time": at(0), **m}]
    for number, name in enumerate(came):
        who = GUESTS.get(name, {"email": f"{name}@School.example"}) | {"name": name}
        if (known_as := external_id(name)) is not None:
            who["externalUserId"] = known_as
        for device, (joined, left) in enumerate(UNUSUAL[week].get(name, [(number % 4, 60)])):
            psid = f"{name}-{week}-{device}"
            steps.append({"event": "join", "time": at(joined), "participantSessionId": psid, **who, **m})
            if left is not None:
                steps.append({"event": "leave", "time": at(left), "participantSessionId": psid, **m})
    for number, step in enumerate(steps[1:], start=1):  # Metered repeats itself, and senders race
        step["duplicate"] = int(number % 9 == 0)
        step["reorder"] = number % 13 == 0
    return [*steps, {"event": "end", "time": at(60), "duplicate": 1, **m}]


def play(emulator: RunningEmulator, steps: list[dict[str, Any]], runtime: Runtime) -> None:
    """Deliver the steps through the room's webhook URLs, then let a real worker fold (and finalize) them."""
    assert {d.status for d in play_meeting(emulator.room(ROOM), steps)} <= {200, 202}
    run_worker(runtime)


def test_a_class_of_thirty_over_three_weeks(live_app: Callable[..., Any], emulator: RunningEmulator) -> None:
    mailbox = Mailbox()
    with smtp_server(mailbox) as smtp_port:
        settings = {
            "metered_api_url": emulator.url,
            "metered_secret_key": EMULATOR_SECRET,
            "smtp_url": f"smtp://127.0.0.1:{smtp_port}",
            "mail_from": "rollcall@school.example",
        }
        # No grace period: the worker finalizes each meeting, and mails about it, in the run that ends it.
        with live_app(**settings, finalize_after_seconds=0) as (app, base_url):
            api = httpx.Client(
                base_url=base_url, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=10
            )
            room = {"roomName": ROOM, "organizerEmail": ORGANIZER, "lateAfterSeconds": 300,
                    "earlyLeaveSeconds": 600, "absenceAlertAfter": 2}  # fmt: skip
            created = api.post("/api/rooms", json=room)
            assert created.status_code == 201, created.text
            imported = api.post(
                f"/api/rooms/{ROOM}/roster/import",
                params={"effectiveFrom": "2026-04-01T00:00:00Z"},
                content=roster_csv(),
                headers={"Content-Type": "text/csv"},
            )
            assert imported.status_code == 200, imported.text
            assert imported.json() == {"added": 30, "updated": 0, "removed": 0, "unchanged": 0}

            runtime = runtime_of(app)
            play(emulator, script(0), runtime)
            # Week 1: Sol's parent calls while the meeting runs; the organizer excuses her before it ends.
            *meeting, end = script(1)
            play(emulator, meeting, runtime)
            excused = api.put(
                f"/api/sessions/{meeting_id(1)}/people/ext:s19/status",
                json={"status": "excused", "reason": "ill, her parent called"},
            )
            assert excused.status_code == 200, excused.text
            play(emulator, [end], runtime)
            play(emulator, script(2), runtime)

            sessions = [api.get(f"/api/sessions/{meeting_id(week)}").json() for week in range(3)]
            span = {"from": "2026-04-06", "to": "2026-04-27"}
            series = api.get(f"/api/rooms/{ROOM}/series", params=span).json()
            series_csv = api.get(f"/api/rooms/{ROOM}/series", params={**span, "format": "csv"}).text

    assert (excused.json()["status"], excused.json()["override"]["reason"]) == (
        "excused", "ill, her parent called")  # fmt: skip
    check_sessions(sessions)
    check_series(series, series_csv)
    check_summaries([m for m in mailbox.received if m["Subject"].startswith("Attendance summary")])
    check_alerts([m for m in mailbox.received if m["Subject"].startswith("Absent")])
    assert len(mailbox.received) == 6  # nothing else: no thank-yous were asked for
    assert {m["X-Envelope-To"] for m in mailbox.received} == {ORGANIZER}


def check_sessions(sessions: list[dict[str, Any]]) -> None:
    """Each session answer: everyone's status (attendees and absentees), the counts and the rate."""
    names = {key_of(name): name for name in SERIES}
    for week, session in enumerate(sessions):
        assert session["status"] == "final"
        assert session["participantCount"] == PARTICIPANTS[week]
        people = [*session["attendance"], *session["absentees"]]
        assert len(people) == len(SERIES)  # each person once: the class and the two guests
        statuses = {names[person["participantKey"]]: person["status"] for person in people}
        assert statuses == {name: STATUS[letters[week]] for name, (letters, _, _) in SERIES.items()}
        assert session["statusCounts"] == COUNTS[week]
        assert session["expectedCount"] == 30
        assert session["attendanceRate"] == RATES[week]
    [sol] = [p for p in sessions[1]["absentees"] if p["participantKey"] == "ext:s19"]
    assert (sol["override"]["status"], sol["override"]["setBy"]) == ("excused", "api")


def check_series(series: dict[str, Any], series_csv: str) -> None:
    """The series as JSON and as CSV: a status per person per session, each person's rate and run."""
    names = {key_of(name): name for name in SERIES}
    assert [s["meetingSessionId"] for s in series["sessions"]] == [meeting_id(week) for week in range(3)]
    matrix = {
        names[p["participantKey"]]: ("".join(LETTER[c["status"]] for c in p["cells"]),
                                     p["attendanceRate"], p["absenceRun"])
        for p in series["people"]
    }  # fmt: skip
    assert matrix == SERIES
    minutes = {
        names[p["participantKey"]]: [c["attendedMinutes"] for c in p["cells"]] for p in series["people"]
    }
    assert {(name, week): minutes[name][week] for name, week in MINUTES} == MINUTES

    header, *rows = list(csv.reader(io.StringIO(series_csv)))
    assert header[4:7] == ["timeZone", f"2026-04-06 09:00 ({meeting_id(0)}) status",
                           f"2026-04-06 09:00 ({meeting_id(0)}) minutes"]  # fmt: skip
    # Roster members first, then guests, each by key.
    guests = ["email:parent@home.example", "name:Sam Visitor"]
    assert [row[0] for row in rows] == [*sorted(key_of(name) for name in CLASS), *guests]
    from_csv = {
        names[row[0]]: ("".join(LETTER[row[5 + 2 * week]] for week in range(3)),
                        float(row[-2]) if row[-2] else None, int(row[-1]))
        for row in rows
    }  # fmt: skip
    assert from_csv == SERIES
    assert rows[[row[0] for row in rows].index("ext:s19")][1:4] == ["Sol", "sol@school.example", "4B"]


def check_summaries(summaries: list[EmailMessage]) -> None:
    """One summary per meeting: who was missing first (by key), then who was late, then the rest."""
    by_day = {m["Subject"]: text_of(m) for m in summaries}
    days = ["2026-04-06", "2026-04-13", "2026-04-20"]
    assert sorted(by_day) == [f"Attendance summary: {ROOM}, {day}" for day in days]
    leading = [  # email: keys sort before ext: ones
        [("Dot", "absent"), ("Zoe", "absent"), ("Dev", "absent"), ("Kai", "absent"), ("Sol", "absent"),
         ("Ben", "late"), ("Hal", "late")],
        [("Abe", "absent"), ("Kai", "absent"), ("Sol", "excused"), ("Ben", "late")],
        [("Abe", "absent"), ("Bea", "absent"), ("Cal", "absent"), ("Dot", "absent"), ("Eva", "absent"),
         ("Kai", "absent"), ("Sol", "absent"), ("Vic", "absent"), ("Nia", "late")],
    ]  # fmt: skip
    for week, day in enumerate(days):
        text = by_day[f"Attendance summary: {ROOM}, {day}"]
        table = table_of(text)
        assert table[: len(leading[week])] == leading[week]
        expected = {name: STATUS[letters[week]].replace("_", " ") for name, (letters, _, _) in SERIES.items()}
        assert dict(table) == expected
        assert len(table) == len(SERIES)
        figures = pairs_of(text)
        assert (figures["Expected"], figures["Attendance rate"]) == ("30", ["80.0%", "89.7%", "70.0%"][week])
        assert figures["Participants"] == str(PARTICIPANTS[week])


def check_alerts(alerts: list[EmailMessage]) -> None:
    """Three alerts: Kai when week 1 became final, Abe and Sol when week 2 did; no second one for Kai."""
    by_subject = {m["Subject"]: text_of(m) for m in alerts}
    assert sorted(by_subject) == [f"Absent 2 times running: {name}" for name in ("Abe", "Kai", "Sol")]
    kai = by_subject["Absent 2 times running: Kai"]
    assert kai.startswith(
        f"Kai has been absent from the last 2 meetings in {ROOM}, the latest on 2026-04-13."
    )
    assert pairs_of(kai) == {
        "Person": "Kai",
        "Email": "kai@school.example",
        "Group": "4B",
        "Absences running": "2",
        "Latest meeting": f"2026-04-13 ({meeting_id(1)})",
    }
    assert (
        pairs_of(by_subject["Absent 2 times running: Sol"])["Latest meeting"]
        == f"2026-04-20 ({meeting_id(2)})"
    )
    assert pairs_of(by_subject["Absent 2 times running: Abe"])["Email"] == "abe@school.example"


def text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert isinstance(body, EmailMessage)
    content = body.get_content()
    assert isinstance(content, str)
    return content


def table_of(text: str) -> list[tuple[str, str]]:
    """Return (name, status) of each row of a summary email's table, in its order."""
    lines = text.splitlines()
    first = next(number for number, line in enumerate(lines) if line.startswith("Name ")) + 1
    table = lines[first:]
    rows = [re.split(r"\s{2,}", line) for line in table[: table.index("")]]  # then the page's link
    return [(cells[0], cells[1]) for cells in rows]


def pairs_of(text: str) -> dict[str, str]:
    """Return the `Label:  value` lines of an email's text."""
    lines = "\n".join(text.splitlines())  # the mail's CRLFs
    return dict(re.findall(r"^([A-Z][a-z ]+):\s+(.*)$", lines, re.MULTILINE))
