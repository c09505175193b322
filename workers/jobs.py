"""The RQ entry points (notification sends: workers.notify_jobs): plain functions taking ids, run by
`python -m workers` (or any RQ worker), enqueued by function reference.

Draining: a room's deliveries are folded a batch per transaction, under a per-room lock, so two workers
never fold the same room at once. A batch that fails because of what is in it is split until each delivery
at fault stands alone; those are marked `failed` with why, for good (replay one once its cause is fixed),
and the rest are folded in the same job. An error that is not the deliveries' fault (an outage, a schema
behind the code, a timeout) is left to raise, so RQ's retry, the relay and the failed registry see it, and
the batch stays unprocessed. Then a session's lifecycle: finalize after the grace period
(MeetingSession.finalize_due), sweep stale sessions, rebuild.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from redis.exceptions import RedisError
from rq import Queue, Retry, get_current_job
from rq.timeouts import JobTimeoutException
from sqlalchemy import Row
from sqlalchemy.exc import DBAPIError, ProgrammingError
from sqlalchemy.orm import Session

from workers import alerts, audit, folding, inbox, lifecycle, notify_jobs, queueing, retention, sealing
from workers.folding import rebuild
from workers.locks import RoomBusy, room_lock
from workers.meetings import FoldRules
from workers.models import Delivery, DeliveryStatus, MeetingSession, SessionStatus
from workers.models.base import utcnow
from workers.runtime import metrics, process
from workers.runtime.connections import TRANSIENT
from workers.runtime.log_redaction import redacted
from workers.runtime.process import Runtime
from workers.runtime.settings import Settings

log = logging.getLogger(__name__)

SPLIT_SIZE = 1_000  # the pieces a failed batch is first cut into (see _split)
# A drain's turn: a batch of each room ready, up to this many rooms; then a room with more left goes to the
# back of the line, so a busy room starves no other.
ROOMS_PER_TURN = 50
# On PostgreSQL, a turn of more rooms than this is folded in several transactions side by side, at most
# FOLD_CONNECTIONS of them (see _fold_turn).
ROOMS_PER_TRANSACTION = 8
FOLD_CONNECTIONS = 4
RELAY_MIN_AGE_SECONDS = 5.0
# Failures that say nothing about the deliveries being folded: the job fails, and RQ's retry (or the relay)
# folds them once the database or Redis is back, the other drain has finished, or the job is rerun.
NOT_THE_DELIVERIES: tuple[type[BaseException], ...] = (*TRANSIENT, inbox.FoldConflict, JobTimeoutException)
# SQLSTATE class 42, a statement refused whatever the rows: a column or table missing because the code is
# newer than the schema, a privilege not granted. Fixed by a migration or a grant, not by failing the room.
# psycopg raises it as ProgrammingError, like a trigger's RAISE, which may well be about one row.
STATEMENT_REFUSED = "42"


def drain_rooms() -> int:
    """Fold a batch of every pending room, a turn at a time, until none is left; return how many were folded.

    The rooms' order, the gathering, and why no delivery is left behind: see workers.queueing.
    """
    runtime = process.current()
    redis = runtime.redis
    handover_at = time.monotonic() + queueing.DRAIN_SLICE_SECONDS
    folded = 0
    while True:
        room_ids = queueing.take_rooms(redis, runtime.settings.drain_gather_seconds, ROOMS_PER_TURN)
        if not room_ids:
            if queueing.finish(redis):
                return folded
            continue  # a room was signalled between the last take and the flag's deletion
        folded += _drain_turn(runtime, room_ids)
        if time.monotonic() >= handover_at:
            queueing.hand_over(redis, runtime.queue())
            return folded


def _drain_turn(runtime: Runtime, room_ids: list[int]) -> int:
    """Fold a batch of each taken room, leaving a room whose lock is held to its holder.

    A room locked elsewhere (another worker folds, finalizes or rebuilds it) goes back in the set, to be
    taken again after them; so does a room with more than a batch left, behind every room signalled before.
    """
    redis = runtime.redis
    try:
        with contextlib.ExitStack() as held:
            locked = []
            for room_id in room_ids:
                try:
                    held.enter_context(room_lock(redis, room_id, wait=False))
                except RoomBusy:
                    queueing.put_back(redis, room_id)
                else:
                    locked.append(room_id)
            folded, unfinished = _fold_turn(runtime, locked)
    except BaseException:
        with contextlib.suppress(RedisError):  # Redis away too: the relay puts them back
            queueing.put_back(redis, *room_ids)
        raise
    queueing.put_back(redis, *unfinished)
    return folded


def _fold_turn(runtime: Runtime, room_ids: list[int]) -> tuple[int, list[int]]:
    """Fold a batch of each room; return how many were folded and the rooms with more left.

    On PostgreSQL the rooms share a transaction, and once they are more than ROOMS_PER_TRANSACTION a
    worker that has fallen behind folds them in up to FOLD_CONNECTIONS transactions side by side: a fold
    mostly waits on the database (a dozen round-trips a room), and side by side those waits overlap.
    SQLite has one writer at a time, the receiver being one: a transaction a room, so that a delivery
    waits for one room's fold to commit, never a whole turn's.
    """
    if not room_ids:
        return 0, []
    job_id = _job_id()
    if runtime.engine.dialect.name != "postgresql":
        answers = [_fold_rooms(runtime, [room_id], job_id) for room_id in room_ids]
    else:
        connections = min(FOLD_CONNECTIONS, -(-len(room_ids) // ROOMS_PER_TRANSACTION))
        groups = [room_ids[n::connections] for n in range(connections)]
        if len(groups) == 1:
            answers = [_fold_rooms(runtime, room_ids, job_id)]
        else:
            with ThreadPoolExecutor(len(groups), thread_name_prefix="fold") as pool:
                answers = list(pool.map(lambda group: _fold_rooms(runtime, group, job_id), groups))
    return sum(folded for folded, _ in answers), [room_id for _, left in answers for room_id in left]


def _fold_rooms(runtime: Runtime, room_ids: list[int], job_id: str | None) -> tuple[int, list[int]]:
    """Fold a batch of each room (locks held) in one transaction; return how many folded, and rooms with more.

    One commit for many rooms, not one each. A batch that fails because of what is in it undoes them all;
    its room is then folded alone, where _split finds the deliveries at fault, and the others together.
    """
    if not room_ids:
        return 0, []
    started = time.perf_counter()
    batch_size = runtime.settings.fold_batch_size
    rules = fold_rules(runtime.settings)
    seen: dict[int, int] = {}
    outcomes: list[folding.FoldOutcome] = []
    folding_room: int | None = None  # the room being folded, if the transaction fails: None at its commit
    try:
        with runtime.Db.begin() as db:
            for folding_room in room_ids:
                rows = inbox.unprocessed(db, folding_room, batch_size)
                seen[folding_room] = len(rows)
                outcomes.append(_fold_batch(db, runtime.settings, folding_room, rows, rules, job_id))
            folding_room = None
    except NOT_THE_DELIVERIES:
        raise  # the batches stay unprocessed for RQ's retry and the relay
    except Exception as error:
        if _statement_refused(error):
            raise
        return _fold_apart(runtime, room_ids, folding_room, job_id)
    for outcome in outcomes:
        _after_commit(runtime, outcome)
    folded_events = [event for outcome in outcomes for event in outcome.folded]
    failed_events = [event for outcome in outcomes for event in outcome.failed]
    metrics.count_folded(runtime.redis, folded_events, failed_events)
    milliseconds = (time.perf_counter() - started) * 1000
    shared = f" (one of {len(room_ids)} rooms in one transaction)" if len(room_ids) > 1 else ""
    for room_id, outcome in zip(room_ids, outcomes, strict=True):
        log.info(
            "room %s: folded %s, failed %s in %.0f ms%s",
            room_id,
            len(outcome.folded),
            len(outcome.failed),
            milliseconds,
            shared,
        )
    return len(folded_events), [room_id for room_id in room_ids if seen[room_id] >= batch_size]


def _fold_apart(
    runtime: Runtime, room_ids: list[int], culprit: int | None, job_id: str | None
) -> tuple[int, list[int]]:
    """Fold `culprit` alone (each room alone if None), splitting its batch if need be; the rest together."""
    alone = room_ids if culprit is None else [culprit]
    folded, unfinished = 0, []
    for room_id in alone:
        count, done = fold_pending(runtime, room_id, batches=1)
        folded += count
        if not done:
            unfinished.append(room_id)
    rest = [room_id for room_id in room_ids if room_id not in alone]
    more, still_unfinished = _fold_rooms(runtime, rest, job_id)
    return folded + more, unfinished + still_unfinished


def drain_room(room_id: int) -> int:
    """Fold `room_id` and every other pending room: a job of the previous release, queued per room.

    Kept so such jobs still in the queue at deploy time run: the room joins the pending set, and this job
    is a drain like any other.
    """
    redis = process.current().redis
    # A web process of the previous release signals again only once its room's flag is gone: delete it
    # before the rows are read, as that release's drain did, so its next delivery enqueues a job again.
    redis.delete(f"rollcall:pending:room:{room_id}")
    queueing.put_back(redis, room_id)
    return drain_rooms()


@dataclass
class Tally:
    """What became of a batch's deliveries."""

    folded: int = 0
    failed: int = 0

    def __iadd__(self, other: Tally) -> Tally:
        self.folded, self.failed = self.folded + other.folded, self.failed + other.failed
        return self

    @property
    def seen(self) -> int:
        """Return how many deliveries the batch took off the room's unprocessed list."""
        return self.folded + self.failed


