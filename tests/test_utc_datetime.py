"""The UTC timestamp type reads back the same instant it stored, on both databases."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.pure.test_utc_datetime import MOMENTS
from workers.models import Room
from workers.rooms import new_token, token_hash


@pytest.mark.parametrize("moment", MOMENTS)
def test_a_stored_moment_reads_back_as_the_same_aware_instant(
    Db: sessionmaker[Session], moment: datetime
) -> None:
    with Db.begin() as db:
        room = Room(room_name="r", webhook_token_hash=token_hash(new_token()), created_at=moment)
        db.add(room)
        db.flush()
        room_id = room.id
    with Db() as db:
        stored = db.scalar(select(Room.created_at).where(Room.id == room_id))
    assert stored == moment
    assert stored is not None and stored.utcoffset() == timedelta(0)
    # Compared in the database too: the stored text orders as the instants do.
    with Db() as db:
        found = db.scalar(select(Room.id).where(Room.created_at < moment + timedelta(microseconds=1)))
    assert found == room_id
