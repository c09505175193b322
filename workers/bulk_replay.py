"""Bulk replay: fold again every stored delivery a filter matches, as one RQ job that reports progress.

The deliveries are set back to unprocessed a batch at a time and their rooms signalled, so the usual
drain folds each of them once more. The job sees only what was stored when it started: deliveries that
arrive meanwhile are folded by their own drain, not replayed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict
from rq import get_current_job
from sqlalchemy import ColumnElement, func, select

from workers import audit, inbox, queueing
from workers.deliveries.parsing import metered_time
from workers.models import Delivery, DeliveryStatus, Room
from workers.runtime import process
from workers.runtime.process import Runtime

BATCH_SIZE = 1000
Progress = Callable[[int, int], None]  # (replayed so far, matched)


def _received_since(value: object) -> datetime | None:
    return value if value is None or isinstance(value, datetime) else metered_time(value)


class ReplayFilter(BaseModel):
    """Which deliveries to replay: all of them unless narrowed by room, status and time received."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    room: str | None = None
    status: DeliveryStatus | None = None
    # Received at or after: ISO-8601 (no offset means UTC), as GET /api/events reads `since`.
    since: Annotated[datetime | None, BeforeValidator(_received_since)] = None


def replay_matching(wanted: dict[str, Any], actor: str, request_id: str | None = None) -> int:
    """RQ entry point: replay what `wanted` (a ReplayFilter's JSON) matches; progress in the job's meta."""
    job = get_current_job()

    def progress(replayed: int, matched: int) -> None:
        if job is not None:
            job.meta.update(matched=matched, replayed=replayed)
            job.save_meta()  # type: ignore[no-untyped-call]

    return replay_all(process.current(), ReplayFilter.model_validate(wanted), actor, request_id, progress)


def replay_all(
    runtime: Runtime,
    wanted: ReplayFilter,
    actor: str,
    request_id: str | None = None,
    progress: Progress | None = None,
) -> int:
    """Set every delivery `wanted` matches back to unprocessed and signal its room; return how many."""
    with runtime.Db() as db:
        last_id = db.scalar(select(func.max(Delivery.id))) or 0
        conditions = [*_conditions(wanted), Delivery.id <= last_id]
        matched = db.scalar(select(func.count()).select_from(Delivery).where(*conditions)) or 0
    replayed, after = 0, 0
    while True:
        with runtime.Db.begin() as db:
            batch = db.execute(
                select(Delivery.id, Delivery.room_id)
                .where(*conditions, Delivery.id > after)
                .order_by(Delivery.id)
                .limit(BATCH_SIZE)
            ).all()
            inbox.reset_all_for_replay(db, [delivery_id for delivery_id, _ in batch])
        if not batch:
            break
        # Raises if Redis is away: the job's retry replays the rest, and the relay signals what is reset.
        queueing.signal_rooms(runtime.redis, runtime.queue(), sorted({room_id for _, room_id in batch}))
        replayed, after = replayed + len(batch), batch[-1][0]
        if progress is not None:
            progress(replayed, matched)
    with runtime.Db.begin() as db:
        shown = {**wanted.model_dump(mode="json"), "replayed": replayed}
        audit.record(db, actor, "delivery.bulk_replayed", after=shown, request_id=request_id)
    return replayed


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