def fold_pending(runtime: Runtime, room_id: int, batches: int) -> tuple[int, bool]:
    """Fold up to `batches` batches of the room's unprocessed deliveries under its held lock.

    Return how many were folded and whether none is left.
    """
    folded = 0
    for _ in range(batches):
        started = time.perf_counter()
        tally = _fold_or_split(runtime, room_id, None)  # None: the room's next batch
        folded += tally.folded
        if tally.seen:
            log.info(
                "room %s: folded %s, failed %s in %.0f ms",
                room_id,
                tally.folded,
                tally.failed,
                (time.perf_counter() - started) * 1000,
            )
        if tally.seen < runtime.settings.fold_batch_size:
            return folded, True
    return folded, False


def _fold_batch(
    db: Session,
    settings: Settings,
    room_id: int,
    rows: Sequence[Row[Any]],
    rules: FoldRules,
    job_id: str | None,
) -> folding.FoldOutcome:
    """Fold a room's batch; a delivery it fails gets its `delivery.failed` alert in the same transaction.

    One commit for the failure and its alert: a crash between two would leave the failure unannounced.
    """
    outcome = folding.fold_batch(db, room_id, rows, rules, job_id=job_id)
    for delivery_id in outcome.failed_ids:
        alerts.delivery_failed(db, settings, delivery_id, utcnow())
    return outcome


