"""Rows that tests arrange directly in the database, for the tests that read or write sessions' rows."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session, sessionmaker

from workers.models import MeetingSession, Room
from workers.rooms import new_token, token_hash


def make_meeting_session(Db: sessionmaker[Session], room_name: str | None = None) -> int:
    """Create a room (named, else freshly) with one meeting session in it; return the session's id."""
    name = room_name or f"r-{uuid.uuid4().hex[:8]}"
    with Db.begin() as db:
        room = Room(room_name=name, webhook_token_hash=token_hash(new_token()))
        db.add(room)
        db.flush()
        meeting = MeetingSession(room_id=room.id, meeting_session_id=f"ms-{name}")
        db.add(meeting)
        db.flush()
        return meeting.id
