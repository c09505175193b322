"""GET /openapi.json: the OpenAPI 3.1 document, built from the app's routes and the wire models.

Every rule in the app's url_map becomes an operation, so a route nobody described still appears (with a
generic answer). What each endpoint takes and answers is declared once, in ENDPOINTS, by naming the
workers.wire classes its view builds its answers from; its summary is its view's docstring, and its
security is read off the auth decorator the view wears.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from http import HTTPStatus
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

from flask import Blueprint, Flask, Response, current_app, jsonify
from pydantic import TypeAdapter
from pydantic.alias_generators import to_camel
from werkzeug.routing import Rule

from webhooks.audit import STATUSES
from webhooks.auth import require_basic, require_token
from webhooks.pagination import MAX_LIMIT
from webhooks.roster import CSV_TYPES
from webhooks.roster_forms import ImportForm, MemberForm, RemoveForm
from workers import wire
from workers.bulk_replay import ReplayFilter
from workers.deliveries.parsing import EVENTS, EndBody, JoinBody, LeaveBody, StartBody
from workers.overrides import OverrideRequest
from workers.rooms import CreateRoomRequest, RoomSettings, UpdateRoomRequest
from workers.roster import EFFECTIVE, AddMemberRequest, UpdateMemberRequest

blueprint = Blueprint("openapi", __name__)

Mode = Literal["validation", "serialization"]
Schema = dict[str, Any]
JSON, FORM, PROBLEM = "application/json", "application/x-www-form-urlencoded", "application/problem+json"


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
ON_ROOM_CLOCK = "ISO-8601; a date, or a time without an offset, is on the room's timeZone."
RANGE: dict[str, Schema] = {
    "from": {"type": "string", "description": f"Required. Sessions that began at or after: {ON_ROOM_CLOCK}"},
    "to": {"type": "string", "description": f"Required. Sessions that began before: {ON_ROOM_CLOCK}"},
}
OVERLAP: Schema = {
    "type": "integer",
    "minimum": 0,
    "description": "Seconds the old token keeps working: 0 to TOKEN_OVERLAP_SECONDS (the default).",
}
MOMENT: Schema = {"type": "string", "format": "date-time", "description": "ISO-8601; no offset means UTC."}
ROSTER_IMPORT: dict[str, Schema] = {
    "replace": {"type": "boolean", "description": "Remove the members the file does not list."},
    "effectiveFrom": {**MOMENT, "description": EFFECTIVE},
}
AUDIT_FILTERS: dict[str, Schema] = {
    "room": EVENT_FILTERS["room"],
    "session": EVENT_FILTERS["session"],
    "action": {"type": "string", "description": "e.g. room.created, roster.added, delivery.replayed."},
    "actor": {"type": "string", "description": "`api`, `api:<token name>` or `cli:<os user>`."},
    "since": {**MOMENT, "description": "At or after: ISO-8601 (no offset means UTC)."},
    "until": {**MOMENT, "description": "Before: ISO-8601 (no offset means UTC)."},
}
EXPORT_RANGE: dict[str, Schema] = {
    "kind": {"type": "string", "enum": ["deliveries", "management"], "description": "Required."},
    "since": AUDIT_FILTERS["since"],
    "until": AUDIT_FILTERS["until"],
    "cursor": {"type": "integer", "minimum": 0, "description": "Resume after the line with this id."},
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
    "roster.list_members": Endpoint(
        {200: wire.RosterPage},
        (404, 422),
        query={**PAGE, "at": {**MOMENT, "description": "The roster in force then (default now)."}},
    ),
    "roster.roster_history": Endpoint({200: wire.RosterHistory}, (404, 422), query=PAGE),
    "roster.add_member": Endpoint({201: wire.RosterMemberOut}, (*BODY_PROBLEMS, 404, 409), AddMemberRequest),
    "roster.update_member": Endpoint({200: wire.RosterMemberOut}, (*BODY_PROBLEMS, 404), UpdateMemberRequest),
    "roster.remove_member": Endpoint(
        {200: wire.RosterMemberOut}, (404, 422), query={"effectiveFrom": ROSTER_IMPORT["effectiveFrom"]}
    ),
    "roster.import_members": Endpoint(
        {200: wire.RosterImported}, (*BODY_PROBLEMS, 404), str, tuple(sorted(CSV_TYPES)), query=ROSTER_IMPORT
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
    "erasure.erase": Endpoint({200: wire.PersonErased}, (404,)),
    "seals.list_seals": Endpoint({200: wire.SealPage}, (422,), query=PAGE),
    "seals.start_verification": Endpoint(
        {202: wire.VerificationQueued}, (422,), str, ("application/x-ndjson", "text/plain")
    ),
    "seals.show_verification": Endpoint({200: wire.VerificationProgress}, (404,)),
    "reports.room_sessions": Endpoint({200: wire.SessionPage}, (404, 422), query=PAGE),
    "reports.show_session": Endpoint({200: wire.SessionReport}, (404,)),
    "reports.session_attendance": Endpoint(
        {200: (wire.AttendanceList, "text/csv")}, (404, 422), query={**PAGE, **CSV}
    ),
    "reports.person_attendance": Endpoint({200: wire.PersonAttendancePage}, (422,), query=PAGE),
    "reports.session_history": Endpoint({200: wire.SessionHistory}, (404, 422), query=PAGE),
    "series.room_series": Endpoint(
        {200: (wire.SeriesReport, "text/csv")}, (404, 422), query={**RANGE, **CSV}
    ),
    "series.room_billing": Endpoint(
        {200: (wire.BillingReport, "text/csv")}, (404, 422), query={**RANGE, **CSV}
    ),
    "session_admin.rebuild": Endpoint({202: wire.RebuildQueued}, (404,)),
    "session_admin.override_status": Endpoint(
        {200: wire.PersonStatus}, (400, 404, 415, 422), OverrideRequest
    ),
    "session_admin.clear_override": Endpoint({204: ()}, (404,)),  # 204: no content
    # The management audit and the export (issue 15).
    "audit_records.list_records": Endpoint({200: wire.AuditPage}, (422,), query={**PAGE, **AUDIT_FILTERS}),
    "audit_export.export": Endpoint({200: "application/x-ndjson"}, (422,), query=EXPORT_RANGE),
    "bulk_replay.replay_matching_deliveries": Endpoint(
        {202: wire.BulkReplayQueued}, (400, 415, 422), ReplayFilter
    ),
    "bulk_replay.show_job": Endpoint({200: wire.JobProgress}, (404,)),
    "pages.session_page": Endpoint({200: "text/html"}, (404,)),
    "pages.room_page": Endpoint(
        {200: "text/html"},
        (404, 422),
        query={
            **PAGE,
            "matrixPage": {"type": "integer", "minimum": 1, "description": "200 people a page."},
            "from": {"type": "string", "description": f"The matrix's sessions began from: {ON_ROOM_CLOCK}"},
            "to": {"type": "string", "description": f"and before: {ON_ROOM_CLOCK} With from, or neither."},
        },
    ),
    "pages.home_page": Endpoint({200: "text/html"}, (422,), query=PAGE),
    # The room page's forms: 303 back to the page once done; a refusal is the page again, naming each problem.
    "roster_forms.add_member": Endpoint(
        {303: (), 409: "text/html", 422: "text/html"}, (403, 404), MemberForm, (FORM,)
    ),
    "roster_forms.remove_member": Endpoint(
        {303: (), 404: "text/html", 422: "text/html"}, (403,), RemoveForm, (FORM,)
    ),
    "roster_forms.import_members": Endpoint(
        {303: (), 422: "text/html"}, (403, 404), ImportForm, ("multipart/form-data",)
    ),
}


@blueprint.get("/openapi.json")
def document() -> Response:
    """Answer this app's OpenAPI 3.1 document."""
    built = current_app.extensions.get("rollcall.openapi")
    if built is None:
        # The routes are fixed once the app serves requests: build the document once per app.
        built = current_app.extensions["rollcall.openapi"] = build_document(current_app)
    return jsonify(built)


