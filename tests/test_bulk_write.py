"""Bulk writes on SQLite (executemany) and PostgreSQL (COPY, a COPY-filled scratch table) store what
SQLAlchemy's insert() and update() store."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest
from sqlalchemy import Table, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from tests.arranged import make_meeting_session
from workers.bulk_write import SCRATCH_TABLE_ROWS, insert_rows, update_rows
from workers.models import AttendanceRow

ATTENDANCE = cast(Table, AttendanceRow.__table__)
AT = datetime(2026, 3, 2, 9, 0, 0, 123456, tzinfo=UTC)


def person(session_id: int, key: str, **changes: Any) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "participant_key": key,
        "identified_by": "name",
        "name": 'Zoë "Z" O\'Neil\ttab',  # quotes, a tab and non-ASCII: COPY's text format escapes them
        "email": None,
        "external_user_id": None,
        "first_join_at": AT,
        "last_left_at": None,
        "attended_ms": 1234,
        "attendance_percent": 41.5,
        "join_count": 2,
        "present": None,
        "inferred": True,
        "is_host": False,
        "segments": [
            {"participantSessionId": "p\\1", "joinedAt": "2026-03-02T09:00:00.123Z", "leftAt": None}
        ],
        **changes,
    }


def stored(Db: sessionmaker[Session], session_id: int) -> list[dict[str, Any]]:
    columns = [column for column in ATTENDANCE.columns if column.name not in ("id", "session_id")]
    with Db() as db:
        rows = db.execute(
            select(*columns)
            .where(ATTENDANCE.c.session_id == session_id)
            .order_by(ATTENDANCE.c.participant_key)
        )
        return [row._asdict() for row in rows]


def test_rows_are_stored_as_sqlalchemys_insert_stores_them(Db: sessionmaker[Session]) -> None:
    ours, theirs = make_meeting_session(Db, "ours"), make_meeting_session(Db, "theirs")
    changes: list[dict[str, Any]] = [
        {},
        {"last_left_at": AT, "present": False, "attendance_percent": None, "email": "a@b.example"},
        {"present": True, "inferred": False, "is_host": True, "segments": []},
    ]
    with Db.begin() as db:
        insert_rows(db, ATTENDANCE, (person(ours, f"name:{i}", **change) for i, change in enumerate(changes)))
        db.execute(
            insert(ATTENDANCE), [person(theirs, f"name:{i}", **change) for i, change in enumerate(changes)]
        )
    assert stored(Db, ours) == stored(Db, theirs)
    assert stored(Db, ours)[1]["last_left_at"] == AT  # a time keeps its zone and microseconds


def test_nothing_to_insert_is_fine(Db: sessionmaker[Session]) -> None:
    with Db.begin() as db:
        insert_rows(db, ATTENDANCE, [])


def test_columns_with_python_defaults_must_be_given(Db: sessionmaker[Session]) -> None:
    session_id = make_meeting_session(Db, "defaults")
    row = person(session_id, "name:a")
    del row["segments"]
    with pytest.raises(ValueError, match="segments"), Db.begin() as db:
        insert_rows(db, ATTENDANCE, [row])


def test_driver_errors_are_raised_as_sqlalchemys(Db: sessionmaker[Session]) -> None:
    session_id = make_meeting_session(Db, "twice")
    with pytest.raises(IntegrityError), Db.begin() as db:
        insert_rows(db, ATTENDANCE, [person(session_id, "name:a"), person(session_id, "name:a")])
    assert stored(Db, session_id) == []  # the transaction rolled back


@pytest.mark.parametrize("count", [3, SCRATCH_TABLE_ROWS])  # row by row, and (PostgreSQL) set-based
def test_updated_rows_store_what_they_are_given_and_no_other_row_changes(
    Db: sessionmaker[Session], count: int
) -> None:
    meeting, untouched = make_meeting_session(Db, "updated"), make_meeting_session(Db, "untouched")
    with Db.begin() as db:
        insert_rows(db, ATTENDANCE, [person(meeting, f"k{n:04}") for n in range(count)])
        insert_rows(db, ATTENDANCE, [person(untouched, "k0000")])
    with Db() as db:
        ids = db.scalars(
            select(ATTENDANCE.c.id).where(ATTENDANCE.c.session_id == meeting).order_by(ATTENDANCE.c.id)
        ).all()
    changed = {"last_left_at": AT, "present": True, "attendance_percent": None, "segments": []}
    with Db.begin() as db:  # twice in one transaction: the second call must find no scratch table left
        update_rows(db, ATTENDANCE, [{"id": i, "join_count": 7} for i in ids])
        update_rows(
            db, ATTENDANCE, [{"id": i, **person(meeting, f"k{n:04}", **changed)} for n, i in enumerate(ids)]
        )
    expected = person(meeting, "", **changed)
    assert [{k: v for k, v in row.items() if k != "participant_key"} for row in stored(Db, meeting)] == [
        {k: v for k, v in expected.items() if k not in ("session_id", "participant_key")}
    ] * count
    assert [row["participant_key"] for row in stored(Db, meeting)] == [f"k{n:04}" for n in range(count)]
    assert stored(Db, untouched) == [
        {k: v for k, v in person(untouched, "k0000").items() if k != "session_id"}
    ]
