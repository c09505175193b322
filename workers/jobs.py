"""RQ entry points: plain functions taking ids, run by `python -m workers` (or any RQ worker).

Errors are left to raise, so RQ's retry and failed registry see them. A room's deliveries are folded a
batch per transaction, under a per-room lock, so two workers never fold the same room at once.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from types import TracebackType
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from redis.lock import Lock
from rq import get_current_job
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from workers import folding, inbox, metrics, process, queueing, session_jobs
from workers.locks import LOCK_SECONDS, room_lock
from workers.models import Delivery, DeliveryStatus
from workers.models.base import utcnow
from workers.runtime import Runtime

log = logging.getLogger(__name__)

BATCH_SIZE = 1000
MAX_BATCHES = 20
RELAY_MIN_AGE_SECONDS = 5.0


def drain_room(room_id: int) -> int:
    """Fold every delivery of the room not yet processed; return how many were folded."""
    runtime = process.current()
    with room_lock(runtime.redis, room_id) as lock:
        queueing.gather(runtime.redis, room_id)
        # Delete before reading: a delivery committed after our read then signals afresh (see queueing).
        queueing.clear_pending(runtime.redis, room_id)
        folded, done = fold_pending(runtime, room_id, lock)
        if not done:  # hand over to a fresh job, so one busy room cannot hold a worker forever
            queueing.signal_room(runtime.redis, runtime.queue(), room_id, force=True)
        return folded


def fold_pending(runtime: Runtime, room_id: int, lock: Lock, batches: int = MAX_BATCHES) -> tuple[int, bool]:
    """Fold up to `batches` batches of the room's unprocessed deliveries under its held lock.

    Return how many were folded and whether none is left.
    """
    folded = 0
    for _ in range(batches):
        count = _fold_batch(runtime, room_id)
        folded += count
        if count < BATCH_SIZE:
            runtime.redis.delete(_failures_key(room_id))
            return folded, True
        lock.extend(LOCK_SECONDS, replace_ttl=True)  # renewed after every batch
    return folded, False


def _fold_batch(runtime: Runtime, room_id: int) -> int:
    with runtime.Session.begin() as session:
        deliveries = inbox.unprocessed(session, room_id, BATCH_SIZE)
        if not deliveries:
            return 0
        outcome = folding.apply_deliveries(
            session, room_id, deliveries, session_jobs.fold_rules(runtime.settings), job_id=_job_id()
        )
        inbox.mark_processed(session, outcome.folded_ids(deliveries))
    metrics.count_folded(runtime.redis, deliveries, outcome.failed_ids)
    _after_commit(runtime, outcome)
    return len(deliveries)


def _job_id() -> str | None:
    job = get_current_job()
    return job.id if job else None


def _after_commit(runtime: Runtime, outcome: folding.FoldOutcome) -> None:
    # Follow-up jobs are enqueued only once the fold they follow from is committed.
    queue = runtime.queue()
    for session_id, due in outcome.finalize_due.items():
        session_jobs.schedule_finalize(queue, session_id, due)
    if outcome.amended_session_ids:
        session_jobs.notify_amended(queue, outcome.amended_session_ids)


def _failures_key(room_id: int) -> str:
    return f"rollcall:drain-failures:room:{room_id}"


def drain_failed(
    job: Any, connection: Redis, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    """RQ failure callback: after the last retry, fold the room one delivery per transaction."""
    room_id = int(job.args[0])
    # Counted per room, not per job: a new signal re-enqueues the same job id with fresh retries.
    failures = int(connection.incr(_failures_key(room_id)))
    connection.expire(_failures_key(room_id), 3600)
    if job.retries_left and failures <= queueing.DRAIN_RETRY.max:
        return
    log.warning(
        "room %s: drain failed %s times (%s); folding one delivery at a time",
        room_id,
        failures,
        exc_type.__name__,
    )
    runtime = process.current()
    with room_lock(runtime.redis, room_id):
        fold_one_by_one(runtime, room_id)
    connection.delete(_failures_key(room_id))


def fold_one_by_one(runtime: Runtime, room_id: int) -> None:
    """Fold each unprocessed delivery of the room alone, marking the ones that fail `failed` with why."""
    while True:
        with runtime.Session.begin() as session:
            ids = [delivery.id for delivery in inbox.unprocessed(session, room_id, BATCH_SIZE)]
        for delivery_id in ids:
            _fold_alone(runtime, room_id, delivery_id)
        if len(ids) < BATCH_SIZE:
            return


def _fold_alone(runtime: Runtime, room_id: int, delivery_id: int) -> None:
    try:
        with runtime.Session.begin() as session:
            delivery = session.get(Delivery, delivery_id)
            if delivery is None:
                return
            rules = session_jobs.fold_rules(runtime.settings)
            outcome = folding.apply_deliveries(session, room_id, [delivery], rules, job_id=_job_id())
            inbox.mark_processed(session, outcome.folded_ids([delivery]))
    except (OperationalError, InterfaceError):
        raise  # the database, not the delivery: leave it unprocessed for the relay
    except Exception as error:
        _record_failure(runtime, delivery_id, error)
        return
    metrics.count_folded(runtime.redis, [delivery], outcome.failed_ids)
    _after_commit(runtime, outcome)


def _record_failure(runtime: Runtime, delivery_id: int, error: BaseException) -> None:
    with runtime.Session.begin() as session:
        inbox.mark_failed(session, delivery_id, describe_error(runtime, error))


def describe_error(runtime: Runtime, error: BaseException) -> str:
    """Return a one-line account of `error` with every configured secret blanked out."""
    cause = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    text = f"{type(cause).__name__}: {cause}".splitlines()[0][:500]
    for secret in _secrets(runtime):
        text = text.replace(secret, "[redacted]")
    return text


def _secrets(runtime: Runtime) -> list[str]:
    settings = runtime.settings
    values = [*settings.api_tokens(), runtime.engine.url.password or ""]
    for secret in (settings.metered_secret_key, settings.smtp_url):
        values.append(secret.get_secret_value() if secret else "")
    return [value for value in values if len(value) >= 4]


def relay(min_age_seconds: float = RELAY_MIN_AGE_SECONDS) -> int:
    """RQ entry point, run periodically: signal every room with deliveries older than the age unprocessed."""
    return relay_rooms(process.current(), min_age_seconds)


def relay_rooms(runtime: Runtime, min_age_seconds: float | None, *, force: bool = False) -> int:
    """Signal each room with deliveries never processed (all when no age is given); return how many."""
    cutoff = None if min_age_seconds is None else utcnow() - timedelta(seconds=min_age_seconds)
    with runtime.Session.begin() as session:
        rooms = inbox.rooms_to_relay(session, cutoff)
    queue = runtime.queue()
    for room_id, _ in rooms:
        queueing.signal_room(runtime.redis, queue, room_id, force=force)
    untold = [room_id for room_id, has_untold in rooms if has_untold]
    if untold:  # write only when needed: the relay must not take SQLite's write lock for nothing
        with runtime.Session.begin() as session:
            inbox.mark_queued(session, untold)
    if rooms:
        log.info("relay: signalled %s room(s)", len(rooms))
    return len(rooms)


def replay(runtime: Runtime, delivery_id: int) -> str | None:
    """Set a delivery back to unprocessed and signal its room; return its status, None if there is none."""
    with runtime.Session.begin() as session:
        delivery = inbox.reset_for_replay(session, delivery_id)
        if delivery is None:
            return None
        room_id = delivery.room_id
    try:
        queueing.signal_room(runtime.redis, runtime.queue(), room_id, force=True)
    except RedisError as error:
        log.warning(
            "replay of %s: Redis unavailable (%s); the relay will signal it",
            delivery_id,
            type(error).__name__,
        )
        inbox.mark_unsignalled(runtime.engine, delivery_id)
        return DeliveryStatus.RECEIVED.value
    return DeliveryStatus.QUEUED.value