def _fold_or_split(runtime: Runtime, room_id: int, ids: list[int] | None) -> Tally:
    """Fold `ids` (None: the room's next batch) in one transaction; split them if what is in them fails."""
    read: list[int] = []
    try:
        with runtime.Db.begin() as db:
            rows = (
                inbox.unprocessed(db, room_id, runtime.settings.fold_batch_size)
                if ids is None
                else inbox.unprocessed_of(db, ids)
            )
            read = [row.id for row in rows]
            rules = fold_rules(runtime.settings)
            outcome = _fold_batch(db, runtime.settings, room_id, rows, rules, _job_id())
    except NOT_THE_DELIVERIES:
        raise  # the batch stays unprocessed for RQ's retry and the relay
    except Exception as error:
        if _statement_refused(error):
            raise
        # A row the ORM cannot even load (a corrupt column) still has an id to split on.
        culprits = read or ids or _next_batch_ids(runtime, room_id)
        if not culprits:
            raise
        return _split(runtime, room_id, culprits, error)
    _after_commit(runtime, outcome)
    metrics.count_folded(runtime.redis, outcome.folded, outcome.failed)
    return Tally(folded=len(outcome.folded), failed=len(outcome.failed))


def _statement_refused(error: Exception) -> bool:
    sqlstate = getattr(error.orig, "sqlstate", None) if isinstance(error, ProgrammingError) else None
    return isinstance(sqlstate, str) and sqlstate.startswith(STATEMENT_REFUSED)


