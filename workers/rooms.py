"""Rooms: Metered rooms whose four webhooks point at Rollcall, mirrored in the rooms table.

Held here: the Create Room and PATCH requests (Metered's fields and rules, plus Rollcall's own); creating,
listing, changing and archiving rooms through the Metered client (workers.metered); the per-room webhook
tokens, unguessable, stored only as a hash and rotated with an overlap; and what an archived room's
webhook URLs still take.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Annotated, Any, ClassVar, Literal, TypeGuard
from urllib.parse import urlsplit
from zoneinfo import available_timezones

from pydantic import BaseModel, ConfigDict, EmailStr, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_core.core_schema import ValidatorFunctionWrapHandler
from sqlalchemy import Connection, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from workers import audit
from workers.deliveries.parsing import END, LEAVE, DeliveryFacts
from workers.metered import MeteredClient, MeteredError, MeteredNotFound, MeteredTimeout, MeteredUnavailable
from workers.models import Delivery, MeetingSession, Room
from workers.models.base import utcnow
from workers.runtime.settings import Settings

log = logging.getLogger(__name__)

# A room name is a path segment in Metered's API (/room/{name}), in its join URL
# (https://<app>.metered.live/{name}) and in Rollcall's (/api/rooms/{name}). RFC 3986's unreserved
# characters need no escaping anywhere; of those we leave out "." and "~" so that no name can be a
# dot-segment ("." or "..") that clients and proxies normalise away. Metered's own generated names
# (10 letters and digits) fit, and 100 characters is ample for a readable name.
ROOM_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,100}$"

WEBHOOK_FIELDS = ("meetingJoinWebhook", "meetingLeftWebhook", "meetingStartedWebhook", "meetingEndedWebhook")
ROLLCALL_FIELDS = (
    "organizerEmail",
    "notifyParticipants",
    "minAttendancePercent",
    "trustParticipantEmails",
    "lateAfterSeconds",
    "earlyLeaveSeconds",
    "includeHostsInAttendance",
    "absenceAlertAfter",
    "billingIncrementMinutes",
    "timeZone",
)
NEEDS_COMPOSITION = ("recordComposition", "enableRTMPOut", "enableLiveStreaming")

NonNegativeInt = Annotated[int, Field(ge=0)]
# One problem with a request: the field's path, the message, the value given.
OptionProblem = tuple[tuple[str | int, ...], str, Any]


class RoomSettings(BaseModel):
    """Every option of Metered's Create Room API except the name, plus Rollcall's own fields."""

    model_config = ConfigDict(extra="forbid", strict=True)

    # Fields a client may not send, and why.
    refused: ClassVar[dict[str, str]] = {name: "set by Rollcall" for name in WEBHOOK_FIELDS}
    # Fields where null means "clear it"; elsewhere null is a wrong type.
    nullable: ClassVar[frozenset[str]] = frozenset()
    # Whether the body alone must satisfy the cross-field rules (a PATCH is checked merged instead).
    checks_combinations: ClassVar[bool] = True

    privacy: Literal["public", "private"] | None = None
    expireUnixSec: NonNegativeInt | None = None
    ejectAtRoomExp: bool | None = None
    notBeforeUnixSec: NonNegativeInt | None = None
    maxParticipants: NonNegativeInt | None = None
    autoJoin: bool | None = None
    showInviteBox: bool | None = None
    enableRequestToJoin: bool | None = None
    enableChat: bool | None = None
    newChatForMeetingSession: bool | None = None
    enableScreenSharing: bool | None = None
    joinVideoOn: bool | None = None
    joinAudioOn: bool | None = None
    enableRecording: bool | None = None
    ownerOnlyBroadcast: bool | None = None
    recordRoom: bool | None = None
    ejectAfterElapsedTimeInSec: NonNegativeInt | None = None
    endMeetingAfterNoActivityInSec: NonNegativeInt | None = None
    audioOnlyRoom: bool | None = None
    enableComposition: bool | None = None
    compositionLayout: Literal["grid", "active_speaker"] | None = None
    recordComposition: bool | None = None
    enableRTMPOut: bool | None = None
    rtmpOutURL: str | None = Field(default=None, max_length=2048)
    enableLiveStreaming: bool | None = None
    # Rollcall-only: never sent to Metered.
    organizerEmail: EmailStr | None = None
    notifyParticipants: bool | None = None
    minAttendancePercent: float | None = Field(default=None, ge=0, le=100)
    # Anyone who joins can type any address: thank-yous go to such addresses only if the organizer says so.
    trustParticipantEmails: bool | None = None
    # Rollcall-only, for judging each person's status against the roster, alerts and billing.
    lateAfterSeconds: NonNegativeInt | None = None
    earlyLeaveSeconds: NonNegativeInt | None = None
    includeHostsInAttendance: bool | None = None
    absenceAlertAfter: Annotated[int, Field(ge=1)] | None = None
    billingIncrementMinutes: Annotated[int, Field(ge=1, le=24 * 60)] | None = None
    # The organizer's clock for emails, pages and CSV downloads (the JSON API stays UTC).
    timeZone: str | None = None

    @field_validator("rtmpOutURL")
    @classmethod
    def _rtmp_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("rtmp", "rtmps") or not parts.hostname or any(c.isspace() for c in value):
                raise PydanticCustomError("rtmp_url", "must be an rtmp:// or rtmps:// URL")
        return value

    @field_validator("timeZone")
    @classmethod
    def _time_zone(cls, value: str | None) -> str | None:
        if value is not None and value not in time_zone_names():
            raise PydanticCustomError("time_zone", "must be an IANA time zone name, such as Europe/Paris")
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _every_problem(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        # Collect field errors, refused fields and cross-field rules together: a 422 lists every problem.
        if not isinstance(data, dict):
            raise _problems(cls.__name__, [((), "must be a JSON object", data)])
        problems: list[OptionProblem] = [
            ((name,), cls.refused[name], data[name]) for name in data if name in cls.refused
        ]
        problems += [
            ((name,), "must not be null", None)
            for name, value in data.items()
            if value is None and name not in cls.nullable and name not in cls.refused
        ]
        kept = {name: value for name, value in data.items() if (name,) not in {p[0] for p in problems}}
        if cls.checks_combinations:
            problems += combination_problems(kept)
        try:
            model = handler(kept)
        except ValidationError as error:
            field_problems: list[OptionProblem] = [
                (item["loc"], item["msg"], item["input"]) for item in error.errors()
            ]
            raise _problems(cls.__name__, field_problems + problems) from None
        if problems:
            raise _problems(cls.__name__, problems)
        return model


class CreateRoomRequest(RoomSettings):
    """The body of POST /api/rooms: Metered's Create Room fields and Rollcall's own."""

    roomName: str | None = Field(default=None, pattern=ROOM_NAME_PATTERN)
    # Metered's table marks privacy required while its guides default to public: send it always.
    privacy: Literal["public", "private"] | None = "public"


class UpdateRoomRequest(RoomSettings):
    """The body of PATCH /api/rooms/{roomName}: any option but the name; null clears a Rollcall field."""

    refused: ClassVar[dict[str, str]] = {**RoomSettings.refused, "roomName": "cannot be changed"}
    nullable: ClassVar[frozenset[str]] = frozenset(
        {
            "organizerEmail",
            "minAttendancePercent",
            "lateAfterSeconds",
            "earlyLeaveSeconds",
            "includeHostsInAttendance",
            "absenceAlertAfter",
            "billingIncrementMinutes",
            "timeZone",
        }
    )
    checks_combinations: ClassVar[bool] = False


def split_request(request: RoomSettings) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a validated request into (fields for Metered, Rollcall-only fields), by their API names."""
    # Metered's fields are never null, so dropping None keeps exactly what was sent plus defaults.
    metered = {k: v for k, v in request.model_dump(exclude_none=True).items() if k not in ROLLCALL_FIELDS}
    rollcall = {k: v for k, v in request.model_dump(exclude_unset=True).items() if k in ROLLCALL_FIELDS}
    return metered, rollcall


