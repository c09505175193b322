"""The Create Room request (Metered's fields and rules, plus Rollcall's own) and the PATCH request."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, TypeGuard
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, EmailStr, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_core.core_schema import ValidatorFunctionWrapHandler

# A room name is a path segment in Metered's API (/room/{name}), in its join URL
# (https://<app>.metered.live/{name}) and in Rollcall's (/api/rooms/{name}). RFC 3986's unreserved
# characters need no escaping anywhere; of those we leave out "." and "~" so that no name can be a
# dot-segment ("." or "..") that clients and proxies normalise away. Metered's own generated names
# (10 letters and digits) fit, and 100 characters is ample for a readable name.
ROOM_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,100}$"

WEBHOOK_FIELDS = ("meetingJoinWebhook", "meetingLeftWebhook", "meetingStartedWebhook", "meetingEndedWebhook")
ROLLCALL_FIELDS = ("organizerEmail", "notifyParticipants", "minAttendancePercent", "trustParticipantEmails")
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

    @field_validator("rtmpOutURL")
    @classmethod
    def _rtmp_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("rtmp", "rtmps") or not parts.hostname or any(c.isspace() for c in value):
                raise PydanticCustomError("rtmp_url", "must be an rtmp:// or rtmps:// URL")
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
    nullable: ClassVar[frozenset[str]] = frozenset({"organizerEmail", "minAttendancePercent"})
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
