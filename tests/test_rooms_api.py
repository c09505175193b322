"""The Rooms API against the Metered emulator over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text

from tests.conftest import API_TOKEN, PUBLIC_BASE_URL
from tests.emulator_fixture import (
    EMULATOR_SECRET,
    RunningEmulator,
    emulator_fixture,  # noqa: F401 - a fixture
    served_emulator_fixture,  # noqa: F401 - a fixture
    silent_server,
)
from webhooks import create_app, runtime_of
from workers.models import Room
from workers.rooms import ROLLCALL_FIELDS, WEBHOOK_FIELDS, CreateRoomRequest, token_hash
from workers.runtime.settings import Settings

PUBLIC = PUBLIC_BASE_URL
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
EVENTS = {
    "meetingJoinWebhook": "participant-joined",
    "meetingLeftWebhook": "participant-left",
    "meetingStartedWebhook": "meeting-started",
    "meetingEndedWebhook": "meeting-ended",
}

# A valid value for every Metered field of the Create Room request, unlike Metered's defaults where it can be.
VALID: dict[str, Any] = {
    "roomName": "team-standup_42",
    "privacy": "private",
    "expireUnixSec": 4102444800,
    "ejectAtRoomExp": True,
    "notBeforeUnixSec": 1700000000,
    "maxParticipants": 12,
    "autoJoin": True,
    "showInviteBox": False,
    "enableRequestToJoin": True,
    "enableChat": True,
    "newChatForMeetingSession": False,
    "enableScreenSharing": False,
    "joinVideoOn": False,
    "joinAudioOn": False,
    "enableRecording": True,
    "ownerOnlyBroadcast": True,
    "recordRoom": True,
    "ejectAfterElapsedTimeInSec": 7200,
    "endMeetingAfterNoActivityInSec": 300,
    "audioOnlyRoom": True,
    "enableComposition": True,
    "compositionLayout": "active_speaker",
    "recordComposition": True,
    "enableRTMPOut": True,
    "rtmpOutURL": "rtmps://live.example.com/app/stream-key",
    "enableLiveStreaming": True,
}
# What a field needs alongside it to be valid (Metered's page: composition and RTMP rules).
NEEDS: dict[str, dict[str, Any]] = {
    "recordComposition": {"enableComposition": True},
    "enableLiveStreaming": {"enableComposition": True},
    "enableRTMPOut": {"enableComposition": True, "rtmpOutURL": "rtmp://live.example.com/app/key"},
}
BAD_BOOLEANS = ["true", 1, None]
BAD_INTEGERS = ["12", -1, 2.5, True, None]
INVALID: dict[str, list[Any]] = {
    **{field: BAD_BOOLEANS for field, value in VALID.items() if isinstance(value, bool)},
    **{field: BAD_INTEGERS for field, value in VALID.items() if type(value) is int},
    "roomName": ["two words", "a/b", "", "x" * 101, 42, None],
    "privacy": ["secret", "Public", True, None],
    "compositionLayout": ["speaker", "grid ", 1, None],
    "rtmpOutURL": ["https://live.example.com/x", "rtmp://", 7, None],
    "organizerEmail": ["not-an-email", 5, True],
    "notifyParticipants": ["yes", 1, None],
    "trustParticipantEmails": BAD_BOOLEANS,
    "minAttendancePercent": [-1, 100.5, "50", None],
    "lateAfterSeconds": BAD_INTEGERS,
    "earlyLeaveSeconds": BAD_INTEGERS,
    "includeHostsInAttendance": BAD_BOOLEANS,
    "absenceAlertAfter": [0, "3", 2.5, True, None],
    "billingIncrementMinutes": [0, 1441, "15", True, None],
    "timeZone": ["Paris", "europe/paris", "", 1, None],
    **{field: ["https://elsewhere.example/hook"] for field in WEBHOOK_FIELDS},
}


@pytest.fixture
def client(metered_app: Flask) -> FlaskClient:
    return metered_app.test_client()


def create(client: FlaskClient, body: Any, status: int = 201) -> dict[str, Any]:
    """POST a room and check the status; return the JSON answer."""
    response = client.post("/api/rooms", json=body, headers=AUTH)
    assert response.status_code == status, response.get_data(as_text=True)
    answer: dict[str, Any] = response.get_json()
    return answer


def stored_room(app: Flask, name: str) -> Room:
    with runtime_of(app).Db() as db:
        return db.scalars(select(Room).where(Room.room_name == name)).one()


def test_tables_cover_every_field() -> None:
    assert set(VALID) | set(ROLLCALL_FIELDS) == set(CreateRoomRequest.model_fields)
    assert set(INVALID) == set(CreateRoomRequest.model_fields) | set(WEBHOOK_FIELDS)


def test_create_registers_four_webhooks_and_stores_only_their_hash(
    metered_app: Flask,
    client: FlaskClient,
    emulator: RunningEmulator,
) -> None:
    answer = create(client, {"roomName": "standup"})
    sent = emulator.requests()[0]
    assert (sent["method"], sent["path"], sent["secret_ok"]) == ("POST", "/api/v1/room", True)
    assert sent["json"]["privacy"] == "public"  # always sent: Metered's table marks it required
    urls = answer["webhookUrls"]
    assert {field: sent["json"][field] for field in WEBHOOK_FIELDS} == urls
    tokens = set()
    for field, url in urls.items():
        match = re.fullmatch(rf"{PUBLIC}/hooks/metered/([A-Za-z0-9_-]+)/{EVENTS[field]}", url)
        assert match, url
        tokens.add(match[1])
    (token,) = tokens
    assert len(token) >= 22  # 128 bits or more, URL-safe base64
    room = stored_room(metered_app, "standup")
    assert room.webhook_token_hash == token_hash(token)
    assert room.metered_room_id == answer["_id"] == emulator.room("standup")["_id"]
    with runtime_of(metered_app).engine.connect() as connection:
        dump = json.dumps([list(row) for row in connection.execute(text("SELECT * FROM rooms"))], default=str)
    assert token not in dump and EMULATOR_SECRET not in dump


def test_create_answers_metereds_fields_and_rollcalls(client: FlaskClient) -> None:
    answer = create(client, {"organizerEmail": "host@example.com", "minAttendancePercent": 80})
    assert re.fullmatch(r"[A-Za-z0-9]{10}", answer["roomName"])  # generated by Metered
    assert {"_id", "app", "created", "archived", "lang", "deleteOnExp", "__v", "privacy"} <= set(answer)
    assert (answer["organizerEmail"], answer["notifyParticipants"], answer["minAttendancePercent"]) == (
        "host@example.com",
        False,
        80,
    )
    assert answer["trustParticipantEmails"] is False  # participants' own addresses get no mail by default


@pytest.mark.parametrize("field", sorted(VALID))
def test_a_valid_value_reaches_metered_unchanged(
    field: str,
    client: FlaskClient,
    emulator: RunningEmulator,
) -> None:
    answer = create(client, {**NEEDS.get(field, {}), field: VALID[field]})
    (sent,) = emulator.requests()
    assert sent["json"][field] == VALID[field] and type(sent["json"][field]) is type(VALID[field])
    assert answer[field] == VALID[field]


@pytest.mark.parametrize("field", sorted(ROLLCALL_FIELDS))
def test_rollcall_fields_stay_with_rollcall(
    field: str,
    metered_app: Flask,
    client: FlaskClient,
    emulator: RunningEmulator,
) -> None:
    value = {
        "organizerEmail": "host@example.com",
        "notifyParticipants": True,
        "minAttendancePercent": 62.5,
        "trustParticipantEmails": True,
        "lateAfterSeconds": 300,
        "earlyLeaveSeconds": 120,
        "includeHostsInAttendance": True,
        "absenceAlertAfter": 3,
        "billingIncrementMinutes": 15,
        "timeZone": "America/New_York",
    }
    answer = create(client, {"roomName": "own", field: value[field]})
    assert field not in emulator.requests()[0]["json"]
    assert answer[field] == value[field]
    room = stored_room(metered_app, "own")
    stored = {
        "organizerEmail": room.organizer_email,
        "notifyParticipants": room.notify_participants,
        "minAttendancePercent": room.min_attendance_percent,
        **room.options,
    }
    assert stored[field] == value[field]


@pytest.mark.parametrize("field", sorted(INVALID))
def test_an_invalid_value_is_422_naming_it_and_nothing_reaches_metered(
    field: str,
    client: FlaskClient,
    emulator: RunningEmulator,
) -> None:
    for bad in INVALID[field]:
        response = client.post("/api/rooms", json={**NEEDS.get(field, {}), field: bad}, headers=AUTH)
        assert response.status_code == 422, (field, bad)
        assert response.mimetype == "application/problem+json"
        problem = response.get_json()
        assert [error["field"] for error in problem["errors"]] == [field], (field, bad, problem)
        if field in WEBHOOK_FIELDS:
            assert problem["errors"][0]["message"] == "set by Rollcall"
    assert emulator.requests() == []


def test_every_problem_is_listed(client: FlaskClient, emulator: RunningEmulator) -> None:
    problem = create(
        client,
        {
            "roomName": "a b",
            "privacy": "x",
            "colour": "red",
            "enableRTMPOut": True,
            "meetingEndedWebhook": "https://x.example",
        },
        status=422,
    )
    fields = {error["field"] for error in problem["errors"]}
    assert fields == {"roomName", "privacy", "colour", "enableRTMPOut", "rtmpOutURL", "meetingEndedWebhook"}
    assert {"type", "title", "status", "detail"} <= set(problem) and problem["status"] == 422
    assert emulator.requests() == []


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        ("[1, 2]", "application/json", 422),
        ('"room"', "application/json", 422),
        ("{not json", "application/json", 400),
        ("roomName=x", "application/x-www-form-urlencoded", 415),
    ],
)
def test_a_body_that_is_not_a_json_object_is_refused(
    data: str,
    content_type: str,
    status: int,
    client: FlaskClient,
    emulator: RunningEmulator,
) -> None:
    response = client.post("/api/rooms", data=data, content_type=content_type, headers=AUTH)
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    assert emulator.requests() == []


def test_taken_name_is_409_without_asking_metered(client: FlaskClient, emulator: RunningEmulator) -> None:
    create(client, {"roomName": "daily"})
    problem = create(client, {"roomName": "daily"}, status=409)
    assert "daily" in problem["detail"]
    assert [r["method"] for r in emulator.requests()] == ["POST"]


def test_name_taken_at_metered_is_409_after_looking_it_up(
    client: FlaskClient,
    emulator: RunningEmulator,
) -> None:
    httpx.post(f"{emulator.url}/room", params={"secretKey": EMULATOR_SECRET}, json={"roomName": "theirs"})
    emulator.state.clear()
    create(client, {"roomName": "theirs"}, status=409)
    assert [(r["method"], r["path"]) for r in emulator.requests()] == [
        ("POST", "/api/v1/room"),
        ("GET", "/api/v1/room/theirs"),
    ]


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, {"success": False, "message": "Invalid request"}),
        (500, {"eventCode": "ROOM_CREATE_FAILED", "message": "Could not create the room"}),
    ],
)
def test_metered_error_is_502_with_its_message(
    status: int,
    body: dict[str, Any],
    metered_app: Flask,
    client: FlaskClient,
    emulator: RunningEmulator,
) -> None:
    emulator.state.fail_next("POST", "/api/v1/room", status, body)
    problem = create(client, {"roomName": "broken"}, status=502)
    assert problem["detail"] == body["message"]
    assert problem["meteredStatus"] == status
    assert problem.get("eventCode") == body.get("eventCode")
    with runtime_of(metered_app).Db() as db:
        assert db.scalars(select(Room)).all() == []


def test_metered_timeout_is_504(make_settings: Callable[..., Settings]) -> None:
    with silent_server() as server:
        app = create_app(make_settings(metered_api_url=server.url, metered_timeout_seconds=0.3))
        response = app.test_client().post("/api/rooms", json={"roomName": "slow"}, headers=AUTH)
        runtime_of(app).engine.dispose()
    assert response.status_code == 504
    assert response.mimetype == "application/problem+json"
    assert "test-metered-secret" not in response.get_data(as_text=True)


def test_unconfigured_metered_is_503(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings(metered_api_url=None, metered_app_name=None))
    response = app.test_client().post("/api/rooms", json={}, headers=AUTH)
    runtime_of(app).engine.dispose()
    assert response.status_code == 503
    assert "METERED_APP_NAME" in response.get_json()["detail"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/rooms"),
        ("GET", "/api/rooms"),
        ("GET", "/api/rooms/x"),
        ("PATCH", "/api/rooms/x"),
        ("DELETE", "/api/rooms/x"),
    ],
)
def test_every_endpoint_needs_the_token(method: str, path: str, client: FlaskClient) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = client.open(path, method=method, json={}, headers=headers)
        assert response.status_code == 401
        assert response.mimetype == "application/problem+json"


def test_list_is_paginated_oldest_first(client: FlaskClient) -> None:
    names = [f"room-{n}" for n in range(5)]
    for name in names:
        create(client, {"roomName": name})
    seen, cursor, pages = [], None, 0
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/rooms", query_string=query, headers=AUTH).get_json()
        seen += [room["roomName"] for room in page["items"]]
        pages += 1
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert (seen, pages) == (names, 3)
    assert client.get("/api/rooms?cursor=bogus", headers=AUTH).status_code == 422


def test_archived_rooms_are_listed_only_on_request(client: FlaskClient) -> None:
    create(client, {"roomName": "kept"})
    create(client, {"roomName": "gone"})
    assert client.delete("/api/rooms/gone", headers=AUTH).status_code == 200
    listed = client.get("/api/rooms", headers=AUTH).get_json()["items"]
    assert [room["roomName"] for room in listed] == ["kept"]
    every = client.get("/api/rooms?includeArchived=true", headers=AUTH).get_json()["items"]
    assert [room["roomName"] for room in every] == ["kept", "gone"]
    assert client.get("/api/rooms?includeArchived=maybe", headers=AUTH).status_code == 422
    refused = client.get("/api/rooms?includeArchived=maybe", headers=AUTH).get_json()
    assert refused["detail"] == "includeArchived: must be true or false"
    assert refused["errors"] == [{"field": "includeArchived", "message": "must be true or false"}]


def test_show_a_room(client: FlaskClient) -> None:
    created = create(client, {"roomName": "shown", "enableChat": True, "notifyParticipants": True})
    shown = client.get("/api/rooms/shown", headers=AUTH).get_json()
    assert shown == {key: value for key, value in created.items() if key != "webhookUrls"}
    missing = client.get("/api/rooms/nope", headers=AUTH)
    assert missing.status_code == 404 and missing.mimetype == "application/problem+json"


def test_patch_sends_only_metereds_changes_through_its_update_api(
    client: FlaskClient,
    emulator: RunningEmulator,
) -> None:
    create(client, {"roomName": "patched"})
    emulator.state.clear()
    response = client.patch(
        "/api/rooms/patched",
        json={"enableChat": True, "maxParticipants": 3, "organizerEmail": "lead@example.com"},
        headers=AUTH,
    )
    assert response.status_code == 200
    assert [(r["method"], r["path"], r["json"]) for r in emulator.requests()] == [
        ("PUT", "/api/v1/room/patched", {"enableChat": True, "maxParticipants": 3})
    ]
    room = response.get_json()
    assert (room["enableChat"], room["maxParticipants"]) == (True, 3)
    assert room["organizerEmail"] == "lead@example.com"
    assert client.get("/api/rooms/patched", headers=AUTH).get_json() == room


def test_patch_of_rollcall_fields_alone_stays_local(client: FlaskClient, emulator: RunningEmulator) -> None:
    create(client, {"roomName": "local", "organizerEmail": "a@example.com"})
    emulator.state.clear()
    room = client.patch(
        "/api/rooms/local", json={"organizerEmail": None, "minAttendancePercent": 50}, headers=AUTH
    ).get_json()
    assert (room["organizerEmail"], room["minAttendancePercent"]) == (None, 50)
    assert emulator.requests() == []


def test_trusting_participant_emails_is_set_and_withdrawn_locally(
    client: FlaskClient, emulator: RunningEmulator
) -> None:
    create(client, {"roomName": "trusting", "notifyParticipants": True, "trustParticipantEmails": True})
    emulator.state.clear()
    for trust in (False, True):
        room = client.patch("/api/rooms/trusting", json={"trustParticipantEmails": trust}, headers=AUTH)
        assert room.status_code == 200 and room.get_json()["trustParticipantEmails"] is trust
        assert client.get("/api/rooms/trusting", headers=AUTH).get_json()["trustParticipantEmails"] is trust
    patched = client.patch("/api/rooms/trusting", json={"enableChat": True}, headers=AUTH).get_json()
    assert patched["trustParticipantEmails"] is True  # a Metered change keeps it
    assert [r["json"] for r in emulator.requests()] == [{"enableChat": True}]  # and it never reaches Metered
    refused = client.patch("/api/rooms/trusting", json={"trustParticipantEmails": "yes"}, headers=AUTH)
    assert refused.status_code == 422 and refused.get_json()["errors"][0]["field"] == "trustParticipantEmails"


def test_judging_options_default_off_in_utc_and_null_clears_each(
    metered_app: Flask, client: FlaskClient, emulator: RunningEmulator
) -> None:
    defaults = {
        "lateAfterSeconds": None,
        "earlyLeaveSeconds": None,
        "includeHostsInAttendance": False,
        "absenceAlertAfter": None,
        "billingIncrementMinutes": None,
        "timeZone": "UTC",
    }
    created = create(client, {"roomName": "judged"})
    assert {field: created[field] for field in defaults} == defaults
    chosen = {
        "lateAfterSeconds": 300,
        "earlyLeaveSeconds": 600,
        "includeHostsInAttendance": True,
        "absenceAlertAfter": 2,
        "billingIncrementMinutes": 6,
        "timeZone": "Asia/Kolkata",
    }
    emulator.state.clear()
    patched = client.patch("/api/rooms/judged", json=chosen, headers=AUTH).get_json()
    assert {field: patched[field] for field in chosen} == chosen
    assert client.get("/api/rooms/judged", headers=AUTH).get_json() == patched
    cleared = client.patch("/api/rooms/judged", json=dict.fromkeys(chosen), headers=AUTH).get_json()
    assert {field: cleared[field] for field in defaults} == defaults
    assert set(chosen).isdisjoint(stored_room(metered_app, "judged").options)  # cleared, not stored null
    assert emulator.requests() == []  # Rollcall's own: Metered never hears of them


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"roomName": "renamed"}, "roomName"),
        ({"meetingJoinWebhook": "https://x.example"}, "meetingJoinWebhook"),
        ({"maxParticipants": "3"}, "maxParticipants"),
        ({"recordComposition": True}, "recordComposition"),
        ({"enableChat": None}, "enableChat"),
        ({"timeZone": "Moon/Tranquility"}, "timeZone"),
        ({"billingIncrementMinutes": 0}, "billingIncrementMinutes"),
    ],
)
def test_patch_refusals_are_422_and_reach_nothing(
    body: dict[str, Any],
    field: str,
    client: FlaskClient,
    emulator: RunningEmulator,
) -> None:
    create(client, {"roomName": "strict"})
    emulator.state.clear()
    response = client.patch("/api/rooms/strict", json=body, headers=AUTH)
    assert response.status_code == 422
    assert [error["field"] for error in response.get_json()["errors"]] == [field]
    assert emulator.requests() == []


def test_patch_rules_apply_to_the_room_as_it_will_be(client: FlaskClient) -> None:
    create(client, {"roomName": "composed", "enableComposition": True})
    accepted = client.patch("/api/rooms/composed", json={"recordComposition": True}, headers=AUTH)
    assert accepted.status_code == 200
    refused = client.patch("/api/rooms/composed", json={"enableComposition": False}, headers=AUTH)
    assert refused.status_code == 422
    assert refused.get_json()["errors"][0]["field"] == "recordComposition"


def test_delete_archives_at_metered_and_keeps_the_room(
    metered_app: Flask,
    client: FlaskClient,
    emulator: RunningEmulator,
) -> None:
    create(client, {"roomName": "closing"})
    emulator.state.clear()
    answer = client.delete("/api/rooms/closing", headers=AUTH)
    assert answer.status_code == 200
    assert answer.get_json()["archived"] is True and answer.get_json()["archivedAt"].endswith("Z")
    assert emulator.room("closing")["archived"] is True
    assert stored_room(metered_app, "closing").archived_at is not None
    assert client.delete("/api/rooms/closing", headers=AUTH).status_code == 200  # again: nothing to do
    assert [(r["method"], r["path"]) for r in emulator.requests()] == [("DELETE", "/api/v1/room/closing")]
    assert client.get("/api/rooms/closing", headers=AUTH).status_code == 200
    assert client.patch("/api/rooms/closing", json={"enableChat": True}, headers=AUTH).status_code == 409
    assert client.delete("/api/rooms/nope", headers=AUTH).status_code == 404


def test_secret_key_is_in_no_log_line_or_answer(
    client: FlaskClient,
    emulator: RunningEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    answers = [create(client, {"roomName": "hush"})]
    emulator.state.fail_next("POST", "/api/v1/room", 500, {"eventCode": "X", "message": "nope"})
    answers.append(create(client, {"roomName": "hush2"}, status=502))
    answers.append(client.get("/api/rooms/hush", headers=AUTH).get_json())
    assert EMULATOR_SECRET not in caplog.text
    assert EMULATOR_SECRET not in json.dumps(answers)


def test_over_real_http(live_app: Callable[..., Any], emulator: RunningEmulator) -> None:
    served = live_app(metered_api_url=emulator.url, metered_secret_key=EMULATOR_SECRET)
    with served as (_app, base_url), httpx.Client(base_url=base_url, headers=AUTH) as api:
        created = api.post("/api/rooms", json={"roomName": "wire", "privacy": "private"})
        assert created.status_code == 201
        assert created.headers["Location"] == "/api/rooms/wire"
        assert created.json()["webhookUrls"]["meetingJoinWebhook"].startswith(f"{base_url}/hooks/metered/")
        assert api.get("/api/rooms/wire").json()["privacy"] == "private"
