"""Metered's webhook bodies: tolerant of their shape, strict about the types of the fields we read.

Pure functions over bytes and strings, in the sans-I/O style of gidgethub: no framework, no clock, no I/O,
so the receiver and a rebuild from the stored raw body read a delivery the same way.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Any, NamedTuple

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    ValidationError,
    model_validator,
)

from workers.body_fields import BodyError, canonical_json, read_fields
from workers.events import EVENTS, JOIN, PARTICIPANT_EVENTS
from workers.field_errors import field_errors, summary
from workers.field_limits import EMAIL_LENGTH, ID_LENGTH, NAME_LENGTH
from workers.webhook_times import truncate_ms, webhook_time


# Value types made by the hundred thousand (this one, and Identity and SegmentFacts in participant_facts)
# are NamedTuples: as immutable as a frozen dataclass, and five times faster to make, since a frozen
# dataclass sets each field through object.__setattr__. Making them took a tenth of a big rebuild once.
class DeliveryFacts(NamedTuple):
    """What one delivery says, read through the contract's aliases."""

    event: str
    meeting_session_id: str | None
    participant_session_id: str | None
    room_name: str | None
    room_id: str | None
    external_user_id: str | None
    email: str | None
    name: str | None
    is_admin: bool | None
    meta: Any
    event_time: datetime
    time_reported: bool  # False when the received time stood in
    join_time: datetime | None  # a leave's own joinTime/joinedAt; a join's event_time
    dedupe_key: str


def _number_as_text(value: object) -> object:
    # A numeric id is still an id; a bool is not a number here.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _text(limit: int) -> StringConstraints:
    # Checked inside pydantic-core, not in Python: this runs for every field of every delivery, and a
    # rebuild parses 100,000 of them. PostgreSQL text cannot hold NUL; pydantic refuses lone surrogates.
    return StringConstraints(max_length=limit, pattern=r"^[^\x00]*$")


# The constraints come before the BeforeValidator so they stay on pydantic-core's own str schema.
Id = Annotated[str, _text(ID_LENGTH), BeforeValidator(_number_as_text)]
Name = Annotated[str, _text(NAME_LENGTH)]
Email = Annotated[str, _text(EMAIL_LENGTH)]
Time = Annotated[datetime, PlainValidator(webhook_time)]


def _aliases(*names: str) -> Any:
    return Field(default=None, validation_alias=AliasChoices(*names))


class MeteredBody(BaseModel):
    """The fields every delivery may carry; unknown fields are kept, nulls and empty strings are absent."""

    model_config = ConfigDict(extra="allow", frozen=True)

    meeting_session_id: Id | None = _aliases("meetingSessionId", "sessionId")
    participant_session_id: Id | None = _aliases("participantSessionId", "_id", "participantId")
    room_name: Name | None = _aliases("roomName")
    room_id: Id | None = _aliases("roomId")
    external_user_id: Id | None = _aliases("externalUserId")
    email: Email | None = _aliases("email")
    name: Name | None = _aliases("name")
    is_admin: bool | None = _aliases("isAdmin")
    meta: Any = _aliases("meta")

    @model_validator(mode="before")
    @classmethod
    def _drop_absent(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data  # pydantic reports the wrong type
        return {key: value for key, value in data.items() if value is not None and value != ""}


class JoinBody(MeteredBody):
    event_time: Time | None = _aliases("joinTime", "joinedAt", "timestamp")


class LeaveBody(MeteredBody):
    event_time: Time | None = _aliases("leftTime", "leaveTime", "timestamp")
    join_time: Time | None = _aliases("joinTime", "joinedAt")


class StartBody(MeteredBody):
    event_time: Time | None = _aliases("startTime", "createdAt", "created", "timestamp")


class EndBody(MeteredBody):
    event_time: Time | None = _aliases("endTime", "endedAt", "timestamp")


BODY_MODELS: dict[str, type[MeteredBody]] = dict(
    zip(EVENTS, (JoinBody, LeaveBody, StartBody, EndBody), strict=True)
)


# The version of this parser, stamped on the fact columns of every delivery it reads (Delivery.facts_version).
# A rebuild trusts the columns of rows stamped with it and re-reads the raw body of any other: bump it
# whenever what parse_delivery returns for a body changes.
FACTS_VERSION = 1


def parse_delivery(event: str, body: bytes, content_type: str, received_at: datetime) -> DeliveryFacts:
    """Read one delivery of `event`; raise BodyError naming what is wrong."""
    if event not in BODY_MODELS:
        raise BodyError(422, f"Unknown event {event!r}.", [{"field": "event", "message": "unknown event"}])
    fields = read_fields(body, content_type)
    try:
        parsed = BODY_MODELS[event].model_validate(fields)
    except ValidationError as error:
        raise body_problem(error) from None
    return _facts(event, parsed, fields, truncate_ms(received_at))


def body_problem(error: ValidationError) -> BodyError:
    """Turn pydantic's errors into a 422 BodyError naming each field by the name the body used."""
    errors = field_errors(error)
    return BodyError(422, summary(errors), errors)


def _facts(event: str, parsed: MeteredBody, fields: dict[str, Any], received_at: datetime) -> DeliveryFacts:
    reported: datetime | None = getattr(parsed, "event_time", None)
    event_time = reported or received_at
    return DeliveryFacts(
        event=event,
        meeting_session_id=parsed.meeting_session_id,
        participant_session_id=parsed.participant_session_id,
        room_name=parsed.room_name,
        room_id=parsed.room_id,
        external_user_id=parsed.external_user_id,
        email=parsed.email,
        name=parsed.name,
        is_admin=parsed.is_admin,
        meta=parsed.meta,
        event_time=event_time,
        time_reported=reported is not None,
        join_time=event_time if event == JOIN else getattr(parsed, "join_time", None),
        dedupe_key=dedupe_key(event, parsed, fields),
    )


def dedupe_key(event: str, parsed: MeteredBody, fields: dict[str, Any]) -> str:
    """Return the contract's natural key: event + participant or meeting session id, else + body hash."""
    ref = parsed.participant_session_id if event in PARTICIPANT_EVENTS else parsed.meeting_session_id
    if ref and event in PARTICIPANT_EVENTS and parsed.meeting_session_id:
        # Scoped by meeting too: were Metered's participant id (an alias) per person rather than per
        # session, a person's join in the room's next meeting would otherwise be taken for a duplicate.
        return f"{event}:{parsed.meeting_session_id}:{ref}"
    if ref:
        return f"{event}:{ref}"
    digest = hashlib.sha256(canonical_json(fields).encode("utf-8", "surrogatepass")).hexdigest()
    return f"{event}:sha256:{digest}"


def check_room(facts: DeliveryFacts, room_name: str, metered_room_id: str | None) -> None:
    """Raise BodyError 422 when the body names another room than the one its token belongs to."""
    errors = []
    if facts.room_name is not None and facts.room_name != room_name:
        errors.append({"field": "roomName", "message": "names another room than this webhook URL's"})
    if facts.room_id is not None and metered_room_id and facts.room_id != metered_room_id:
        errors.append({"field": "roomId", "message": "names another room than this webhook URL's"})
    if errors:
        raise BodyError(422, "The body names another room.", errors)
