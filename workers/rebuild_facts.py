"""Read a session's stored deliveries for a rebuild: the database merges what it can, Python the rest.

A rebuild needs one merged SegmentFacts per participant session, and the session's own facts. Most of a
session's deliveries are joins and leaves whose fact columns this parser filled: the database groups those
by participant session (earliest join, latest leave) and Python sees one row per participant session
instead of one per delivery. The rest goes through the fold's own per-delivery merge: starts and ends,
joins and leaves with no participant session id, rows stamped by another parser version, and participant
sessions whose deliveries disagree about who it is (the rule that picks an identity is Python's alone).
Every merge is idempotent, so a delivery merged both ways counts once. Tests hold the paths to one answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, case, func, not_, select

from workers.delivery_facts import FACT_COLUMNS, read_facts
from workers.meetings import IN_CHUNK, segment_facts_of
from workers.models import Delivery, DeliveryStatus
from workers.models.inbox import FACTS_VERSION
from workers.participant_facts import Identity, SegmentFacts, merge_segment_facts
from workers.session_facts import SessionFacts, SessionSummary, apply_session_fact, merge_summary

JOIN, LEAVE = "participant-joined", "participant-left"
_IDENTITY = (Delivery.external_user_id, Delivery.email, Delivery.name)


def read_session(connection: Connection, session_id: int, into: SessionFacts) -> dict[str, SegmentFacts]:
    """Merge the session's deliveries' session facts into `into`; return its participant sessions' facts."""
    live = and_(Delivery.session_id == session_id, Delivery.status != DeliveryStatus.FAILED)
    grouped = and_(
        live,
        Delivery.facts_version == FACTS_VERSION,
        Delivery.event.in_((JOIN, LEAVE)),
        # Never NULL, so that not_(grouped) below holds for every row grouped does not.
        Delivery.participant_session_id.is_not(None) & (Delivery.participant_session_id != ""),
    )
    first_fact, last_received = connection.execute(
        select(func.min(Delivery.event_time), func.max(Delivery.received_at)).where(grouped)
    ).one()
    merge_summary(into, SessionSummary(first_fact, last_received, None, None, None))
    participants, disputed = _grouped_participants(connection, grouped)
    for chunk in range(0, len(disputed), IN_CHUNK):
        in_chunk = Delivery.participant_session_id.in_(disputed[chunk : chunk + IN_CHUNK])
        _merge_rows(connection.execute(select(*FACT_COLUMNS).where(grouped, in_chunk)), into, participants)
    rest = select(*FACT_COLUMNS).where(live, not_(grouped)).execution_options(yield_per=5000)
    _merge_rows(connection.execute(rest), into, participants)
    return participants


def _grouped_participants(
    connection: Connection, grouped: ColumnElement[bool]
) -> tuple[dict[str, SegmentFacts], list[str]]:
    # Where a participant session's deliveries all name one value per identity field (min = max), that is
    # the merged identity; where they differ, it is left for Python to pick and the session is "disputed".
    query = (
        select(
            Delivery.participant_session_id,
            func.min(case((Delivery.event == JOIN, Delivery.event_time), else_=Delivery.join_time)),
            func.max(case((Delivery.event == LEAVE, Delivery.event_time))),
            *(bound(column) for column in _IDENTITY for bound in (func.min, func.max)),
        )
        .where(grouped)
        .group_by(Delivery.participant_session_id)
        .execution_options(yield_per=5000)
    )
    participants: dict[str, SegmentFacts] = {}
    disputed: list[str] = []
    for psid, joined_at, left_at, *ranges in connection.execute(query):
        identity = _agreed(ranges)
        if identity is None:
            disputed.append(psid)
        else:
            participants[psid] = SegmentFacts(psid, joined_at, left_at, identity)
    return participants, disputed


def _agreed(ranges: Sequence[Any]) -> Identity | None:
    # (min, max) of each identity field; NULLs count for nothing, as None does when identities merge.
    ext_min, ext_max, email_min, email_max, name_min, name_max = ranges
    if ext_min != ext_max or email_min != email_max or name_min != name_max:
        return None
    return Identity(ext_min, email_min, name_min)


def _merge_rows(
    rows: Iterable[Sequence[Any]], into: SessionFacts, participants: dict[str, SegmentFacts]
) -> None:
    for facts, received_at in read_facts(rows):
        apply_session_fact(into, facts, received_at)
        incoming = segment_facts_of(facts)
        if incoming is not None:
            known = participants.get(incoming.participant_session_id)
            participants[incoming.participant_session_id] = (
                incoming if known is None else merge_segment_facts(known, incoming)
            )