def trusts_participant_emails(options: dict[str, Any]) -> bool:
    """Return whether a room's stored options let thank-yous go to the addresses participants gave."""
    return options.get("trustParticipantEmails") is True


@cache
def time_zone_names() -> frozenset[str]:
    """Return the IANA time zone names zoneinfo can load here (read once: it walks the zone folders)."""
    return frozenset(available_timezones())


def combination_problems(options: dict[str, Any]) -> list[OptionProblem]:
    """Return the cross-field rules of Metered's page that `options` breaks, as (field, message, value)."""
    problems: list[OptionProblem] = []
    not_before, expire = options.get("notBeforeUnixSec"), options.get("expireUnixSec")
    if _is_int(not_before) and _is_int(expire) and not_before >= expire:
        problems.append((("notBeforeUnixSec",), "must be before expireUnixSec", not_before))
    if options.get("enableRTMPOut") is True and not options.get("rtmpOutURL"):
        problems.append((("rtmpOutURL",), "required when enableRTMPOut is true", None))
    for name in NEEDS_COMPOSITION:
        if options.get(name) is True and options.get("enableComposition") is not True:
            problems.append(((name,), "requires enableComposition: true", True))
    return problems


def check_combinations(options: dict[str, Any]) -> None:
    """Raise a ValidationError if `options` (a room's merged options) break a cross-field rule."""
    problems = combination_problems(options)
    if problems:
        raise _problems(UpdateRoomRequest.__name__, problems)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _problems(title: str, problems: list[OptionProblem]) -> ValidationError:
    details = [
        InitErrorDetails(type=PydanticCustomError("room_option", message), loc=loc, input=value)
        for loc, message, value in problems
    ]
    return ValidationError.from_exception_data(title, details)


