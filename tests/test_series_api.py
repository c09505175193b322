"""The series report and billable time over real HTTP, on meetings folded from stored deliveries.

Rosters, overrides and room options are arranged as rows: their own API is another part of issue 13.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.test_folding import at, end, fold, join, leave, make_room, start
from workers.models import MeetingSession, Room, RosterMember, StatusOverride
from workers.timefmt import iso_ms

DAY = 24 * 60
# Who came to each weekly meeting, and when (minutes into it); the meetings last 60 minutes.
WEEKS: list[dict[str, tuple[float, float]]] = [
    {"ann": (0, 60), "bo": (10, 60), "cy": (0, 60), "gus": (0, 30)},  # bo late; gus not on the roster
    {"ann": (0, 60), "cy": (0, 60)},  # bo absent; dee absent but excused
    {"gus": (5, 50)},  # the roster all absent
]


def play_weeks(Db: sessionmaker[Session], room_id: int, weeks: list[dict[str, tuple[float, float]]]) -> None:
    """Fold one 60-minute meeting a week, `w-<n>` on day 7n, through the inbox as a worker's drain does."""
    for number, people in enumerate(weeks):
        msid, t = f"w-{number}", number * 7 * DAY
        steps = [start(msid, t), end(msid, t + 60)]
        for name, (came, went) in people.items():
            who = {"externalUserId": name, "name": name.title()}
            steps += [join(msid, f"{msid}-{name}", t + came, **who), leave(msid, f"{msid}-{name}", t + went)]
        fold(Db, room_id, [steps])


def roster_room(Db: sessionmaker[Session], **options: Any) -> tuple[int, str]:
    """Create a room expecting ann, bo, dee and cy (a host) from before the first week; return id, name."""
    room_id = make_room(Db)
    with Db.begin() as db:
        room = db.get_one(Room, room_id)
        room.options = {"lateAfterSeconds": 300, **options}
        for name in ("ann", "bo", "cy", "dee"):
            role = "host" if name == "cy" else "attendee"
            db.add(expected(room_id, name, role=role, valid_from=at(-60)))
        return room_id, room.room_name


def expected(room_id: int, name: str, **fields: Any) -> RosterMember:
    return RosterMember(
        room_id=room_id,
        participant_key=f"ext:{name}",
        external_user_id=name,
        name=f"{name.title()} (roster)",
        email=f"{name}@school.example",
        group="4B",
        **fields,
    )


def excuse(Db: sessionmaker[Session], msid: str, name: str) -> None:
    with Db.begin() as db:
        session_id = db.scalar(select(MeetingSession.id).where(MeetingSession.meeting_session_id == msid))
        assert session_id is not None
        override = StatusOverride(session_id=session_id, participant_key=f"ext:{name}", status="excused")
        override.set_by = "api"
        db.add(override)


def series(api: httpx.Client, room_name: str, begin: str = "2026-03-01", until: str = "2026-04-01") -> Any:
    answer = api.get(f"/api/rooms/{room_name}/series", params={"from": begin, "to": until})
    assert answer.status_code == 200, answer.text
    return answer.json()


