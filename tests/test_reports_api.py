"""The report API over real HTTP: sessions, attendance (JSON, CSV), people, history, and rebuilds."""

from __future__ import annotations

import base64
import csv
import io

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import run_worker
from tests.test_folding import at, end, fold, join, leave, make_room, start
from webhooks import runtime_of
from workers.models import AttendanceRow, Room
from workers.timefmt import iso_ms


def meeting(Db: sessionmaker[Session], msid: str, room_id: int, day: int = 0) -> None:
    """A 60-minute meeting on `day`: Ann all along (ext:ann), Bo from 15 to 45 (name:Bo)."""
    ann, bo, t = f"{msid}-a1", f"{msid}-b1", day * 24 * 60  # participant session ids are unique
    fold(Db, room_id, [[start(msid, t), join(msid, ann, t, externalUserId="ann", name="Ann"),
                        join(msid, bo, t + 15, name="Bo"), leave(msid, bo, t + 45, name="Bo"),
                        leave(msid, ann, t + 60, externalUserId="ann"), end(msid, t + 60)]])  # fmt: skip


def room_name(Db: sessionmaker[Session], room_id: int) -> str:
    with Db() as db:
        return db.get_one(Room, room_id).room_name


def test_session_with_attendance(api: httpx.Client, Db: sessionmaker[Session]) -> None:
    room_id = make_room(Db, min_percent=60)
    meeting(Db, "m-1", room_id)
    body = api.get("/api/sessions/m-1").json()
    assert body["roomName"] == room_name(Db, room_id)
    assert (body["startedAt"], body["endedAt"], body["durationSeconds"]) == (
        iso_ms(at(0)), iso_ms(at(60)), 3600.0)  # fmt: skip
    figures = [(a["participantKey"], a["attendedSeconds"], a["attendancePercent"], a["present"])
               for a in body["attendance"]]  # fmt: skip
    assert figures == [("ext:ann", 3600.0, 100.0, True), ("name:Bo", 1800.0, 50.0, False)]
    assert body["notifications"] == []


