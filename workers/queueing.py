"""Telling the workers that rooms have deliveries to fold: one Redis round-trip per commit of deliveries.

One drain job serves every room: turn after turn, it takes every room ready (oldest signal first, up to
jobs.ROOMS_PER_TURN), folds a batch of each under the rooms' locks, in one transaction or a few side by
side, and goes on until no room is left, so traffic over many rooms costs a few jobs a minute, not one
per room and burst. A room is ready once its first signal is DRAIN_GATHER_SECONDS old, so a turn folds
what gathered meanwhile, not one delivery; a room with more than a batch left goes to the back, behind
every room signalled before. Two Redis keys carry the signals:
- PENDING_ROOMS, a sorted set: each room with deliveries no drain has yet begun to read, scored by the
  time of its first signal since a drain last took it (ZADD NX keeps the oldest);
- DRAIN_FLAG: a drain is queued or running, and will look at PENDING_ROOMS again before it ends.
The receiver COMMITS its rows (a group of requests in flight, one commit: workers/receiving.py), then
in one script ADDS their rooms (ZADD NX) and SETS the flag (SET NX), and enqueues the drain only if the
flag was absent. A drain TAKES its rooms (ZREM, in one script: one caller wins each room), THEN reads
their rows; it ends only after it DELETES the flag and THEN finds the set empty; a drain that stops early
(its time slice spent) first enqueues its successor, leaving the flag set.

Why no delivery is left behind. Take any committed row R of room r; the script that adds r for R runs
after the commit that holds R (the group's leader runs it once that commit returns).
- A drain that takes r after R's ZADD reads r's rows after R's commit, so it reads R. So R could only be
  missed if r stayed in the set with no drain ever to look again. But after R's SET NX a drain will look:
  - if the flag was absent, R's receiver enqueued a drain, which looks at the set when it runs;
  - if present, a drain was queued or running and had not yet deleted the flag (only a drain's end deletes
    it); that drain's final look comes after its DEL, so after R's ZADD, and it does not end while r is
    in the set.
- A drain that takes r and finds its lock held (another drain, a finalize, a rebuild) puts r back before
  going on, so r stays in the set under the same argument: the holder's own fold or a later turn reads R.
- A drain that fails in a turn puts the turn's rooms back before raising, and RQ's retry looks again.
What the argument does not cover: a process dying between two of its steps (a receiver between SET and
enqueue, a drain killed mid-turn) and a drain out of retries. There the flag expires after
PENDING_SECONDS, and the relay, at the worker's start and every 30 s, puts back every room with
unprocessed deliveries older than a few seconds and enqueues a drain whatever the flag says.
"""

from __future__ import annotations

import time

from redis import Redis
from rq import Queue, Retry

PENDING_ROOMS = "rollcall:pending:rooms"
DRAIN_FLAG = "rollcall:drain:flag"
PENDING_SECONDS = 60
# A drain hands over to a fresh job after this long, so finalizes and relays queued behind it get their turn.
DRAIN_SLICE_SECONDS = 10.0
DRAIN_TIMEOUT_SECONDS = 600
# Backoff between attempts of a drain that failed on an outage (a bad delivery fails alone, in the job);
# after the last one, the relay enqueues a drain again once the deliveries are RELAY_MIN_AGE_SECONDS old.
DRAIN_RETRY = Retry(max=3, interval=[5, 30, 120])
# Named, not imported: the web process enqueues without importing the worker's code.
DRAIN_FUNCTION = "workers.jobs.drain_rooms"
DRAIN_JOB_ID = "rollcall-drain"


def signal_room(redis: Redis, queue: Queue, *room_ids: int) -> bool:
    """Mark each of `room_ids` pending and make sure a drain will run; True if this call enqueued it."""
    signal = redis.register_script(_SIGNAL)
    flag_was_absent = signal(keys=[PENDING_ROOMS, DRAIN_FLAG], args=[time.time(), PENDING_SECONDS, *room_ids])
    if flag_was_absent:
        enqueue_drain(queue)
    return bool(flag_was_absent)