def _next_batch_ids(runtime: Runtime, room_id: int) -> list[int]:
    with runtime.Db() as db:
        return list(inbox.unprocessed_ids(db, room_id, runtime.settings.fold_batch_size))


def _split(runtime: Runtime, room_id: int, ids: list[int], error: Exception) -> Tally:
    """Fold each half of `ids` on its own, or mark a lone delivery that failed `failed` with why.

    A delivery that cannot be folded must not hold up its room: by halving, k of them among n cost
    about 2·k·log2(n) transactions, against n when folding one at a time. A big batch is first cut into
    SPLIT_SIZE pieces: halving 50,000 deliveries would fold most of them a dozen times over.
    """
    if len(ids) == 1:
        with runtime.Db.begin() as db:
            event = inbox.mark_failed(db, ids[0], describe_error(runtime, error))
            if event is not None:
                alerts.delivery_failed(db, runtime.settings, ids[0], utcnow())
        if event is not None:
            metrics.count_failed(runtime.redis, event)
            _raise_alerts(runtime, alerts.DELIVERY_FAILED)
        return Tally(failed=1)
    tally = Tally()
    size = SPLIT_SIZE if len(ids) > SPLIT_SIZE else (len(ids) + 1) // 2
    for start in range(0, len(ids), size):
        tally += _fold_or_split(runtime, room_id, ids[start : start + size])
    return tally


def _raise_alerts(runtime: Runtime, alert: str, count: int = 1) -> None:
    metrics.count_alert(runtime.redis, alert, count)
    try:
        notify_jobs.enqueue_pending(runtime)
    except RedisError as error:
        # The alert is in the ledger: finalize_overdue's periodic enqueue_pending sends it once Redis is
        # back. Failing here would leave the rest of the room's deliveries unfolded for nothing.
        log.warning("%s recorded; its send not queued: %r", alert, error)


def _job_id() -> str | None:
    job = get_current_job()
    return job.id if job else None


def _after_commit(runtime: Runtime, outcome: folding.FoldOutcome) -> None:
    # Follow-up jobs are enqueued only once the fold they follow from is committed.
    queue = runtime.queue()
    for session_id, due in outcome.finalize_due.items():
        schedule_finalize(queue, session_id, due)
    if outcome.amended_session_ids:
        notify_amended(queue, outcome.amended_session_ids)
    if outcome.failed_ids:  # their alerts are in the ledger already (_fold_batch): count them, send them
        _raise_alerts(runtime, alerts.DELIVERY_FAILED, len(outcome.failed_ids))


def describe_error(runtime: Runtime, error: BaseException) -> str:
    """Return a one-line account of `error` with every configured secret blanked out."""
    cause = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    return redacted(f"{type(cause).__name__}: {cause}".splitlines()[0][:500], runtime.settings)


def relay(min_age_seconds: float = RELAY_MIN_AGE_SECONDS) -> int:
    """RQ entry point, run periodically: signal every room with deliveries older than the age unprocessed."""
    return relay_rooms(process.current(), min_age_seconds)


