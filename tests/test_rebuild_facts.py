"""A rebuild's read of a session (rebuild_facts.read_session), on SQLite and PostgreSQL.

The database groups most joins and leaves itself; whatever it cannot merge goes through the fold's
per-delivery merge. For any mix of deliveries the answer must be the per-delivery merge of all of them.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from workers.delivery_facts import FACT_COLUMNS, fact_values, read_facts
from workers.meetings import segment_facts_of
from workers.models import Delivery, DeliveryStatus, MeetingSession, Room, SessionStatus
from workers.participant_facts import Identity, SegmentFacts, merge_segment_facts
from workers.payloads import parse_delivery
from workers.rebuild_facts import read_session
from workers.room_tokens import new_token, token_hash
from workers.session_facts import SESSION_FACT_NAMES, apply_session_fact
from workers.timefmt import iso_ms

T0 = datetime(2026, 5, 4, 15, 0, tzinfo=UTC)
JOIN, LEAVE, START, END = "participant-joined", "participant-left", "meeting-started", "meeting-ended"
TIME_FIELD = {JOIN: "joinTime", LEAVE: "leftTime", START: "startTime", END: "endTime"}

# Each field real, blank or absent, in several spellings: where one session's deliveries differ, SQL's min
# would often take a blank one, which the identity rule never picks over a real one.
Who = st.builds(
    lambda ext, email, name: {
        k: v for k, v in (("externalUserId", ext), ("email", email), ("name", name)) if v
    },
    st.sampled_from([None, "u1", " "]),
    st.sampled_from([None, "Ann@x.io", "ann@x.io", "  "]),
    st.sampled_from([None, "Dee", "  ", "\tDee"]),
)
Rarely = st.sampled_from([False, False, False, True])
# (who, minute, stored by an older parser so its columns are not trusted, failed so a rebuild leaves it out)
One = st.tuples(Who, st.integers(0, 120), Rarely, Rarely)
Stays = st.lists(
    st.tuples(
        st.sampled_from(["p1", "p2", "p3", None]),  # None: the bodies name no participant session
        st.one_of(st.none(), One),  # its join
        st.one_of(st.none(), One),  # its leave
        st.one_of(st.none(), st.integers(0, 120)),  # the joinTime its leave reports
    ),
    min_size=1,
    max_size=6,
)
Marks = st.lists(st.tuples(st.sampled_from([START, END]), One), max_size=3)


def deliveries_of(stays: list[Any], marks: list[Any]) -> list[Any]:
    """Flatten drawn stays and marks into (event, psid, who, minute, leave's joinTime, older, failed)."""
    flat = [(event, None, who, at, None, older, failed) for event, (who, at, older, failed) in marks]
    for psid, joined, left, join_at in stays:
        if joined is not None:
            who, at, older, failed = joined
            flat.append((JOIN, psid, who, at, None, older, failed))
        if left is not None:
            who, at, older, failed = left
            flat.append((LEAVE, psid, who, at, join_at, older, failed))
    return flat


def new_session(Db: sessionmaker[Session]) -> int:
    """Create a room and one meeting session in it; return the session's id."""
    with Db.begin() as db:
        room = Room(room_name=f"r-{uuid.uuid4().hex[:8]}", webhook_token_hash=token_hash(new_token()))
        db.add(room)
        db.flush()
        meeting = MeetingSession(room_id=room.id, meeting_session_id=f"m-{uuid.uuid4().hex}")
        db.add(meeting)
        db.flush()
        return meeting.id


def minute(value: int) -> str:
    return iso_ms(T0 + timedelta(minutes=value))


def store(Db: sessionmaker[Session], session_id: int, deliveries: list[Any]) -> None:
    """Store deliveries as the receiver does (a repeated dedupe key is a duplicate: not stored again), some
    as an older parser left them, some failed."""
    rows: dict[str, dict[str, Any]] = {}
    for index, (event, psid, who, at, join_at, older, failed) in enumerate(deliveries):
        body: dict[str, Any] = {**who, TIME_FIELD[event]: minute(at), "n": index}  # n: no two alike
        if psid is not None:
            body["participantSessionId"] = psid
        if event == LEAVE and join_at is not None:
            body["joinTime"] = minute(join_at)
        raw = json.dumps(body)
        values = fact_values(parse_delivery(event, raw.encode(), "application/json", T0))
        if older:  # version 0, and columns that would mislead a reader who trusted them
            values.update(facts_version=0, name="stale", event_time=T0 - timedelta(days=1))
        rows.setdefault(
            values["dedupe_key"],
            {
                **values,
                "session_id": session_id,
                "raw_body": raw,
                "content_type": "application/json",
                "received_at": T0 + timedelta(minutes=at + index),
                "status": DeliveryStatus.FAILED if failed else DeliveryStatus.PROCESSED,
                "headers": {},
            },
        )
    if not rows:
        return
    with Db.begin() as db:
        room_id = db.get_one(MeetingSession, session_id).room_id
        db.execute(insert(Delivery), [{**row, "room_id": room_id} for row in rows.values()])


def blank_session() -> SimpleNamespace:
    return SimpleNamespace(**{**dict.fromkeys(SESSION_FACT_NAMES), "status": SessionStatus.LIVE})


def per_delivery(
    Db: sessionmaker[Session], session_id: int
) -> tuple[SimpleNamespace, dict[str, SegmentFacts]]:
    """Merge every delivery that did not fail one by one, as the fold does: the reference."""
    session = blank_session()
    participants: dict[str, SegmentFacts] = {}
    with Db() as db:
        rows = db.execute(
            select(*FACT_COLUMNS).where(
                Delivery.session_id == session_id, Delivery.status != DeliveryStatus.FAILED
            )
        )
        for facts, received_at in read_facts(rows):
            apply_session_fact(session, facts, received_at)
            incoming = segment_facts_of(facts)
            if incoming is not None:
                known = participants.get(incoming.participant_session_id)
                merged = incoming if known is None else merge_segment_facts(known, incoming)
                participants[incoming.participant_session_id] = merged
    return session, participants


def read(Db: sessionmaker[Session], session_id: int) -> tuple[SimpleNamespace, dict[str, SegmentFacts]]:
    """Read the session as a rebuild does."""
    session = blank_session()
    with Db() as db:
        participants = read_session(db.connection(), session_id, session)
    return session, participants


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stays=Stays, marks=Marks)
def test_the_grouped_read_is_the_per_delivery_merge(
    Db: sessionmaker[Session], stays: list[Any], marks: list[Any]
) -> None:
    session_id = new_session(Db)
    store(Db, session_id, deliveries_of(stays, marks))
    assert read(Db, session_id) == per_delivery(Db, session_id)


