"""RQ jobs for a session's lifecycle: finalize after the grace period, sweep stale sessions, rebuild."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from rq import Queue, Retry, get_current_job

from workers import lifecycle
from workers.folding import rebuild
from workers.locks import room_lock
from workers.meetings import FoldRules
from workers.models import MeetingSession, SessionStatus
from workers.models.base import utcnow
from workers.runtime import process
from workers.runtime.settings import Settings

log = logging.getLogger(__name__)

NOTIFY_FINAL = "workers.notify_jobs.session_finalized"
NOTIFY_AMENDED = "workers.notify_jobs.session_amended"
NOTIFY_RETRY = Retry(max=3, interval=[10, 60, 300])
FINALIZE_RETRY = Retry(max=3, interval=[10, 60, 300])
FINALIZE_BATCHES = 20  # a million deliveries: more and finalize_overdue tries again next minute
REBUILD_LOCK_SECONDS = 600  # a 100,000-delivery session rebuilds in seconds; leave room for far larger


def fold_rules(settings: Settings) -> FoldRules:
    """Return the folding rules a process's settings give."""
    return FoldRules(settings.reconnect_grace_seconds, settings.finalize_after_seconds)


def schedule_finalize(queue: Queue, session_id: int, due: datetime) -> None:
    """Arrange for `finalize_session` to run at `due` (now, if that has passed).

    The job id is the session's: scheduling again replaces the earlier schedule, and the periodic
    finalize_overdue catches any schedule lost with Redis or any finalize that failed for good.
    """
    job_id = f"finalize-{session_id}"
    if due <= utcnow():
        queue.enqueue(finalize_session, session_id, job_id=job_id, retry=FINALIZE_RETRY)
        return
    if due.microsecond:
        # RQ keeps schedules in whole seconds, rounding down: round up, or the job runs before it is due,
        # finds nothing to do, and the session waits for the minutely finalize_overdue.
        due = due.replace(microsecond=0) + timedelta(seconds=1)
    queue.enqueue_at(due, finalize_session, session_id, job_id=job_id, retry=FINALIZE_RETRY)


def finalize_session(session_id: int) -> bool:
    """Fold every delivery received so far and mark the session final, in one hold of its room's lock."""
    from workers.jobs import fold_pending  # the inbox's jobs import this module: keep the graph one-way

    runtime = process.current()
    settings = runtime.settings
    with runtime.Session() as db:
        meeting = db.get(MeetingSession, session_id)
        if meeting is None or meeting.status != SessionStatus.ENDED:
            return False
        room_id = meeting.room_id
    with room_lock(runtime.redis, room_id) as lock:
        # Under the same hold as the status change: no delivery received before now can slip in between.
        _, done = fold_pending(runtime, room_id, lock, batches=FINALIZE_BATCHES)
        with runtime.Session.begin() as db:
            finalized = done and lifecycle.finalize(db, session_id, utcnow(), settings.finalize_after_seconds)
    if finalized:
        plan_notifications(runtime.queue(), session_id)
    return finalized


def plan_notifications(queue: Queue, session_id: int) -> None:
    """Queue the planning of a final session's post-meeting notifications (the ledger makes it once)."""
    # Retried: a database hiccup while planning must not silently drop the notifications.
    queue.enqueue(NOTIFY_FINAL, session_id, job_id=f"notify-final-{session_id}", retry=NOTIFY_RETRY)


def finalize_overdue() -> int:
    """Finalize every ended session past its grace period (a schedule lost or failed); return how many.

    Also queue again what Redis lost of the notifications: the planning of final sessions, and the send
    jobs of unfinished ones (enqueue_pending skips a notification whose job still exists).
    """
    from workers.notify_jobs import enqueue_pending  # it imports the reports; only this job needs it

    runtime = process.current()
    with runtime.Session() as db:
        overdue = lifecycle.overdue_sessions(db, utcnow(), runtime.settings.finalize_after_seconds)
        unplanned = lifecycle.unplanned_final_sessions(db, utcnow())
    for session_id in unplanned:
        plan_notifications(runtime.queue(), session_id)
    enqueue_pending(runtime)
    return sum(finalize_session(session_id) for session_id in overdue)


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
            due = meeting.finalize_due(settings.finalize_after_seconds) if meeting is not None else None
        if due is not None:
            closed += 1
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
        meeting = db.get_one(MeetingSession, session_id)
        change = rebuild(db, meeting, job_id=job.id if job else None)
        amended = meeting.status == SessionStatus.FINAL and change.changed
    # A final session's results moved (a parser fix, say): tell other systems, as for a late delivery.
    if amended:
        notify_amended(runtime.queue(), {session_id})
