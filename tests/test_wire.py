"""Every answer of every documented endpoint, success and error alike, matches its schema in /openapi.json.

The schemathesis fuzz in test_openapi reaches most answers by chance; this walks each endpoint on purpose,
over real HTTP with the Metered emulator behind the app, after a meeting has been played and folded.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import schemathesis
from flask import Flask

from tests.conftest import run_worker
from tests.test_openapi import AUTH_HEADERS, CHECKS, play_a_meeting, served  # noqa: F401  (fixture)
from tests.test_pages import Node, parse_html
from webhooks import runtime_of
from webhooks.openapi import ENDPOINTS

BEARER, BASIC = AUTH_HEADERS["bearerAuth"], AUTH_HEADERS["basicAuth"]
JOIN = {
    "meetingSessionId": "ms-fuzz",
    "roomName": "fuzz-room",
    "_id": "ps-9",
    "name": "Cy",
    "joinTime": "2026-03-02T09:20:00Z",
}


def test_every_answer_matches_its_schema(served: tuple[Flask, str]) -> None:  # noqa: F811  (the fixture)
    app, base_url = served
    known = play_a_meeting(app, base_url)
    document = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    answered: set[tuple[str, int]] = set()

    def call(
        endpoint: str,
        path: str,
        method: str,
        headers: dict[str, str] | None = None,
        sending: dict[str, Any] | None = None,
        **values: Any,
    ) -> None:
        case = document[path][method].Case(**values)
        response = case.call_and_validate(
            base_url=base_url, headers=headers or {}, checks=CHECKS, **(sending or {})
        )
        answered.add((endpoint, response.status_code))

    room = {"path_parameters": {"roomName": known["roomName"]}}
    session = {"path_parameters": {"meetingSessionId": known["meetingSessionId"]}}
    hook: dict[str, Any] = {
        "path_parameters": {"roomToken": known["roomToken"], "event": "participant-joined"},
        "media_type": "application/json",
    }
    call("ops.healthz", "/healthz", "GET")
    call("ops.readyz", "/readyz", "GET")
    call("metrics.metrics", "/metrics", "GET")
    call("openapi.document", "/openapi.json", "GET")
    call("rooms.create_room", "/api/rooms", "POST", BEARER, body={"roomName": "second-room"})
    call("rooms.create_room", "/api/rooms", "POST", BEARER, body={"roomName": "second-room"})  # 409
    call("rooms.create_room", "/api/rooms", "POST", BEARER, body={"roomName": "a b", "colour": 1})  # 422
    call("rooms.create_room", "/api/rooms", "POST", body={})  # 401
    call("rooms.list_rooms", "/api/rooms", "GET", BEARER, query={"limit": 1})
    call("rooms.list_rooms", "/api/rooms", "GET", BEARER, query={"limit": 0})  # 422
    call("rooms.show_room", "/api/rooms/{roomName}", "GET", BEARER, **room)
    call("rooms.show_room", "/api/rooms/{roomName}", "GET", BEARER, path_parameters={"roomName": "nope"})
    change = {"minAttendancePercent": 40}
    call("rooms.update_room", "/api/rooms/{roomName}", "PATCH", BEARER, body=change, **room)
    call("hooks.receive", "/hooks/metered/{roomToken}/{event}", "POST", body=JOIN, **hook)
    call("hooks.receive", "/hooks/metered/{roomToken}/{event}", "POST", body=JOIN, **hook)  # 200 duplicate
    call("audit.list_events", "/api/events", "GET", BEARER, query={"limit": 2})
    call("audit.replay", "/api/events/{id}/replay", "POST", BEARER, path_parameters={"id": known["id"]})
    call("audit.replay", "/api/events/{id}/replay", "POST", BEARER, path_parameters={"id": 10**9})  # 404
    call("reports.room_sessions", "/api/rooms/{roomName}/sessions", "GET", BEARER, **room)
    call("reports.show_session", "/api/sessions/{meetingSessionId}", "GET", BEARER, **session)
    attendance = "/api/sessions/{meetingSessionId}/attendance"
    call("reports.session_attendance", attendance, "GET", BEARER, query={"limit": 1}, **session)
    call("reports.session_attendance", attendance, "GET", BEARER, query={"format": "csv"}, **session)
    shown = httpx.get(f"{base_url}/api/sessions/ms-fuzz", headers=BEARER).json()
    person = {"participantKey": shown["attendance"][0]["participantKey"]}  # a person with attendance
    people = "/api/people/{participantKey}/attendance"
    call("reports.person_attendance", people, "GET", BEARER, path_parameters=person)
    call("reports.session_history", "/api/sessions/{meetingSessionId}/history", "GET", BEARER, **session)
    span = {"from": "2026-03-01", "to": "2026-04-01"}  # the played meeting's month
    for name in ("series", "billing"):
        path = f"/api/rooms/{{roomName}}/{name}"
        call(f"series.room_{name}", path, "GET", BEARER, query=span, **room)
        call(f"series.room_{name}", path, "GET", BEARER, query={**span, "format": "csv"}, **room)
        call(f"series.room_{name}", path, "GET", BEARER, query={"from": "soon"}, **room)  # 422
    call("session_admin.rebuild", "/api/sessions/{meetingSessionId}/rebuild", "POST", BEARER, **session)
    status = "/api/sessions/{meetingSessionId}/people/{participantKey}/status"
    whom = {"path_parameters": {**session["path_parameters"], **person}}
    excused = {"status": "excused", "reason": "ill"}
    call("session_admin.override_status", status, "PUT", BEARER, body=excused, **whom)
    call("session_admin.override_status", status, "PUT", BEARER, body={"status": "guest"}, **whom)  # 422
    call("session_admin.clear_override", status, "DELETE", BEARER, **whom)
    call("session_admin.clear_override", status, "DELETE", BEARER, **whom)  # 404: none left
    call("pages.session_page", "/sessions/{meetingSessionId}", "GET", BASIC, **session)
    call("pages.room_page", "/rooms/{roomName}", "GET", BASIC, **room)
    call("pages.home_page", "/", "GET", BASIC)
    members = "/api/rooms/{roomName}/roster"
    member = "/api/rooms/{roomName}/roster/{participantKey}"
    ann = {"path_parameters": {"roomName": known["roomName"], "participantKey": "ext:ann"}}
    call("roster.add_member", members, "POST", BEARER, body={"externalUserId": "ann"}, **room)
    call("roster.add_member", members, "POST", BEARER, body={"externalUserId": "ann"}, **room)  # 409
    call("roster.add_member", members, "POST", BEARER, body={"email": "nope"}, **room)  # 422
    call("roster.list_members", members, "GET", BEARER, query={"at": "2026-03-02T09:00:00Z"}, **room)
    call("roster.list_members", members, "GET", BEARER, query={"at": "soon"}, **room)  # 422
    call("roster.update_member", member, "PATCH", BEARER, body={"role": "host"}, **ann)
    roster_csv: dict[str, Any] = {"media_type": "text/plain", **room}  # schemathesis sends no text/csv
    call(
        "roster.import_members",
        f"{members}/import",
        "POST",
        BEARER,
        body="email\nbo@example.com\n",
        **roster_csv,
    )
    call(
        "roster.import_members", f"{members}/import", "POST", BEARER, body="email\nbo@\n", **roster_csv
    )  # 422
    call("roster.remove_member", member, "DELETE", BEARER, **ann)
    call("roster.remove_member", member, "DELETE", BEARER, **ann)  # 404
    call("seals.list_seals", "/api/audit/seals", "GET", BEARER, query={"limit": 5})
    call("seals.list_seals", "/api/audit/seals", "GET", BEARER, query={"cursor": "nope"})  # 422
    kept = httpx.get(f"{base_url}/api/audit/seals", headers=BEARER).json()["items"]
    copy: dict[str, Any] = {"media_type": "text/plain"}  # schemathesis sends no NDJSON
    ndjson = "".join(json.dumps(seal) + "\n" for seal in kept)
    call("seals.start_verification", "/api/audit/verify", "POST", BEARER, body=ndjson, **copy)
    call("seals.start_verification", "/api/audit/verify", "POST", BEARER, body="{}\n", **copy)  # 422
    verifying = httpx.post(f"{base_url}/api/audit/verify", headers=BEARER).json()["jobId"]
    progress, job = "/api/audit/verify/{jobId}", {"path_parameters": {"jobId": verifying}}
    call("seals.show_verification", progress, "GET", BEARER, **job)  # queued: no result yet
    run_worker(runtime_of(app))
    call("seals.show_verification", progress, "GET", BEARER, **job)  # finished, with its result
    call("seals.show_verification", progress, "GET", BEARER, path_parameters={"jobId": "nope"})  # 404
    call("erasure.erase", "/api/people/{participantKey}/erase", "POST", BEARER, path_parameters=person)
    call("erasure.erase", "/api/people/{participantKey}/erase", "POST", BEARER, path_parameters=person)  # 404
    call("audit_records.list_records", "/api/audit", "GET", BEARER, query={"limit": 2})
    call("audit_records.list_records", "/api/audit", "GET", BEARER, query={"since": "soon"})  # 422
    call("audit_export.export", "/api/audit/export", "GET", BEARER, query={"kind": "management"})
    call("audit_export.export", "/api/audit/export", "GET", BEARER, query={"kind": "all"})  # 422
    replay = "/api/events/replay"
    call("bulk_replay.replay_matching_deliveries", replay, "POST", BEARER, body={"status": "failed"})
    call("bulk_replay.replay_matching_deliveries", replay, "POST", BEARER, body={"status": "lost"})  # 422
    job_id = httpx.post(f"{base_url}{replay}", json={}, headers=BEARER).json()["jobId"]
    call("bulk_replay.show_job", "/api/jobs/{jobId}", "GET", BEARER, path_parameters={"jobId": job_id})
    call("bulk_replay.show_job", "/api/jobs/{jobId}", "GET", BEARER, path_parameters={"jobId": "nope"})  # 404
    call("roster.roster_history", f"{members}/history", "GET", BEARER, **room)
    call_forms(call, base_url, known["roomName"])
    call("rooms.rotate_token", "/api/rooms/{roomName}/rotate-token", "POST", BEARER, **room)
    call("rooms.archive_room", "/api/rooms/{roomName}", "DELETE", BEARER, **room)

    documented = {(name, status) for name, described in ENDPOINTS.items() for status in described.answers}
    assert documented - answered == set(), "call these endpoints for these answers too"
    problems = {(name, status) for name, status in answered if status >= 400}
    assert {("rooms.create_room", 401), ("rooms.create_room", 409), ("rooms.create_room", 422)} <= problems
    assert {("rooms.show_room", 404), ("rooms.list_rooms", 422), ("audit.replay", 404)} <= problems


def call_forms(call: Callable[..., None], base_url: str, room_name: str) -> None:
    """Post the room page's roster forms, with their CSRF tokens and this site's Origin, for each answer."""
    page = parse_html(httpx.get(f"{base_url}/rooms/{room_name}", headers=BASIC).text)
    tokens = {
        form.attrs["id"]: node.attrs["value"]
        for form in page.find_all("form")
        for node in form.find_all("input")
        if node.attrs.get("name") == "csrfToken" and "id" in form.attrs
    }
    remove_token = form_token_of(page, "remove-member")
    sent = {"headers": {**BASIC, "Origin": base_url}, "sending": {"allow_redirects": False}}
    room = {"path_parameters": {"roomName": room_name}}
    form = {"media_type": "application/x-www-form-urlencoded", **room}
    add, remove = "/rooms/{roomName}/roster", "/rooms/{roomName}/roster/remove"
    cy = {"csrfToken": tokens["add-member"], "externalUserId": "cy"}
    call("roster_forms.add_member", add, "POST", body=cy, **form, **sent)  # 303
    call("roster_forms.add_member", add, "POST", body=cy, **form, **sent)  # 409
    call("roster_forms.add_member", add, "POST", body={**cy, "email": "nope"}, **form, **sent)  # 422
    gone = {"csrfToken": remove_token, "participantKey": "ext:cy"}
    call("roster_forms.remove_member", remove, "POST", body=gone, **form, **sent)  # 303
    call("roster_forms.remove_member", remove, "POST", body=gone, **form, **sent)  # 404
    later = {"externalUserId": "later", "effectiveFrom": "2099-01-01T00:00:00Z"}
    assert (
        httpx.post(f"{base_url}/api/rooms/{room_name}/roster", json=later, headers=BEARER).status_code == 201
    )
    early = {**gone, "participantKey": "ext:later"}  # removed now, before they were added: 422
    call("roster_forms.remove_member", remove, "POST", body=early, **form, **sent)
    upload = {"media_type": "multipart/form-data", **room}
    csv_form = {"csrfToken": tokens["import-roster"], "mode": "merge"}
    imports = "/rooms/{roomName}/roster/import"
    for text in (b"email\ndi@example.com\n", b"email\ndi@\n"):  # 303, 422
        call(
            "roster_forms.import_members", imports, "POST", body={**csv_form, "file": text}, **upload, **sent
        )


def form_token_of(page: Node, form_class: str) -> str:
    [token] = {
        node.attrs["value"]
        for form in page.find_all("form", form_class)
        for node in form.find_all("input")
        if node.attrs.get("name") == "csrfToken"
    }
    return token
