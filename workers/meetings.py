"""Find the meeting session a delivery belongs to, and merge the delivery's fact into stored state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from workers.deliveries.parsing import JOIN, PARTICIPANT_EVENTS, DeliveryFacts
from workers.locks import lock_room_row
from workers.models import MeetingSession, ParticipantSession, SessionStatus
from workers.participant_facts import (
    Identity,
    SegmentFacts,
    merge_segment_facts,
    person_key,
)
from workers.room_timeline import Timeline
from workers.unnamed import load_timeline, place

IN_CHUNK = 500  # ids per IN (...) list: well inside every database's parameter limit


class ForeignSession(ValueError):
    """A delivery names a meeting session that another room's deliveries created."""


@dataclass(frozen=True)
class FoldRules:
    """Settings that shape how facts are folded."""

    reconnect_grace_seconds: int = 30
    finalize_after_seconds: int = 120


class MeetingResolver:
    """Map deliveries of one room to their meeting sessions, creating sessions as they appear."""

    def __init__(self, db: Session, room_id: int, rules: FoldRules) -> None:
        self.db, self.rules = db, rules
        self.room = lock_room_row(db, room_id)
        self.known: dict[str, MeetingSession] = {}
        self.created: set[int] = set()  # ids of the sessions this fold made
        self._timeline: Timeline | None = None

    @property
    def timeline(self) -> Timeline:
        """The room's timeline as stored when first asked for; a start or end stored later re-places later."""
        if self._timeline is None:
            self._timeline = load_timeline(self.db, self.room.id)
        return self._timeline

    def session_for(self, facts: DeliveryFacts) -> MeetingSession:
        """Return the delivery's meeting session: by its id, else by where it falls on the room's timeline."""
        if facts.meeting_session_id:
            return self.by_id(facts.meeting_session_id)
        return self.by_id(self.timeline.meeting_at(place(facts.event, facts.event_time, facts.join_time)))

    def find(self, meeting_session_id: str) -> MeetingSession | None:
        """Return the meeting session of that id, if there is one."""
        return self.known.get(meeting_session_id) or self.db.scalar(
            select(MeetingSession).where(MeetingSession.meeting_session_id == meeting_session_id)
        )

    def forget(self, meeting: MeetingSession) -> None:
        """Drop a session renamed or deleted from what this fold knows."""
        if self.known.get(meeting.meeting_session_id) is meeting:
            del self.known[meeting.meeting_session_id]

    def rename(self, meeting: MeetingSession, meeting_session_id: str) -> None:
        """Give a session another meeting session id, and know it by that one."""
        self.forget(meeting)
        meeting.meeting_session_id = meeting_session_id
        self.known[meeting_session_id] = meeting

    def by_id(self, meeting_session_id: str) -> MeetingSession:
        """Return the room's meeting session of that id, creating it if it is new."""
        meeting = self.find(meeting_session_id)
        if meeting is None:
            # The rules are stamped now, so a later change to the room does not rewrite this session.
            meeting = MeetingSession(
                room_id=self.room.id,
                meeting_session_id=meeting_session_id,
                status=SessionStatus.LIVE,
                min_attendance_percent=self.room.min_attendance_percent,
                reconnect_grace_seconds=self.rules.reconnect_grace_seconds,
            )
            self.db.add(meeting)
            self.db.flush()
            self.created.add(meeting.id)
        elif meeting.room_id != self.room.id:
            raise ForeignSession(f"meeting session {meeting_session_id} belongs to another room")
        self.known[meeting_session_id] = meeting
        return meeting


def segment_facts_of(facts: DeliveryFacts) -> SegmentFacts | None:
    """Return what a join or leave says about its participant session (None for starts and ends)."""
    if facts.event not in PARTICIPANT_EVENTS:
        return None
    is_join = facts.event == JOIN
    return SegmentFacts(
        # Without an id a join cannot be paired with its leave: each stands alone.
        facts.participant_session_id or f"anonymous:{facts.dedupe_key}",
        joined_at=facts.event_time if is_join else facts.join_time,
        left_at=None if is_join else facts.event_time,
        identity=Identity(facts.external_user_id, facts.email, facts.name),
    )


def merge_participants(db: Session, meeting: MeetingSession, incoming: Sequence[SegmentFacts]) -> set[str]:
    """Merge participant-session facts into the stored rows; return the person keys that may change."""
    rows: dict[str, ParticipantSession] = {}
    psids = sorted({facts.participant_session_id for facts in incoming})
    for chunk in range(0, len(psids), IN_CHUNK):
        rows.update(
            (row.participant_session_id, row)
            for row in db.scalars(
                select(ParticipantSession).where(
                    ParticipantSession.session_id == meeting.id,
                    ParticipantSession.participant_session_id.in_(psids[chunk : chunk + IN_CHUNK]),
                )
            )
        )
    touched: set[str] = set()
    for facts in incoming:
        row = rows.get(facts.participant_session_id)
        if row is None:
            row = rows[facts.participant_session_id] = ParticipantSession(
                session_id=meeting.id, participant_session_id=facts.participant_session_id, participant_key=""
            )
            db.add(row)
        touched.add(row.participant_key)
        store_facts(row, merge_segment_facts(stored_facts(row), facts))
        touched.add(row.participant_key)
    touched.discard("")
    return touched


def store_facts(row: ParticipantSession, facts: SegmentFacts) -> None:
    """Write merged participant-session facts, and the person key they give, into a row."""
    key = person_key(facts.identity, facts.participant_session_id)[0]
    for name, value in participant_values(facts, key).items():
        setattr(row, name, value)


def participant_values(facts: SegmentFacts, key: str) -> dict[str, Any]:
    """Return a participant session's row columns (all but its session) for its facts and person key."""
    identity = facts.identity
    return {
        "participant_session_id": facts.participant_session_id,
        "joined_at": facts.joined_at,
        "left_at": facts.left_at,
        "external_user_id": identity.external_user_id,
        "email": identity.email,
        "name": identity.name,
        "participant_key": key,
    }


def stored_facts(row: ParticipantSession) -> SegmentFacts:
    """Return a stored participant session as the maths sees it."""
    return SegmentFacts(
        row.participant_session_id,
        joined_at=row.joined_at,
        left_at=row.left_at,
        identity=Identity(row.external_user_id, row.email, row.name),
    )
