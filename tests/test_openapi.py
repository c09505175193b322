"""GET /openapi.json: a valid OpenAPI 3.1 document covering every route, and schemathesis against the app.

The fuzz runs against the app served over real HTTP, with the Metered emulator behind it, after a meeting
has been played through the real webhook URLs, so that the known-good path values reach real answers.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import OpenAPIV31SpecValidator
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.conftest import API_TOKEN, run_worker
from tests.emulator_fixture import EMULATOR_SECRET, RunningEmulator
from webhooks import runtime_of
from webhooks.openapi import ENDPOINTS

AUTH_HEADERS = {
    "bearerAuth": {"Authorization": f"Bearer {API_TOKEN}"},
    "basicAuth": {"Authorization": "Basic " + base64.b64encode(f"rollcall:{API_TOKEN}".encode()).decode()},
}
FUZZED_POSTS = {
    "/api/rooms",
    "/api/rooms/{roomName}/roster",
    "/api/rooms/{roomName}/roster/import",
    "/api/events/{id}/replay",
    "/api/sessions/{meetingSessionId}/rebuild",
    "/hooks/metered/{roomToken}/{event}",
}
CHECKS = [not_a_server_error, response_schema_conformance]
EXAMPLES_PER_OPERATION = 25
VARIABLE = re.compile(r"<[^>]+>|\{[^}]+\}")


def fetch_document(app: Flask) -> dict[str, Any]:
    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200, response.get_data(as_text=True)
    document: dict[str, Any] = response.get_json()
    return document


def test_the_document_is_valid_openapi_3_1_and_needs_no_auth(app: Flask) -> None:
    document = fetch_document(app)
    assert document["openapi"].startswith("3.1")
    OpenAPIV31SpecValidator(document).validate()


def test_every_route_is_in_the_document_with_its_methods(app: Flask) -> None:
    paths = fetch_document(app)["paths"]
    # Compare with the variables blanked, so a renamed parameter ({roomToken} for <token>) still matches.
    operations = {
        (VARIABLE.sub("{}", path), method.upper()) for path, item in paths.items() for method in item
    }
    routes = {
        (VARIABLE.sub("{}", rule.rule), method)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }
    assert routes - operations == set()
    assert operations - routes == set()


def test_every_endpoint_is_described_once(app: Flask) -> None:
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()} - {"static"}
    assert endpoints - ENDPOINTS.keys() == set(), "describe these in webhooks.openapi.ENDPOINTS"
    assert ENDPOINTS.keys() - endpoints == set(), "these described endpoints have no route"


def test_security_is_what_the_contract_says(app: Flask) -> None:
    for path, item in fetch_document(app)["paths"].items():
        for method, operation in item.items():
            expected: list[dict[str, list[str]]]
            if path.startswith("/api/"):
                expected = [{"bearerAuth": []}]
            elif path == "/" or path.startswith(("/sessions/", "/rooms/")):  # the HTML pages
                expected = [{"basicAuth": []}]
            else:
                expected = []
            assert operation["security"] == expected, f"{method.upper()} {path}"


def test_answers_and_their_schemas_come_from_the_models(app: Flask) -> None:
    document = fetch_document(app)
    created = document["paths"]["/api/rooms"]["post"]["responses"]["201"]["content"]["application/json"]
    assert created["schema"] == {"$ref": "#/components/schemas/RoomCreated"}
    room = document["components"]["schemas"]["RoomCreated"]
    assert {"roomName", "webhookUrls", "organizerEmail", "archivedAt"} <= set(room["required"])
    request = document["components"]["schemas"]["CreateRoomRequest"]
    assert request["additionalProperties"] is False
    assert "meetingJoinWebhook" not in request["properties"]
    problem = document["paths"]["/api/rooms"]["post"]["responses"]["422"]["content"]
    assert problem["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/ProblemDetails"}


def test_a_route_nobody_described_still_appears_with_a_generic_answer(app: Flask) -> None:
    app.add_url_rule("/api/extra/<int:number>", "extra", lambda number: "", methods=["PUT"])
    operation = fetch_document(app)["paths"]["/api/extra/{number}"]["put"]
    number = {"name": "number", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}
    assert operation["parameters"] == [number]
    assert list(operation["responses"]) == ["default"]


def test_room_options_allow_null_only_where_the_api_does(app: Flask) -> None:
    schemas = fetch_document(app)["components"]["schemas"]

    def allows_null(model: str, field: str) -> bool:
        return {"type": "null"} in schemas[model]["properties"][field].get("anyOf", [])

    assert not allows_null("CreateRoomRequest", "enableChat")
    assert not allows_null("CreateRoomRequest", "organizerEmail")
    assert not allows_null("UpdateRoomRequest", "enableChat")
    assert allows_null("UpdateRoomRequest", "organizerEmail")  # null clears it


@pytest.fixture
def served(live_app: Callable[..., Any], emulator: RunningEmulator) -> Iterator[tuple[Flask, str]]:
    """Serve the app with the Metered emulator behind it, so room creation works during the fuzz."""
    settings = {"metered_api_url": emulator.url, "metered_secret_key": EMULATOR_SECRET}
    # No grace period: the played meeting is final after one worker run, with its summary email planned.
    with live_app(**settings, finalize_after_seconds=0) as served:
        yield served


def play_a_meeting(app: Flask, base_url: str) -> dict[str, Any]:
    """Create a room and play one short meeting through its webhook URLs; return the path values it made."""
    headers = AUTH_HEADERS["bearerAuth"]
    with httpx.Client(base_url=base_url, timeout=10) as client:
        options = {"roomName": "fuzz-room", "organizerEmail": "org@example.com", "minAttendancePercent": 50}
        room = client.post("/api/rooms", json=options, headers=headers).json()
        token = room["webhookUrls"]["meetingJoinWebhook"].split("/")[-2]
        common = {"meetingSessionId": "ms-fuzz", "roomName": "fuzz-room"}
        bodies = [
            ("meeting-started", {**common, "startTime": "2026-03-02T09:00:00Z"}),
            (
                "participant-joined",
                {**common, "_id": "ps-1", "email": "Ada@example.com", "joinTime": 1772442060},
            ),
            (
                "participant-joined",
                {**common, "_id": "ps-2", "name": "Bo", "joinTime": "2026-03-02T09:10:00Z"},
            ),
            ("participant-left", {**common, "_id": "ps-1", "leftTime": "2026-03-02T09:30:00Z"}),
            ("meeting-ended", {**common, "endTime": "2026-03-02T09:45:00Z"}),
        ]
        ids = [
            client.post(f"/hooks/metered/{token}/{event}", json=body).json()["id"] for event, body in bodies
        ]
        run_worker(runtime_of(app))
        session = client.get("/api/sessions/ms-fuzz", headers=headers).json()
    assert session["status"] == "final" and session["notifications"], session
    return {
        "roomName": "fuzz-room",
        "roomToken": token,
        "meetingSessionId": "ms-fuzz",
        "participantKey": "ada@example.com",
        "id": ids[1],
    }


class FuzzFailure(AssertionError):
    """A schemathesis check failed: the request that did it and what the checks said."""


def fuzz(operation: Any, known: dict[str, Any], headers: dict[str, str], base_url: str) -> str | None:
    """Run schemathesis on one operation, with valid and invalid data; return its failure report, or None."""
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    strategies = [operation.as_strategy(generation_mode=mode) for mode in modes]
    fixed = {p.name: known[p.name] for p in operation.path_parameters if p.name in known}
    if fixed:
        # Generated names rarely exist; the played meeting's do, and reach the answers with a body.
        strategies += [operation.as_strategy(generation_mode=mode, path_parameters=fixed) for mode in modes]

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=st.one_of(strategies))
    def run(case: Any) -> None:
        try:
            case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS)
        except FailureGroup as failure:
            raise FuzzFailure(f"{case.as_curl_command(headers=headers)}\n{failure}") from None

    try:
        run()
    except Exception as error:  # collect every operation's failures into one report
        return f"{operation.label}:\n{error}"
    return None


def test_schemathesis_finds_no_server_error_and_no_schema_violation(served: tuple[Flask, str]) -> None:
    app, base_url = served
    known = play_a_meeting(app, base_url)
    document = httpx.get(f"{base_url}/openapi.json").json()
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    failures = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()
        operation = result.ok()
        if operation.method.upper() != "GET" and operation.path not in FUZZED_POSTS:
            continue
        security = document["paths"][operation.path][operation.method.lower()]["security"]
        headers = AUTH_HEADERS[next(iter(security[0]))] if security else {}
        failure = fuzz(operation, known, headers, base_url)
        if failure:
            failures.append(failure)
    assert not failures, "\n\n".join(failures)


def cursor(text: str) -> str:
    """Return `text` as pagination spells a cursor (unpadded URL-safe base64)."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