def relay_rooms(runtime: Runtime, min_age_seconds: float | None) -> int:
    """Signal each room with deliveries never processed (all when no age is given); return how many.

    A drain is enqueued whatever the drain flag says: a flag left by a killed drain must not stall them.
    """
    cutoff = None if min_age_seconds is None else utcnow() - timedelta(seconds=min_age_seconds)
    with runtime.Db.begin() as db:
        rooms = inbox.rooms_to_relay(db, cutoff)
    if not rooms:
        return 0
    queueing.signal_rooms(runtime.redis, runtime.queue(), [room_id for room_id, _ in rooms])
    untold = [room_id for room_id, has_untold in rooms if has_untold]
    if untold:  # write only when needed: the relay must not take SQLite's write lock for nothing
        with runtime.Db.begin() as db:
            inbox.mark_queued(db, untold)
    log.info("relay: signalled %s room(s)", len(rooms))
    return len(rooms)


def replay(runtime: Runtime, delivery_id: int, actor: str) -> str | None:
    """Set a delivery back to unprocessed and signal its room; return its status, None if there is none."""
    with runtime.Db.begin() as db:
        delivery = db.get(Delivery, delivery_id)
        if delivery is None:
            return None
        before = {"status": delivery.status, "statusReason": delivery.status_reason}
        inbox.reset_for_replay(db, delivery_id)  # the same object, from the session's identity map
        after = {"status": delivery.status, "statusReason": delivery.status_reason}
        room_id = delivery.room_id
        audit.record(
            db,
            actor,
            "delivery.replayed",
            room_id=room_id,
            subject=str(delivery_id),
            before=before,
            after=after,
        )
    try:
        queueing.signal_rooms(runtime.redis, runtime.queue(), [room_id])
    except RedisError as error:
        log.warning(
            "replay of %s: Redis unavailable (%s); the relay will signal it",
            delivery_id,
            type(error).__name__,
        )
        inbox.mark_unsignalled(runtime.engine, delivery_id)
        return DeliveryStatus.RECEIVED.value
    return DeliveryStatus.QUEUED.value


NOTIFY_RETRY = Retry(max=3, interval=[10, 60, 300])
FINALIZE_RETRY = Retry(max=3, interval=[10, 60, 300])
FINALIZE_BATCHES = (
    20  # a million deliveries at the default batch size: more, and finalize_overdue tries again
)


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
    runtime = process.current()
    settings = runtime.settings
    with runtime.Db() as db:
        meeting = db.get(MeetingSession, session_id)
        if meeting is None or meeting.status != SessionStatus.ENDED:
            return False
        room_id = meeting.room_id
    with room_lock(runtime.redis, room_id):
        # Under the same hold as the status change: no delivery received before now can slip in between.
        _, done = fold_pending(runtime, room_id, batches=FINALIZE_BATCHES)
        with runtime.Db.begin() as db:
            finalized = done and lifecycle.finalize(db, session_id, utcnow(), settings.finalize_after_seconds)
    if finalized:
        plan_notifications(runtime.queue(), session_id)
    return finalized


def plan_notifications(queue: Queue, session_id: int) -> None:
    """Queue the planning of a final session's post-meeting notifications (the ledger makes it once)."""
    # Retried: a database hiccup while planning must not silently drop the notifications.
    queue.enqueue(
        notify_jobs.session_finalized, session_id, job_id=f"notify-final-{session_id}", retry=NOTIFY_RETRY
    )


def finalize_overdue() -> int:
    """Finalize every ended session past its grace period (a schedule lost or failed); return how many.

    Also queue again what Redis lost of the notifications: the planning of final sessions, and the send
    jobs of unfinished ones (enqueue_pending skips a notification whose job still exists).
    """
    from workers.notify_jobs import enqueue_pending  # it imports the reports; only this job needs it

    runtime = process.current()
    with runtime.Db() as db:
        overdue = lifecycle.overdue_sessions(db, utcnow(), runtime.settings.finalize_after_seconds)
        unplanned = lifecycle.unplanned_final_sessions(db, utcnow())
    for session_id in unplanned:
        plan_notifications(runtime.queue(), session_id)
    enqueue_pending(runtime)
    return sum(finalize_session(session_id) for session_id in overdue)


