"""What the receiver accepts folds and is served back, on SQLite and PostgreSQL alike.

Long spans, far-off times, every field at its longest, and bodies at the nesting limit go through the real
receiver, a real worker and the report and audit APIs; what lies beyond those limits is refused at the door.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import run_worker
from tests.test_inbox import arrival, make_room
from webhooks import runtime_of
from workers import inbox
from workers.deliveries.parsing import EMAIL_LENGTH, ID_LENGTH, MAX_DEPTH, NAME_LENGTH
from workers.models import Delivery
from workers.runtime.process import Runtime


@pytest.fixture
def room(api: httpx.Client) -> tuple[Runtime, str]:
    runtime = runtime_of(api.app)  # type: ignore[attr-defined]
    return runtime, make_room(runtime)[1]


def post(api: httpx.Client, token: str, event: str, body: dict[str, Any]) -> httpx.Response:
    return api.post(f"/hooks/metered/{token}/{event}", json=body)


def play(api: httpx.Client, token: str, deliveries: list[tuple[str, dict[str, Any]]]) -> None:
    for event, body in deliveries:
        response = post(api, token, event, body)
        assert response.status_code == 202, response.text


def session_of(api: httpx.Client, meeting_session_id: str) -> dict[str, Any]:
    response = api.get(f"/api/sessions/{quote(meeting_session_id, safe='')}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def statuses(runtime: Runtime) -> list[str]:
    with runtime.Db() as db:
        return list(db.scalars(select(Delivery.status).order_by(Delivery.id)))


def test_a_month_long_meeting_folds_and_ends(api: httpx.Client, room: tuple[Runtime, str]) -> None:
    runtime, token = room
    ms, ann = {"meetingSessionId": "ms-month"}, {"meetingSessionId": "ms-month", "participantSessionId": "p1"}
    play(api, token, [
        ("meeting-started", {**ms, "startTime": "2026-11-01T00:00:00Z"}),
        ("participant-joined", {**ann, "name": "Ann", "joinTime": "2026-11-01T00:00:00Z"}),
        ("participant-left", {**ann, "leftTime": "2026-11-30T00:00:00Z"}),
        ("meeting-ended", {**ms, "endTime": "2026-11-30T00:00:00Z"}),
    ])  # fmt: skip
    run_worker(runtime)
    body = session_of(api, "ms-month")
    month = 29 * 24 * 3600.0  # 2.5e9 ms: over a 32-bit integer
    assert (body["status"], body["durationSeconds"]) == ("ended", month)
    assert [(a["attendedSeconds"], a["attendancePercent"]) for a in body["attendance"]] == [(month, 100.0)]
    assert set(statuses(runtime)) == {"processed"}


def test_a_far_off_accepted_time_in_a_session_with_no_start_folds_and_ends(
    api: httpx.Client, room: tuple[Runtime, str]
) -> None:
    runtime, token = room
    ms = {"meetingSessionId": "ms-far"}
    play(api, token, [
        ("participant-joined", {**ms, "participantSessionId": "p1", "joinTime": "2000-01-01T00:00:00Z"}),
        ("meeting-ended", {**ms, "endTime": "2099-12-31T23:59:59.999Z"}),
    ])  # fmt: skip
    run_worker(runtime)
    body = session_of(api, "ms-far")
    assert body["status"] == "ended"
    assert body["durationSeconds"] == 3155759999.999  # a century: 3.2e12 ms
    assert body["attendance"][0]["attendedSeconds"] == body["durationSeconds"]
    assert set(statuses(runtime)) == {"processed"}


@pytest.mark.parametrize(
    "moment", ["1999-12-31T23:59:59.999Z", "2100-01-01T00:00:00Z", 4102444800, "9999-01-01", 0]
)
def test_a_time_outside_the_accepted_years_is_422_naming_the_field(
    api: httpx.Client, room: tuple[Runtime, str], moment: object
) -> None:
    runtime, token = room
    response = post(api, token, "participant-left", {"participantSessionId": "p1", "leftTime": moment})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"] == [
        {"field": "leftTime", "message": "outside the accepted years 2000 to 2099 (UTC)"}
    ]
    assert statuses(runtime) == []


def longest(stem: str, length: int) -> str:
    """Return `length` characters: the stem, then four-byte characters (the most bytes a column holds)."""
    return stem + "😀" * (length - len(stem))


def test_every_field_at_its_longest_is_accepted_and_folds(
    api: httpx.Client, room: tuple[Runtime, str]
) -> None:
    runtime, token = room
    ms = {"meetingSessionId": longest("ms", ID_LENGTH)}
    # One person per kind of participant key: by external id, by an email whose lower case is twice as
    # long ("İ" lower-cases to two characters), by name, and by participant session id alone.
    people = [
        {"externalUserId": longest("ext", ID_LENGTH), "name": longest("n", NAME_LENGTH)},
        {"email": "İ" * (EMAIL_LENGTH - 12) + "@example.com", "name": longest("e", NAME_LENGTH)},
        {"name": longest("name", NAME_LENGTH)},
        {},
    ]
    deliveries = [("meeting-started", {**ms, "startTime": "2026-11-01T10:00:00Z"})]
    for index, person in enumerate(people):
        segment = {**ms, **person, "participantSessionId": longest(f"ps{index}", ID_LENGTH)}
        deliveries.append(("participant-joined", {**segment, "joinTime": "2026-11-01T10:00:00Z"}))
        deliveries.append(("participant-left", {**segment, "leftTime": "2026-11-01T11:00:00Z"}))
    deliveries.append(("meeting-ended", {**ms, "endTime": "2026-11-01T11:00:00Z"}))
    play(api, token, deliveries)
    run_worker(runtime)
    assert statuses(runtime) == ["processed"] * len(deliveries)
    body = session_of(api, ms["meetingSessionId"])
    assert (body["status"], body["participantCount"]) == ("ended", 4)
    keys = {a["participantKey"] for a in body["attendance"]}
    assert "email:" + "i̇" * (EMAIL_LENGTH - 12) + "@example.com" in keys  # 646 characters
    assert {a["attendedSeconds"] for a in body["attendance"]} == {3600.0}


def test_a_field_over_its_limit_is_422(api: httpx.Client, room: tuple[Runtime, str]) -> None:
    runtime, token = room
    response = post(api, token, "participant-joined", {"participantSessionId": "p" * (ID_LENGTH + 1)})
    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == ["participantSessionId"]
    assert statuses(runtime) == []


def nested(depth: int) -> dict[str, Any]:
    """Return an object `depth` levels deep, counting itself."""
    value: Any = {}  # the deepest level
    for _ in range(depth - 2):
        value = {"meta": value}
    return {"participantSessionId": "p1", "meta": value}


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (json.dumps(nested(MAX_DEPTH + 1)), f"nested deeper than {MAX_DEPTH} levels"),
        ('{"participantSessionId": "p1", "meta": ' + "[" * 970 + "]" * 970 + "}", "nested deeper"),
        ('{"participantSessionId": "p1", "meta": {"level": 1e400}}', "the number 1e400 is out of range"),
        ('{"participantSessionId": "p1", "meta": -1E+999}', "the number -1E+999 is out of range"),
        ('{"participantSessionId": "p1", "meta": Infinity}', "not valid JSON"),
    ],
)
def test_a_body_that_could_not_be_served_back_is_400(
    api: httpx.Client, room: tuple[Runtime, str], body: str, detail: str
) -> None:
    runtime, token = room
    response = api.post(
        f"/hooks/metered/{token}/participant-joined",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert detail in response.json()["detail"]
    assert statuses(runtime) == []


def test_a_body_at_the_depth_limit_is_accepted_and_served(
    api: httpx.Client, room: tuple[Runtime, str]
) -> None:
    runtime, token = room
    body = nested(MAX_DEPTH)
    assert post(api, token, "participant-joined", body).status_code == 202
    run_worker(runtime)
    response = api.get("/api/events")
    assert response.status_code == 200
    assert json.loads(response.text, parse_constant=reject)["items"][0]["rawBody"] == body


def test_a_stored_body_no_longer_accepted_is_served_as_its_text(
    api: httpx.Client, room: tuple[Runtime, str]
) -> None:
    runtime, _ = room
    room_id, _ = make_room(runtime, "older", "r-2")
    deep = '{"meta": ' + "[" * 970 + "]" * 970 + "}"
    for index, text in enumerate((deep, '{"meta": 1e400}')):  # stored by an older receiver, which took them
        inbox.store(runtime.engine, replace(arrival(room_id, f'{{"_id": "p{index}"}}'), raw_body=text))
    response = api.get("/api/events")
    assert response.status_code == 200
    served = [item["rawBody"] for item in json.loads(response.text, parse_constant=reject)["items"]]
    assert served == ['{"meta": 1e400}', deep]


def reject(name: str) -> None:
    raise AssertionError(f"{name} is not JSON")


def test_brackets_inside_strings_are_not_nesting(api: httpx.Client, room: tuple[Runtime, str]) -> None:
    _, token = room
    body = {"participantSessionId": "p1", "name": "{[" * 50, "meta": [[{"note": "]}" * 50}]]}
    assert post(api, token, "participant-joined", body).status_code == 202