# Values that once got a 5xx: each must be answered with a documented 4xx (or a 2xx), never a 5xx.
HOSTILE = [
    # str.isdigit() holds for superscript digits, which int() refuses.
    ("GET", "/api/rooms", {"query": {"limit": "²"}}),
    ("GET", "/api/rooms", {"query": {"cursor": cursor("id:²")}}),
    # An id beyond any database integer: SQLite's driver overflows, PostgreSQL refuses the parameter.
    ("GET", "/api/events", {"query": {"cursor": cursor("id:" + "9" * 20)}}),
    ("POST", "/api/events/{id}/replay", {"path_parameters": {"id": 10**20}}),
    # PostgreSQL text cannot hold NUL: looking it up must not read as "database unavailable".
    ("GET", "/api/rooms/{roomName}", {"path_parameters": {"roomName": "a\x00b"}}),
    ("GET", "/api/events", {"query": {"room": "a\x00b"}}),
]


@pytest.mark.parametrize(("method", "path", "values"), HOSTILE)
def test_hostile_values_get_no_server_error(
    served: tuple[Flask, str], method: str, path: str, values: dict[str, Any]
) -> None:
    _, base_url = served
    case = schemathesis.openapi.from_url(f"{base_url}/openapi.json")[path][method].Case(**values)
    case.call_and_validate(base_url=base_url, headers=AUTH_HEADERS["bearerAuth"], checks=CHECKS)
