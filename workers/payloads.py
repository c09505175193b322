"""Metered's webhook bodies: tolerant of their shape, strict about the types of the fields we read.

Pure functions over bytes and strings, in the sans-I/O style of gidgethub: no framework, no clock, no I/O,
so the receiver and a rebuild from the stored raw body read a delivery the same way.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from email import policy
from email.parser import BytesParser
from typing import Annotated, Any
from urllib.parse import parse_qsl

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
from pydantic_core import PydanticCustomError

from workers.field_errors import field_errors, summary

EVENTS = ("participant-joined", "participant-left", "meeting-started", "meeting-ended")
PARTICIPANT_EVENTS = frozenset(EVENTS[:2])
JSON_TYPES = re.compile(r"^application/(?:[\w.+-]+\+)?json$")
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# 1e11 is the year 5138 in seconds but 1973 in milliseconds: no real webhook time is ambiguous.
_MILLISECONDS_FROM = Decimal(100_000_000_000)
_NUMBER = re.compile(r"^[+-]?\d+(?:\.\d+)?$")


class BodyError(ValueError):
    """A delivery the receiver refuses: `status` is 400, 415 or 422; `errors` names each bad field."""

    def __init__(self, status: int, detail: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []


@dataclass(frozen=True, slots=True)
class DeliveryFacts:
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


def metered_time(value: object) -> datetime:
    """Read an ISO-8601 time (no offset = UTC), Unix seconds or Unix milliseconds; UTC, to the millisecond."""
    try:
        if isinstance(value, str) and not _NUMBER.match(value.strip()):
            return truncate_ms(_iso_time(value.strip()))
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            return _epoch_time(Decimal(str(value).strip()))
    except (ValueError, OverflowError, ArithmeticError):
        pass
    raise PydanticCustomError("time", "not a readable time: use ISO-8601, Unix seconds or Unix milliseconds")


def _iso_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _epoch_time(number: Decimal) -> datetime:
    if not number.is_finite():
        raise ValueError("not finite")
    milliseconds = number if abs(number) >= _MILLISECONDS_FROM else number * 1000
    return _EPOCH + timedelta(milliseconds=int(milliseconds.to_integral_value(ROUND_FLOOR)))


def truncate_ms(moment: datetime) -> datetime:
    """Drop the microseconds below the millisecond (the precision Rollcall stores and reports)."""
    if moment.microsecond % 1000 == 0:  # the usual case: Metered reports milliseconds
        return moment
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _number_as_text(value: object) -> object:
    # A numeric id is still an id; a bool is not a number here.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _text(limit: int) -> StringConstraints:
    # Checked inside pydantic-core, not in Python: this runs for every field of every delivery, and a
    # rebuild parses 100,000 of them. PostgreSQL text cannot hold NUL; pydantic refuses lone surrogates.
    return StringConstraints(max_length=limit, pattern=r"^[^\x00]*$")


# The constraints come before the BeforeValidator so they stay on pydantic-core's own str schema.
Id = Annotated[str, _text(200), BeforeValidator(_number_as_text)]
Name = Annotated[str, _text(200)]
Email = Annotated[str, _text(320)]
Time = Annotated[datetime, PlainValidator(metered_time)]


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


def media_type(content_type: str) -> str:
    """Return the lower-cased media type of a Content-Type header, without its parameters."""
    return content_type.partition(";")[0].strip().lower()


def read_fields(body: bytes, content_type: str) -> dict[str, Any]:
    """Decode a JSON or form body into its fields; BodyError 415 or 400 when that is impossible."""
    kind = media_type(content_type)
    if not (JSON_TYPES.match(kind) or kind in FORM_TYPES):
        raise BodyError(415, "Send application/json or form data.")
    try:
        text = body.decode("utf-8")
        if JSON_TYPES.match(kind):
            fields = _JSON.decode(text)
        elif kind == "multipart/form-data":
            fields = _multipart_fields(body, content_type)
        else:
            fields = _first_values(parse_qsl(text, keep_blank_values=True, errors="strict"))
    except (ValueError, RecursionError, LookupError):
        raise BodyError(400, f"The body is not valid {'JSON' if 'json' in kind else 'form data'}.") from None
    if not isinstance(fields, dict):
        raise BodyError(422, "The body must be an object.", [{"field": "body", "message": "not an object"}])
    return fields


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


_JSON = json.JSONDecoder(parse_constant=_no_constant)  # made once: json.loads would build one per call


def _first_values(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key, value in pairs:
        if "\x00" in key:
            raise ValueError("NUL in a field name")
        fields.setdefault(key, value)
    return fields


def _multipart_fields(body: bytes, content_type: str) -> dict[str, Any]:
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise ValueError("no multipart boundary")
    pairs = []
    for part in message.walk():
        name = part.get_param("name", header="content-disposition")
        content = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(content, bytes):
            pairs.append((name, content.decode("utf-8")))
    return _first_values(pairs)


def canonical_json(fields: Any) -> str:
    """Return one spelling of `fields` whatever the key order or spacing of the body."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


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
        join_time=event_time if event == "participant-joined" else getattr(parsed, "join_time", None),
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
