"""The receiver's write: the requests in flight in a web process share one commit (group commit).

Each request hands its arrival to `Receiver.store` and waits. One request at a time leads: it yields
while other requests keep joining, takes every arrival waiting (up to inbox.GROUP_LIMIT), stores them with
one statement and one commit, signals their rooms with one Redis call, gives each request its own outcome
and wakes them all; arrivals that came meanwhile are taken by the next leader, one of their own requests.
So a request still answers only once its own row is committed and its room signalled, and a busy process
pays one commit for many requests.

If the database refuses the group's statement because of a row (a constraint, a trigger, a value), the
group is stored again one arrival at a time, so only the requests at fault get the error. An outage is no
row's fault: the whole group gets it, and the group's statement committed nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from workers import inbox, queueing

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Received:
    """What became of one arrival: where it was stored, and whether Redis took its group's signal."""

    stored: inbox.Stored
    signalled: bool


class _Ticket:
    """One request's arrival, its outcome once a leader has written it, and the event that wakes it."""

    __slots__ = ("arrival", "outcome", "turn")

    def __init__(self, arrival: inbox.Arrival) -> None:
        self.arrival = arrival
        self.outcome: Received | Exception | None = None
        self.turn = threading.Event()  # set when its outcome is in, or when it is to lead the next write


class Receiver:
    """One per web process: stores each request's arrival in a group commit with the others in flight."""

    def __init__(self, engine: Engine, redis: Redis, queue: Queue) -> None:
        self._engine, self._redis, self._queue = engine, redis, queue
        # gevent's own lock and events in a gevent worker: gevent patches threading before the app loads.
        self._lock = threading.Lock()
        self._waiting: list[_Ticket] = []  # arrivals not yet taken by a leader, oldest first
        self._writing = False  # a leader is writing, or has been chosen to

    def store(self, arrival: inbox.Arrival) -> Received:
        """Store `arrival` once and signal its room; return when its own row is committed."""
        ticket = _Ticket(arrival)
        with self._lock:
            self._waiting.append(ticket)
            leads, self._writing = not self._writing, True
        while ticket.outcome is None:
            if not leads:
                ticket.turn.wait()
                ticket.turn.clear()
            if ticket.outcome is None:
                self._gather()
                with self._lock:
                    group = self._waiting[: inbox.GROUP_LIMIT]
                    del self._waiting[: inbox.GROUP_LIMIT]
                self._lead(group)
            leads = False  # a leader whose own arrival did not fit in its group waits for its turn
        if isinstance(ticket.outcome, Exception):
            raise ticket.outcome
        return ticket.outcome

    def _gather(self) -> None:
        # Yield while requests keep joining: each yield lets the requests this process has already read
        # reach store() and join the group, so their rows share its commit and its signal. Under gevent a
        # yield runs the ready greenlets and polls the sockets without waiting; when none joins, it stops.
        joined = -1
        while joined != len(self._waiting) and len(self._waiting) < inbox.GROUP_LIMIT:
            joined = len(self._waiting)
            time.sleep(0)

    def _lead(self, group: list[_Ticket]) -> None:
        # Whatever happens here, the group gets outcomes and the next leader its turn: no request hangs.
        outcomes: list[Received | Exception] = [RuntimeError("the write was interrupted")] * len(group)
        try:
            outcomes = self._write([ticket.arrival for ticket in group])
        except Exception as error:
            outcomes = [error] * len(group)
        finally:
            with self._lock:
                for ticket, outcome in zip(group, outcomes, strict=True):
                    ticket.outcome = outcome
                # Wake only those answered and the oldest waiting, who leads next: not every request.
                successor = self._waiting[0] if self._waiting else None
                self._writing = successor is not None
            for ticket in group:
                ticket.turn.set()
            if successor is not None:
                successor.turn.set()

    def _write(self, arrivals: list[inbox.Arrival]) -> list[Received | Exception]:
        stored: list[inbox.Stored | Exception]
        try:
            stored = list(inbox.store_many(self._engine, arrivals))
        except DBAPIError as error:
            if len(arrivals) == 1 or isinstance(error, OperationalError | InterfaceError):
                raise
            stored = [self._store_alone(arrival) for arrival in arrivals]
        new = {
            outcome.id: arrival.room_id
            for outcome, arrival in zip(stored, arrivals, strict=True)
            if isinstance(outcome, inbox.Stored) and outcome.new
        }
        signalled = self._signal(new) if new else True
        return [
            Received(outcome, signalled) if isinstance(outcome, inbox.Stored) else outcome
            for outcome in stored
        ]

    def _store_alone(self, arrival: inbox.Arrival) -> inbox.Stored | Exception:
        try:
            return inbox.store(self._engine, arrival)
        except DBAPIError as error:
            return error  # this arrival's request answers with it; the others are stored

    def _signal(self, room_of_delivery: dict[int, int]) -> bool:
        try:
            queueing.signal_room(self._redis, self._queue, *set(room_of_delivery.values()))
        except RedisError as error:
            # The rows are committed: answer anyway; the relay signals them once Redis is back.
            log.warning(
                "%d deliveries stored but not signalled: Redis unavailable (%s); first id %s",
                len(room_of_delivery),
                type(error).__name__,
                min(room_of_delivery),
            )
            inbox.mark_unsignalled(self._engine, *room_of_delivery)
            return False
        return True
