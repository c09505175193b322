"""The inbox on SQLite and PostgreSQL: insert-once, fates, and what the relay finds."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from workers import inbox
from workers.deliveries.parsing import parse_delivery
from workers.models import Delivery, MeetingSession, Room
from workers.models.base import utcnow
from workers.rooms import new_token, token_hash
from workers.runtime.process import Runtime


def make_room(
    runtime: Runtime, name: str = "standup", metered_room_id: str | None = "r-1"
) -> tuple[int, str]:
    """Insert a room directly and return its id and webhook token."""
    token = new_token()
    with runtime.Db.begin() as db:
        room = Room(room_name=name, metered_room_id=metered_room_id, webhook_token_hash=token_hash(token))
        db.add(room)
        db.flush()
        return room.id, token


def arrival(
    room_id: int, body: str, event: str = "participant-joined", age_seconds: float = 0
) -> inbox.Arrival:
    received_at = utcnow() - timedelta(seconds=age_seconds)
    facts = parse_delivery(event, body.encode(), "application/json", received_at)
    return inbox.Arrival(
        room_id, facts, body, "application/json", {"User-Agent": "t"}, "127.0.0.1", received_at
    )


def statuses(runtime: Runtime) -> dict[int, str]:
    with runtime.Db() as db:
        return {row_id: status for row_id, status in db.execute(select(Delivery.id, Delivery.status))}


def test_a_second_delivery_of_the_same_fact_is_counted_not_stored(runtime: Runtime) -> None:
    room_id, _ = make_room(runtime)
    first = inbox.store(runtime.engine, arrival(room_id, '{"_id": "p1", "name": "Ann"}'))
    again = inbox.store(runtime.engine, arrival(room_id, '{"_id": "p1", "name": "Ann B."}'))
    assert first.new and not again.new
    assert first.id == again.id
    with runtime.Db() as db:
        delivery = db.get_one(Delivery, first.id)
    assert (delivery.duplicate_count, delivery.status, delivery.raw_body) == (
        1,
        "queued",
        '{"_id": "p1", "name": "Ann"}',
    )
    assert delivery.headers == {"User-Agent": "t"}


def test_the_dedupe_key_is_scoped_by_room(runtime: Runtime) -> None:
    first_room, _ = make_room(runtime, "one")
    second_room, _ = make_room(runtime, "two", "r-2")
    assert inbox.store(runtime.engine, arrival(first_room, '{"_id": "p1"}')).new
    assert inbox.store(runtime.engine, arrival(second_room, '{"_id": "p1"}')).new


def test_mark_processed_refuses_a_delivery_already_folded(runtime: Runtime) -> None:
    room_id, _ = make_room(runtime)
    stored = inbox.store(runtime.engine, arrival(room_id, '{"_id": "p1"}'))
    with runtime.Db.begin() as db:
        meeting = MeetingSession(room_id=room_id, meeting_session_id="m-1")
        db.add(meeting)
        db.flush()
        meeting_id = meeting.id
        inbox.mark_processed(db, meeting_id, [stored.id])
    with pytest.raises(inbox.FoldConflict), runtime.Db.begin() as db:
        inbox.mark_processed(db, meeting_id, [stored.id])
    with runtime.Db() as db:
        delivery = db.get_one(Delivery, stored.id)
    assert (delivery.status, delivery.fold_count, delivery.session_id) == ("processed", 1, meeting_id)
    assert delivery.processed_at is not None


def test_fates_and_what_the_relay_finds(runtime: Runtime) -> None:
    room_id, _ = make_room(runtime)
    other_room, _ = make_room(runtime, "other", "r-2")
    old = inbox.store(runtime.engine, arrival(room_id, '{"_id": "old"}', age_seconds=60))
    fresh = inbox.store(runtime.engine, arrival(other_room, '{"_id": "fresh"}'))
    failed = inbox.store(runtime.engine, arrival(room_id, '{"_id": "bad"}', age_seconds=60))
    inbox.mark_unsignalled(runtime.engine, old.id)
    with runtime.Db.begin() as db:
        inbox.mark_failed(db, failed.id, "ValueError: no")
        assert inbox.rooms_to_relay(db, utcnow() - timedelta(seconds=5)) == [(room_id, True)]
        assert sorted(inbox.rooms_to_relay(db, None)) == [(room_id, True), (other_room, False)]
        inbox.mark_queued(db, [room_id])
    assert statuses(runtime) == {old.id: "queued", fresh.id: "queued", failed.id: "failed"}
    with runtime.Db.begin() as db:
        assert [d.id for d in inbox.unprocessed(db, room_id, 10)] == [old.id]
        assert inbox.reset_for_replay(db, failed.id) is not None
        assert inbox.reset_for_replay(db, 10_000) is None
    with runtime.Db() as db:
        replayed = db.get_one(Delivery, failed.id)
    assert (replayed.status, replayed.status_reason) == ("queued", None)


def test_store_many_stores_each_fact_once_and_answers_every_arrival_in_order(runtime: Runtime) -> None:
    room_id, _ = make_room(runtime)
    other_room, _ = make_room(runtime, "other", "r-2")
    earlier = inbox.store(runtime.engine, arrival(room_id, '{"_id": "p1"}'))
    bodies = ['{"_id": "p2"}', '{"_id": "p1"}', '{"_id": "p2", "name": "B"}', '{"_id": "p3"}']
    bodies.append('{"_id": "p2"}')
    answers = inbox.store_many(runtime.engine, [arrival(room_id, body) for body in bodies])
    p2, p1, p2_again, p3, p2_third = answers
    assert [answer.new for answer in answers] == [True, False, False, True, False]
    assert p1.id == earlier.id and p2.id == p2_again.id == p2_third.id and len({p1.id, p2.id, p3.id}) == 3
    in_other_room = inbox.store_many(runtime.engine, [arrival(other_room, '{"_id": "p1"}')])
    assert in_other_room[0].new
    with runtime.Db() as db:
        rows = db.execute(select(Delivery.id, Delivery.duplicate_count))
        counts = {row_id: count for row_id, count in rows}
        first_body = db.get_one(Delivery, p2.id).raw_body
    assert counts == {p1.id: 1, p2.id: 2, p3.id: 0, in_other_room[0].id: 0}
    assert first_body == '{"_id": "p2"}'  # the first arrival's body is the one kept


def test_store_many_refuses_more_than_a_statement_takes(runtime: Runtime) -> None:
    room_id, _ = make_room(runtime)
    arrivals = [arrival(room_id, f'{{"_id": "p{n}"}}') for n in range(inbox.GROUP_LIMIT + 1)]
    with pytest.raises(ValueError, match="at most"):
        inbox.store_many(runtime.engine, arrivals)
