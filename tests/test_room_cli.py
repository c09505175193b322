"""`flask rooms ...` and `flask emulator` against the Metered emulator over real HTTP."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from flask import Flask
from sqlalchemy import select

from tests.conftest import PUBLIC_BASE_URL
from tests.emulator_fixture import (
    EMULATOR_SECRET,
    RunningEmulator,
    emulator_fixture,  # noqa: F401 - a fixture
    served_emulator_fixture,  # noqa: F401 - a fixture
)
from webhooks import runtime_of
from webhooks.cli import flag_name, rooms_group
from workers.models import Room
from workers.rooms import WEBHOOK_FIELDS, CreateRoomRequest, token_hash

PUBLIC = PUBLIC_BASE_URL


@pytest.fixture
def rooms(metered_app: Flask) -> Callable[..., Result]:
    """Return a runner of `flask rooms ARGS...`."""
    runner = metered_app.test_cli_runner()

    def run(*args: str, input: str | None = None) -> Result:
        return runner.invoke(rooms_group, list(args), input=input)

    return run


def stored_room(app: Flask, name: str) -> Room:
    with runtime_of(app).Db() as db:
        return db.scalars(select(Room).where(Room.room_name == name)).one()


def test_every_create_room_field_has_a_flag(rooms: Callable[..., Result]) -> None:
    help_text = rooms("create", "--help").output
    for field in CreateRoomRequest.model_fields:
        assert flag_name(field) in help_text, field


def test_create_with_flags(rooms: Callable[..., Result], emulator: RunningEmulator) -> None:
    result = rooms(
        "create",
        "--room-name",
        "cli-room",
        "--privacy",
        "private",
        "--max-participants",
        "5",
        "--enable-chat",
        "--no-join-video-on",
        "--composition-layout",
        "grid",
        "--organizer-email",
        "host@example.com",
        "--min-attendance-percent",
        "60",
    )
    assert result.exit_code == 0, result.output
    room = json.loads(result.output)
    assert set(room["webhookUrls"]) == set(WEBHOOK_FIELDS)
    sent = emulator.requests()[0]["json"]
    assert {
        key: sent[key]
        for key in (
            "roomName",
            "privacy",
            "maxParticipants",
            "enableChat",
            "joinVideoOn",
            "compositionLayout",
        )
    } == {
        "roomName": "cli-room",
        "privacy": "private",
        "maxParticipants": 5,
        "enableChat": True,
        "joinVideoOn": False,
        "compositionLayout": "grid",
    }
    assert "organizerEmail" not in sent
    assert (room["organizerEmail"], room["minAttendancePercent"]) == ("host@example.com", 60)


def test_create_from_a_json_file_with_flags_winning(
    rooms: Callable[..., Result],
    emulator: RunningEmulator,
    tmp_path: Path,
) -> None:
    options = tmp_path / "room.json"
    options.write_text(
        json.dumps(
            {
                "roomName": "from-file",
                "enableComposition": True,
                "enableLiveStreaming": True,
                "privacy": "private",
            }
        )
    )
    result = rooms("create", "--json", str(options), "--privacy", "public")
    assert result.exit_code == 0, result.output
    sent = emulator.requests()[0]["json"]
    assert (sent["roomName"], sent["enableLiveStreaming"], sent["privacy"]) == ("from-file", True, "public")


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--max-participants", "-3"], None, "maxParticipants:"),
        (
            ["--enable-rtmp-out", "--enable-composition"],
            None,
            "rtmpOutURL: required when enableRTMPOut is true",
        ),
        (["--room-name", "two words"], None, "roomName:"),
        (["--time-zone", "Paris"], None, "timeZone: must be an IANA time zone name"),
        (["--billing-increment-minutes", "0"], None, "billingIncrementMinutes:"),
        (
            ["--json", "-"],
            '{"meetingJoinWebhook": "https://x.example"}',
            "meetingJoinWebhook: set by Rollcall",
        ),
        (["--json", "-"], '{"maxParticipants": "5"}', "maxParticipants:"),
        (["--json", "-"], "[1]", "must hold a JSON object"),
        (["--json", "-"], "{oops", "is not JSON"),
    ],
)
def test_create_refuses_bad_options_clearly(
    args: list[str],
    stdin: str | None,
    message: str,
    rooms: Callable[..., Result],
    emulator: RunningEmulator,
) -> None:
    result = rooms("create", *args, input=stdin)
    assert result.exit_code != 0
    assert message in result.output
    assert emulator.requests() == []


def test_create_with_the_judging_options_keeps_them_from_metered(
    rooms: Callable[..., Result], emulator: RunningEmulator
) -> None:
    result = rooms(
        "create",
        "--room-name",
        "course",
        "--late-after-seconds",
        "300",
        "--include-hosts-in-attendance",
        "--absence-alert-after",
        "3",
        "--time-zone",
        "Europe/Paris",
    )
    assert result.exit_code == 0, result.output
    room = json.loads(result.output)
    shown = (
        "lateAfterSeconds",
        "includeHostsInAttendance",
        "absenceAlertAfter",
        "timeZone",
        "earlyLeaveSeconds",
    )
    assert {field: room[field] for field in shown} == {
        "lateAfterSeconds": 300,
        "includeHostsInAttendance": True,
        "absenceAlertAfter": 3,
        "timeZone": "Europe/Paris",
        "earlyLeaveSeconds": None,
    }
    assert set(shown).isdisjoint(emulator.requests()[0]["json"])
    assert json.loads(rooms("show", "course").output)["timeZone"] == "Europe/Paris"


def test_create_reports_a_taken_name_and_metereds_errors(
    rooms: Callable[..., Result],
    emulator: RunningEmulator,
) -> None:
    assert rooms("create", "--room-name", "once").exit_code == 0
    taken = rooms("create", "--room-name", "once")
    assert taken.exit_code == 1 and "a room named once exists already" in taken.output
    emulator.state.fail_next("POST", "/api/v1/room", 500, {"eventCode": "E", "message": "Metered is down"})
    failed = rooms("create")
    assert failed.exit_code == 1 and "Metered refused: Metered is down" in failed.output
    assert EMULATOR_SECRET not in taken.output + failed.output


def test_list_show_and_delete(rooms: Callable[..., Result], emulator: RunningEmulator) -> None:
    for name in ("alpha", "beta"):
        assert rooms("create", "--room-name", name).exit_code == 0
    table = rooms("list").output.splitlines()
    assert [line.split()[0] for line in table] == ["alpha", "beta"]
    assert json.loads(rooms("show", "beta").output)["roomName"] == "beta"
    deleted = rooms("delete", "beta")
    assert deleted.exit_code == 0 and "archived room beta" in deleted.output
    assert emulator.room("beta")["archived"] is True
    assert [room["roomName"] for room in json.loads(rooms("list", "--json").output)] == ["alpha"]
    assert [line.split()[-1] for line in rooms("list", "--all").output.splitlines()] == ["public", "archived"]
    missing = rooms("show", "gamma")
    assert missing.exit_code == 1 and "there is no room named gamma" in missing.output
    assert rooms("delete", "gamma").exit_code == 1


def test_rotate_token_replaces_the_hash_and_metereds_urls(
    metered_app: Flask,
    rooms: Callable[..., Result],
    emulator: RunningEmulator,
) -> None:
    created = json.loads(rooms("create", "--room-name", "turn").output)
    old_hash = stored_room(metered_app, "turn").webhook_token_hash
    emulator.state.clear()
    result = rooms("rotate-token", "turn")
    assert result.exit_code == 0, result.output
    urls = json.loads(result.stdout)
    assert "the old token works until" in result.stderr
    assert set(urls) == set(WEBHOOK_FIELDS) and urls != created["webhookUrls"]
    (put,) = emulator.requests()
    assert (put["method"], put["path"], put["json"]) == ("PUT", "/api/v1/room/turn", urls)
    assert {field: emulator.room("turn")[field] for field in WEBHOOK_FIELDS} == urls
    token = re.fullmatch(rf"{PUBLIC}/hooks/metered/([^/]+)/participant-joined", urls["meetingJoinWebhook"])
    assert token
    room = stored_room(metered_app, "turn")
    assert room.webhook_token_hash == token_hash(token[1]) != old_hash
    assert room.previous_token_hash == old_hash and room.previous_token_expires_at is not None
    assert room.token_rotated_at is not None


def test_rotate_token_keeps_the_old_token_when_metered_refuses(
    metered_app: Flask,
    rooms: Callable[..., Result],
    emulator: RunningEmulator,
) -> None:
    rooms("create", "--room-name", "stay")
    old_hash = stored_room(metered_app, "stay").webhook_token_hash
    refusal = {"success": False, "message": "Invalid request"}
    emulator.state.fail_next("PUT", "/api/v1/room/stay", 400, refusal)
    result = rooms("rotate-token", "stay")
    assert result.exit_code == 1 and "Invalid request" in result.output
    assert stored_room(metered_app, "stay").webhook_token_hash == old_hash
    assert stored_room(metered_app, "stay").previous_token_hash is None


def test_an_archived_room_rotates_even_when_metered_refuses(
    metered_app: Flask,
    rooms: Callable[..., Result],
    emulator: RunningEmulator,
) -> None:
    rooms("create", "--room-name", "leaked")
    rooms("delete", "leaked")
    old_hash = stored_room(metered_app, "leaked").webhook_token_hash
    emulator.state.fail_next(
        "PUT", "/api/v1/room/leaked", 404, {"success": False, "message": "Room not found"}
    )
    result = rooms("rotate-token", "leaked", "--revoke-old")
    assert result.exit_code == 0, result.output
    urls = json.loads(result.stdout)
    assert "Metered kept its old webhook URLs" in result.stderr
    assert "the old token no longer works" in result.stderr
    room = stored_room(metered_app, "leaked")
    assert room.webhook_token_hash != old_hash and room.previous_token_hash is None
    token = urls["meetingEndedWebhook"].split("/")[-2]
    assert room.webhook_token_hash == token_hash(token)
