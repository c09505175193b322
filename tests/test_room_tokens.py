"""Token rotation over real HTTP, Metered emulated: the overlap, archived rooms, no clear token stored.

Each check of an expired or dropped token is made by a freshly started app, as another web process would
be: its token cache never saw the token (a running process catches up within TOKEN_CACHE_SECONDS).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select, update

from tests.conftest import API_TOKEN
from tests.emulator_fixture import EMULATOR_SECRET, RunningEmulator
from tests.test_inbox import make_room
from webhooks import runtime_of
from webhooks.hooks import RoomsByToken
from workers.models import Base, Room
from workers.models.base import utcnow
from workers.rooms import WEBHOOK_FIELDS, new_token, replace_token, token_hash
from workers.runtime.process import Runtime

Serve = Callable[..., AbstractContextManager[httpx.Client]]


@pytest.fixture(name="serve")
def serve_fixture(live_app: Callable[..., Any], emulator: RunningEmulator) -> Serve:
    """Return a factory of API clients, each for a freshly started app with the emulator as Metered."""

    @contextmanager
    def start(**overrides: Any) -> Iterator[httpx.Client]:
        settings = {"metered_api_url": emulator.url, "metered_secret_key": EMULATOR_SECRET, **overrides}
        with (
            live_app(**settings) as (app, base_url),
            httpx.Client(
                base_url=base_url, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=10
            ) as client,
        ):
            client.app = app  # type: ignore[attr-defined]
            yield client

    return start


def token_in(urls: dict[str, str]) -> str:
    """Return the room token that the webhook URLs carry."""
    tokens = {url.split("/hooks/metered/")[1].split("/")[0] for url in urls.values()}
    assert len(tokens) == 1
    return tokens.pop()


def create_room(api: httpx.Client, name: str) -> str:
    """Create a room through the API and return its webhook token."""
    created = api.post("/api/rooms", json={"roomName": name})
    assert created.status_code == 201, created.text
    return token_in(created.json()["webhookUrls"])


def rotate(api: httpx.Client, name: str, **query: Any) -> dict[str, Any]:
    answer = api.post(f"/api/rooms/{name}/rotate-token", params=query)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def join(api: httpx.Client, token: str, participant: str = "ps-1") -> int:
    body = {"meetingSessionId": "ms-1", "participantSessionId": participant}
    return api.post(f"/hooks/metered/{token}/participant-joined", json=body).status_code


def stored_room(api: httpx.Client, name: str) -> Room:
    with runtime_of(api.app).Db() as db:  # type: ignore[attr-defined]
        return db.scalars(select(Room).where(Room.room_name == name)).one()


def test_the_old_token_works_during_the_overlap_and_is_unknown_after(serve: Serve) -> None:
    with serve(token_overlap_seconds=600) as api:
        old = create_room(api, "turn")
        rotated = rotate(api, "turn")
        new = token_in(rotated["webhookUrls"])
        assert rotated["meteredUpdated"] is True and rotated["roomName"] == "turn"
        room = stored_room(api, "turn")
        assert room.token_rotated_at is not None
        assert room.previous_token_expires_at == room.token_rotated_at + timedelta(seconds=600)
        assert rotated["previousTokenExpiresAt"].endswith("Z")
        assert (join(api, old, "ps-1"), join(api, new, "ps-2")) == (202, 202)
        with runtime_of(api.app).Db.begin() as db:  # type: ignore[attr-defined]
            expired = utcnow() - timedelta(seconds=1)
            db.execute(update(Room).where(Room.id == room.id).values(previous_token_expires_at=expired))
    with serve() as api:
        refused = api.post(f"/hooks/metered/{old}/participant-joined", json={})
        unknown = api.post(f"/hooks/metered/{new_token()}/participant-joined", json={})
        assert (refused.status_code, refused.json()) == (404, unknown.json())
        assert join(api, new, "ps-3") == 202


def test_a_second_rotation_within_the_overlap_drops_the_oldest_token(serve: Serve) -> None:
    with serve() as api:
        first = create_room(api, "twice")
        second = token_in(rotate(api, "twice")["webhookUrls"])
        third = token_in(rotate(api, "twice")["webhookUrls"])
    with serve() as api:
        assert [join(api, token, f"ps-{i}") for i, token in enumerate((first, second, third))] == [
            404,
            202,
            202,
        ]


def test_an_overlap_of_zero_revokes_the_old_token_at_once(serve: Serve) -> None:
    with serve() as api:
        old = create_room(api, "leak")
        rotated = rotate(api, "leak", overlapSeconds=0)
        assert rotated["previousTokenExpiresAt"] is None
        assert stored_room(api, "leak").previous_token_hash is None
    with serve() as api:
        assert (join(api, old), join(api, token_in(rotated["webhookUrls"]))) == (404, 202)


@pytest.mark.parametrize("overlap", ["soon", "-1", "1.5", "86401", "²", "9" * 5000])
def test_an_overlap_outside_the_setting_is_refused(serve: Serve, overlap: str) -> None:
    with serve() as api:
        create_room(api, "bounded")
        hash_before = stored_room(api, "bounded").webhook_token_hash
        answer = api.post("/api/rooms/bounded/rotate-token", params={"overlapSeconds": overlap})
        assert answer.status_code == 422
        assert answer.json()["errors"][0]["field"] == "overlapSeconds"
        assert stored_room(api, "bounded").webhook_token_hash == hash_before


def test_an_archived_room_rotates_and_says_whether_metered_took_the_urls(
    serve: Serve, emulator: RunningEmulator
) -> None:
    with serve() as api:
        create_room(api, "gone")
        assert api.delete("/api/rooms/gone").status_code == 200
        taken = rotate(api, "gone")
        assert taken["meteredUpdated"] is True and taken["archivedAt"]
        assert {field: emulator.room("gone")[field] for field in WEBHOOK_FIELDS} == taken["webhookUrls"]
        emulator.state.fail_next(
            "PUT", "/api/v1/room/gone", 404, {"success": False, "message": "Room not found"}
        )
        refused = rotate(api, "gone")
        assert refused["meteredUpdated"] is False
        new = token_in(refused["webhookUrls"])
        assert stored_room(api, "gone").webhook_token_hash == token_hash(new)
        assert {field: emulator.room("gone")[field] for field in WEBHOOK_FIELDS} == taken["webhookUrls"]


def test_an_active_room_whose_metered_refuses_keeps_its_token(
    serve: Serve, emulator: RunningEmulator
) -> None:
    with serve() as api:
        token = create_room(api, "kept")
        emulator.state.fail_next(
            "PUT", "/api/v1/room/kept", 400, {"success": False, "message": "Invalid request"}
        )
        answer = api.post("/api/rooms/kept/rotate-token")
        assert answer.status_code == 502 and answer.json()["detail"] == "Invalid request"
        room = stored_room(api, "kept")
        assert (room.webhook_token_hash, room.previous_token_hash) == (token_hash(token), None)
        assert api.post("/api/rooms/nope/rotate-token").status_code == 404


def test_the_database_holds_no_clear_token(serve: Serve) -> None:
    with serve() as api:
        tokens = [create_room(api, "secret")]
        tokens += [token_in(rotate(api, "secret")["webhookUrls"]) for _ in range(2)]
        assert (join(api, tokens[1], "ps-1"), join(api, tokens[2], "ps-2")) == (202, 202)
        dump = everything_stored(runtime_of(api.app).engine)  # type: ignore[attr-defined]
    room = stored_room_of(dump)
    assert (room["webhook_token_hash"], room["previous_token_hash"]) == tuple(map(token_hash, tokens[2:0:-1]))
    assert not [token for token in tokens if token in repr(dump)]


def everything_stored(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Return every row of every table, as the database returns it."""
    with engine.connect() as connection:
        return {
            table.name: [dict(row._mapping) for row in connection.execute(select(table))]
            for table in Base.metadata.sorted_tables
        }


def stored_room_of(dump: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    (room,) = dump["rooms"]
    return room


def test_a_cached_previous_token_stops_at_its_expiry(runtime: Runtime) -> None:
    room_id, old = make_room(runtime)
    with runtime.Db.begin() as db:
        replace_token(db.get_one(Room, room_id), new_token(), 2, utcnow())
    rooms = RoomsByToken(ttl=3600)  # the cache alone would keep it for an hour
    assert rooms.find(runtime.engine, old) is not None
    deadline = time.monotonic() + 30
    while rooms.find(runtime.engine, old) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert rooms.find(runtime.engine, old) is None