def test_unknown_session_is_a_404_problem(api: httpx.Client) -> None:
    response = api.get("/api/sessions/nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_attendance_as_csv_by_query_and_by_accept(api: httpx.Client, Db: sessionmaker[Session]) -> None:
    meeting(Db, "m-csv", make_room(Db))
    by_query = api.get("/api/sessions/m-csv/attendance?format=csv")
    by_accept = api.get("/api/sessions/m-csv/attendance", headers={"Accept": "text/csv"})
    assert by_query.headers["content-type"].startswith("text/csv")
    assert by_query.text == by_accept.text
    lines = by_query.text.splitlines()
    assert lines[0].startswith("participantKey,name,email,externalUserId,firstJoinAt")
    assert lines[2].startswith(
        "name:Bo,Bo,,,2026-03-02T09:15:00.000Z,2026-03-02T09:45:00.000Z,1800.0,50.0,1,"
    )


def test_the_csv_adds_the_times_on_the_organizers_clock_and_names_the_zone(
    api: httpx.Client, Db: sessionmaker[Session]
) -> None:
    room_id = make_room(Db)
    with Db.begin() as db:
        db.get_one(Room, room_id).options = {"timeZone": "America/New_York"}
    meeting(Db, "m-ny", room_id)
    rows = list(csv.reader(io.StringIO(api.get("/api/sessions/m-ny/attendance?format=csv").text)))
    assert rows[0][-4:] == ["host", "firstJoinLocal", "lastLeftLocal", "timeZone"]
    # 09:15 UTC on March 2nd, 2026 is 04:15 in New York (EST); the UTC columns stay as they were.
    assert rows[2][4:6] == ["2026-03-02T09:15:00.000Z", "2026-03-02T09:45:00.000Z"]
    assert rows[2][-3:] == ["2026-03-02 04:15:00", "2026-03-02 04:45:00", "America/New_York"]


def test_a_room_without_a_known_time_zone_shows_utc(api: httpx.Client, Db: sessionmaker[Session]) -> None:
    room_id = make_room(Db)
    with Db.begin() as db:
        db.get_one(Room, room_id).options = {"timeZone": "Mars/Olympus_Mons"}
    meeting(Db, "m-mars", room_id)
    rows = list(csv.reader(io.StringIO(api.get("/api/sessions/m-mars/attendance?format=csv").text)))
    assert rows[1][-3:] == ["2026-03-02 09:00:00", "2026-03-02 10:00:00", "UTC"]
    assert api.get("/api/sessions/m-mars").json()["startedAt"] == "2026-03-02T09:00:00.000Z"


def test_a_person_across_sessions_newest_first_paginated(
    api: httpx.Client, Db: sessionmaker[Session]
) -> None:
    room_id = make_room(Db)
    for msid, day in (("m-b", 2), ("m-c", 3), ("m-a", 1)):  # heard of in another order than they met
        meeting(Db, msid, room_id, day)
    first = api.get("/api/people/ext:ann/attendance?limit=2").json()
    assert [item["session"]["meetingSessionId"] for item in first["items"]] == ["m-c", "m-b"]
    rest = api.get(f"/api/people/ext:ann/attendance?limit=2&cursor={first['nextCursor']}").json()
    assert [item["session"]["meetingSessionId"] for item in rest["items"]] == ["m-a"]
    assert rest["nextCursor"] is None


def test_room_sessions_newest_first_by_their_start(api: httpx.Client, Db: sessionmaker[Session]) -> None:
    room_id = make_room(Db)
    for msid, day in (("m-new", 9), ("m-old", 1), ("m-mid", 5)):  # the oldest meeting's webhooks came late
        meeting(Db, msid, room_id, day)
    url = f"/api/rooms/{room_name(Db, room_id)}/sessions"
    assert [s["meetingSessionId"] for s in api.get(url).json()["items"]] == ["m-new", "m-mid", "m-old"]
    first = api.get(f"{url}?limit=2").json()
    rest = api.get(f"{url}?limit=2&cursor={first['nextCursor']}").json()
    assert [s["meetingSessionId"] for s in first["items"] + rest["items"]] == ["m-new", "m-mid", "m-old"]
    assert rest["nextCursor"] is None
    # A cursor of another list is refused by name.
    events_cursor = api.get("/api/events?limit=1").json()["nextCursor"]
    assert events_cursor is not None  # else "?cursor=None" below is refused as garbage, not as another list
    wrong = api.get(f"{url}?cursor={events_cursor}")
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "cursor"
    assert api.get("/api/rooms/no-such-room/sessions").status_code == 404


@pytest.mark.parametrize(
    "moment",
    ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"],  # valid ISO times outside the UTC range
)
def test_an_at_cursor_out_of_range_is_refused_by_name(
    api: httpx.Client, Db: sessionmaker[Session], moment: str
) -> None:
    room_id = make_room(Db)
    meeting(Db, "m-forged", room_id)
    cursor = base64.urlsafe_b64encode(f"at:{moment}|1".encode()).decode().rstrip("=")
    for url in (f"/api/rooms/{room_name(Db, room_id)}/sessions", "/api/people/ext:ann/attendance"):
        response = api.get(f"{url}?cursor={cursor}")
        assert response.status_code == 422, (url, response.text)
        assert response.json()["errors"][0]["field"] == "cursor"


def test_attendance_and_history_are_paginated(api: httpx.Client, Db: sessionmaker[Session]) -> None:
    meeting(Db, "m-page", make_room(Db))
    first = api.get("/api/sessions/m-page/attendance?limit=1").json()
    assert [a["participantKey"] for a in first["items"]] == ["ext:ann"]
    rest = api.get(f"/api/sessions/m-page/attendance?limit=1&cursor={first['nextCursor']}").json()
    assert ([a["participantKey"] for a in rest["items"]], rest["nextCursor"]) == (["name:Bo"], None)
    # An attendance cursor is not a history cursor: refused by name, not misread.
    wrong = api.get(f"/api/sessions/m-page/history?cursor={first['nextCursor']}")
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "cursor"
    history = api.get("/api/sessions/m-page/history?limit=1").json()
    assert len(history["items"]) == 1 and history["nextCursor"] is None  # one fold, one change


@pytest.mark.parametrize("limit", ["0", "501", "²", "9" * 5000])
def test_bad_limit_names_the_parameter(api: httpx.Client, limit: str) -> None:
    response = api.get(f"/api/people/ext:ann/attendance?limit={limit}")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "limit"


def test_history_records_each_change_with_its_cause(api: httpx.Client, Db: sessionmaker[Session]) -> None:
    room_id = make_room(Db)
    fold(Db, room_id, [[start("m-h", 0), join("m-h", "a1", 0, name="Ann")], [end("m-h", 30)]])
    history = api.get("/api/sessions/m-h/history").json()["items"]
    assert [entry["cause"] for entry in history] == ["deliveries", "deliveries"]
    assert history[0]["figures"]["status"] == "live" and history[1]["figures"]["status"] == "ended"
    assert len(history[1]["deliveryIds"]) == 1
    assert history[1]["people"][0]["attendedSeconds"] == 1800.0


def test_rebuild_through_the_api_gives_the_same_answer(api: httpx.Client, Db: sessionmaker[Session]) -> None:
    meeting(Db, "m-rb", make_room(Db))
    before = api.get("/api/sessions/m-rb").json()
    with Db.begin() as db:  # damage the derived rows: a rebuild must restore them from the raw deliveries
        for row in db.scalars(select(AttendanceRow)):
            row.attended_ms = 1
    response = api.post("/api/sessions/m-rb/rebuild")
    assert response.status_code == 202 and response.json()["jobId"]
    run_worker(runtime_of(api.app))  # type: ignore[attr-defined]
    assert api.get("/api/sessions/m-rb").json() == before
    assert api.get("/api/sessions/m-rb/history").json()["items"][-1]["cause"] == "rebuild"


def test_cli_rebuild_by_id_room_and_all(api: httpx.Client, Db: sessionmaker[Session]) -> None:
    room_id = make_room(Db)
    meeting(Db, "m-cli-1", room_id)
    meeting(Db, "m-cli-2", room_id)
    app = api.app  # type: ignore[attr-defined]
    by_room = app.test_cli_runner().invoke(args=["sessions", "rebuild", "--room", room_name(Db, room_id)])
    assert by_room.exit_code == 0, by_room.output
    assert "rebuilt 2 session(s)" in by_room.output
    everything = app.test_cli_runner().invoke(args=["sessions", "rebuild", "--all"])
    assert everything.exit_code == 0 and "rebuilt 2 session(s)" in everything.output
    one = app.test_cli_runner().invoke(args=["sessions", "rebuild", "m-cli-1"])
    assert one.exit_code == 0 and "rebuilt 1 session(s)" in one.output
    neither = app.test_cli_runner().invoke(args=["sessions", "rebuild"])
    assert neither.exit_code != 0 and "exactly one of" in neither.output
    missing = app.test_cli_runner().invoke(args=["sessions", "rebuild", "nope"])
    assert missing.exit_code != 0 and "no matching meeting session" in missing.output
