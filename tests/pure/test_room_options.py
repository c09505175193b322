"""The Create Room request model: Metered's fields, types, options and rules, plus Rollcall's own."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from workers.rooms import (
    ROLLCALL_FIELDS,
    WEBHOOK_FIELDS,
    CreateRoomRequest,
    RoomSettings,
    UpdateRoomRequest,
    check_combinations,
    split_request,
)

# The request table of Metered's Create Room page (seed/metered-create-room-api.txt), in its order.
SEED_PAGE_FIELDS = (
    "secretKey",
    "roomName",
    "privacy",
    "expireUnixSec",
    "ejectAtRoomExp",
    "notBeforeUnixSec",
    "maxParticipants",
    "autoJoin",
    "showInviteBox",
    "enableRequestToJoin",
    "enableChat",
    "newChatForMeetingSession",
    "enableScreenSharing",
    "joinVideoOn",
    "joinAudioOn",
    "enableRecording",
    "ownerOnlyBroadcast",
    "recordRoom",
    "ejectAfterElapsedTimeInSec",
    "meetingJoinWebhook",
    "meetingLeftWebhook",
    "meetingStartedWebhook",
    "meetingEndedWebhook",
    "endMeetingAfterNoActivityInSec",
    "audioOnlyRoom",
    "enableComposition",
    "compositionLayout",
    "recordComposition",
    "enableRTMPOut",
    "rtmpOutURL",
    "enableLiveStreaming",
)


def problems(body: Any, model: type[RoomSettings] = CreateRoomRequest) -> dict[str, str]:
    """Return {field: message} of every problem the model finds in `body`."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    return {".".join(map(str, e["loc"])) or "body": e["msg"] for e in caught.value.errors()}


def test_model_has_every_seed_field_but_the_key_and_webhooks_plus_rollcalls_own() -> None:
    # secretKey is a query parameter; the webhooks are Rollcall's to set.
    expected = set(SEED_PAGE_FIELDS) - {"secretKey", *WEBHOOK_FIELDS} | set(ROLLCALL_FIELDS)
    assert set(CreateRoomRequest.model_fields) == expected


def test_empty_request_is_a_public_room() -> None:
    metered, rollcall = split_request(CreateRoomRequest.model_validate({}))
    assert (metered, rollcall) == ({"privacy": "public"}, {})


@pytest.mark.parametrize("value", [1, "1", "true"])
def test_booleans_are_not_coerced(value: Any) -> None:
    assert "autoJoin" in problems({"autoJoin": value})


@pytest.mark.parametrize("value", ["10", 10.0, True, -1])
def test_integers_are_strict_and_non_negative(value: Any) -> None:
    assert "maxParticipants" in problems({"maxParticipants": value})


@pytest.mark.parametrize("name", ["standup", "Team_42", "a", "x-y-z", "A" * 100])
def test_url_friendly_room_names_pass(name: str) -> None:
    assert CreateRoomRequest.model_validate({"roomName": name}).roomName == name


@pytest.mark.parametrize("name", ["", "two words", "a/b", "a.b", "..", "~me", "é", "a%20b", "A" * 101, "q?x"])
def test_other_room_names_are_refused(name: str) -> None:
    assert "roomName" in problems({"roomName": name})


def test_webhook_fields_are_set_by_rollcall() -> None:
    found = problems({field: "https://example.com/hook" for field in WEBHOOK_FIELDS})
    assert found == {field: "set by Rollcall" for field in WEBHOOK_FIELDS}


def test_every_problem_is_listed_at_once() -> None:
    found = problems(
        {
            "privacy": "secret",
            "maxParticipants": -1,
            "colour": "red",
            "enableChat": None,
            "enableRTMPOut": True,
            "notBeforeUnixSec": 20,
            "expireUnixSec": 10,
        }
    )
    assert set(found) == {
        "privacy",
        "maxParticipants",
        "colour",
        "enableChat",
        "enableRTMPOut",
        "rtmpOutURL",
        "notBeforeUnixSec",
    }
    assert found["colour"] == "Extra inputs are not permitted"
    assert found["enableChat"] == "must not be null"


def test_not_before_must_precede_expiry() -> None:
    assert problems({"notBeforeUnixSec": 10, "expireUnixSec": 10}) == {
        "notBeforeUnixSec": "must be before expireUnixSec"
    }
    CreateRoomRequest.model_validate({"notBeforeUnixSec": 9, "expireUnixSec": 10})


def test_rtmp_out_needs_an_rtmp_url_and_composition() -> None:
    assert problems({"enableRTMPOut": True, "enableComposition": True}) == {
        "rtmpOutURL": "required when enableRTMPOut is true"
    }
    assert problems({"rtmpOutURL": "https://example.com/live"}) == {
        "rtmpOutURL": "must be an rtmp:// or rtmps:// URL"
    }
    CreateRoomRequest.model_validate(
        {"enableRTMPOut": True, "enableComposition": True, "rtmpOutURL": "rtmp://a.example/live/key"}
    )


