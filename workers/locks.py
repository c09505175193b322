"""One writer per room: the Redis lock every job that changes a room's sessions holds, and the row
lock in the database behind it.

The Redis lock is a short lease that a thread of the holder renews for as long as the holder runs: a
live holder keeps its room however long its job takes, and a killed one's lease lapses within
LEASE_SECONDS. A holder stalled past its lease (a paused process) could be overtaken: the row lock is
what still keeps the two apart then.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from redis import Redis
from redis.exceptions import LockError, LockNotOwnedError, RedisError
from redis.lock import Lock
from sqlalchemy import select
from sqlalchemy.orm import Session

from workers.models import MeetingSession, Room

log = logging.getLogger(__name__)

LEASE_SECONDS = 5.0  # how soon a killed holder's lock frees itself
# Renewed five times a lease: four renewals in a row can fail (a Redis blip, a long pause) before it lapses.
RENEW_SECONDS = LEASE_SECONDS / 5
# How long a job waits for a live holder before RoomBusy, which RQ's retry (or the relay) runs again later.
WAIT_SECONDS = 25.0


class RoomBusy(RuntimeError):
    """Another worker kept the room's lock for longer than we could wait: retry later."""


def lock_key(room_id: int) -> str:
    """Return the Redis key of a room's lock."""
    return f"rollcall:lock:room:{room_id}"


@contextmanager
def room_lock(redis: Redis, room_id: int, *, wait: bool = True) -> Iterator[None]:
    """Hold the room's Redis lock while the block runs, waiting for another holder; RoomBusy if that fails.

    With `wait` false, RoomBusy at once if another holds it: the caller has other rooms to go on with.
    """
    # Not thread-local: the renewing thread needs the token the acquiring thread got.
    lock = redis.lock(
        lock_key(room_id),
        timeout=LEASE_SECONDS,
        blocking_timeout=WAIT_SECONDS,
        thread_local=False,
    )
    if not lock.acquire(blocking=wait):
        raise RoomBusy(f"room {room_id} is being folded by another worker")
    stop = threading.Event()
    renewer = threading.Thread(
        target=_renew, args=(lock, room_id, stop), name=f"room-lock-{room_id}", daemon=True
    )
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()
        try:
            lock.release()
        except LockError:
            log.warning("room %s: lock expired before the job finished", room_id)


def _renew(lock: Lock, room_id: int, stop: threading.Event) -> None:
    while not stop.wait(RENEW_SECONDS):
        try:
            lock.reacquire()
        except LockNotOwnedError:
            log.warning("room %s: lock lapsed while the job ran; its row lock still guards it", room_id)
            return
        except RedisError:
            continue  # an outage: the job meets it too, and says so; renew again once Redis is back


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
