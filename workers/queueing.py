"""Telling a worker that a room has deliveries to fold: one Redis round-trip per delivery, usually.

Jobs are per room, not per delivery: a drain folds every stored delivery of its room in a few transactions,
so a burst of webhooks costs one job. The pending flag below coalesces the signals: a delivery costs one
SET NX, and only the first since the room's last drain began also enqueues the job.

Why no delivery is left behind (the ordering argument). The receiver COMMITS its row, THEN sets the flag
(SET NX). The drain DELETES the flag, THEN reads the rows. Take any committed row R:
- if R's SET came before the drain's DEL, R was committed before the drain read, so the drain reads R;
- if R's SET came after the DEL and found the flag absent, R's receiver enqueued a new drain itself;
- if R's SET came after the DEL but found the flag present, someone set it after the DEL and enqueued a
  drain that has not yet deleted the flag; that drain's DEL and read come after R's commit, so it reads R.
The flag expires after PENDING_SECONDS, so a flag orphaned by a crash between SET and enqueue cannot
block signals for long; the relay covers that window and every other loss (Redis down, a killed worker).
"""

from __future__ import annotations

import time

from redis import Redis
from rq import Queue, Retry

PENDING_SECONDS = 60
# A drain waits until its signal is this old: under load one job then folds a burst, not one delivery,
# and its fixed cost (RQ's bookkeeping, the session recompute) is shared; idle, it costs this much latency.
GATHER_SECONDS = 0.25
DRAIN_TIMEOUT_SECONDS = 600
# Backoff between attempts of a drain that failed on an outage (a bad delivery fails alone, in the job);
# after the last one, the relay signals the room again once its deliveries are RELAY_MIN_AGE_SECONDS old.
DRAIN_RETRY = Retry(max=3, interval=[5, 30, 120])
# Named, not imported: the web process enqueues without importing the worker's code.
DRAIN_FUNCTION = "workers.jobs.drain_room"


def pending_key(room_id: int) -> str:
    """Return the Redis key saying a drain of `room_id` is queued and has not started yet."""
    return f"rollcall:pending:room:{room_id}"


def drain_job_id(room_id: int) -> str:
    """Return the deterministic RQ job id of a room's drain."""
    return f"rollcall-drain-room-{room_id}"


def signal_room(redis: Redis, queue: Queue, room_id: int, *, force: bool = False) -> bool:
    """Make sure a drain of `room_id` will run; return True if this call enqueued it."""
    # The common case is one round-trip: the flag is already set and a drain is already waiting.
    signalled_at = f"{time.time():.3f}"
    was_absent = bool(redis.set(pending_key(room_id), signalled_at, nx=True, ex=PENDING_SECONDS))
    if was_absent or force:
        enqueue_drain(queue, room_id)
    return was_absent or force


def enqueue_drain(queue: Queue, room_id: int, retry: Retry = DRAIN_RETRY) -> None:
    """Enqueue the drain job of `room_id` under its deterministic id."""
    queue.enqueue(
        DRAIN_FUNCTION,
        room_id,
        job_id=drain_job_id(room_id),
        retry=retry,
        job_timeout=DRAIN_TIMEOUT_SECONDS,
        # Kept long enough that a copy enqueued while this one runs still finds its job hash.
        result_ttl=DRAIN_TIMEOUT_SECONDS,
        failure_ttl=7 * 24 * 3600,
    )


def gather(redis: Redis, room_id: int) -> None:
    """Wait, at most GATHER_SECONDS, until the room's signal is GATHER_SECONDS old."""
    signalled_at = redis.get(pending_key(room_id))
    if signalled_at is not None:
        delay = float(signalled_at) + GATHER_SECONDS - time.time()
        if 0 < delay <= GATHER_SECONDS:  # a clock far off between hosts must not stall the worker
            time.sleep(delay)


def clear_pending(redis: Redis, room_id: int) -> None:
    """Delete the room's pending flag: called by the drain before it reads (see the module docstring)."""
    redis.delete(pending_key(room_id))
