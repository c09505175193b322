"""The webhook receiver over real HTTP: every answer of the contract, once-only storage, no leaked token."""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis import Redis
from rq import Queue
from sqlalchemy import func, select, update

from tests.test_inbox import make_room
from webhooks import runtime_of
from webhooks.hooks import RoomsByToken
from workers.deliveries.parsing import EVENTS
from workers.models import Delivery, Room
from workers.queueing import PENDING_ROOMS, is_pending
from workers.rooms import new_token, token_hash
from workers.runtime import metrics
from workers.runtime.process import QUEUE_NAME, Runtime

JOIN = {
    "participantSessionId": "ps-1",
    "meetingSessionId": "ms-1",
    "roomName": "standup",
    "roomId": "r-1",
    "name": "Ann",
    "email": "ann@example.com",
    "joinTime": "2024-05-01T10:00:00.123Z",
    "device": "tv",
}


def hook(token: str, event: str = "participant-joined") -> str:
    return f"/hooks/metered/{token}/{event}"


def delivery_count(runtime: Runtime) -> int:
    with runtime.Db() as db:
        return db.scalar(select(func.count()).select_from(Delivery)) or 0


@pytest.fixture
def room(api: httpx.Client) -> tuple[Runtime, int, str]:
    runtime = runtime_of(api.app)  # type: ignore[attr-defined]
    room_id, token = make_room(runtime)
    return runtime, room_id, token


def test_a_delivery_is_stored_then_answered_202_and_queued(
    api: httpx.Client, room: tuple[Runtime, int, str], redis_client: Redis
) -> None:
    runtime, room_id, token = room
    response = api.post(hook(token), json=JOIN, headers={"X-Request-Id": "req-1", "Cookie": "a=b"})
    assert response.status_code == 202
    delivery_id = response.json()["id"]
    assert response.json() == {"accepted": True, "id": delivery_id}
    with runtime.Db() as db:
        stored = db.get_one(Delivery, delivery_id)
    assert json.loads(stored.raw_body) == JOIN  # unknown fields too
    assert (stored.room_id, stored.event, stored.status) == (room_id, "participant-joined", "queued")
    assert stored.dedupe_key == "participant-joined:ms-1:ps-1"
    assert stored.headers["X-Request-Id"] == "req-1"
    assert not {"Authorization", "Cookie"} & set(stored.headers)
    assert stored.source_address == "127.0.0.1"
    assert Queue(QUEUE_NAME, connection=redis_client).count == 1
    assert is_pending(redis_client, room_id)


def test_a_second_delivery_is_200_duplicate_and_not_queued_again(
    api: httpx.Client, room: tuple[Runtime, int, str], redis_client: Redis
) -> None:
    runtime, room_id, token = room
    first = api.post(hook(token), json=JOIN)
    redis_client.zrem(PENDING_ROOMS, room_id)  # as if a drain had taken it: a new fact would signal again
    again = api.post(hook(token), json={**JOIN, "name": "Ann B."})
    assert again.status_code == 200
    assert again.json() == {"duplicate": True, "id": first.json()["id"]}
    assert not is_pending(redis_client, room_id)
    assert delivery_count(runtime) == 1


def test_form_data_is_accepted(api: httpx.Client, room: tuple[Runtime, int, str]) -> None:
    _, _, token = room
    response = api.post(hook(token, "participant-left"), data={"_id": "ps-1", "leftTime": "1714557600"})
    assert response.status_code == 202


@pytest.mark.parametrize(
    ("path", "body", "content_type", "status"),
    [
        ("unknown-token", b"{}", "application/json", 404),
        ("unknown-event", b"{}", "application/json", 404),
        ("good", b"{not json", "application/json", 400),
        ("good", b"{}", "text/plain", 415),
        ("good", b"x" * (64 * 1024 + 1), "application/json", 413),
        ("good", json.dumps({**JOIN, "roomName": "other-room"}).encode(), "application/json", 422),
        ("good", json.dumps({**JOIN, "roomId": "r-other"}).encode(), "application/json", 422),
        ("good", json.dumps({**JOIN, "joinTime": "last tuesday"}).encode(), "application/json", 422),
    ],
)
def test_rejections_are_problem_json_and_store_nothing(
    api: httpx.Client,
    room: tuple[Runtime, int, str],
    redis_client: Redis,
    path: str,
    body: bytes,
    content_type: str,
    status: int,
) -> None:
    runtime, _, token = room
    url = {"unknown-token": hook(new_token()), "unknown-event": hook(token, "participant-waved")}.get(path)
    rejected = metrics.WEB.get_sample_value("rollcall_webhook_rejected_total", {"status": str(status)}) or 0
    response = api.post(url or hook(token), content=body, headers={"Content-Type": content_type})
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == status
    assert delivery_count(runtime) == 0
    assert Queue(QUEUE_NAME, connection=redis_client).count == 0
    assert (
        metrics.WEB.get_sample_value("rollcall_webhook_rejected_total", {"status": str(status)})
        == rejected + 1
    )


def test_a_wrong_field_is_named_in_the_problem(api: httpx.Client, room: tuple[Runtime, int, str]) -> None:
    _, _, token = room
    response = api.post(hook(token), json={**JOIN, "roomName": "other", "isAdmin": "perhaps"})
    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == ["isAdmin"]