def build_document(app: Flask) -> dict[str, Any]:
    """Return the OpenAPI 3.1 document of every route of `app` but `static`."""
    paths: dict[str, dict[str, Any]] = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path, variables = path_template(rule)
        view = app.view_functions[rule.endpoint]
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):  # Werkzeug answers those
            paths.setdefault(path, {})[method.lower()] = _operation(rule.endpoint, view, variables)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Rollcall",
            "version": _version(),
            "description": "Attendance for Metered video rooms, from Metered's webhooks.",
        },
        "paths": paths,
        "components": {"schemas": _schemas()[1], "securitySchemes": SECURITY_SCHEMES},
    }


def _version() -> str:
    try:
        return version("rollcall")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "0+unknown"


# A Werkzeug rule variable: <name>, <converter:name> or <converter(arguments):name>.
_VARIABLE = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")
PATH_NAMES = {"token": "roomToken", "delivery_id": "id"}  # the contract's names for these
CONVERTER_SCHEMAS: dict[str, Schema] = {
    "default": {"type": "string", "pattern": "^[^/]+$"},
    "path": {"type": "string", "minLength": 1},
    "id": {"type": "string", "minLength": 1, "description": "Any text, percent-encoded (`/` as `%2F`)."},
    "int": {"type": "integer", "minimum": 0},
    "float": {"type": "number", "minimum": 0},
    "uuid": {"type": "string", "format": "uuid"},
}


