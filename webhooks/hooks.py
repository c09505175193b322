"""The webhook receiver: token -> parse -> store once -> signal a worker -> 202.

Per request: a cached token lookup and one pydantic parse; the INSERT ... ON CONFLICT, its commit and the
Redis round-trip are shared with the other requests in flight (workers/receiving.py). The URL carries the
room's secret token, so nothing here logs the path or the URL.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Blueprint, Response, current_app, request
from flask.sansio.blueprints import BlueprintSetupState
from sqlalchemy import Engine, or_, select

from webhooks import runtime_of
from webhooks.errors import Problem
from workers import inbox
from workers.deliveries.parsing import EVENTS, BodyError, DeliveryFacts, check_room, parse_delivery
from workers.models import Room
from workers.models.base import utcnow
from workers.receiving import Receiver
from workers.rooms import closed_since, takes_delivery, token_hash
from workers.runtime import metrics
from workers.runtime.process import Runtime
from workers.wire import DeliveryAccepted, DeliveryDuplicate

log = logging.getLogger(__name__)
blueprint = Blueprint("hooks", __name__)

BODY_LIMIT = 64 * 1024
TOKEN_CACHE_SECONDS = 5.0  # a token a second rotation dropped stops working within this
_KEPT_HEADERS = frozenset(
    {
        "user-agent",
        "content-type",
        "content-length",
        "x-request-id",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-real-ip",
        "traceparent",
    }
)
_SECRET_HEADER = re.compile(r"auth|cookie|token|secret|key|signature|password|session", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class RoomRef:
    id: int
    name: str
    metered_room_id: str | None
    token_hash: str
    valid_until: datetime | None  # None for the room's token; set for the token a rotation replaced
    archived_at: datetime | None


class RoomsByToken:
    """A short-lived, per-process map of token hash -> room, so most requests skip the lookup query.

    A change to a room's tokens (a rotation) reaches a process within `ttl` seconds; the expiry of a
    previous token is checked on every request, cached or not.
    """

    def __init__(self, ttl: float = TOKEN_CACHE_SECONDS, capacity: int = 10_000) -> None:
        self._ttl, self._capacity = ttl, capacity
        self._entries: dict[str, tuple[float, RoomRef | None]] = {}
        self._lock = threading.Lock()

    def find(self, engine: Engine, token: str) -> RoomRef | None:
        """Return the room whose webhook token (or unexpired previous token) is `token`, or None."""
        digest = token_hash(token)
        now = time.monotonic()
        entry = self._entries.get(digest)
        if entry is None or entry[0] < now:
            entry = (now + self._ttl, _load_room(engine, digest))
            with self._lock:
                if len(self._entries) >= self._capacity:
                    self._entries.clear()  # unknown tokens must not grow this without bound
                self._entries[digest] = entry
        # Found by an index lookup on the SHA-256 of the token: how long a near-miss takes depends on the
        # hash, which an attacker cannot steer byte by byte, so it leaks nothing about a real token. That is
        # the constant-time comparison here; a compare_digest on two equal hashes would only look like one.
        room = entry[1]
        if room is not None and room.valid_until is not None and room.valid_until <= utcnow():
            return None
        return room


def _load_room(engine: Engine, digest: str) -> RoomRef | None:
    query = select(
        Room.id,
        Room.room_name,
        Room.metered_room_id,
        Room.webhook_token_hash,
        Room.previous_token_expires_at,
        Room.archived_at,
    ).where(or_(Room.webhook_token_hash == digest, Room.previous_token_hash == digest))
    with engine.connect() as connection:
        row = connection.execute(query).first()
    if row is None:
        return None
    # A previous token without an expiry is not one a rotation wrote: treat it as expired.
    valid_until = None if row.webhook_token_hash == digest else row.previous_token_expires_at or _EXPIRED
    return RoomRef(row.id, row.room_name, row.metered_room_id, digest, valid_until, row.archived_at)


_EXPIRED = datetime.min.replace(tzinfo=UTC)


@blueprint.record_once
def _set_up(state: BlueprintSetupState) -> None:
    state.app.extensions["rollcall.rooms_by_token"] = RoomsByToken()


@blueprint.post("/hooks/metered/<token>/<event>")
def receive(token: str, event: str) -> Response:
    """Store one delivery of Metered's webhook and signal a worker; 202 once it is committed."""
    runtime = runtime_of(current_app)
    received_at = utcnow()
    try:
        room = _room(runtime, token, event)
        body = _read_body()
        facts = parse_delivery(event, body, request.content_type or "", received_at)
        check_room(facts, room.name, room.metered_room_id)
        _check_open(runtime, room, facts, received_at)
    except BodyError as error:
        problem = Problem(error.status, _TITLES[error.status], error.detail, errors=error.errors or None)
        raise _rejected(runtime, event, problem) from None
    except Problem as problem:
        raise _rejected(runtime, event, problem) from None
    received = _receiver(runtime).store(_arrival(room, facts, body, received_at))
    stored = received.stored
    metrics.count_stored(event, stored.new)
    if not stored.new:
        return _json(200, DeliveryDuplicate(duplicate=True, id=stored.id))
    if not received.signalled:
        metrics.UNSIGNALLED.labels(event).inc()
    return _json(202, DeliveryAccepted(accepted=True, id=stored.id))


