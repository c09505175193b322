"""Bulk replay: fold again every stored delivery a filter matches, as one RQ job that reports progress.

The deliveries are set back to unprocessed a batch at a time and their rooms signalled, so the usual
drain folds each of them once more. The job sees only what was stored when it started: deliveries that
arrive meanwhile are folded by their own drain, not replayed. Its first transaction records that it
started (the filter and that bound); a retry resumes after the last batch signalled, kept in the job's meta.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict
from rq import Queue, Retry, get_current_job
from rq.job import Job
from sqlalchemy import ColumnElement, func, select

from workers import audit, inbox, queueing
from workers.deliveries.parsing import metered_time
from workers.models import Delivery, DeliveryStatus, Room
from workers.runtime import process
from workers.runtime.process import Runtime

BATCH_SIZE = 1000
# Hours, not RQ's default 3 minutes: a replay of millions signals a thousand at a time.
REPLAY_TIMEOUT_SECONDS = 6 * 3600
# Backoff between attempts after an outage, as for the drain (workers.queueing.DRAIN_RETRY).
REPLAY_RETRY = Retry(max=3, interval=[5, 30, 120])


@dataclass(frozen=True)
class Cursor:
    """Where a replay stands: its snapshot bound, how many it matched, the last id replayed and how many."""

    last_id: int
    matched: int
    after: int = 0
    replayed: int = 0


Progress = Callable[[Cursor], None]


def _received_since(value: object) -> datetime | None:
    return value if value is None or isinstance(value, datetime) else metered_time(value)


class ReplayFilter(BaseModel):
    """Which deliveries to replay: all of them unless narrowed by room, status and time received."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    room: str | None = None
    status: DeliveryStatus | None = None
    # Received at or after: ISO-8601 (no offset means UTC), as GET /api/events reads `since`.
    since: Annotated[datetime | None, BeforeValidator(_received_since)] = None


def enqueue_replay(queue: Queue, wanted: ReplayFilter, actor: str, request_id: str | None) -> Job:
    """Queue the job replaying what `wanted` matches, with a timeout fit for millions and a retry."""
    return queue.enqueue(
        replay_matching,
        wanted.model_dump(mode="json"),
        actor,
        request_id,
        job_timeout=REPLAY_TIMEOUT_SECONDS,
        retry=REPLAY_RETRY,
    )


def replay_matching(wanted: dict[str, Any], actor: str, request_id: str | None = None) -> int:
    """RQ entry point: replay what `wanted` (a ReplayFilter's JSON) matches; progress in the job's meta.

    A retry of the job resumes from the cursor the failed attempt left in the meta.
    """
    job = get_current_job()
    saved = job.meta.get("cursor") if job is not None else None
    resume = Cursor(**saved) if isinstance(saved, dict) else None

    def progress(cursor: Cursor) -> None:
        if job is not None:
            job.meta.update(matched=cursor.matched, replayed=cursor.replayed, cursor=asdict(cursor))
            job.save_meta()  # type: ignore[no-untyped-call]

    filtered = ReplayFilter.model_validate(wanted)
    return replay_all(process.current(), filtered, actor, request_id, progress, resume)


def replay_all(
    runtime: Runtime,
    wanted: ReplayFilter,
    actor: str,
    request_id: str | None = None,
    progress: Progress | None = None,
    resume: Cursor | None = None,
) -> int:
    """Set every delivery `wanted` matches back to unprocessed and signal its room; return how many.

    From `resume` on, if given: the deliveries up to its cursor were replayed already.
    """
    cursor = resume or _start(runtime, wanted, actor, request_id)
    conditions = [*_conditions(wanted), Delivery.id <= cursor.last_id]
    if progress is not None:
        progress(cursor)  # before the first batch: a retry after it resumes, and records no second start
    while True:
        with runtime.Db.begin() as db:
            batch = db.execute(
                select(Delivery.id, Delivery.room_id)
                .where(*conditions, Delivery.id > cursor.after)
                .order_by(Delivery.id)
                .limit(BATCH_SIZE)
            ).all()
            inbox.reset_all_for_replay(db, [delivery_id for delivery_id, _ in batch])
        if not batch:
            break
        # Raises if Redis is away: the cursor stays before this batch, so the job's retry resets and signals
        # it again and goes on from there (and the relay signals what is reset if the retries run out).
        queueing.signal_rooms(runtime.redis, runtime.queue(), sorted({room_id for _, room_id in batch}))
        cursor = replace(cursor, after=batch[-1][0], replayed=cursor.replayed + len(batch))
        if progress is not None:
            progress(cursor)
    with runtime.Db.begin() as db:
        shown = {**wanted.model_dump(mode="json"), "replayed": cursor.replayed}
        audit.record(db, actor, "delivery.bulk_replayed", after=shown, request_id=request_id)
    return cursor.replayed


def _start(runtime: Runtime, wanted: ReplayFilter, actor: str, request_id: str | None) -> Cursor:
    """Bound the replay to what is stored now, and record that it started, with that bound, at once."""
    with runtime.Db.begin() as db:
        last_id = db.scalar(select(func.max(Delivery.id))) or 0
        conditions = [*_conditions(wanted), Delivery.id <= last_id]
        matched = db.scalar(select(func.count()).select_from(Delivery).where(*conditions)) or 0
        shown = {**wanted.model_dump(mode="json"), "lastId": last_id, "matched": matched}
        audit.record(db, actor, "delivery.bulk_replay_started", after=shown, request_id=request_id)
    return Cursor(last_id=last_id, matched=matched)


def _conditions(wanted: ReplayFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if wanted.room is not None:
        conditions.append(Delivery.room_id.in_(select(Room.id).where(Room.room_name == wanted.room)))
    if wanted.status is DeliveryStatus.DUPLICATE:
        # A duplicate is never a row of its own: it is counted on the delivery it repeats.
        conditions.append(Delivery.duplicate_count > 0)
    elif wanted.status is not None:
        conditions.append(Delivery.status == wanted.status.value)
    if wanted.since is not None:
        conditions.append(Delivery.received_at >= wanted.since)
    return conditions
