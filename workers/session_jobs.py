"""RQ jobs for a session's lifecycle: finalize after the grace period, sweep stale sessions, rebuild."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from rq import Queue, Retry, get_current_job
from rq.exceptions import DuplicateJobError

from workers import lifecycle, process
from workers.locks import room_lock
from workers.meetings import FoldRules
from workers.models import MeetingSession
from workers.models.base import utcnow
from workers.rebuild import rebuild
from workers.settings import Settings

log = logging.getLogger(__name__)

NOTIFY_FINAL = "workers.notify_jobs.session_finalized"
NOTIFY_AMENDED = "workers.notify_jobs.session_amended"
NOTIFY_RETRY = Retry(max=3, interval=[10, 60, 300])
REBUILD_LOCK_SECONDS = 600  # a 100,000-delivery session rebuilds in seconds; leave room for far larger


def fold_rules(settings: Settings) -> FoldRules:
    """Return the folding rules a process's settings give."""
    return FoldRules(settings.reconnect_grace_seconds, settings.finalize_after_seconds)


def schedule_finalize(queue: Queue, session_id: int, due: datetime) -> None:
    """Arrange for `finalize_session` to run at `due` (now, if that has passed); once per session."""
    job_id = f"finalize-{session_id}"
    try:
        if due <= utcnow():
            queue.enqueue(finalize_session, session_id, job_id=job_id, unique=True)
        else:
            queue.enqueue_at(due, finalize_session, session_id, job_id=job_id, unique=True)
    except DuplicateJobError:
        pass  # already scheduled: the first schedule stands, and finalize re-checks the time


def finalize_session(session_id: int) -> bool:
    """Fold every delivery received so far, then mark the session final if its grace period is over."""
    from workers.jobs import drain_room  # the inbox's job; imported here to keep the import graph one-way

    runtime = process.current()
    settings = runtime.settings
    with runtime.Session() as db:
        meeting = db.get(MeetingSession, session_id)
        if meeting is None:
            return False
        room_id = meeting.room_id
    drain_room(room_id)
    with room_lock(runtime.redis, room_id), runtime.Session.begin() as db:
        finalized = lifecycle.finalize(db, session_id, utcnow(), settings.finalize_after_seconds)
        meeting = db.get_one(MeetingSession, session_id)
        due = None
        if not finalized and meeting.end_received_at is not None and meeting.finalized_at is None:
            due = meeting.end_received_at + timedelta(seconds=settings.finalize_after_seconds)
    queue = runtime.queue()
    if finalized:
        # Retried: a database hiccup while planning must not silently drop the notifications.
        queue.enqueue(NOTIFY_FINAL, session_id, job_id=f"notify-final-{session_id}", retry=NOTIFY_RETRY)
    elif due is not None:
        # Too early (a clock skew between processes): try again when due, under a fresh job id.
        queue.enqueue_at(due + timedelta(seconds=1), finalize_session, session_id)
    return finalized


def notify_amended(queue: Queue, session_ids: set[int]) -> None:
    """Tell other systems that late deliveries changed these final sessions."""
    for session_id in sorted(session_ids):
        queue.enqueue(NOTIFY_AMENDED, session_id)


def sweep_stale_sessions() -> int:
    """Close every live session with no delivery for STALE_SESSION_SECONDS; return how many."""
    runtime = process.current()
    settings = runtime.settings
    with runtime.Session() as db:
        stale = lifecycle.stale_sessions(db, utcnow(), settings.stale_session_seconds)
    closed = 0
    for session_id, room_id in stale:
        with room_lock(runtime.redis, room_id), runtime.Session.begin() as db:
            meeting = lifecycle.close_stale(db, session_id, utcnow(), settings.stale_session_seconds)
            ended = meeting.end_received_at if meeting is not None else None
        if ended is not None:
            closed += 1
            due = ended + timedelta(seconds=settings.finalize_after_seconds)
            schedule_finalize(runtime.queue(), session_id, due)
    if closed:
        log.info("swept %d stale sessions", closed)
    return closed


def rebuild_session(session_id: int) -> None:
    """Recompute one session from its stored raw deliveries, holding its room's lock."""
    runtime = process.current()
    job = get_current_job()
    with runtime.Session() as db:
        room_id = db.get_one(MeetingSession, session_id).room_id
    # A rebuild rewrites every row of the session: no drain may fold into it meanwhile.
    with room_lock(runtime.redis, room_id, REBUILD_LOCK_SECONDS), runtime.Session.begin() as db:
        rebuild(db, db.get_one(MeetingSession, session_id), job_id=job.id if job else None)