def path_template(rule: Rule) -> tuple[str, list[tuple[str, Schema]]]:
    """Return the rule as an OpenAPI path template, and each path variable's name and schema."""
    variables: list[tuple[str, Schema]] = []

    def replace(match: re.Match[str]) -> str:
        name = PATH_NAMES.get(match["name"], to_camel(match["name"]))
        converter = match["converter"] or "default"
        variables.append((name, CONVERTER_SCHEMAS.get(converter, CONVERTER_SCHEMAS["default"])))
        return "{" + name + "}"

    return _VARIABLE.sub(replace, rule.rule), variables


def _operation(endpoint: str, view: Callable[..., Any], variables: list[tuple[str, Schema]]) -> Schema:
    described = ENDPOINTS.get(endpoint, Endpoint({}))
    security = _security(view)
    operation: Schema = {
        "operationId": endpoint,
        "tags": [endpoint.partition(".")[0]],
        "summary": (view.__doc__ or endpoint).strip().splitlines()[0],
        "security": security,
        "parameters": [
            *(_parameter("path", name, described.path.get(name, schema)) for name, schema in variables),
            *(_parameter("query", name, schema, required=False) for name, schema in described.query.items()),
        ],
    }
    if described.body is not None:
        schema = _schemas()[0][described.body, "validation"]
        content = {media: {"schema": schema} for media in described.body_media}
        operation["requestBody"] = {"required": False, "content": content}
    if endpoint in ENDPOINTS:
        operation["responses"] = dict(_responses(described, bool(security)))
    else:
        operation["responses"] = {
            "default": {"description": "Not described in webhooks.openapi.ENDPOINTS yet."}
        }
    return operation


# On every answer (webhooks.request_ids), and recorded on every audit record the request adds.
REQUEST_ID = {
    "X-Request-Id": {
        "description": "The request's X-Request-Id if it sent a usable one (1-64 printable ASCII characters, "
        "no spaces), else one made for it.",
        "schema": {"type": "string"},
    }
}


