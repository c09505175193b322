"""The lifecycle jobs, run by a real RQ worker: the sweeper closes silent sessions, finalize follows."""

from __future__ import annotations

import httpx
from rq import Queue
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import run_worker
from tests.test_folding import fold, join, leave, make_room
from webhooks import runtime_of
from workers.models import MeetingSession
from workers.runtime import QUEUE_NAME
from workers.session_jobs import sweep_stale_sessions


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
