"""What each endpoint takes and answers, declared once for the OpenAPI document.

Keyed by Flask endpoint name. Only what the route and the view do not already say: the route gives the
path and methods, the view's docstring the summary, its auth decorator the security.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from webhooks.audit import STATUSES
from webhooks.pagination import MAX_LIMIT
from workers import wire
from workers.events import EVENTS
from workers.payloads import EndBody, JoinBody, LeaveBody, StartBody
from workers.room_options import CreateRoomRequest, UpdateRoomRequest

Schema = dict[str, Any]
JSON, FORM = "application/json", "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Endpoint:
    """What one endpoint takes and answers, beyond what its route and its view already say.

    An answer is a pydantic type (sent as JSON), a media type (sent as text), or a tuple of those.
    """

    answers: dict[int, Any]
    problems: tuple[int, ...] = ()
    body: Any = None
    body_media: tuple[str, ...] = (JSON,)
    query: dict[str, Schema] = field(default_factory=dict)
    path: dict[str, Schema] = field(default_factory=dict)


PAGE: dict[str, Schema] = {
    "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 50},
    "cursor": {"type": "string", "description": "The nextCursor of the previous page."},
}
EVENT_FILTERS: dict[str, Schema] = {
    "room": {"type": "string", "description": "A room name."},
    "session": {"type": "string", "description": "A meetingSessionId."},
    "type": {"type": "string", "enum": list(EVENTS)},
    "status": {"type": "string", "enum": list(STATUSES)},
    "since": {"type": "string", "description": "Received at or after: ISO-8601 (no offset means UTC)."},
}
CSV: dict[str, Schema] = {
    "format": {"type": "string", "enum": ["csv"], "description": "CSV whatever Accept says"}
}
OVERLAP: Schema = {
    "type": "integer",
    "minimum": 0,
    "description": "Seconds the old token keeps working: 0 to TOKEN_OVERLAP_SECONDS (the default).",
}
METERED_PROBLEMS = (502, 503, 504)  # Metered refused, is not configured, or did not answer
BODY_PROBLEMS = (400, 413, 415, 422)

ENDPOINTS: dict[str, Endpoint] = {
    "ops.healthz": Endpoint({200: wire.Health}),
    "ops.readyz": Endpoint({200: wire.Readiness}, (503,)),
    "metrics.metrics": Endpoint({200: "text/plain"}, (401,)),  # 401 only when METRICS_TOKEN is set
    "openapi.document": Endpoint({200: dict[str, Any]}),
    "rooms.create_room": Endpoint(
        {201: wire.RoomCreated}, (*BODY_PROBLEMS, 409, *METERED_PROBLEMS), CreateRoomRequest
    ),
    "rooms.list_rooms": Endpoint(
        {200: wire.RoomPage}, (422,), query={**PAGE, "includeArchived": {"type": "boolean"}}
    ),
    "rooms.show_room": Endpoint({200: wire.RoomOut}, (404,)),
    "rooms.update_room": Endpoint(
        {200: wire.RoomOut}, (*BODY_PROBLEMS, 404, 409, *METERED_PROBLEMS), UpdateRoomRequest
    ),
    "rooms.archive_room": Endpoint({200: wire.RoomOut}, (404, *METERED_PROBLEMS)),
    "rooms.rotate_token": Endpoint(
        {200: wire.RoomRotated},
        (404, 422, *METERED_PROBLEMS),
        query={"overlapSeconds": OVERLAP},
    ),
    "hooks.receive": Endpoint(
        {202: wire.DeliveryAccepted, 200: wire.DeliveryDuplicate},
        (*BODY_PROBLEMS, 404, 410),
        body=JoinBody | LeaveBody | StartBody | EndBody,
        body_media=(JSON, FORM),
        path={"event": {"type": "string", "enum": list(EVENTS)}},
    ),
    "audit.list_events": Endpoint({200: wire.EventPage}, (422,), query={**PAGE, **EVENT_FILTERS}),
    "audit.replay": Endpoint({202: wire.ReplayQueued}, (404,)),
    "reports.room_sessions": Endpoint({200: wire.SessionPage}, (404, 422), query=PAGE),
    "reports.show_session": Endpoint({200: wire.SessionReport}, (404,)),
    "reports.session_attendance": Endpoint(
        {200: (wire.AttendanceList, "text/csv")}, (404, 422), query={**PAGE, **CSV}
    ),
    "reports.person_attendance": Endpoint({200: wire.PersonAttendancePage}, (422,), query=PAGE),
    "reports.session_history": Endpoint({200: wire.SessionHistory}, (404, 422), query=PAGE),
    "session_admin.rebuild": Endpoint({202: wire.RebuildQueued}, (404,)),
    "pages.session_page": Endpoint({200: "text/html"}, (404,)),
    "pages.room_page": Endpoint({200: "text/html"}, (404, 422), query=PAGE),
}
