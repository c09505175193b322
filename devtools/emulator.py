"""A stand-in for Metered's room API, for the demo, development and tests, served as its own small app.

It answers like Metered (secret key check, error shapes, room objects like the seed page's sample) and
records every request it receives; the `/_emulator/...` endpoints (devtools.emulator_meeting) show them,
make the next call fail, or play a meeting through a room's webhooks. Where Metered's behaviour is
undocumented (the status for a bad key, a taken name or a missing room) it makes a plausible choice: the
client must cope with any non-2xx by its message.
"""

from __future__ import annotations

import logging
import re
import secrets
import string
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from devtools.emulator_meeting import control
from devtools.emulator_state import EmulatorState, RecordedRequest, emulator_state, metered_error
from workers.timefmt import iso_ms

NAME_ALPHABET = string.ascii_letters + string.digits
# Fields of a room object that its owner cannot overwrite.
FIXED_FIELDS = frozenset({"_id", "roomName", "app", "created", "__v", "archived"})


class _RedactSecretKey(logging.Filter):
    """Keep the secret key out of the request log (werkzeug logs each request's URL)."""

    pattern = re.compile(r"secretKey=[^&\s\"]*")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "secretKey=" in message:
            record.msg, record.args = self.pattern.sub("secretKey=[redacted]", message), ()
        return True


api = Blueprint("metered_api", __name__, url_prefix="/api/v1")


def create_emulator(secret_key: str, app_id: str | None = None) -> Flask:
    """Build the emulator app, accepting `secret_key` as Metered's secret key."""
    request_log = logging.getLogger("werkzeug")
    if not any(isinstance(item, _RedactSecretKey) for item in request_log.filters):
        request_log.addFilter(_RedactSecretKey())
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["metered_emulator"] = EmulatorState(secret_key, app_id or secrets.token_hex(12))
    app.register_blueprint(api)
    app.register_blueprint(control)
    app.register_error_handler(404, lambda _error: metered_error(404, "Not found"))
    app.register_error_handler(405, lambda _error: metered_error(405, "Method not allowed"))
    app.register_error_handler(500, lambda _error: metered_error(500, "Internal error"))
    return app


def _state() -> EmulatorState:
    return emulator_state(current_app)


@api.before_request
def _record_and_check() -> tuple[Response, int] | None:
    state = _state()
    secret_ok = secrets.compare_digest(request.args.get("secretKey", ""), state.secret_key)
    body = request.get_json(silent=True)
    with state.lock:
        state.requests.append(RecordedRequest(request.method, request.path, body, secret_ok))
    failure = state.take_failure(request.method, request.path)
    if failure is not None:
        return jsonify(failure.body), failure.status
    if not secret_ok:
        return metered_error(400, "Invalid secretKey")
    return None


@api.post("/room")
def create_room() -> tuple[Response, int]:
    state = _state()
    options = request.get_json(silent=True)
    if not isinstance(options, dict):
        return metered_error(400, "Invalid request")
    name = options.get("roomName") or "".join(secrets.choice(NAME_ALPHABET) for _ in range(10))
    if not isinstance(name, str) or " " in name:
        return metered_error(400, "Invalid request")
    with state.lock:
        if name in state.rooms:
            return metered_error(400, f"Room with name {name} already exists")
        room = _new_room(state.app_id, name, options)
        state.rooms[name] = room
    return jsonify(room), 200


@api.get("/room/<name>")
def get_room(name: str) -> tuple[Response, int]:
    room = _state().rooms.get(name)
    return (jsonify(room), 200) if room else metered_error(404, "Room not found")


@api.get("/rooms")
def list_rooms() -> tuple[Response, int]:
    return jsonify(list(_state().rooms.values())), 200


@api.put("/room/<name>")
def update_room(name: str) -> tuple[Response, int]:
    state = _state()
    changes = request.get_json(silent=True)
    if not isinstance(changes, dict):
        return metered_error(400, "Invalid request")
    with state.lock:
        room = state.rooms.get(name)
        if room is None:
            return metered_error(404, "Room not found")
        room.update({key: value for key, value in changes.items() if key not in FIXED_FIELDS})
    return jsonify(room), 200


@api.delete("/room/<name>")
def delete_room(name: str) -> tuple[Response, int]:
    state = _state()
    with state.lock:
        room = state.rooms.get(name)
        if room is None:
            return metered_error(404, "Room not found")
        room["archived"] = True
    return jsonify(success=True, message="Room successfully archived"), 200


def _new_room(app_id: str, name: str, options: dict[str, Any]) -> dict[str, Any]:
    # Defaults as in the seed page's sample response; the options sent override them.
    defaults = {
        "privacy": "public",
        "deleteOnExp": False,
        "autoJoin": False,
        "enableRequestToJoin": False,
        "enableChat": False,
        "enableScreenSharing": True,
        "joinVideoOn": True,
        "joinAudioOn": True,
        "ownerOnlyBroadcast": False,
        "recordRoom": False,
        "ejectAtRoomExp": False,
        "lang": "en",
    }
    sent = {key: value for key, value in options.items() if key not in FIXED_FIELDS}
    return {
        **defaults,
        **sent,
        "archived": False,
        "_id": secrets.token_hex(12),
        "roomName": name,
        "app": app_id,
        "created": iso_ms(datetime.now(UTC)),
        "__v": 0,
    }
