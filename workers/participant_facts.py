"""Who a participant session is, and what its deliveries say about it, merged whatever their order.

Pure: each merge is commutative, associative and idempotent, so the merged facts depend only on the set
of deliveries.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple


# NamedTuples, not frozen dataclasses, for speed: see DeliveryFacts.
class Identity(NamedTuple):
    """What a delivery says identifies a person."""

    external_user_id: str | None = None
    email: str | None = None
    name: str | None = None


class SegmentFacts(NamedTuple):
    """What is known about one participant session, merged from its join and leave deliveries."""

    participant_session_id: str
    joined_at: datetime | None = None  # the join webhook's time, or a leave's joinTime
    left_at: datetime | None = None
    identity: Identity = Identity()


def _is_blank(value: str) -> bool:
    return not value.strip()


def _pick(a: str | None, b: str | None) -> str | None:
    # A total order (real values before blank ones, then by value) keeps merging a semilattice:
    # commutative, associative and idempotent, so delivery order can never change an identity.
    if a is None or a == b:
        return b
    if b is None:
        return a
    return min(a, b, key=lambda v: (_is_blank(v), v))


def merge_identity(a: Identity, b: Identity) -> Identity:
    """Merge two views of one identity, field by field."""
    if a == b:  # the common case (a join and its leave say the same): skip the field-by-field merge
        return a
    return Identity(
        _pick(a.external_user_id, b.external_user_id), _pick(a.email, b.email), _pick(a.name, b.name)
    )


def earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    """Return the earlier of two moments, either of which may be unknown."""
    return b if a is None else a if b is None else min(a, b)


def latest(a: datetime | None, b: datetime | None) -> datetime | None:
    """Return the later of two moments, either of which may be unknown."""
    return b if a is None else a if b is None else max(a, b)


def merge_segment_facts(a: SegmentFacts, b: SegmentFacts) -> SegmentFacts:
    """Merge two partial views of the same participant session."""
    if a.participant_session_id != b.participant_session_id:
        raise ValueError("cannot merge facts of different participant sessions")
    return SegmentFacts(
        a.participant_session_id,
        joined_at=earliest(a.joined_at, b.joined_at),
        left_at=latest(a.left_at, b.left_at),
        identity=merge_identity(a.identity, b.identity),
    )


def merge_into(merged: dict[str, SegmentFacts], facts: SegmentFacts) -> None:
    """Merge one view of a participant session into `merged`, keyed by participant session id."""
    known = merged.get(facts.participant_session_id)
    merged[facts.participant_session_id] = facts if known is None else merge_segment_facts(known, facts)


def person_key(identity: Identity, participant_session_id: str) -> tuple[str, str]:
    """Return (participantKey, identifiedBy) from the strongest identity field present."""
    ext, email, name = (
        v.strip() if v else "" for v in (identity.external_user_id, identity.email, identity.name)
    )
    if ext:
        return f"ext:{ext}", "externalUserId"
    if email:
        return f"email:{email.lower()}", "email"
    if name:
        return f"name:{' '.join(name.split())}", "name"
    return f"ps:{participant_session_id}", "participantSession"