def rows_of(body: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    """Return each person's cells (status, minutes) with their rate and run."""
    return {
        person["participantKey"]: (
            [None if cell is None else (cell["status"], cell["attendedMinutes"]) for cell in person["cells"]],
            person["attendanceRate"],
            person["absenceRun"],
        )
        for person in body["people"]
    }


def test_the_matrix_with_each_persons_rate_and_run(api: httpx.Client, Db: sessionmaker[Session]) -> None:
    room_id, room_name = roster_room(Db)
    play_weeks(Db, room_id, WEEKS)
    excuse(Db, "w-1", "dee")
    body = series(api, room_name)
    assert [s["meetingSessionId"] for s in body["sessions"]] == ["w-0", "w-1", "w-2"]
    assert (body["from"], body["to"]) == ("2026-03-01T00:00:00.000Z", "2026-04-01T00:00:00.000Z")
    assert rows_of(body) == {
        "ext:ann": ([("present", 60.0), ("present", 60.0), ("absent", 0.0)], 0.6667, 1),
        "ext:bo": ([("late", 50.0), ("absent", 0.0), ("absent", 0.0)], 0.3333, 2),
        "ext:cy": ([("present", 60.0), ("present", 60.0), ("absent", 0.0)], None, 0),  # a host: left out
        "ext:dee": ([("absent", 0.0), ("excused", 0.0), ("absent", 0.0)], 0.0, 2),  # excused: passed over
        "ext:gus": ([("guest", 30.0), None, ("guest", 45.0)], None, 0),  # not expected: no rate
    }
    people = {person["participantKey"]: person for person in body["people"]}
    assert (people["ext:bo"]["name"], people["ext:bo"]["email"], people["ext:bo"]["group"]) == (
        "Bo (roster)", "bo@school.example", "4B")  # fmt: skip
    assert (people["ext:gus"]["name"], people["ext:gus"]["group"]) == ("Gus", None)  # as they joined
    assert [cell and cell["host"] for cell in people["ext:cy"]["cells"]] == [True, True, True]


def test_a_room_that_includes_hosts_gives_them_a_rate_and_a_run(
    api: httpx.Client, Db: sessionmaker[Session]
) -> None:
    room_id, room_name = roster_room(Db, includeHostsInAttendance=True)
    play_weeks(Db, room_id, WEEKS)
    assert rows_of(series(api, room_name))["ext:cy"][1:] == (0.6667, 1)


def test_a_roster_changed_mid_series_judges_each_session_by_the_roster_of_its_day(
    api: httpx.Client, Db: sessionmaker[Session]
) -> None:
    room_id, room_name = roster_room(Db)
    with Db.begin() as db:
        db.add(expected(room_id, "eve", valid_from=at(3 * DAY)))  # joins the class after the first week
        ann = db.query(RosterMember).filter_by(participant_key="ext:ann").one()
        ann.valid_to = at(10 * DAY)  # leaves it before the third
    play_weeks(Db, room_id, WEEKS)
    people = rows_of(series(api, room_name))
    assert people["ext:eve"] == ([None, ("absent", 0.0), ("absent", 0.0)], 0.0, 2)
    assert people["ext:ann"] == ([("present", 60.0), ("present", 60.0), None], 1.0, 0)


def test_the_range_takes_sessions_that_began_in_it_to_excluded(
    api: httpx.Client, Db: sessionmaker[Session]
) -> None:
    room_id, room_name = roster_room(Db)
    play_weeks(Db, room_id, WEEKS)
    week_1 = iso_ms(at(7 * DAY))
    body = series(api, room_name, week_1, iso_ms(at(14 * DAY)))  # the third week began at `to`
    assert [s["meetingSessionId"] for s in body["sessions"]] == ["w-1"]
    assert rows_of(body)["ext:bo"] == ([("absent", 0.0)], 0.0, 1)
    body = series(api, room_name, "2026-03-09T09:00:00+00:00", "2026-03-09T10:00")  # offsets, or UTC
    assert [s["meetingSessionId"] for s in body["sessions"]] == ["w-1"]


def test_dates_and_times_without_an_offset_are_on_the_organizers_clock(
    api: httpx.Client, Db: sessionmaker[Session]
) -> None:
    room_id, room_name = roster_room(
        Db, timeZone="Pacific/Honolulu"
    )  # w-1, 09:00 UTC, is 23:00 the day before
    play_weeks(Db, room_id, WEEKS)
    body = series(api, room_name, "2026-03-08", "2026-03-09")
    assert (body["from"], body["to"]) == ("2026-03-08T10:00:00.000Z", "2026-03-09T10:00:00.000Z")
    assert [s["meetingSessionId"] for s in body["sessions"]] == ["w-1"]
    body = series(api, room_name, "2026-03-08T22:00", "2026-03-09T09:30:00Z")  # an offset stays as given
    assert [s["meetingSessionId"] for s in body["sessions"]] == ["w-1"]
    answer = api.get(
        f"/api/rooms/{room_name}/series", params={"from": "2026-03-08", "to": "2026-03-09", "format": "csv"}
    )
    assert answer.headers["content-disposition"] == (
        f'attachment; filename="series-{room_name}-2026-03-08-2026-03-09.csv"'
    )
    header, first, *_ = list(csv.reader(io.StringIO(answer.text)))
    assert header[4:7] == ["timeZone", "2026-03-08 23:00 (w-1) status", "2026-03-08 23:00 (w-1) minutes"]
    assert first[4] == "Pacific/Honolulu"
    billing = api.get(
        f"/api/rooms/{room_name}/billing", params={"from": "2026-03-08", "to": "2026-03-09", "format": "csv"}
    )
    assert next(csv.reader(io.StringIO(billing.text)))[3:5] == [
        "timeZone", "2026-03-08 23:00 (w-1) billedMinutes"]  # fmt: skip


def test_the_series_as_csv_guarded_against_formulas(api: httpx.Client, Db: sessionmaker[Session]) -> None:
    room_id, room_name = roster_room(Db)
    play_weeks(Db, room_id, WEEKS[:2])
    fold(Db, room_id, [[join("w-1", "w-1-x", 7 * DAY + 1, externalUserId="=1+1", name="@SUM(A1)"),
                        leave("w-1", "w-1-x", 7 * DAY + 2)]])  # fmt: skip
    answer = api.get(
        f"/api/rooms/{room_name}/series", params={"from": "2026-03-01", "to": "2026-03-15", "format": "csv"}
    )
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"] == (
        f'attachment; filename="series-{room_name}-2026-03-01-2026-03-15.csv"'
    )
    rows = list(csv.reader(io.StringIO(answer.text)))
    assert rows[0] == [
        "participantKey", "name", "email", "group", "timeZone",
        "2026-03-02 09:00 (w-0) status", "2026-03-02 09:00 (w-0) minutes",
        "2026-03-09 09:00 (w-1) status", "2026-03-09 09:00 (w-1) minutes",
        "attendanceRate", "absenceRun",
    ]  # fmt: skip
    assert rows[2] == ["ext:bo", "Bo (roster)", "bo@school.example", "4B", "UTC", "late", "50.0", "absent",
                       "0.0", "0.5", "1"]  # fmt: skip
    assert ["ext:=1+1", "'@SUM(A1)", "", "", "UTC", "", "", "guest", "1.0", "", "0"] in rows
    by_accept = api.get(
        f"/api/rooms/{room_name}/series",
        params={"from": "2026-03-01", "to": "2026-03-15"},
        headers={"Accept": "text/csv"},
    )
    assert by_accept.text == answer.text