TOKEN_BYTES = 32  # 256 bits; the contract asks for at least 128


def new_token() -> str:
    """Return a fresh URL-safe webhook token."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """Return the hex SHA-256 under which a token is stored (the token is random, so no salt is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def replace_token(room: Room, token: str, overlap_seconds: int, now: datetime) -> None:
    """Make `token` the room's webhook token; the one it replaces stays valid for `overlap_seconds`."""
    # One previous token only: a second rotation within the overlap drops the oldest at once, which is
    # what rotating again after a leak is for.
    keep = overlap_seconds > 0
    room.previous_token_hash = room.webhook_token_hash if keep else None
    room.previous_token_expires_at = now + timedelta(seconds=overlap_seconds) if keep else None
    room.webhook_token_hash = token_hash(token)
    room.token_rotated_at = now


# The webhook event in Rollcall's URL, and the Metered room field that registers it.
EVENT_FIELDS = {
    "participant-joined": "meetingJoinWebhook",
    "participant-left": "meetingLeftWebhook",
    "meeting-started": "meetingStartedWebhook",
    "meeting-ended": "meetingEndedWebhook",
}
ROLLCALL_COLUMNS = {
    "organizerEmail": "organizer_email",
    "notifyParticipants": "notify_participants",
    "minAttendancePercent": "min_attendance_percent",
}
# Rollcall-only fields without a column: kept in the room's options, which never go back to Metered.
ROLLCALL_OPTIONS = tuple(field for field in ROLLCALL_FIELDS if field not in ROLLCALL_COLUMNS)


class RoomNotFound(LookupError):
    """Rollcall has no room of that name."""


class RoomNameTaken(Exception):
    """A room of that name exists already, here or at Metered."""


class RoomArchived(Exception):
    """The room is archived and can no longer be changed."""


def webhook_urls(public_base_url: str, token: str) -> dict[str, str]:
    """Return the four webhook URLs for `token`, keyed by Metered's field names."""
    base = public_base_url.rstrip("/")
    return {field: f"{base}/hooks/metered/{token}/{event}" for event, field in EVENT_FIELDS.items()}


def create_room(
    Db: sessionmaker[Session],
    metered: MeteredClient,
    settings: Settings,
    request: CreateRoomRequest,
    actor: str,
) -> tuple[Room, dict[str, str]]:
    """Create the room at Metered with webhooks pointing here, store it, and return it with its URLs."""
    sent, rollcall = split_request(request)
    name = sent.get("roomName")
    if name and _find(Db, name) is not None:
        raise RoomNameTaken(name)
    token = new_token()
    urls = webhook_urls(settings.public_base_url, token)
    created = _create_at_metered(metered, {**sent, **urls})
    if not isinstance(created.get("roomName"), str):
        raise MeteredError(200, "Metered's answer names no room")
    options = {key: value for key, value in sent.items() if key != "roomName"}
    room = Room(
        room_name=created["roomName"],
        metered_room_id=created.get("_id"),
        webhook_token_hash=token_hash(token),
        options=options,
        metered_room=_stored(created),
        notify_participants=False,
    )
    _set_rollcall_fields(room, rollcall)
    try:
        with Db.begin() as db:
            db.add(room)
            db.flush()
            audit.record(db, actor, "room.created", room_id=room.id, after=audit.room_state(room))
    except IntegrityError:
        raise RoomNameTaken(room.room_name) from None
    return room, urls


def list_rooms(
    Db: sessionmaker[Session], *, limit: int, after: int | None = None, include_archived: bool = False
) -> list[Room]:
    """Return up to `limit` rooms with an id above `after`, oldest first."""
    query = select(Room).order_by(Room.id).limit(limit)
    if after is not None:
        query = query.where(Room.id > after)
    if not include_archived:
        query = query.where(Room.archived_at.is_(None))
    with Db() as db:
        return list(db.scalars(query))


def get_room(Db: sessionmaker[Session], room_name: str) -> Room:
    """Return the room called `room_name`, or raise RoomNotFound."""
    room = _find(Db, room_name)
    if room is None:
        raise RoomNotFound(room_name)
    return room


def update_room(
    Db: sessionmaker[Session], metered: MeteredClient, room_name: str, request: UpdateRoomRequest, actor: str
) -> Room:
    """Apply a PATCH: Metered's fields through Metered's update API, then the local row."""
    room = _active(Db, room_name)
    changes, rollcall = split_request(request)
    # The cross-field rules hold for the room as it will be, not for the PATCH body alone.
    check_combinations({**room.options, **changes})
    answer = metered.update_room(room_name, changes) if changes else None
    with Db.begin() as db:
        room = load_room(db, room_name)
        before = audit.room_state(room)
        room.options = {**room.options, **changes}
        # Metered's update answer is not documented: keep it if it is a room, else apply the changes.
        fresh = answer if answer and "_id" in answer else {**room.metered_room, **changes}
        room.metered_room = _stored(fresh)
        _set_rollcall_fields(room, rollcall)
        _record(db, actor, "room.updated", room, before)
    return room


def archive_room(Db: sessionmaker[Session], metered: MeteredClient, room_name: str, actor: str) -> Room:
    """Archive the room at Metered and mark it archived here; its attendance history stays."""
    room = get_room(Db, room_name)
    if room.archived_at is not None:
        return room
    # Gone at Metered already: marking it here is all that is left to do.
    with suppress(MeteredNotFound):
        metered.delete_room(room_name)
    with Db.begin() as db:
        room = load_room(db, room_name)
        before = audit.room_state(room)
        room.archived_at = utcnow()
        room.metered_room = {**room.metered_room, "archived": True}
        _record(db, actor, "room.archived", room, before)
    return room


@dataclass(frozen=True)
class Rotation:
    """A room's new webhook token: its URLs, and whether Metered now calls them."""

    room: Room
    webhook_urls: dict[str, str]
    metered_updated: bool


def rotate_token(
    Db: sessionmaker[Session],
    metered: MeteredClient,
    settings: Settings,
    room_name: str,
    actor: str,
    overlap_seconds: int | None = None,
) -> Rotation:
    """Give the room a new webhook token, register its URLs at Metered, and keep the old one a while.

    The old token stays valid for `overlap_seconds` (TOKEN_OVERLAP_SECONDS unless given; 0 revokes it now).
    """
    room = get_room(Db, room_name)
    token = new_token()
    urls = webhook_urls(settings.public_base_url, token)
    metered_updated = _register_urls(metered, room, urls)
    overlap = settings.token_overlap_seconds if overlap_seconds is None else overlap_seconds
    with Db.begin() as db:
        room = load_room(db, room_name)
        before = audit.room_state(room)
        replace_token(room, token, overlap, utcnow())
        _record(db, actor, "room.token_rotated", room, before)
    return Rotation(room, urls, metered_updated)


def _record(db: Session, actor: str, action: str, room: Room, before: dict[str, Any]) -> None:
    db.flush()  # the new values, as the database will hold them, for the record's `after`
    audit.record(db, actor, action, room_id=room.id, before=before, after=audit.room_state(room))


def _register_urls(metered: MeteredClient, room: Room, urls: dict[str, str]) -> bool:
    if room.archived_at is None:
        # Metered first: if it refuses, the old token stays the only one and nothing is lost.
        metered.update_room(room.room_name, urls)
        return True
    try:
        metered.update_room(room.room_name, urls)
    except MeteredError as error:
        # Metered may refuse to change an archived room; revoking a leaked token must not depend on it.
        log.warning("room %s is archived and Metered kept its old webhook URLs (%s)", room.room_name, error)
        return False
    return True


def _create_at_metered(metered: MeteredClient, payload: dict[str, Any]) -> dict[str, Any]:
    try:
        return metered.create_room(payload)
    except (MeteredTimeout, MeteredUnavailable):
        raise
    except MeteredError:
        # Metered's status for a taken name is not documented: ask it before calling this a conflict.
        if "roomName" in payload and _exists_at_metered(metered, payload["roomName"]):
            raise RoomNameTaken(payload["roomName"]) from None
        raise


def _exists_at_metered(metered: MeteredClient, room_name: str) -> bool:
    try:
        metered.get_room(room_name)
    except MeteredError:
        return False
    return True


def _stored(metered_room: dict[str, Any]) -> dict[str, Any]:
    # Metered echoes the webhook URLs, which carry the token: a database dump must not reveal them.
    return {key: value for key, value in metered_room.items() if key not in WEBHOOK_FIELDS}


def _set_rollcall_fields(room: Room, rollcall: dict[str, Any]) -> None:
    for field, value in rollcall.items():
        if field in ROLLCALL_OPTIONS:
            # Null clears an option: the room is as if it had never been set.
            kept = {name: option for name, option in room.options.items() if name != field}
            room.options = kept if value is None else {**kept, field: value}
        else:
            setattr(room, ROLLCALL_COLUMNS[field], value)


def _find(Db: sessionmaker[Session], room_name: str) -> Room | None:
    with Db() as db:
        return db.scalars(select(Room).where(Room.room_name == room_name)).first()


def load_room(db: Session, room_name: str) -> Room:
    """Return the room called `room_name` in the database session `db`, or raise RoomNotFound."""
    room = db.scalars(select(Room).where(Room.room_name == room_name)).first()
    if room is None:
        raise RoomNotFound(room_name)
    return room


def _active(Db: sessionmaker[Session], room_name: str) -> Room:
    room = get_room(Db, room_name)
    if room.archived_at is not None:
        raise RoomArchived(room_name)
    return room


# A room archived while a meeting is under way must not lose that meeting's late leaves and end, so
# its webhook URLs keep taking everything for ARCHIVE_GRACE_SECONDS, and after that only what belongs
# to a meeting session the room already has: a stored delivery naming it, or its meeting_sessions row.
def closed_since(archived_at: datetime | None, grace_seconds: int) -> datetime | None:
    """Return when a room stops taking new meetings: its archiving plus the grace (None if not archived)."""
    return None if archived_at is None else archived_at + timedelta(seconds=grace_seconds)


def takes_delivery(connection: Connection, room_id: int, facts: DeliveryFacts, closed_at: datetime) -> bool:
    """Say whether a room closed to new meetings since `closed_at` still takes this delivery."""
    if facts.meeting_session_id is None:
        # Which meeting an unnamed delivery belongs to is decided only when it is folded. A leave or an end
        # can only close what is there; a join or a start after the cut-off can only open something new.
        return facts.event in (LEAVE, END) or facts.event_time < closed_at
    return has_meeting(connection, room_id, facts.meeting_session_id)


def has_meeting(connection: Connection, room_id: int, meeting_session_id: str) -> bool:
    """Say whether the room has this meeting session, folded or still in the inbox."""
    folded = select(MeetingSession.id).where(
        MeetingSession.meeting_session_id == meeting_session_id, MeetingSession.room_id == room_id
    )
    if connection.scalar(select(exists(folded))):
        return True
    # Not folded yet (workers behind): a delivery naming it was stored. Only archived rooms past their
    # grace ask this, so it is rare enough to go without an index of its own.
    stored = select(Delivery.id).where(
        Delivery.room_id == room_id, Delivery.meeting_session_ref == meeting_session_id
    )
    return bool(connection.scalar(select(exists(stored))))
