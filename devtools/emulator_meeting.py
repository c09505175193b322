"""The Metered emulator's control surface: recorded requests, injected failures, and playing a meeting.

Playing a meeting turns a script of steps (start, join, leave, end) into the webhook bodies Metered would
plausibly send, with the fields the contract's receiver reads, and POSTs them as JSON to the URLs
registered on the room. A step may be duplicated, delayed, or swapped with the next (`reorder`) to
exercise the receiver's idempotency and ordering, and may leave out its meetingSessionId
(`omitMeetingSessionId`), as some Metered bodies do, to exercise telling unnamed meetings apart.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from flask import Blueprint, Response, current_app, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from devtools.emulator_state import emulator_state, metered_error, recorded
from workers.timefmt import iso_ms

EVENT_WEBHOOKS = {
    "start": "meetingStartedWebhook",
    "join": "meetingJoinWebhook",
    "leave": "meetingLeftWebhook",
    "end": "meetingEndedWebhook",
}
PERSON_FIELDS = ("externalUserId", "email", "name", "isAdmin", "meta")


class MeetingStep(BaseModel):
    """One step of a meeting script."""

    model_config = ConfigDict(extra="forbid")

    event: Literal["start", "join", "leave", "end"]
    time: datetime | None = None  # ISO-8601 or Unix seconds; now when absent
    participantSessionId: str | None = None  # joins and leaves; generated for a join without one
    meetingSessionId: str | None = None  # a start without one gets a fresh id
    omitMeetingSessionId: bool = False  # send no meetingSessionId at all, as a Metered body might not
    externalUserId: str | None = None
    email: str | None = None
    name: str | None = None
    isAdmin: bool | None = None
    meta: Any = None
    duplicate: int = Field(default=0, ge=0, le=10)  # extra deliveries of the same body
    delay: float = Field(default=0, ge=0, le=60)  # seconds to wait before delivering this step
    reorder: bool = False  # deliver this step after the next one


@dataclass(frozen=True)
class Delivery:
    """One webhook POST the emulator made, and how the receiver answered."""

    step: int
    event: str
    body: dict[str, Any]
    status: int | None
    error: str | None = None


def meeting_bodies(room: dict[str, Any], steps: Sequence[MeetingStep]) -> list[dict[str, Any]]:
    """Return the webhook body of each step, in script order (pure: no I/O)."""
    meeting_id: str | None = None
    joins: dict[str, dict[str, Any]] = {}
    bodies = []
    for step in steps:
        moment = iso_ms(_utc(step.time or datetime.now(UTC)))
        if step.event == "start" or meeting_id is None:
            meeting_id = step.meetingSessionId or secrets.token_hex(12)
        body: dict[str, Any] = {"roomName": room["roomName"], "roomId": room["_id"]}
        if not step.omitMeetingSessionId:
            body["meetingSessionId"] = step.meetingSessionId or meeting_id
        if step.event in ("join", "leave"):
            body.update(_participant(step, moment, joins))
        else:
            body["startTime" if step.event == "start" else "endTime"] = moment
        if step.event == "end":
            meeting_id = None
        bodies.append(body)
    return bodies


def _utc(moment: datetime) -> datetime:
    # A time without an offset is UTC, as the contract reads webhook times.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _participant(step: MeetingStep, moment: str, joins: dict[str, dict[str, Any]]) -> dict[str, Any]:
    session_id = step.participantSessionId or secrets.token_hex(12)
    known = joins.get(session_id, {})
    # A leave that names nobody is the person who joined with that participant session.
    given = {key: getattr(step, key) for key in PERSON_FIELDS if getattr(step, key) is not None}
    person = {**{key: known[key] for key in PERSON_FIELDS if key in known}, **given}
    fields = {"participantSessionId": session_id, "_id": session_id, "isAdmin": False, **person}
    if step.event == "join":
        joins[session_id] = {**person, "joinTime": moment}
        return {**fields, "joinTime": moment}
    # A leave carries its participant session's join time, when the script had the join.
    return {**fields, **({"joinTime": known["joinTime"]} if "joinTime" in known else {}), "leftTime": moment}


def play_meeting(
    room: dict[str, Any], steps: Sequence[MeetingStep | dict[str, Any]], timeout_seconds: float = 10
) -> list[Delivery]:
    """POST each step's webhook body to the URL the room registered for it; return what happened."""
    script = [step if isinstance(step, MeetingStep) else MeetingStep.model_validate(step) for step in steps]
    bodies = meeting_bodies(room, script)
    deliveries = []
    with httpx.Client(timeout=timeout_seconds) as client:
        for index in delivery_order(script):
            step = script[index]
            time.sleep(step.delay)
            for _ in range(1 + step.duplicate):
                deliveries.append(
                    _deliver(client, room.get(EVENT_WEBHOOKS[step.event]), index, step, bodies[index])
                )
    return deliveries


def delivery_order(script: Sequence[MeetingStep]) -> list[int]:
    """Return the order in which to deliver the steps: script order, each `reorder` step after its next."""
    order = list(range(len(script)))
    index = 0
    while index < len(order) - 1:
        if script[order[index]].reorder:
            order[index], order[index + 1] = order[index + 1], order[index]
            index += 1  # the swapped step has had its turn
        index += 1
    return order


def _deliver(client: httpx.Client, url: Any, index: int, step: MeetingStep, body: dict[str, Any]) -> Delivery:
    if not isinstance(url, str) or not url:
        return Delivery(index, step.event, body, None, "the room has no webhook for this event")
    try:
        response = client.post(url, json=body)
    except httpx.HTTPError as error:
        return Delivery(index, step.event, body, None, type(error).__name__)
    return Delivery(index, step.event, body, response.status_code)


control = Blueprint("emulator_control", __name__, url_prefix="/_emulator")


@control.get("/requests")
def requests_received() -> Response:
    """List the requests the emulated API received, oldest first."""
    return jsonify(recorded(current_app))


@control.delete("/requests")
def forget_requests() -> tuple[str, int]:
    """Forget the recorded requests and pending failures."""
    emulator_state(current_app).clear()
    return "", 204


@control.post("/fail")
def fail_next() -> tuple[str, int]:
    """Make the next calls to a method and path answer a given status and body."""
    spec = request.get_json(force=True)
    times = int(spec.get("times", 1))
    emulator_state(current_app).fail_next(
        spec["method"], spec["path"], int(spec["status"]), spec["body"], times
    )
    return "", 204


@control.post("/rooms/<name>/play")
def play(name: str) -> tuple[Response, int]:
    """Play `{"steps": [...]}` through the room's webhooks and list the deliveries."""
    room = emulator_state(current_app).rooms.get(name)
    if room is None:
        return metered_error(404, "Room not found")
    try:
        steps = [MeetingStep.model_validate(step) for step in (request.get_json(force=True) or {})["steps"]]
    except (KeyError, TypeError, ValidationError) as error:
        return metered_error(400, f"Invalid script: {error}")
    return jsonify(deliveries=[asdict(item) for item in play_meeting(room, steps)]), 200