@pytest.mark.parametrize("path", ["series", "billing"])
def test_a_bad_range_is_a_422_naming_each_field(
    api: httpx.Client, Db: sessionmaker[Session], path: str
) -> None:
    _, room_name = roster_room(Db)
    answers = {
        "": api.get(f"/api/rooms/{room_name}/{path}"),
        "unreadable": api.get(
            f"/api/rooms/{room_name}/{path}", params={"from": "yesterday", "to": "2026-13-01"}
        ),
        "backwards": api.get(
            f"/api/rooms/{room_name}/{path}", params={"from": "2026-03-02", "to": "2026-03-01"}
        ),
        "off the calendar": api.get(  # a valid offset that puts `to` past the year 9999
            f"/api/rooms/{room_name}/{path}", params={"from": "2026-03-02", "to": "9999-12-31T23:00-05:00"}
        ),
    }
    for answer in answers.values():
        assert answer.status_code == 422
        assert answer.headers["content-type"] == "application/problem+json"
    fields = {case: [error["field"] for error in answer.json()["errors"]] for case, answer in answers.items()}
    assert fields == {
        "": ["from", "to"],
        "unreadable": ["from", "to"],
        "backwards": ["to"],
        "off the calendar": ["to"],
    }
    missing = api.get(f"/api/rooms/nope/{path}", params={"from": "2026-03-01", "to": "2026-03-02"})
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"


def test_billable_time_rounded_up_to_the_rooms_increment(
    api: httpx.Client, Db: sessionmaker[Session]
) -> None:
    room_id, room_name = roster_room(Db, billingIncrementMinutes=15)
    play_weeks(Db, room_id, WEEKS)
    bo_drops_by = [
        join("w-1", "w-1-bo", 7 * DAY + 59.5, externalUserId="bo"),
        leave("w-1", "w-1-bo", 7 * DAY + 60),
    ]
    fold(Db, room_id, [bo_drops_by])
    answer = api.get(f"/api/rooms/{room_name}/billing", params={"from": "2026-03-01", "to": "2026-04-01"})
    body = answer.json()
    assert body["incrementMinutes"] == 15
    billed = {
        person["participantKey"]: (
            [(s["meetingSessionId"], s["attendedSeconds"], s["billedMinutes"]) for s in person["sessions"]],
            person["attendedSeconds"],
            person["billedMinutes"],
        )
        for person in body["people"]
    }
    assert billed == {
        "ext:ann": ([("w-0", 3600.0, 60), ("w-1", 3600.0, 60)], 7200.0, 120),
        "ext:bo": ([("w-0", 3000.0, 60), ("w-1", 30.0, 15)], 3030.0, 75),  # 30 seconds start an increment
        "ext:cy": ([("w-0", 3600.0, 60), ("w-1", 3600.0, 60)], 7200.0, 120),
        "ext:gus": ([("w-0", 1800.0, 30), ("w-2", 2700.0, 45)], 4500.0, 75),
    }
    assert body["billedMinutes"] == 390
    text = api.get(
        f"/api/rooms/{room_name}/billing", params={"from": "2026-03-01", "to": "2026-04-01", "format": "csv"}
    ).text
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["participantKey", "name", "email", "timeZone", "2026-03-02 09:00 (w-0) billedMinutes",
                       "2026-03-09 09:00 (w-1) billedMinutes", "2026-03-16 09:00 (w-2) billedMinutes",
                       "billedMinutes"]  # fmt: skip
    assert rows[4] == ["ext:gus", "Gus", "", "UTC", "30", "", "45", "75"]


def test_without_an_increment_time_is_billed_to_the_next_minute(
    api: httpx.Client, Db: sessionmaker[Session]
) -> None:
    room_id, room_name = roster_room(Db)
    ann = [join("m", "m-a", 0, externalUserId="ann"), leave("m", "m-a", 44 + 40 / 60)]
    zed = [join("m", "m-z", 1, externalUserId="zed"), leave("m", "m-z", 1)]  # in and straight out
    fold(Db, room_id, [[start("m", 0), *ann, *zed, end("m", 60)]])
    body = api.get(
        f"/api/rooms/{room_name}/billing", params={"from": "2026-03-01", "to": "2026-03-03"}
    ).json()
    assert body["incrementMinutes"] == 1
    assert [(p["participantKey"], p["billedMinutes"]) for p in body["people"]] == [
        ("ext:ann", 45),
        ("ext:zed", 0),
    ]