def test_a_chunked_body_over_the_limit_is_413(api: httpx.Client, room: tuple[Runtime, int, str]) -> None:
    runtime, _, token = room
    chunks = iter([b'{"a": "', b"x" * 70_000, b'"}'])
    response = api.post(hook(token), content=chunks, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert delivery_count(runtime) == 0


def test_twenty_threads_posting_one_delivery_store_one_row_and_queue_it_once(
    api: httpx.Client, room: tuple[Runtime, int, str], redis_client: Redis
) -> None:
    runtime, _, token = room
    barrier, answers = threading.Barrier(20), []

    def post() -> None:
        with httpx.Client(base_url=str(api.base_url), timeout=30) as client:
            barrier.wait()
            answers.append(client.post(hook(token), json=JOIN))

    threads = [threading.Thread(target=post) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    codes = sorted(answer.status_code for answer in answers)
    assert codes == [200] * 19 + [202]
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert delivery_count(runtime) == 1
    with runtime.Db() as db:
        assert db.scalar(select(Delivery.duplicate_count)) == 19
    assert Queue(QUEUE_NAME, connection=redis_client).count == 1


def test_redis_down_still_answers_202_and_leaves_the_row_for_the_relay(
    live_app: Callable[..., Any],
) -> None:
    with live_app(redis_url="redis://127.0.0.1:9/0") as (app, base_url):
        runtime = runtime_of(app)
        _, token = make_room(runtime)
        response = httpx.post(base_url + hook(token), json=JOIN)
        assert response.status_code == 202
        with runtime.Db() as db:
            assert db.get_one(Delivery, response.json()["id"]).status == "received"


def test_a_rotated_token_stops_working_within_the_cache_ttl(runtime: Runtime) -> None:
    room_id, token = make_room(runtime)
    rooms = RoomsByToken(ttl=0.2)
    assert rooms.find(runtime.engine, token) is not None
    with runtime.Db.begin() as db:
        db.execute(update(Room).where(Room.id == room_id).values(webhook_token_hash=token_hash(new_token())))
    time.sleep(0.3)
    assert rooms.find(runtime.engine, token) is None


def test_sqlite_unreachable_answers_503_and_stores_nothing(
    live_app: Callable[..., Any], tmp_path: Path, redis_client: Redis
) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    with live_app(database_url=f"sqlite:///{folder / 'rollcall.sqlite'}") as (app, base_url):
        runtime = runtime_of(app)
        from workers.models import Base

        Base.metadata.create_all(runtime.engine)
        _, token = make_room(runtime)
        assert httpx.post(base_url + hook(token), json=JOIN).status_code == 202  # the token is now cached
        shutil.rmtree(folder)
        runtime.engine.dispose()
        response = httpx.post(base_url + hook(token), json={**JOIN, "participantSessionId": "ps-2"})
        assert response.status_code == 503
        assert response.json()["title"] == "Database unavailable"
        assert Queue(QUEUE_NAME, connection=redis_client).count == 1  # the first delivery's only


def test_no_log_line_carries_the_token_or_the_secret_key(
    api: httpx.Client, room: tuple[Runtime, int, str], caplog: pytest.LogCaptureFixture
) -> None:
    runtime, _, token = room
    caplog.set_level(logging.DEBUG)
    api.post(hook(token), json=JOIN)
    api.post(hook(token), json=JOIN)
    api.post(hook(token), json={"roomName": "elsewhere"})
    api.post(hook(token), content=b"{", headers={"Content-Type": "application/json"})
    api.post(hook(token, "nope"), json=JOIN)
    api.get(hook(token))
    secret = runtime.settings.metered_secret_key.get_secret_value()  # type: ignore[union-attr]
    lines = [record.getMessage() for record in caplog.records]
    assert any("rejected" in line for line in lines)
    assert not [line for line in lines if token in line or secret in line or token_hash(token) in line]


EVENT_NAMES = st.sampled_from([*EVENTS, "participant-waved", ""]) | st.text(max_size=12)
CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/x-www-form-urlencoded",
        "text/plain",
        "multipart/form-data; boundary=zz",
        "application/json; charset=utf-8",
        "",
    ]
)
HEADER_TEXT = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40)
BODIES = st.one_of(
    st.binary(max_size=300),
    st.dictionaries(
        st.sampled_from([*JOIN, "_id", "leftTime", "timestamp", "isAdmin", "meta", "sessionId"])
        | st.text(max_size=6),
        st.none()
        | st.booleans()
        | st.integers()
        | st.text(max_size=20)
        | st.lists(st.integers(), max_size=2),
        max_size=6,
    ).map(lambda body: json.dumps(body).encode()),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    use_token=st.booleans(),
    noise=st.text(max_size=20),
    event=EVENT_NAMES,
    content_type=CONTENT_TYPES,
    body=BODIES,
    headers=st.dictionaries(
        st.sampled_from(["X-Request-Id", "User-Agent", "X-Thing", "Authorization"]), HEADER_TEXT, max_size=3
    ),
)
def test_fuzzed_requests_never_get_a_5xx_and_rejections_store_nothing(
    api: httpx.Client,
    room: tuple[Runtime, int, str],
    use_token: bool,
    noise: str,
    event: str,
    content_type: str,
    body: bytes,
    headers: dict[str, str],
) -> None:
    runtime, _, token = room
    before = delivery_count(runtime)
    path = f"/hooks/metered/{quote(token if use_token else noise, safe='')}/{quote(event, safe='')}"
    response = api.post(path, content=body, headers={**headers, "Content-Type": content_type})
    assert response.status_code < 500
    if response.status_code >= 400:
        assert delivery_count(runtime) == before
    elif response.status_code == 202:
        assert delivery_count(runtime) == before + 1