# ZADD NX each room (ARGV[3] on) scored ARGV[1], then SET the flag NX with a lifetime of ARGV[2] seconds;
# 1 if the flag was absent. One command, not a pipeline of two: the receiver sends it for every group.
_SIGNAL = """
local zadd = {'ZADD', KEYS[1], 'NX'}
for i = 3, #ARGV do
  zadd[#zadd + 1] = ARGV[1]
  zadd[#zadd + 1] = ARGV[i]
end
redis.call(unpack(zadd))
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then
  return 1
end
return 0
"""


def signal_rooms(redis: Redis, queue: Queue, room_ids: list[int]) -> None:
    """Mark `room_ids` pending, ready at once, and enqueue a drain whatever the flag says (relay, replay)."""
    pipeline = redis.pipeline(transaction=False)
    if room_ids:
        pipeline.zadd(PENDING_ROOMS, dict.fromkeys(map(str, room_ids), 0), nx=True)
    pipeline.set(DRAIN_FLAG, "1", ex=PENDING_SECONDS)
    pipeline.execute()
    enqueue_drain(queue)


def is_pending(redis: Redis, room_id: int) -> bool:
    """Say whether `room_id` waits for a drain to take it."""
    return redis.zscore(PENDING_ROOMS, str(room_id)) is not None


def enqueue_drain(queue: Queue, retry: Retry = DRAIN_RETRY) -> None:
    """Enqueue the drain job under its deterministic id."""
    queue.enqueue(
        DRAIN_FUNCTION,
        job_id=DRAIN_JOB_ID,
        retry=retry,
        job_timeout=DRAIN_TIMEOUT_SECONDS,
        # Kept long enough that a copy enqueued while this one runs still finds its job hash.
        result_ttl=DRAIN_TIMEOUT_SECONDS,
        failure_ttl=7 * 24 * 3600,
    )


def take_rooms(redis: Redis, gather_seconds: float, limit: int) -> list[int]:
    """Take up to `limit` rooms, oldest signal first, each once `gather_seconds` old; [] if none is pending.

    Taken means removed from the pending set by this call: another drain cannot take them too.
    """
    take = redis.register_script(_TAKE_READY)
    now = time.time()
    ready, oldest = take(keys=[PENDING_ROOMS], args=[now - gather_seconds, limit])
    if ready or oldest is None:
        return [int(member) for member in ready]
    # None ready yet: wait for the oldest, then take it with every room ready by then. A clock far off
    # between hosts must not stall the worker: wait at most one gathering, then take the oldest anyway.
    wait = min(max(float(oldest) + gather_seconds - now, 0), gather_seconds)
    time.sleep(wait)
    ready, _ = take(keys=[PENDING_ROOMS], args=[max(float(oldest), now + wait - gather_seconds), limit])
    return [int(member) for member in ready]


# One round-trip per take: the rooms signalled at or before ARGV[1] (at most ARGV[2], oldest first), removed,
# and the oldest score left, for a caller that found none ready.
_TAKE_READY = """
local ready = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #ready > 0 then
  redis.call('ZREM', KEYS[1], unpack(ready))
  return {ready, false}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {ready, oldest[2] or false}
"""


def put_back(redis: Redis, *room_ids: int) -> None:
    """Return taken rooms to the end of the pending set (their lock was held, or a batch is left)."""
    if room_ids:
        redis.zadd(PENDING_ROOMS, dict.fromkeys(map(str, room_ids), time.time()), nx=True)


def finish(redis: Redis) -> bool:
    """Delete the drain flag, then say whether the drain may end: True unless a room is pending after all."""
    pipeline = redis.pipeline(transaction=False)
    pipeline.delete(DRAIN_FLAG)
    pipeline.zcard(PENDING_ROOMS)
    _, pending = pipeline.execute()
    return not pending


def hand_over(redis: Redis, queue: Queue) -> None:
    """Enqueue the next drain before this one stops early: the flag stays set, and it is this drain's."""
    redis.set(DRAIN_FLAG, "1", ex=PENDING_SECONDS)
    enqueue_drain(queue)
