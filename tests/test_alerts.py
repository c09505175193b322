"""Alerts: a signed delivery.failed or session.stale event, once each, and a metric, by a real worker."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from rq import Queue

from tests.conftest import API_TOKEN, run_worker
from tests.pure.test_webhook_signing import SECRET
from tests.test_audit import post
from tests.test_folding import fold, join, leave
from tests.test_folding import make_room as make_folding_room
from tests.test_inbox import make_room
from tests.test_outbound import Receiver, receiving
from webhooks import runtime_of
from workers.jobs import sweep_stale_sessions
from workers.runtime import process
from workers.runtime.process import QUEUE_NAME


@pytest.fixture
def receiver() -> Receiver:
    return Receiver(SECRET)


@pytest.fixture
def alerting_api(live_app: Callable[..., Any], receiver: Receiver) -> Iterator[httpx.Client]:
    """An API client for an app whose signed events go to `receiver`."""
    with (
        receiving(receiver) as url,
        live_app(notify_webhook_url=url, notify_webhook_secret=SECRET) as (flask_app, base_url),
        httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {API_TOKEN}"}) as client,
    ):
        client.app = flask_app  # type: ignore[attr-defined]
        process.install(runtime_of(flask_app))
        yield client


def alerts_counted(api: httpx.Client, alert: str) -> float:
    for line in api.get("/metrics").text.splitlines():
        if line.startswith(f'rollcall_alerts_total{{alert="{alert}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_a_delivery_that_fails_for_good_is_announced_once(
    alerting_api: httpx.Client, receiver: Receiver
) -> None:
    api = alerting_api
    runtime = runtime_of(api.app)  # type: ignore[attr-defined]
    standup, retro = make_room(runtime)[1], make_room(runtime, "retro", "r-2")[1]
    post(api, standup, 1)
    run_worker(runtime)
    foreign = post(api, retro, 2, meeting="ms-1", room="retro")  # standup's meeting, through retro's URL
    run_worker(runtime)
    assert api.get("/api/events", params={"status": "failed"}).json()["items"][0]["id"] == foreign
    [(_, event)] = receiver.events
    assert event["type"] == "delivery.failed"
    data = event["data"]
    assert (data["id"], data["room"], data["event"]) == (foreign, "retro", "participant-joined")
    assert "another room" in data["statusReason"]
    assert (data["meetingSessionId"], data["participantSessionId"]) == ("ms-1", "ps-2")
    assert alerts_counted(api, "delivery.failed") == 1
    # Replayed and failing again: the ledger has announced it already.
    assert api.post(f"/api/events/{foreign}/replay").status_code == 202
    run_worker(runtime)
    assert len(receiver.events) == 1


def test_a_silent_live_session_is_announced_once(alerting_api: httpx.Client, receiver: Receiver) -> None:
    api = alerting_api
    runtime = runtime_of(api.app)  # type: ignore[attr-defined]
    room_id = make_folding_room(runtime.Db)
    # Deliveries received in March: long past STALE_SESSION_SECONDS by now.
    fold(
        runtime.Db,
        room_id,
        [[join("m-silent", "s1", 0, name="Ann"), leave("m-silent", "s1", 40, name="Ann")]],
    )
    for _ in range(2):
        Queue(QUEUE_NAME, connection=runtime.redis).enqueue(sweep_stale_sessions)
        run_worker(runtime)
    [(_, event)] = receiver.events
    assert event["type"] == "session.stale"
    assert (event["data"]["meetingSessionId"], event["data"]["status"]) == ("m-silent", "ended")
    assert alerts_counted(api, "session.stale") == 1
    assert alerts_counted(api, "delivery.failed") == 0