def notify_amended(queue: Queue, session_ids: set[int]) -> None:
    """Tell other systems that these final sessions' reports changed (late deliveries, rosters, overrides)."""
    try:
        for session_id in sorted(session_ids):
            queue.enqueue(notify_jobs.session_amended, session_id)
    except RedisError as error:
        # Called once the change is committed, and it stays: an outage must not make it look refused (a
        # retry would find nothing to change). A session's next amendment carries its state as it is then.
        log.warning("session.amended not queued for %d session(s): %r", len(session_ids), error)


def sweep_stale_sessions() -> int:
    """Close every live session with no delivery for STALE_SESSION_SECONDS; return how many."""
    runtime = process.current()
    settings = runtime.settings
    with runtime.Db() as db:
        stale = lifecycle.stale_sessions(db, utcnow(), settings.stale_session_seconds)
    closed = 0
    for session_id, room_id in stale:
        with room_lock(runtime.redis, room_id), runtime.Db.begin() as db:
            meeting = lifecycle.close_stale(db, session_id, utcnow(), settings.stale_session_seconds)
            due = meeting.finalize_due(settings.finalize_after_seconds) if meeting is not None else None
            if meeting is not None:  # closed now, so alerted once: a session is live only until then
                alerts.session_stale(db, settings, session_id, utcnow())
        if due is not None:
            closed += 1
            schedule_finalize(runtime.queue(), session_id, due)
            _raise_alerts(runtime, alerts.SESSION_STALE)
    if closed:
        log.info("swept %d stale sessions", closed)
    return closed


def rebuild_session(session_id: int, actor: str, request_id: str | None = None) -> None:
    """Recompute one session from its stored raw deliveries, holding its room's lock; audit who asked."""
    runtime = process.current()
    job = get_current_job()
    with runtime.Db() as db:
        room_id = db.get_one(MeetingSession, session_id).room_id
    # A rebuild rewrites every row of the session: no drain may fold into it meanwhile.
    with room_lock(runtime.redis, room_id), runtime.Db.begin() as db:
        meeting = db.get_one(MeetingSession, session_id)
        change = rebuild(db, meeting, job_id=job.id if job else None)
        audit.record_rebuild(db, actor, meeting, change, request_id)
        amended = meeting.status == SessionStatus.FINAL and change.changed
    # A final session's results moved (a parser fix, say): tell other systems, as for a late delivery.
    if amended:
        notify_amended(runtime.queue(), {session_id})


# The audit log's upkeep (issue 15): retention and the daily seals, run by the worker's cron.

PURGE_BATCH = 5_000  # deliveries purged per transaction


def purge_expired_bodies(batch_size: int = PURGE_BATCH) -> int:
    """Purge raw bodies and headers older than RETENTION_DAYS (none when unset), `batch_size` deliveries
    a transaction; return how many."""
    runtime = process.current()
    days = runtime.settings.retention_days
    if days is None:
        return 0
    purged, now = 0, utcnow()
    while True:
        with runtime.Db.begin() as db:
            batch = retention.purge_expired_bodies(db, now, days, batch_size)
        purged += batch
        if batch < batch_size:
            break
    if purged:
        log.info("purged the raw bodies of %d deliveries older than %d days", purged, days)
    return purged


def seal_closed_days() -> int:
    """Seal every whole UTC day not sealed yet; return how many days were sealed."""
    runtime = process.current()
    # Two workers' crons racing here is harmless: the unique day makes the second's transaction fail.
    with runtime.Db.begin() as db:
        sealed = len(sealing.seal_closed_days(db, utcnow()))
    if sealed:
        log.info("sealed %d day(s) of deliveries and audit records", sealed)
    return sealed
