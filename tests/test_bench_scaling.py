"""The scaling benchmark's backlog is what the receiver would have stored for the same deliveries."""

from __future__ import annotations

import random
from typing import Any

import httpx
from sqlalchemy import select

from bench import scaling
from tests.test_hooks import hook
from tests.test_inbox import make_room
from webhooks import runtime_of
from workers.models import Delivery
from workers.runtime.process import Runtime

# Columns that differ between two rooms' copies of the same deliveries, or between two arrivals of them.
_PER_ARRIVAL = {"id", "room_id", "received_at", "headers", "source_address"}


def rows_of(runtime: Runtime, room_id: int) -> dict[str, dict[str, Any]]:
    """Return a room's stored deliveries by dedupe key, without the columns each arrival makes its own."""
    with runtime.Db() as db:
        deliveries = db.scalars(select(Delivery).where(Delivery.room_id == room_id)).all()
        return {
            delivery.dedupe_key: {
                column.key: getattr(delivery, column.key)
                for column in Delivery.__table__.columns
                if column.key not in _PER_ARRIVAL
            }
            for delivery in deliveries
        }


def test_the_backlog_is_stored_as_the_receiver_stores_the_same_deliveries(api: httpx.Client) -> None:
    runtime = runtime_of(api.app)  # type: ignore[attr-defined]
    posted_room, token = make_room(runtime, "posted-to", None)
    bench_room, _ = make_room(runtime, "benched", None)
    items = scaling.deliveries(40, True, random.Random(7))
    for event, body in items:
        answer = api.post(hook(token, event), content=body, headers={"Content-Type": "application/json"})
        assert answer.status_code in (200, 202), answer.text

    stored = scaling.store(runtime.settings.database_url or "", bench_room, items)

    by_receiver = rows_of(runtime, posted_room)
    assert stored == len(by_receiver) == 2 * 40 + 2  # every duplicate stored once
    assert any(row["duplicate_count"] for row in by_receiver.values())
    assert rows_of(runtime, bench_room) == by_receiver
