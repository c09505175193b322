"""The Metered emulator over real HTTP: Metered's room API, its error shapes, and playing a meeting."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from flask import Flask, request

from devtools.emulator_meeting import play_meeting
from tests.emulator_fixture import (
    EMULATOR_SECRET,
    RunningEmulator,
    emulator_fixture,  # noqa: F401 - a fixture
    served_emulator_fixture,  # noqa: F401 - a fixture
)
from tests.servers import serving

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def metered(emulator: RunningEmulator) -> Iterator[httpx.Client]:
    """Return a client of the emulated API that sends the right secret key."""
    with httpx.Client(base_url=emulator.url, params={"secretKey": EMULATOR_SECRET}, timeout=5) as client:
        yield client


class WebhookRecorder:
    """A receiver for the emulator's webhook POSTs, served over real HTTP."""

    def __init__(self) -> None:
        self.received: list[tuple[str, Any]] = []
        self.lock = threading.Lock()
        self.app = Flask("recorder")
        self.app.add_url_rule("/<path:event>", "hook", self._hook, methods=["POST"])

    def _hook(self, event: str) -> tuple[str, int]:
        with self.lock:
            self.received.append((event, request.get_json()))
        return "", 202


@pytest.fixture
def recorder() -> Iterator[tuple[WebhookRecorder, str]]:
    """Serve a webhook recorder; yield it and its base URL."""
    hooks = WebhookRecorder()
    with serving(hooks.app) as base:
        yield hooks, base


def hooked_room(metered: httpx.Client, base: str, name: str = "standup") -> dict[str, Any]:
    """Create a room at the emulator whose four webhooks point at `base`."""
    urls = {
        field: f"{base}/{event}"
        for field, event in (
            ("meetingStartedWebhook", "start"),
            ("meetingJoinWebhook", "join"),
            ("meetingLeftWebhook", "leave"),
            ("meetingEndedWebhook", "end"),
        )
    }
    response = metered.post("/room", json={"roomName": name, "privacy": "public", **urls})
    assert response.status_code == 200
    room: dict[str, Any] = response.json()
    return room


def test_create_room_answers_a_metered_room_object(metered: httpx.Client) -> None:
    room = metered.post("/room", json={"privacy": "private", "maxParticipants": 4}).json()
    assert re.fullmatch(r"[A-Za-z0-9]{10}", room["roomName"])
    assert re.fullmatch(r"[0-9a-f]{24}", room["_id"])
    assert ISO_MS.match(room["created"])
    assert room["app"] == "61005767f41008463845bac0"
    assert (room["privacy"], room["maxParticipants"]) == ("private", 4)
    assert {"archived": False, "lang": "en", "deleteOnExp": False, "__v": 0}.items() <= room.items()


def test_wrong_secret_key_gets_metereds_error_shape(emulator: RunningEmulator) -> None:
    response = httpx.post(f"{emulator.url}/room", params={"secretKey": "wrong"}, json={})
    assert response.status_code == 400
    assert response.json() == {"success": False, "message": "Invalid secretKey"}
    assert [r["secret_ok"] for r in emulator.requests()] == [False]
    assert emulator.state.rooms == {}


def test_taken_name_and_missing_room_are_errors(metered: httpx.Client) -> None:
    assert metered.post("/room", json={"roomName": "daily"}).status_code == 200
    taken = metered.post("/room", json={"roomName": "daily"})
    assert taken.status_code == 400 and taken.json()["success"] is False
    missing = metered.get("/room/nope")
    assert missing.status_code == 404 and missing.json() == {"success": False, "message": "Room not found"}


def test_get_list_update_and_archive(metered: httpx.Client) -> None:
    metered.post("/room", json={"roomName": "weekly", "enableChat": False})
    assert metered.get("/room/weekly").json()["enableChat"] is False
    updated = metered.put("/room/weekly", json={"enableChat": True, "_id": "nope"}).json()
    assert updated["enableChat"] is True and updated["_id"] != "nope"
    assert metered.delete("/room/weekly").json() == {"success": True, "message": "Room successfully archived"}
    assert [room["archived"] for room in metered.get("/rooms").json()] == [True]


def test_records_every_request(emulator: RunningEmulator, metered: httpx.Client) -> None:
    metered.post("/room", json={"roomName": "rec"})
    metered.get("/room/rec")
    listed = httpx.get(f"{emulator.base}/_emulator/requests").json()
    assert [(r["method"], r["path"], r["json"], r["secret_ok"]) for r in listed] == [
        ("POST", "/api/v1/room", {"roomName": "rec"}, True),
        ("GET", "/api/v1/room/rec", None, True),
    ]
    assert httpx.delete(f"{emulator.base}/_emulator/requests").status_code == 204
    assert emulator.requests() == []


def test_injected_failure_answers_once(emulator: RunningEmulator, metered: httpx.Client) -> None:
    failure = {
        "method": "POST",
        "path": "/api/v1/room",
        "status": 500,
        "body": {"eventCode": "ROOM_CREATE_FAILED", "message": "Could not create room"},
    }
    assert httpx.post(f"{emulator.base}/_emulator/fail", json=failure).status_code == 204
    first = metered.post("/room", json={})
    assert (first.status_code, first.json()["eventCode"]) == (500, "ROOM_CREATE_FAILED")
    assert metered.post("/room", json={}).status_code == 200


def test_play_posts_to_the_rooms_webhooks_with_duplicates_and_reordering(
    emulator: RunningEmulator,
    metered: httpx.Client,
    recorder: tuple[WebhookRecorder, str],
) -> None:
    hooks, base = recorder
    hooked_room(metered, base)
    script = [
        {"event": "start", "time": "2024-05-01T09:00:00Z"},
        {
            "event": "join",
            "participantSessionId": "p1",
            "name": "Ada",
            "time": "2024-05-01T09:01:00Z",
            "reorder": True,
        },
        {"event": "leave", "participantSessionId": "p1", "time": "2024-05-01T09:02:00Z", "duplicate": 1},
        {"event": "end", "time": "2024-05-01T09:03:00Z"},
    ]
    answer = httpx.post(f"{emulator.base}/_emulator/rooms/standup/play", json={"steps": script}, timeout=10)
    assert answer.status_code == 200
    assert [d["status"] for d in answer.json()["deliveries"]] == [202] * 5
    assert [event for event, _ in hooks.received] == ["start", "leave", "leave", "join", "end"]
    bodies = [body for _, body in hooks.received]
    assert bodies[1] == bodies[2]
    assert bodies[1]["name"] == "Ada" and bodies[1]["joinTime"] == "2024-05-01T09:01:00.000Z"
    assert len({body["meetingSessionId"] for body in bodies}) == 1


def test_play_meeting_from_python_reports_missing_webhooks(metered: httpx.Client) -> None:
    room = metered.post("/room", json={"roomName": "bare"}).json()
    deliveries = play_meeting(room, [{"event": "start"}])
    assert deliveries[0].status is None
    assert deliveries[0].error == "the room has no webhook for this event"


def test_play_refuses_a_bad_script_and_unknown_room(emulator: RunningEmulator, metered: httpx.Client) -> None:
    metered.post("/room", json={"roomName": "known"})
    bad = httpx.post(f"{emulator.base}/_emulator/rooms/known/play", json={"steps": [{"event": "dance"}]})
    assert bad.status_code == 400 and bad.json()["success"] is False
    missing = httpx.post(f"{emulator.base}/_emulator/rooms/unknown/play", json={"steps": []})
    assert missing.status_code == 404
