"""One writer per room: the Redis lock every job that changes a room's sessions holds, and the row
lock in the database behind it (the Redis lock is a lease: a stalled worker could outlive it)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from redis import Redis
from redis.exceptions import LockError
from redis.lock import Lock
from sqlalchemy import select
from sqlalchemy.orm import Session

from workers.models import MeetingSession, Room

log = logging.getLogger(__name__)

LOCK_SECONDS = 20  # a SIGKILLed worker's lock frees itself this soon; long jobs renew it


class RoomBusy(RuntimeError):
    """Another worker kept the room's lock for longer than we could wait: retry later."""


@contextmanager
def room_lock(
    redis: Redis, room_id: int, seconds: int = LOCK_SECONDS, *, wait: bool = True
) -> Iterator[Lock]:
    """Hold the room's Redis lock, waiting out a lock left by a dead worker; RoomBusy if that fails.

    With `wait` false, RoomBusy at once if another holds it: the caller has other rooms to go on with.
    """
    lock = redis.lock(f"rollcall:lock:room:{room_id}", timeout=seconds, blocking_timeout=LOCK_SECONDS + 5)
    if not lock.acquire(blocking=wait):
        raise RoomBusy(f"room {room_id} is being folded by another worker")
    try:
        yield lock
    finally:
        try:
            lock.release()
        except LockError:
            log.warning("room %s: lock expired before the job finished", room_id)


def lock_room_row(db: Session, room_id: int) -> Room:
    """Lock the room's row until the transaction ends, and return the room.

    FOR NO KEY UPDATE on PostgreSQL: it excludes another writer of the same room, yet not the receiver,
    whose INSERTs only take the KEY SHARE lock their foreign key needs. SQLite has no row locks; its
    single writer gives the same exclusion.
    """
    return db.scalars(select(Room).where(Room.id == room_id).with_for_update(key_share=True)).one()


def lock_session_room(db: Session, meeting: MeetingSession) -> None:
    """Lock the room row of a session, then re-read the session as it is now that no one else can write it."""
    lock_room_row(db, meeting.room_id)
    db.refresh(meeting)
