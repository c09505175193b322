"""Wire models of the answers that no view's own pydantic model describes, for the OpenAPI document.

Most are never instantiated: the views named in each docstring build those answers as dicts; change
them together. SessionReport and PersonAttendance are built by the report views themselves. Sessions,
attendance, notifications, history entries and stored events are the views' own models, imported here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from webhooks.audit import StoredEvent
from workers.history import HistoryEntry
from workers.notifications.ledger import NotificationOut
from workers.reports import AttendanceOut, SessionOut, SessionWithAttendance, WireModel

# A field left out of the answer where it does not apply, but never null when present.
Absent = SkipJsonSchema[None]


def absent(description: str) -> Any:
    """Declare an optional, non-nullable field (its `None` default is Python's, not the wire's)."""
    return Field(default=None, description=description, json_schema_extra=_drop_default)


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


class FieldProblem(BaseModel):
    """One problem with a request: the field's dotted path and what is wrong (webhooks.errors)."""

    field: str
    message: str


class ProblemDetails(WireModel):
    """An error answer, application/problem+json (RFC 9457), as webhooks.errors.Problem renders it."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldProblem] | Absent = absent("Every problem with the request (validation errors only).")
    metered_status: int | Absent = absent("Metered's HTTP status (502 only).")
    event_code: str | Absent = absent("Metered's eventCode (502 only).")
    checks: dict[str, Literal["ok", "unreachable"]] | Absent = absent("Each dependency (readyz only).")


class WebhookUrls(BaseModel):
    """The four webhook URLs registered at Metered, keyed by Metered's field names."""

    meetingJoinWebhook: str
    meetingLeftWebhook: str
    meetingStartedWebhook: str
    meetingEndedWebhook: str


class RoomOut(WireModel):
    """A room, as workers.rooms.room_view shows it: Metered's room object plus Rollcall's own fields."""

    # Metered's fields are whatever Metered answered (the Create Room options echoed back, and more).
    model_config = ConfigDict(extra="allow")

    metered_id: str | Absent = Field(default=None, alias="_id", json_schema_extra=_drop_default)
    room_name: str
    app: str | Absent = absent("Metered's app id.")
    created: str | Absent = absent("When Metered created the room.")
    archived: bool | Absent = absent("Whether the room is archived at Metered.")
    organizer_email: str | None
    notify_participants: bool
    min_attendance_percent: float | None
    trust_participant_emails: bool
    archived_at: str | None


class RoomCreated(RoomOut):
    """The answer to POST /api/rooms: the room and the webhook URLs registered for it."""

    webhook_urls: WebhookUrls


class RoomRotated(RoomCreated):
    """The answer to POST /api/rooms/{roomName}/rotate-token: the room, its new URLs, the old token's fate."""

    metered_updated: bool = Field(
        description="Whether Metered took the new URLs (an archived room may refuse; it rotates anyway)."
    )
    previous_token_expires_at: str | None = Field(
        description="Until when the replaced token still works; null: it no longer does."
    )


class RoomPage(WireModel):
    """A page of rooms (rooms.list_rooms)."""

    items: list[RoomOut]
    next_cursor: str | None


class SessionPage(WireModel):
    """A page of a room's meeting sessions, newest first (reports.room_sessions)."""

    items: list[SessionOut]
    next_cursor: str | None


class SessionReport(SessionWithAttendance):
    """A session with its attendance and its post-meeting notifications (reports.show_session)."""

    notifications: list[NotificationOut]


class AttendanceList(WireModel):
    """A page of a session's attendance, one entry per person, by key (reports.session_attendance)."""

    items: list[AttendanceOut]
    next_cursor: str | None


class PersonAttendance(AttendanceOut):
    """One person's attendance in one session, with that session (reports.person_attendance)."""

    session: SessionOut


class PersonAttendancePage(WireModel):
    """A page of one person's attendance across sessions, newest first."""

    items: list[PersonAttendance]
    next_cursor: str | None


class SessionHistory(WireModel):
    """A page of the changes to a session's results, oldest first (reports.session_history)."""

    items: list[HistoryEntry]
    next_cursor: str | None


class EventPage(WireModel):
    """A page of stored deliveries, newest first (audit.list_events)."""

    items: list[StoredEvent]
    next_cursor: str | None


class ReplayQueued(WireModel):
    """The answer to a replay: the delivery and its status now (audit.replay)."""

    id: int
    status: Literal["queued", "received"]


class RebuildQueued(WireModel):
    """The answer to a rebuild: the queued job (session_admin.rebuild)."""

    queued: Literal[True]
    job_id: str
    meeting_session_id: str


class DeliveryAccepted(BaseModel):
    """A webhook delivery stored for the first time (hooks.receive, 202)."""

    accepted: Literal[True]
    id: int


class DeliveryDuplicate(BaseModel):
    """A repeat of a stored delivery (hooks.receive, 200)."""

    duplicate: Literal[True]
    id: int


class Health(BaseModel):
    """The process is up (ops.healthz)."""

    status: Literal["ok"]


class Readiness(BaseModel):
    """The database and Redis both answer (ops.readyz)."""

    status: Literal["ready"]
    checks: dict[str, Literal["ok"]]