def _responses(described: Endpoint, secured: bool) -> Iterator[tuple[str, Schema]]:
    schemas = _schemas()[0]
    for status, answer in described.answers.items():
        content = dict(_content(item, schemas) for item in _items(answer))
        yield (
            str(status),
            {"description": HTTPStatus(status).phrase, "content": content, "headers": REQUEST_ID},
        )
    problem = {PROBLEM: {"schema": schemas[wire.ProblemDetails, "serialization"]}}
    for status in sorted({*described.problems, *((401,) if secured else ())}):
        yield (
            str(status),
            {"description": HTTPStatus(status).phrase, "content": problem, "headers": REQUEST_ID},
        )
    yield (
        "default",
        {
            "description": "Any other error: every error is problem+json",
            "content": problem,
            "headers": REQUEST_ID,
        },
    )


def _items(answer: Any) -> tuple[Any, ...]:
    return answer if isinstance(answer, tuple) else (answer,)


def _content(item: Any, schemas: dict[tuple[Any, Mode], Schema]) -> tuple[str, Schema]:
    if isinstance(item, str):
        return item, {"schema": {"type": "string"}}
    return JSON, {"schema": schemas[item, "serialization"]}


def _parameter(where: str, name: str, schema: Schema, *, required: bool = True) -> Schema:
    return {"name": name, "in": where, "required": required, "schema": schema}


def _unguarded() -> None:
    """Stand in for a view, to learn what the auth decorators' wrappers look like."""


SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <API_TOKEN>"},
    "basicAuth": {"type": "http", "scheme": "basic", "description": "The API token as the password"},
}
# Every view wrapped by require_token shares one wrapper code object (likewise require_basic), so the
# document states the auth each view enforces, not what a table claims it does.
_SECURITY_BY_WRAPPER: dict[object, list[dict[str, list[str]]]] = {
    require_token(_unguarded).__code__: [{"bearerAuth": []}],
    require_basic(_unguarded).__code__: [{"basicAuth": []}],
}


def _security(view: Callable[..., Any]) -> list[dict[str, list[str]]]:
    return _SECURITY_BY_WRAPPER.get(getattr(view, "__code__", None), [])


@cache
def _schemas() -> tuple[dict[tuple[Any, Mode], Schema], dict[str, Schema]]:
    """Return the JSON Schema of each type ENDPOINTS names, by (type, mode), and the components they use."""
    wanted: set[tuple[Any, Mode]] = {(wire.ProblemDetails, "serialization")}
    for described in ENDPOINTS.values():
        if described.body is not None:
            wanted.add((described.body, "validation"))
        for answer in described.answers.values():
            wanted |= {(item, "serialization") for item in _items(answer) if not isinstance(item, str)}
    inputs = [(key, key[1], TypeAdapter(key[0])) for key in wanted]
    found, defs = TypeAdapter.json_schemas(inputs, by_alias=True, ref_template="#/components/schemas/{model}")
    schemas = {key: schema for (key, _), schema in found.items()}
    definitions: dict[str, Schema] = defs.get("$defs", {})
    for model in (CreateRoomRequest, UpdateRoomRequest):
        _refuse_null(definitions[schemas[model, "validation"]["$ref"].rpartition("/")[2]], model)
    return schemas, definitions


def _refuse_null(definition: Schema, model: type[RoomSettings]) -> None:
    # RoomSettings types its fields `X | None` for Python's sake but refuses null on the wire, except in
    # the fields it calls nullable: a schema allowing null there would promise what the API refuses.
    for name, property_schema in definition["properties"].items():
        branches = property_schema.get("anyOf", [])
        if name in model.nullable or {"type": "null"} not in branches:
            continue
        del property_schema["anyOf"]
        if "default" in property_schema and property_schema["default"] is None:
            del property_schema["default"]
        kept = [branch for branch in branches if branch != {"type": "null"}]
        property_schema.update(kept[0] if len(kept) == 1 else {"anyOf": kept})
