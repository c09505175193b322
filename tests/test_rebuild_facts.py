"""A rebuild's read of a session (rebuild_facts.read_session), on SQLite and PostgreSQL.

The database groups most joins and leaves itself; whatever it cannot merge goes through the fold's
per-delivery merge. For any mix of deliveries the answer must be the per-delivery merge of all of them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, NamedTuple

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from tests.arranged import make_meeting_session
from workers.attendance import (
    SESSION_FACT_NAMES,
    Identity,
    SegmentFacts,
    apply_session_fact,
    merge_into,
    segment_facts_of,
)
from workers.deliveries.parsing import END, FACTS_VERSION, JOIN, LEAVE, START, parse_delivery
from workers.deliveries.stored import FACT_COLUMNS, fact_values, read_facts
from workers.folding import read_session
from workers.models import Delivery, DeliveryStatus, MeetingSession, SessionStatus
from workers.timefmt import iso_ms

T0 = datetime(2026, 5, 4, 15, 0, tzinfo=UTC)
TIME_FIELD = {JOIN: "joinTime", LEAVE: "leftTime", START: "startTime", END: "endTime"}

# Each field real, blank or absent, in several spellings: where one session's deliveries differ, SQL's min
# would often take a blank one, which the identity rule never picks over a real one.
Who = st.builds(
    lambda ext, email, name, admin: {
        k: v
        for k, v in (("externalUserId", ext), ("email", email), ("name", name), ("isAdmin", admin))
        if v is not None
    },
    st.sampled_from([None, "u1", " "]),
    st.sampled_from([None, "Ann@x.io", "ann@x.io", "  "]),
    st.sampled_from([None, "Dee", "  ", "\tDee"]),
    st.sampled_from([None, False, True]),  # isAdmin: merged as True wins, None counting for nothing
)


class Sent(NamedTuple):
    """One delivery to store: what it says, and how the receiver and the worker left it."""

    event: str
    psid: str | None  # None: the body names no participant session
    who: dict[str, str]
    minute: int
    join_minute: int | None = None  # the joinTime a leave reports
    version: str = "current"  # "older" or "newer": stamped by another parser, so its columns are not trusted
    status: DeliveryStatus = DeliveryStatus.PROCESSED
    names_meeting: bool = False  # names its meeting session, which puts it under another dedupe key


Mostly = st.sampled_from
One = st.tuples(
    Who,
    st.integers(0, 120),
    Mostly(["current"] * 4 + ["older", "newer"]),
    Mostly([DeliveryStatus.PROCESSED] * 4 + list(DeliveryStatus)),
    st.booleans(),
)
Stays = st.lists(
    st.tuples(
        st.sampled_from(["p1", "p2", "p3", None]),
        st.lists(One, max_size=2),  # its joins (two under different dedupe keys when one names the meeting)
        st.lists(One, max_size=2),  # its leaves
        st.one_of(st.none(), st.integers(0, 120)),  # the joinTime its leaves report
    ),
    min_size=1,
    max_size=6,
)
Marks = st.lists(st.tuples(st.sampled_from([START, END]), One), max_size=3)


def deliveries_of(stays: list[Any], marks: list[Any]) -> list[Sent]:
    """Flatten drawn stays and marks into deliveries."""
    sent = [Sent(event, None, who, at, None, *rest) for event, (who, at, *rest) in marks]
    for psid, joins, leaves, join_minute in stays:
        sent += [Sent(JOIN, psid, who, at, None, *rest) for who, at, *rest in joins]
        sent += [Sent(LEAVE, psid, who, at, join_minute, *rest) for who, at, *rest in leaves]
    return sent


def at(value: int) -> datetime:
    return T0 + timedelta(minutes=value)


def minute(value: int) -> str:
    return iso_ms(at(value))


def store(Db: sessionmaker[Session], session_id: int, deliveries: list[Sent]) -> None:
    """Store deliveries as the receiver does: a repeated dedupe key is a duplicate, not stored again."""
    rows: dict[str, dict[str, Any]] = {}
    for index, sent in enumerate(deliveries):
        body: dict[str, Any] = {**sent.who, TIME_FIELD[sent.event]: minute(sent.minute), "n": index}
        if sent.psid is not None:
            body["participantSessionId"] = sent.psid
        if sent.names_meeting:
            body["meetingSessionId"] = "m"
        if sent.event == LEAVE and sent.join_minute is not None:
            body["joinTime"] = minute(sent.join_minute)
        raw = json.dumps(body)
        values = fact_values(parse_delivery(sent.event, raw.encode(), "application/json", T0))
        if sent.version != "current":  # and columns that would mislead a reader who trusted them
            version = FACTS_VERSION - 1 if sent.version == "older" else FACTS_VERSION + 1
            stale = {"name": "stale", "is_admin": True, "event_time": T0 - timedelta(days=1)}
            values.update(facts_version=version, **stale)
        rows.setdefault(
            values["dedupe_key"],
            {
                **values,
                "session_id": session_id,
                "raw_body": raw,
                "content_type": "application/json",
                "received_at": T0 + timedelta(minutes=sent.minute + index),
                "status": sent.status,
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
    meeting = blank_session()
    participants: dict[str, SegmentFacts] = {}
    with Db() as db:
        rows = db.execute(
            select(*FACT_COLUMNS).where(
                Delivery.session_id == session_id, Delivery.status != DeliveryStatus.FAILED
            )
        )
        for facts, received_at in read_facts(rows):
            apply_session_fact(meeting, facts, received_at)
            incoming = segment_facts_of(facts)
            if incoming is not None:
                merge_into(participants, incoming)
    return meeting, participants


def read(Db: sessionmaker[Session], session_id: int) -> tuple[SimpleNamespace, dict[str, SegmentFacts]]:
    """Read the session as a rebuild does."""
    meeting = blank_session()
    with Db() as db:
        participants = read_session(db.connection(), session_id, meeting)
    return meeting, participants


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stays=Stays, marks=Marks)
def test_the_grouped_read_is_the_per_delivery_merge(
    Db: sessionmaker[Session], stays: list[Any], marks: list[Any]
) -> None:
    session_id = make_meeting_session(Db)
    store(Db, session_id, deliveries_of(stays, marks))
    assert read(Db, session_id) == per_delivery(Db, session_id)


def test_a_join_and_leave_that_disagree_get_the_identity_python_picks(Db: sessionmaker[Session]) -> None:
    # SQL's min would take the blank name ("  " sorts before "Dee"); the identity rule takes a real one.
    session_id = make_meeting_session(Db)
    store(
        Db,
        session_id,
        [
            Sent(JOIN, "p1", {"name": "  ", "email": "a@x.io"}, 0),
            Sent(LEAVE, "p1", {"name": "Dee", "email": "a@x.io"}, 30),
            Sent(JOIN, "p2", {"name": "Eve"}, 5),
            Sent(LEAVE, "p2", {"name": "Eve"}, 20, join_minute=4),
        ],
    )
    _, participants = read(Db, session_id)
    assert participants == {
        "p1": SegmentFacts("p1", at(0), at(30), Identity(None, "a@x.io", "Dee")),
        "p2": SegmentFacts("p2", at(4), at(20), Identity(None, None, "Eve")),
    }


def test_three_deliveries_that_disagree_are_merged_one_by_one(Db: sessionmaker[Session]) -> None:
    # Least "  ", greatest "Eve": the rule picks "Dee", between them, which only the deliveries show.
    session_id = make_meeting_session(Db)
    store(
        Db,
        session_id,
        [
            Sent(JOIN, "p1", {"name": "  "}, 0),
            Sent(JOIN, "p1", {"name": "Dee"}, 1, names_meeting=True),
            Sent(LEAVE, "p1", {"name": "Eve"}, 30),
            Sent(JOIN, "p2", {"name": "Ann"}, 2),
            Sent(JOIN, "p2", {"name": "Ann"}, 3, names_meeting=True),
            Sent(LEAVE, "p2", {"name": "Ann"}, 9),
        ],
    )
    _, participants = read(Db, session_id)
    assert participants == {
        "p1": SegmentFacts("p1", at(0), at(30), Identity(None, None, "Dee")),
        "p2": SegmentFacts("p2", at(2), at(9), Identity(None, None, "Ann")),
    }


def test_an_older_row_merges_with_the_grouped_ones_and_a_failed_one_counts_for_nothing(
    Db: sessionmaker[Session],
) -> None:
    session_id = make_meeting_session(Db)
    store(
        Db,
        session_id,
        [
            Sent(START, None, {}, 1),
            Sent(JOIN, "p1", {"name": "Dee"}, 10),
            Sent(LEAVE, "p1", {"name": "Dee"}, 50, join_minute=8, version="older"),  # its body: 8 to 50
            Sent(LEAVE, "p1", {"name": "Dee"}, 90, status=DeliveryStatus.FAILED, names_meeting=True),
            Sent(END, None, {}, 60),
        ],
    )
    meeting, participants = read(Db, session_id)
    assert participants == {"p1": SegmentFacts("p1", at(8), at(50), Identity(None, None, "Dee"))}
    assert (meeting.earliest_fact_at, meeting.reported_start, meeting.reported_end, meeting.status) == (
        at(1),
        at(1),
        at(60),
        SessionStatus.ENDED,
    )
