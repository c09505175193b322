"""Alerts: a signed delivery.failed or session.stale event, once each, and a metric, by a real worker."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from rq import Queue
from sqlalchemy import select, text

from tests.conftest import API_TOKEN, run_worker
from tests.pure.test_webhook_signing import SECRET
from tests.test_audit import post
from tests.test_folding import fold, join, leave
from tests.test_folding import make_room as make_folding_room
from tests.test_inbox import make_room
from tests.test_outbound import Receiver, receiving
from webhooks import runtime_of
from workers.jobs import relay_rooms, sweep_stale_sessions
from workers.models import Delivery, Notification
from workers.runtime import process
from workers.runtime.process import QUEUE_NAME, Runtime


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


@contextmanager
def ledger_refused(runtime: Runtime) -> Iterator[None]:
    """Make the database refuse every new notification, as a worker killed before writing one leaves it."""
    sqlite = runtime.engine.dialect.name == "sqlite"
    statements = (
        ["CREATE TRIGGER refuse BEFORE INSERT ON notifications BEGIN SELECT RAISE(ABORT, 'refused'); END"]
        if sqlite
        else [
            "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$ "
            "LANGUAGE plpgsql",
            "CREATE TRIGGER refuse BEFORE INSERT ON notifications FOR EACH ROW EXECUTE FUNCTION refuse()",
        ]
    )
    with runtime.engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))
    try:
        yield
    finally:
        with runtime.engine.begin() as connection:
            connection.execute(
                text("DROP TRIGGER refuse" if sqlite else "DROP TRIGGER refuse ON notifications")
            )
            if not sqlite:
                connection.execute(text("DROP FUNCTION refuse()"))


def failed_and_alerted(runtime: Runtime) -> tuple[set[int], set[int]]:
    """Return the ids of the failed deliveries, and of the deliveries with an alert in the ledger."""
    with runtime.Db() as db:
        failed = set(db.scalars(select(Delivery.id).where(Delivery.status == "failed")))
        alerted = db.scalars(select(Notification.delivery_id).where(Notification.delivery_id.is_not(None)))
        return failed, {delivery_id for delivery_id in alerted if delivery_id is not None}


def test_a_delivery_is_never_failed_without_its_alert_in_the_ledger(
    alerting_api: httpx.Client, receiver: Receiver
) -> None:
    api = alerting_api
    runtime = runtime_of(api.app)  # type: ignore[attr-defined]
    standup, retro = make_room(runtime)[1], make_room(runtime, "retro", "r-2")[1]
    post(api, standup, 1)
    run_worker(runtime)
    with ledger_refused(runtime):  # the alert cannot be written once the fold has found the failure
        foreign = post(api, retro, 2, meeting="ms-1", room="retro")
        run_worker(runtime)
        failed, alerted = failed_and_alerted(runtime)
        assert failed <= alerted  # not failed, then: still to fold, with its alert, once the ledger takes it
    assert failed == set() and receiver.events == []

    relay_rooms(runtime, None)  # as the periodic relay (or the drain's retry) does
    run_worker(runtime)

    assert failed_and_alerted(runtime) == ({foreign}, {foreign})
    [(_, event)] = receiver.events
    assert (event["type"], event["data"]["id"]) == ("delivery.failed", foreign)
    relay_rooms(runtime, None)
    run_worker(runtime)
    assert len(receiver.events) == 1  # sent once


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
