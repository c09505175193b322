"""Delivery parsing, the pipeline's first stage: a Metered webhook's bytes in, its DeliveryFacts out.

Pure functions over bytes and strings, in the sans-I/O style of gidgethub: no framework, no clock, no I/O,
so the receiver and a rebuild from the stored raw body read a delivery the same way. Held here: the four
events, the length of every text a webhook carries (the parser refuses longer, the columns are sized from
these: one source of truth, so whatever the receiver accepts fits every column it lands in, on PostgreSQL
as on SQLite), decoding a JSON or form body, reading Metered's times, the tolerant body models and the
dedupe key, and the one way Rollcall names what is wrong with a request.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import ROUND_FLOOR, Decimal
from email import policy
from email.parser import BytesParser
from typing import Annotated, Any, NamedTuple
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

JOIN, LEAVE, START, END = "participant-joined", "participant-left", "meeting-started", "meeting-ended"
EVENTS = (JOIN, LEAVE, START, END)
PARTICIPANT_EVENTS = frozenset((JOIN, LEAVE))


ID_LENGTH = 200  # meeting and participant session ids, room ids, external user ids
NAME_LENGTH = 200  # display names and room names
EMAIL_LENGTH = 320  # RFC 5321's longest address
EVENT_LENGTH = 32

# The longest dedupe key: event + ":" + meeting session id + ":" + participant session id.
DEDUPE_KEY_LENGTH = EVENT_LENGTH + 1 + ID_LENGTH + 1 + ID_LENGTH
# The longest participant key. An email key is lower-cased, and lower() can double a character's length
# ("İ", U+0130, becomes "i" + a combining dot), so an email key may be twice as long as the address.
PARTICIPANT_KEY_LENGTH = max(
    len("ext:") + ID_LENGTH,
    len("email:") + 2 * EMAIL_LENGTH,
    len("name:") + NAME_LENGTH,
    len("ps:") + ID_LENGTH,
)

assert max(len(event) for event in EVENTS) <= EVENT_LENGTH


def field_errors(error: ValidationError, prefix: tuple[str | int, ...] = ()) -> list[dict[str, str]]:
    """Return each of pydantic's problems as {field, message}, the field dotted as the client spelled it."""
    return [
        {"field": ".".join(str(part) for part in (*prefix, *item["loc"])) or "body", "message": item["msg"]}
        for item in error.errors(include_url=False, include_input=False)
    ]


def summary(errors: list[dict[str, str]]) -> str:
    """Return the problems as one line, for a problem's `detail`."""
    return "; ".join(f"{item['field']}: {item['message']}" for item in errors)


JSON_TYPES = re.compile(r"^application/(?:[\w.+-]+\+)?json$")
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
# Deeper bodies are refused: every reader of a stored body (the audit API, a rebuild) must be able to
# decode and encode it again, and Python's json recurses once per level. Metered's bodies are 2-3 deep.
MAX_DEPTH = 32


class BodyError(ValueError):
    """A delivery the receiver refuses: `status` is 400, 415 or 422; `errors` names each bad field."""

    def __init__(self, status: int, detail: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []


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
            fields = read_json(text)
        elif kind == "multipart/form-data":
            fields = _multipart_fields(body, content_type)
        else:
            fields = _first_values(parse_qsl(text, keep_blank_values=True, errors="strict"))
    except _Unservable as error:
        raise BodyError(400, f"The body is not accepted: {error}.") from None
    except (ValueError, LookupError):
        raise BodyError(400, f"The body is not valid {'JSON' if 'json' in kind else 'form data'}.") from None
    if not isinstance(fields, dict):
        raise BodyError(422, "The body must be an object.", [{"field": "body", "message": "not an object"}])
    return fields


class _Unservable(ValueError):
    """Valid JSON that could not be served back as JSON: too deep, or a number no double holds."""


def read_json(text: str) -> Any:
    """Decode a JSON text; ValueError if it is not JSON, too deep, or has a number out of a double's range."""
    try:
        value = _JSON.decode(text)
    except RecursionError:
        raise _Unservable(f"nested deeper than {MAX_DEPTH} levels") from None
    # Counting brackets (strings' too) is a bound on the depth that costs far less than walking the value.
    brackets = text.count("{") + text.count("[")
    if brackets > MAX_DEPTH and not _depth_within(value, MAX_DEPTH):
        raise _Unservable(f"nested deeper than {MAX_DEPTH} levels")
    return value


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    number = float(text)
    if math.isinf(number):  # 1e400 parses as inf, which json.dumps writes as Infinity: not JSON
        raise _Unservable(f"the number {text[:40]} is out of range")
    return number


# Made once: json.loads would build one per call.
_JSON = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)


def _depth_within(value: Any, limit: int) -> bool:
    # Iterative, so that checking a deep value cannot itself run out of stack.
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children)
    return True


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


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# 1e11 is the year 5138 in seconds but 1973 in milliseconds: no real webhook time is ambiguous.
_MILLISECONDS_FROM = Decimal(100_000_000_000)
_NUMBER = re.compile(r"^[+-]?\d+(?:\.\d+)?$")
# The times a webhook may report. Metered dates from this century; a time outside it is a unit or clock
# mistake, and folding it in would stretch a session over decades. The bound keeps every duration Rollcall
# derives within a BIGINT of milliseconds and every time within what Python and both databases hold.
EARLIEST, LATEST = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)


def metered_time(value: object, clock: tzinfo = UTC) -> datetime:
    """Read an ISO-8601 date or time, Unix seconds or Unix milliseconds; UTC, to the millisecond.

    A date or time without an offset is on `clock` (UTC unless given): a date alone is its midnight there.
    """
    try:
        if isinstance(value, str) and not _NUMBER.match(value.strip()):
            return truncate_ms(_iso_time(value.strip(), clock))
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            return _epoch_time(Decimal(str(value).strip()))
    except (ValueError, OverflowError, ArithmeticError):
        pass
    raise PydanticCustomError("time", "not a readable time: use ISO-8601, Unix seconds or Unix milliseconds")


def webhook_time(value: object) -> datetime:
    """Read a webhook's time as metered_time does, and refuse one before EARLIEST or from LATEST on."""
    moment = metered_time(value)
    if not EARLIEST <= moment < LATEST:
        raise PydanticCustomError("time_range", "outside the accepted years 2000 to 2099 (UTC)")
    return moment


def _iso_time(text: str, clock: tzinfo) -> datetime:
    moment = datetime.fromisoformat(text)
    return (moment.replace(tzinfo=clock) if moment.tzinfo is None else moment).astimezone(UTC)


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
# whenever what parse_delivery returns for a body changes, or the columns keep more of it (2: isAdmin).
FACTS_VERSION = 2


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