_TITLES = {400: "Bad Request", 415: "Unsupported Media Type", 422: "Validation failed"}


def _room(runtime: Runtime, token: str, event: str) -> RoomRef:
    rooms: RoomsByToken = current_app.extensions["rollcall.rooms_by_token"]
    room = rooms.find(runtime.engine, token) if event in EVENTS else None
    if room is None:
        raise Problem(404, "Not Found", "No such webhook URL.")
    return room


def _check_open(runtime: Runtime, room: RoomRef, facts: DeliveryFacts, received_at: datetime) -> None:
    closed_at = closed_since(room.archived_at, runtime.settings.archive_grace_seconds)
    if closed_at is None or received_at < closed_at:
        return
    with runtime.engine.connect() as connection:
        if takes_delivery(connection, room.id, facts, closed_at):
            return
    raise Problem(410, "Gone", "The room is archived and takes no new meeting sessions.")


def _read_body() -> bytes:
    body = b""
    if (request.content_length or 0) <= BODY_LIMIT:
        body = request.stream.read(BODY_LIMIT + 1)  # a chunked body has no Content-Length to trust
    if len(body) > BODY_LIMIT or (request.content_length or 0) > BODY_LIMIT:
        raise Problem(413, "Payload Too Large", f"The body is over {BODY_LIMIT} bytes.")
    return body


def _arrival(room: RoomRef, facts: DeliveryFacts, body: bytes, received_at: datetime) -> inbox.Arrival:
    return inbox.Arrival(
        room_id=room.id,
        facts=facts,
        raw_body=body.decode("utf-8"),  # parse_delivery accepted it, so it is UTF-8
        content_type=request.content_type or "",
        headers=kept_headers(),
        source_address=(request.remote_addr or "")[:64] or None,
        received_at=received_at,
    )


def kept_headers() -> dict[str, str]:
    """Return the request headers worth keeping for the audit log: never credentials or cookies."""
    kept = {}
    for name, value in request.headers.items():
        lowered = name.lower()
        if (lowered in _KEPT_HEADERS or lowered.startswith("x-")) and not _SECRET_HEADER.search(lowered):
            value = value[:500]
            kept[name] = value if value.isprintable() else "".join(c for c in value if c.isprintable())
        if len(kept) >= 20:
            break
    return kept


def _receiver(runtime: Runtime) -> Receiver:
    # One per app, so one group commit per web process. Built on first use: the queue needs the runtime.
    receiver: Receiver | None = current_app.extensions.get("rollcall.receiver")
    if receiver is None:
        receiver = Receiver(runtime.engine, runtime.redis, runtime.queue())
        receiver = current_app.extensions.setdefault("rollcall.receiver", receiver)  # one, if two raced
    return receiver


def _rejected(runtime: Runtime, event: str, problem: Problem) -> Problem:
    label = event if event in EVENTS else "unknown-event"
    log.info("webhook rejected: %s %s: %s", problem.status, label, problem.detail[:200])
    metrics.REJECTED.labels(str(problem.status)).inc()
    return problem


def _json(status: int, answer: DeliveryAccepted | DeliveryDuplicate) -> Response:
    # pydantic writes the answer itself: the receiver's hot path skips Flask's JSON provider.
    return current_app.response_class(answer.model_dump_json(), status=status, mimetype="application/json")
