"""The lifecycle jobs, run by a real RQ worker: the sweeper closes silent sessions, finalize follows."""

from __future__ import annotations

import httpx
from rq import Queue
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import run_worker
from tests.test_folding import RULES, at, end, fold, join, leave, make_room, start, store
from webhooks import runtime_of
from workers import inbox
from workers.folding import fold_batch
from workers.jobs import finalize_overdue, sweep_stale_sessions
from workers.models import Delivery, MeetingSession, Room
from workers.runtime.process import QUEUE_NAME


def test_the_sweeper_job_closes_a_silent_session_at_its_latest_leave(
    api: httpx.Client, Db: sessionmaker[Session]
) -> None:
    room_id = make_room(Db)
    # Deliveries received in March: long past STALE_SESSION_SECONDS (6 h) by now.
    fold(Db, room_id, [[join("m-silent", "s1", 0, name="Ann"), leave("m-silent", "s1", 40, name="Ann")]])
    runtime = runtime_of(api.app)  # type: ignore[attr-defined]
    Queue(QUEUE_NAME, connection=runtime.redis).enqueue(sweep_stale_sessions)
    run_worker(runtime)
    body = api.get("/api/sessions/m-silent").json()
    assert (body["status"], body["endedAt"], body["inferred"]) == ("ended", "2026-03-02T09:40:00.000Z", True)
    assert body["attendance"][0]["attendancePercent"] == 100.0
    with Db() as db:
        meeting = db.scalars(select(MeetingSession)).one()
        assert meeting.closed_by_sweeper and meeting.end_received_at is not None
    # Finalizing is scheduled FINALIZE_AFTER_SECONDS after the sweep, not run at once.
    scheduled = Queue(QUEUE_NAME, connection=runtime.redis).scheduled_job_registry.get_job_ids()
    assert scheduled == [f"finalize-{meeting.id}"]
    assert api.get("/api/sessions/m-silent/history").json()["items"][-1]["cause"] == "sweep"


def test_finalize_folds_what_came_before_it_and_then_marks_final(
    api: httpx.Client, Db: sessionmaker[Session]
) -> None:
    room_id = make_room(Db)
    fold(Db, room_id, [[start("m-fin", 0), join("m-fin", "a1", 0, name="Ann"), end("m-fin", 60)]])
    store(Db, room_id, *leave("m-fin", "a1", 30, name="Ann"))  # stored, not yet folded, when the grace ends
    runtime = runtime_of(api.app)  # type: ignore[attr-defined]
    Queue(QUEUE_NAME, connection=runtime.redis).enqueue(finalize_overdue)  # as the worker does each minute
    run_worker(runtime)
    body = api.get("/api/sessions/m-fin").json()
    assert body["status"] == "final"
    assert body["attendance"][0]["attendedSeconds"] == 1800.0  # the late leave is in
    with Db() as db:
        late = db.scalars(select(Delivery).where(Delivery.event == "participant-left")).one()
        assert (late.status, late.status_reason) == ("processed", None)  # folded before: no amendment


def test_a_delivery_that_cannot_be_folded_fails_alone(Db: sessionmaker[Session]) -> None:
    room_a, room_b = make_room(Db), make_room(Db)
    fold(Db, room_a, [[start("m-a", 0)]])
    foreign_id = store(Db, room_b, *join("m-a", "x1", 5, name="Eve"))  # room A's meeting, room B's URL
    fine_id = store(Db, room_b, *join("m-b", "b1", 5, name="Bo"))
    with Db.begin() as db:
        assert foreign_id is not None and fine_id is not None
        outcome = fold_batch(db, room_b, inbox.unprocessed_of(db, [foreign_id, fine_id]), RULES)
        assert (outcome.failed, outcome.folded) == (["participant-joined"], ["participant-joined"])
        foreign, fine = db.get_one(Delivery, foreign_id), db.get_one(Delivery, fine_id)
        assert foreign.status == "failed" and "belongs to another room" in (foreign.status_reason or "")
        assert fine.status == "processed"
    with Db() as db:
        assert db.scalars(select(MeetingSession.meeting_session_id).order_by(MeetingSession.id)).all() == [
            "m-a",
            "m-b",
        ]


def test_notifications_whose_planning_was_lost_are_planned_again(
    api: httpx.Client, Db: sessionmaker[Session]
) -> None:
    room_id = make_room(Db)
    fold(Db, room_id, [[start("m-lost", 0), join("m-lost", "a1", 0, name="Ann"), end("m-lost", 60)]])
    with Db.begin() as db:  # final long ago, but its notify job never ran (lost with Redis, say)
        db.get_one(Room, room_id).organizer_email = "org@example.com"
        meeting = db.scalars(select(MeetingSession)).one()
        meeting.status, meeting.finalized_at = "final", at(62)
    runtime = runtime_of(api.app)  # type: ignore[attr-defined]
    Queue(QUEUE_NAME, connection=runtime.redis).enqueue(finalize_overdue)
    run_worker(runtime)
    notes = api.get("/api/sessions/m-lost").json()["notifications"]
    assert [(n["recipient"], n["kind"], n["reason"]) for n in notes] == [
        ("org@example.com", "summary", "SMTP_URL is not set")
    ]
    with Db() as db:
        assert db.scalars(select(MeetingSession)).one().notifications_planned_at is not None
