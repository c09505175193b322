"""A stored delivery's facts, on SQLite and PostgreSQL: the kept columns read exactly as its body does.

Every delivery is stored the way the receiver stores it (inbox.store) and read back the way a rebuild
reads it (deliveries.stored.FACT_COLUMNS), so the comparison covers the round trip through the database too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from workers import inbox
from workers.deliveries.parsing import FACTS_VERSION, DeliveryFacts, parse_delivery
from workers.deliveries.stored import COLUMN_OF_FIELD, FACT_COLUMNS, facts_of, facts_of_row, read_facts
from workers.models import Delivery, Room
from workers.rooms import new_token, token_hash
from workers.runtime.connections import make_engine

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data; boundary=B"
# Below the millisecond on purpose: a time that stands in for a missing one is truncated to the ms.
RECEIVED = datetime(2024, 5, 1, 12, 0, 0, 987654, tzinfo=UTC)

PERSON = {"externalUserId": "u-1", "email": " Ann@Example.COM ", "name": "Ann  Ó'Brien"}
IN_M = {"meetingSessionId": "m"}
BODIES: list[tuple[str, dict[str, Any]]] = [
    # Every time alias of every event, in each format the contract allows.
    ("participant-joined", {"participantSessionId": "p1", **IN_M, "joinTime": "2021-07-27T18:59:16.448Z"}),
    ("participant-joined", {"_id": "p1", "sessionId": "m", "joinedAt": "2021-07-27T20:59:16.448999+02:00"}),
    ("participant-joined", {"participantId": 42, "meetingSessionId": 7, "timestamp": 1627412356}),
    ("participant-joined", {"_id": "p1", **PERSON, "roomName": "r", "roomId": "r-1", "isAdmin": True}),
    ("participant-left", {"_id": "p1", **IN_M, "leftTime": 1627412356448, "joinTime": "2021-07-27 18:00"}),
    ("participant-left", {"_id": "p1", "leaveTime": "1627412356.4489", "joinedAt": 1627410000}),
    ("participant-left", {"participantSessionId": "p1", "timestamp": 1627412356.448, **PERSON}),
    # No times: the received time stands in.
    ("participant-left", {"_id": "p1", **IN_M, "meta": {"seat": 4}, "isAdmin": False}),
    ("participant-left", {"name": "No Id", "leftTime": "2021-07-27T18:59:16Z"}),  # keyed by a body hash
    ("meeting-started", {**IN_M, "startTime": "2021-07-27T18:00:00Z"}),
    ("meeting-started", {"sessionId": "m", "createdAt": 1627408800}),
    ("meeting-started", {**IN_M, "created": "1627408800000"}),
    ("meeting-started", {**IN_M, "timestamp": "2021-07-27T18:00:00.5+00:00", "_id": "p9"}),
    ("meeting-started", {"roomName": "r"}),  # no ids, no time
    ("meeting-ended", {**IN_M, "endTime": "2021-07-27T19:00:00Z"}),
    ("meeting-ended", {**IN_M, "endedAt": 1627412400}),
    ("meeting-ended", {**IN_M, "timestamp": "2021-07-27T19:00:00.123456"}),
    ("meeting-ended", {**IN_M, "email": "", "name": None}),  # empty and null count as absent
    # The longest values the parser lets through fit the columns.
    ("participant-joined", {"_id": "\U0001f642" * 200, "email": "e" * 320, "name": "n" * 200, **IN_M}),
]
NOT_KEPT = ("room_name", "room_id", "meta")


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def room_id(Db: sessionmaker[Session]) -> int:
    with Db.begin() as db:
        room = Room(room_name="r", metered_room_id="r-1", webhook_token_hash=token_hash(new_token()))
        db.add(room)
        db.flush()
        return room.id


def store(engine: Engine, room_id: int, event: str, body: bytes, content_type: str = JSON) -> int:
    """Store a delivery as the receiver does; return its id."""
    facts = parse_delivery(event, body, content_type, RECEIVED)
    arrival = inbox.Arrival(room_id, facts, body.decode(), content_type, {}, None, RECEIVED)
    return inbox.store(engine, arrival).id


def read_back(Db: sessionmaker[Session], delivery_id: int) -> DeliveryFacts:
    """Read a stored delivery's facts as a rebuild does."""
    with Db() as db:
        row = db.execute(select(*FACT_COLUMNS).where(Delivery.id == delivery_id)).one()
    return facts_of_row(row)