def test_a_participant_session_whose_deliveries_disagree_gets_the_identity_python_picks(
    Db: sessionmaker[Session],
) -> None:
    # SQL's min would take the blank name ("  " sorts before "Dee"); the identity rule takes a real one.
    session_id = new_session(Db)
    store(
        Db,
        session_id,
        [
            (JOIN, "p1", {"name": "  ", "email": "a@x.io"}, 0, None, False, False),
            (LEAVE, "p1", {"name": "Dee", "email": "a@x.io"}, 30, None, False, False),
            (JOIN, "p2", {"name": "Eve"}, 5, None, False, False),
            (LEAVE, "p2", {"name": "Eve"}, 20, 4, False, False),
        ],
    )
    _, participants = read(Db, session_id)
    assert participants == {
        "p1": SegmentFacts("p1", T0, T0 + timedelta(minutes=30), Identity(None, "a@x.io", "Dee")),
        "p2": SegmentFacts(
            "p2", T0 + timedelta(minutes=4), T0 + timedelta(minutes=20), Identity(None, None, "Eve")
        ),
    }


def test_an_older_row_merges_with_the_grouped_ones_and_a_failed_one_counts_for_nothing(
    Db: sessionmaker[Session],
) -> None:
    session_id = new_session(Db)
    store(
        Db,
        session_id,
        [
            (START, None, {}, 1, None, False, False),
            (JOIN, "p1", {"name": "Dee"}, 10, None, False, False),
            (LEAVE, "p1", {"name": "Dee"}, 50, 8, True, False),  # read from its body: joined at 8, left at 50
            (LEAVE, "p1", {"name": "Dee"}, 90, None, False, True),  # failed
            (END, None, {}, 60, None, False, False),
        ],
    )
    session, participants = read(Db, session_id)
    assert participants == {
        "p1": SegmentFacts(
            "p1", T0 + timedelta(minutes=8), T0 + timedelta(minutes=50), Identity(None, None, "Dee")
        )
    }
    assert (session.reported_start, session.reported_end, session.status) == (
        T0 + timedelta(minutes=1),
        T0 + timedelta(minutes=60),
        SessionStatus.ENDED,
    )
    assert session.earliest_fact_at == T0 + timedelta(minutes=1)