@pytest.mark.parametrize("field", ["recordComposition", "enableRTMPOut", "enableLiveStreaming"])
def test_composition_features_need_composition(field: str) -> None:
    body = {field: True, "rtmpOutURL": "rtmps://a.example/x"}
    assert problems(body) == {field: "requires enableComposition: true"}
    assert problems({**body, "enableComposition": False}) == {field: "requires enableComposition: true"}
    CreateRoomRequest.model_validate({**body, "enableComposition": True})


def test_rollcall_fields_are_checked_and_split_off() -> None:
    assert set(
        problems(
            {
                "organizerEmail": "nobody",
                "notifyParticipants": "yes",
                "minAttendancePercent": 100.5,
                "trustParticipantEmails": 1,
                "lateAfterSeconds": -1,
                "earlyLeaveSeconds": "60",
                "includeHostsInAttendance": "true",
                "absenceAlertAfter": 0,
                "billingIncrementMinutes": 1441,
                "timeZone": "Mars/Olympus_Mons",
            }
        )
    ) == set(ROLLCALL_FIELDS)
    rollcall_options = {
        "organizerEmail": "host@example.com",
        "notifyParticipants": True,
        "minAttendancePercent": 75,
        "trustParticipantEmails": False,
        "lateAfterSeconds": 300,
        "earlyLeaveSeconds": 0,
        "includeHostsInAttendance": True,
        "absenceAlertAfter": 3,
        "billingIncrementMinutes": 15,
        "timeZone": "Europe/Paris",
    }
    request = CreateRoomRequest.model_validate({"roomName": "r", "enableChat": True, **rollcall_options})
    metered, rollcall = split_request(request)
    assert metered == {"roomName": "r", "privacy": "public", "enableChat": True}
    assert rollcall == rollcall_options


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "America/Argentina/Buenos_Aires", "Etc/GMT+5"])
def test_an_iana_time_zone_is_taken(zone: str) -> None:
    assert CreateRoomRequest.model_validate({"timeZone": zone}).timeZone == zone


@pytest.mark.parametrize(
    "zone", ["", "Paris", "europe/paris", "../etc/passwd", "/usr/share/zoneinfo/UTC", "+02:00"]
)
def test_anything_else_is_not_a_time_zone(zone: str) -> None:
    assert problems({"timeZone": zone}) == {
        "timeZone": "must be an IANA time zone name, such as Europe/Paris"
    }


@pytest.mark.parametrize(
    ("field", "lowest", "highest"),
    [
        ("lateAfterSeconds", 0, None),
        ("earlyLeaveSeconds", 0, None),
        ("absenceAlertAfter", 1, None),
        ("billingIncrementMinutes", 1, 1440),
    ],
)
def test_judging_and_billing_numbers_are_whole_and_in_range(
    field: str, lowest: int, highest: int | None
) -> None:
    CreateRoomRequest.model_validate({field: lowest})
    assert field in problems({field: lowest - 1})
    assert field in problems({field: float(lowest)})
    if highest is not None:
        CreateRoomRequest.model_validate({field: highest})
        assert field in problems({field: highest + 1})


def test_only_an_update_clears_a_rollcall_option_with_null() -> None:
    cleared = {
        field: None
        for field in ROLLCALL_FIELDS
        if field not in ("notifyParticipants", "trustParticipantEmails")
    }
    assert split_request(UpdateRoomRequest.model_validate(cleared))[1] == cleared
    assert set(problems(cleared)) == set(cleared)
    assert problems({"notifyParticipants": None}, UpdateRoomRequest) == {
        "notifyParticipants": "must not be null"
    }


@pytest.mark.parametrize("body", [[], "room", 3, None])
def test_body_must_be_an_object(body: Any) -> None:
    assert problems(body) == {"body": "must be a JSON object"}


def test_update_refuses_a_new_name_and_sends_only_what_changed() -> None:
    assert problems({"roomName": "other"}, UpdateRoomRequest) == {"roomName": "cannot be changed"}
    metered, rollcall = split_request(
        UpdateRoomRequest.model_validate({"enableChat": True, "organizerEmail": None})
    )
    assert (metered, rollcall) == ({"enableChat": True}, {"organizerEmail": None})
    assert "enableChat" in problems({"enableChat": None}, UpdateRoomRequest)


def test_update_checks_combinations_on_the_merged_room() -> None:
    # The PATCH body alone is fine: whether composition is on depends on the room.
    UpdateRoomRequest.model_validate({"recordComposition": True})
    with pytest.raises(ValidationError, match="requires enableComposition"):
        check_combinations({"enableComposition": False, "recordComposition": True})
    check_combinations({"enableComposition": True, "recordComposition": True})
