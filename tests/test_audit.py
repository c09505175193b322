"""The audit API and CLI: every stored delivery with its fate, filters, pages, replay and relay."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from flask import Flask
from redis import Redis
from rq import Queue

from tests.conftest import run_worker
from tests.test_inbox import make_room
from webhooks import cli as commands
from webhooks import runtime_of
from workers import inbox
from workers.models import Delivery
from workers.models.base import utcnow
from workers.runtime import process
from workers.runtime.process import QUEUE_NAME, Runtime

JOIN = '{"participantSessionId": "ps-%d", "meetingSessionId": "%s", "roomName": "%s"}'


def post(
    api: httpx.Client,
    token: str,
    index: int,
    meeting: str = "ms-1",
    room: str = "standup",
    event: str = "participant-joined",
) -> int:
    response = api.post(
        f"/hooks/metered/{token}/{event}",
        content=JOIN % (index, meeting, room),
        headers={"Content-Type": "application/json", "User-Agent": "Metered/1"},
    )
    assert response.status_code == 202
    return int(response.json()["id"])


@pytest.fixture
def rooms(api: httpx.Client) -> tuple[Runtime, str, str]:
    runtime = runtime_of(api.app)  # type: ignore[attr-defined]
    process.install(runtime)
    return runtime, make_room(runtime)[1], make_room(runtime, "retro", "r-2")[1]


def test_events_list_newest_first_with_what_became_of_each(
    api: httpx.Client, rooms: tuple[Runtime, str, str]
) -> None:
    runtime, standup, _ = rooms
    first = post(api, standup, 1)
    second = post(api, standup, 2)
    api.post(
        f"/hooks/metered/{standup}/participant-joined",
        content=JOIN % (2, "ms-1", "standup"),
        headers={"Content-Type": "application/json"},
    )
    run_worker(runtime)
    body = api.get("/api/events").json()
    assert [event["id"] for event in body["items"]] == [second, first]
    assert body["nextCursor"] is None
    event = body["items"][0]
    assert event["room"] == "standup"
    assert (event["event"], event["status"], event["statusReason"]) == (
        "participant-joined",
        "processed",
        None,
    )
    assert event["dedupeKey"] == "participant-joined:ms-1:ps-2"
    assert event["duplicateCount"] == 1
    assert event["rawBody"] == {
        "participantSessionId": "ps-2",
        "meetingSessionId": "ms-1",
        "roomName": "standup",
    }
    assert event["headers"]["User-Agent"] == "Metered/1"
    assert event["sourceAddress"] == "127.0.0.1"
    assert event["meetingSessionId"] == "ms-1"
    assert event["receivedAt"].endswith("Z") and len(event["receivedAt"]) == 24
    assert event["eventTime"] == event["receivedAt"]  # no time in the body: the received time stood in


def test_events_filter_and_page(api: httpx.Client, rooms: tuple[Runtime, str, str]) -> None:
    runtime, standup, retro = rooms
    ids = [post(api, standup, index) for index in range(5)]
    other = post(api, retro, 9, meeting="ms-2", room="retro")
    left = post(api, standup, 0, event="participant-left")
    form = api.post(f"/hooks/metered/{standup}/meeting-ended", data={"meetingSessionId": "ms-1"})
    assert form.status_code == 202

    def listed(**params: str | int) -> list[int]:
        response = api.get("/api/events", params=params)
        assert response.status_code == 200, response.text
        return [event["id"] for event in response.json()["items"]]

    assert listed(room="retro") == [other]
    assert listed(session="ms-2") == [other]
    assert listed(type="participant-left") == [left]
    assert listed(status="processed") == []
    assert listed(status="duplicate") == []
    assert listed(since=(utcnow() + timedelta(minutes=1)).isoformat()) == []
    assert api.get("/api/events", params={"type": "meeting-ended"}).json()["items"][0]["rawBody"] == (
        "meetingSessionId=ms-1"
    )
    page = api.get("/api/events", params={"room": "standup", "type": "participant-joined", "limit": 2}).json()
    assert [event["id"] for event in page["items"]] == ids[:-3:-1]
    rest = listed(room="standup", type="participant-joined", limit=10, cursor=page["nextCursor"])
    assert rest == ids[-3::-1]
    with runtime.Db.begin() as db:
        inbox.mark_failed(db, ids[0], "ValueError: bad")
    assert listed(status="failed") == [ids[0]]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"type": "joined"}, "type"),
        ({"status": "lost"}, "status"),
        ({"since": "soon"}, "since"),
        ({"limit": "0"}, "limit"),
        ({"cursor": "nope"}, "cursor"),
    ],
)
def test_bad_filters_are_422(api: httpx.Client, params: dict[str, str], field: str) -> None:
    response = api.get("/api/events", params=params)
    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == [field]


def test_the_audit_api_needs_the_token(api: httpx.Client) -> None:
    assert api.get("/api/events", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert api.post("/api/events/1/replay", headers={"Authorization": ""}).status_code == 401


def test_replay_folds_a_delivery_again(
    api: httpx.Client, rooms: tuple[Runtime, str, str], redis_client: Redis
) -> None:
    runtime, standup, _ = rooms
    delivery_id = post(api, standup, 1)
    run_worker(runtime)
    response = api.post(f"/api/events/{delivery_id}/replay")
    assert response.status_code == 202
    assert response.json() == {"id": delivery_id, "status": "queued"}
    assert Queue(QUEUE_NAME, connection=redis_client).count == 1
    run_worker(runtime)
    with runtime.Db() as db:
        delivery = db.get_one(Delivery, delivery_id)
    assert (delivery.status, delivery.fold_count) == ("processed", 2)
    assert api.post("/api/events/999999/replay").status_code == 404


def test_cli_replay_and_relay(app: Flask, runtime: Runtime, redis_client: Redis) -> None:
    commands.register(app)
    process.install(runtime)
    room_id, _ = make_room(runtime)
    from tests.test_inbox import arrival

    stored = inbox.store(runtime.engine, arrival(room_id, '{"_id": "p1", "meetingSessionId": "ms-1"}'))
    inbox.mark_unsignalled(runtime.engine, stored.id)  # as if Redis had been down
    cli = app.test_cli_runner()
    relayed = cli.invoke(args=["events", "relay"])
    assert relayed.exit_code == 0, relayed.output
    assert "signalled 1 room(s)" in relayed.output
    run_worker(runtime)
    replayed = cli.invoke(args=["events", "replay", str(stored.id), "424242"])
    assert f"delivery {stored.id}: queued" in replayed.output
    assert replayed.exit_code != 0 and "424242" in replayed.output
    run_worker(runtime)
    with runtime.Db() as db:
        assert db.get_one(Delivery, stored.id).fold_count == 2