def kept(facts: DeliveryFacts) -> dict[str, object]:
    """Return the kept fields, times spelled out so their zone and microseconds count too."""
    values = {name: getattr(facts, name) for name in COLUMN_OF_FIELD}
    return {name: v.isoformat() if isinstance(v, datetime) else v for name, v in values.items()}


@pytest.mark.parametrize(("event", "fields"), BODIES)
def test_the_columns_read_as_the_body_does(
    engine: Engine, Db: sessionmaker[Session], room_id: int, event: str, fields: dict[str, Any]
) -> None:
    body = json.dumps(fields).encode()
    from_columns = read_back(Db, store(engine, room_id, event, body))
    assert kept(from_columns) == kept(parse_delivery(event, body, JSON, RECEIVED))
    assert [getattr(from_columns, name) for name in NOT_KEPT] == [None] * len(NOT_KEPT)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (urlencode({"participantId": "p9", **PERSON, "joinTime": "1627412356448"}).encode(), FORM),
        (
            b'--B\r\nContent-Disposition: form-data; name="_id"\r\n\r\np3\r\n'
            b'--B\r\nContent-Disposition: form-data; name="joinedAt"\r\n\r\n2021-07-27T18:59:16Z\r\n'
            b"--B--\r\n",
            MULTIPART,
        ),
    ],
)
def test_form_bodies_too(
    engine: Engine, Db: sessionmaker[Session], room_id: int, body: bytes, content_type: str
) -> None:
    from_columns = read_back(Db, store(engine, room_id, "participant-joined", body, content_type))
    assert kept(from_columns) == kept(parse_delivery("participant-joined", body, content_type, RECEIVED))


def test_current_columns_are_trusted_without_the_body(
    engine: Engine, Db: sessionmaker[Session], room_id: int
) -> None:
    delivery_id = store(engine, room_id, "participant-joined", json.dumps(BODIES[0][1]).encode())
    with Db.begin() as db:
        db.execute(update(Delivery).where(Delivery.id == delivery_id).values(raw_body="not json"))
    with Db() as db:
        row = db.execute(select(*FACT_COLUMNS).where(Delivery.id == delivery_id)).one()
        delivery = db.get_one(Delivery, delivery_id)
        assert row.facts_version == FACTS_VERSION
        assert row.raw_body is None  # a rebuild does not even fetch it
        assert facts_of_row(row).participant_session_id == facts_of(delivery).participant_session_id == "p1"


def test_an_older_row_is_read_again_from_its_raw_body(
    engine: Engine, Db: sessionmaker[Session], room_id: int
) -> None:
    event, fields = (
        "participant-left",
        {"_id": "p1", **PERSON, "leftTime": 1627412356448, "joinedAt": 1627410000},
    )
    body = json.dumps(fields).encode()
    delivery_id = store(engine, room_id, event, body)
    stale = datetime(2000, 1, 1, tzinfo=UTC)
    with Db.begin() as db:  # as a row stored before the columns were kept: version 0, columns unset
        db.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id)
            .values(facts_version=0, external_user_id=None, email=None, name="stale", join_time=stale)
        )
    expected = kept(parse_delivery(event, body, JSON, RECEIVED))
    assert kept(read_back(Db, delivery_id)) == expected
    with Db() as db:
        assert kept(facts_of(db.get_one(Delivery, delivery_id))) == expected


def test_a_rebuild_reads_old_and_current_rows_alike(
    engine: Engine, Db: sessionmaker[Session], room_id: int
) -> None:
    distinct = [BODIES[i] for i in (0, 2, 4, 5, 9, 14)]  # none a duplicate of another
    bodies = [(event, json.dumps(fields).encode()) for event, fields in distinct]
    ids = [store(engine, room_id, event, body) for event, body in bodies]
    with Db.begin() as db:
        db.execute(update(Delivery).where(Delivery.id.in_(ids[::2])).values(facts_version=0, name="stale"))
    with Db() as db:
        rows = db.execute(select(*FACT_COLUMNS).where(Delivery.id.in_(ids)).order_by(Delivery.id))
        read = [(kept(facts), received_at) for facts, received_at in read_facts(rows)]
    assert read == [(kept(parse_delivery(event, body, JSON, RECEIVED)), RECEIVED) for event, body in bodies]
