"""Reading Metered's webhook bodies: every alias, every time format, strict types, tolerant shape."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.deliveries.parsing import (
    BODY_MODELS,
    EVENTS,
    BodyError,
    DeliveryFacts,
    check_room,
    parse_delivery,
)

RECEIVED = datetime(2024, 5, 1, 12, 0, 0, 987654, tzinfo=UTC)
JSON = "application/json"


def parse(event: str, body: dict[str, Any], content_type: str = JSON) -> DeliveryFacts:
    return parse_delivery(event, json.dumps(body).encode(), content_type, RECEIVED)


def rejection(event: str, body: bytes, content_type: str = JSON) -> BodyError:
    with pytest.raises(BodyError) as caught:
        parse_delivery(event, body, content_type, RECEIVED)
    return caught.value


@pytest.mark.parametrize(
    ("alias", "attribute"),
    [
        ("meetingSessionId", "meeting_session_id"),
        ("sessionId", "meeting_session_id"),
        ("participantSessionId", "participant_session_id"),
        ("_id", "participant_session_id"),
        ("participantId", "participant_session_id"),
        ("roomName", "room_name"),
        ("roomId", "room_id"),
        ("externalUserId", "external_user_id"),
        ("email", "email"),
        ("name", "name"),
    ],
)
def test_every_alias_is_read(alias: str, attribute: str) -> None:
    assert getattr(parse("participant-joined", {alias: "value-1"}), attribute) == "value-1"


def test_person_fields_are_read() -> None:
    facts = parse("participant-joined", {"isAdmin": True, "meta": {"seat": 4}})
    assert facts.is_admin is True
    assert facts.meta == {"seat": 4}


@pytest.mark.parametrize(
    ("names", "attribute"),
    [
        (["meetingSessionId", "sessionId"], "meeting_session_id"),
        (["participantSessionId", "_id", "participantId"], "participant_session_id"),
    ],
)
def test_first_alias_in_the_contracts_order_wins(names: list[str], attribute: str) -> None:
    body = {name: f"from-{name}" for name in reversed(names)}
    assert getattr(parse("participant-left", body), attribute) == f"from-{names[0]}"


def test_null_and_empty_values_count_as_missing() -> None:
    facts = parse("participant-joined", {"participantSessionId": None, "_id": "p-7", "email": ""})
    assert facts.participant_session_id == "p-7"
    assert facts.email is None


@pytest.mark.parametrize(
    ("event", "names"),
    [
        ("participant-joined", ["joinTime", "joinedAt", "timestamp"]),
        ("participant-left", ["leftTime", "leaveTime", "timestamp"]),
        ("meeting-started", ["startTime", "createdAt", "created", "timestamp"]),
        ("meeting-ended", ["endTime", "endedAt", "timestamp"]),
    ],
)
def test_each_events_time_aliases_in_order(event: str, names: list[str]) -> None:
    for index, name in enumerate(names):
        facts = parse(event, {name: f"2024-05-01T10:00:0{index}Z"})
        assert facts.event_time == datetime(2024, 5, 1, 10, 0, index, tzinfo=UTC)
        assert facts.time_reported
    both = parse(event, {names[-1]: "2024-05-01T10:00:09Z", names[0]: "2024-05-01T10:00:01Z"})
    assert both.event_time.second == 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2021-07-27T18:59:16.448Z", datetime(2021, 7, 27, 18, 59, 16, 448000, tzinfo=UTC)),
        ("2021-07-27T20:59:16.448+02:00", datetime(2021, 7, 27, 18, 59, 16, 448000, tzinfo=UTC)),
        ("2021-07-27T18:59:16.448999", datetime(2021, 7, 27, 18, 59, 16, 448000, tzinfo=UTC)),
        ("2021-07-27 18:59:16", datetime(2021, 7, 27, 18, 59, 16, tzinfo=UTC)),
        (1627412356, datetime(2021, 7, 27, 18, 59, 16, tzinfo=UTC)),
        (1627412356.448, datetime(2021, 7, 27, 18, 59, 16, 448000, tzinfo=UTC)),
        (1627412356448, datetime(2021, 7, 27, 18, 59, 16, 448000, tzinfo=UTC)),
        ("1627412356", datetime(2021, 7, 27, 18, 59, 16, tzinfo=UTC)),
        ("1627412356448", datetime(2021, 7, 27, 18, 59, 16, 448000, tzinfo=UTC)),
        (" 1627412356.4489 ", datetime(2021, 7, 27, 18, 59, 16, 448000, tzinfo=UTC)),
    ],
)
def test_time_formats_become_utc_milliseconds(value: object, expected: datetime) -> None:
    facts = parse("participant-joined", {"joinTime": value})
    assert facts.event_time == expected
    assert facts.event_time.tzinfo is UTC


def test_without_a_time_the_received_time_stands_in_truncated() -> None:
    facts = parse("meeting-ended", {"meetingSessionId": "m"})
    assert facts.event_time == datetime(2024, 5, 1, 12, 0, 0, 987000, tzinfo=UTC)
    assert not facts.time_reported


def test_a_leave_carries_its_join_time_and_a_join_is_its_own() -> None:
    leave = parse("participant-left", {"leftTime": 1627412400, "joinedAt": "2021-07-27T18:59:16Z"})
    assert leave.join_time == datetime(2021, 7, 27, 18, 59, 16, tzinfo=UTC)
    assert leave.event_time == datetime(2021, 7, 27, 19, 0, tzinfo=UTC)
    join = parse("participant-joined", {"joinTime": 1627412356})
    assert join.join_time == join.event_time
    assert parse("participant-left", {}).join_time is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", 5),
        ("email", ["a@b"]),
        ("roomName", {"x": 1}),
        ("isAdmin", "perhaps"),
        ("_id", {"$oid": "abc"}),
        ("meetingSessionId", 1.5),
        ("joinTime", "yesterday"),
        ("joinTime", True),
        ("joinTime", "1e400"),
        ("joinTime", 10**30),
        ("joinTime", {"seconds": 5}),
        ("participantSessionId", "x" * 201),
        ("name", "nul\x00byte"),
        ("name", "lone \ud800 surrogate"),
    ],
)
def test_a_known_field_of_the_wrong_type_is_named(field: str, value: object) -> None:
    body = json.dumps({field: value, "extra": 1}).encode()
    error = rejection("participant-joined", body)
    assert error.status == 422
    assert [item["field"] for item in error.errors] == [field]


def test_numeric_ids_are_read_as_text() -> None:
    assert parse("participant-joined", {"_id": 12345}).participant_session_id == "12345"


def test_unknown_fields_are_kept() -> None:
    parsed = BODY_MODELS["participant-joined"].model_validate({"_id": "p", "device": {"os": "tv"}})
    assert parsed.model_extra == {"device": {"os": "tv"}}


@pytest.mark.parametrize(
    ("event", "body", "key"),
    [
        (
            "participant-joined",
            {"participantSessionId": "p1", "meetingSessionId": "m"},
            "participant-joined:m:p1",
        ),
        ("participant-left", {"_id": "p1", "meetingSessionId": "m"}, "participant-left:m:p1"),
        ("participant-left", {"_id": "p1"}, "participant-left:p1"),
        ("meeting-started", {"participantSessionId": "p1", "sessionId": "m"}, "meeting-started:m"),
        ("meeting-ended", {"meetingSessionId": "m"}, "meeting-ended:m"),
    ],
)
def test_dedupe_key_follows_the_contract(event: str, body: dict[str, Any], key: str) -> None:
    assert parse(event, body).dedupe_key == key


def test_without_ids_the_canonical_body_is_the_key() -> None:
    first = parse_delivery("meeting-started", b'{"a": 1, "b": [1, 2]}', JSON, RECEIVED)
    same = parse_delivery("meeting-started", b'{"b":[1,2],"a":1}', JSON, RECEIVED)
    other = parse_delivery("meeting-started", b'{"a": 2, "b": [1, 2]}', JSON, RECEIVED)
    ended = parse_delivery("meeting-ended", b'{"a": 1, "b": [1, 2]}', JSON, RECEIVED)
    assert first.dedupe_key.startswith("meeting-started:sha256:")
    assert first.dedupe_key == same.dedupe_key != other.dedupe_key
    assert ended.dedupe_key != first.dedupe_key


def test_form_bodies_are_read_like_json() -> None:
    body = urlencode({"participantId": "p9", "isAdmin": "true", "joinTime": "1627412356448", "x": "1"})
    facts = parse_delivery("participant-joined", body.encode(), "application/x-www-form-urlencoded", RECEIVED)
    assert (facts.participant_session_id, facts.is_admin) == ("p9", True)
    assert facts.event_time == datetime(2021, 7, 27, 18, 59, 16, 448000, tzinfo=UTC)


def test_multipart_form_bodies_are_read() -> None:
    body = (
        b'--B\r\nContent-Disposition: form-data; name="_id"\r\n\r\np3\r\n'
        b'--B\r\nContent-Disposition: form-data; name="leftTime"\r\n\r\n2021-07-27T18:59:16Z\r\n--B--\r\n'
    )
    facts = parse_delivery("participant-left", body, "multipart/form-data; boundary=B", RECEIVED)
    assert facts.participant_session_id == "p3"
    assert facts.time_reported


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{}", "text/plain", 415),
        (b"{}", "", 415),
        (b"<xml/>", "application/xml", 415),
        (b"{not json", JSON, 400),
        (b"", JSON, 400),
        (b'{"a": NaN}', JSON, 400),
        (b"\xff\xfe{}", JSON, 400),
        (b"[" * 100_000, JSON, 400),
        (b"[1, 2]", JSON, 422),
        (b'"text"', "application/vnd.metered+json", 422),
        (b"a=%ff", "application/x-www-form-urlencoded", 400),
        (b"no boundary", "multipart/form-data", 400),
    ],
)
def test_bodies_that_cannot_be_read(body: bytes, content_type: str, status: int) -> None:
    assert rejection("participant-joined", body, content_type).status == status


def test_check_room_names_the_field_that_disagrees() -> None:
    facts = parse("participant-joined", {"roomName": "other", "roomId": "r-2"})
    with pytest.raises(BodyError) as caught:
        check_room(facts, "mine", "r-1")
    assert caught.value.status == 422
    assert [item["field"] for item in caught.value.errors] == ["roomName", "roomId"]
    check_room(parse("participant-joined", {"roomName": "mine", "roomId": "r-1"}), "mine", "r-1")
    check_room(parse("participant-joined", {"roomId": "r-2"}), "mine", None)  # no Metered id known yet


KNOWN = [
    "meetingSessionId",
    "sessionId",
    "participantSessionId",
    "_id",
    "participantId",
    "roomName",
    "roomId",
    "externalUserId",
    "email",
    "name",
    "isAdmin",
    "meta",
    "joinTime",
    "joinedAt",
    "leftTime",
    "leaveTime",
    "startTime",
    "createdAt",
    "created",
    "endTime",
    "endedAt",
    "timestamp",
]
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(
    event=st.sampled_from(EVENTS),
    body=st.dictionaries(st.sampled_from(KNOWN) | st.text(max_size=8), JSON_VALUES, max_size=8),
)
def test_fuzzed_json_bodies_parse_or_are_refused_with_422(event: str, body: dict[str, Any]) -> None:
    try:
        facts = parse(event, body)
    except BodyError as error:
        assert error.status == 422
        assert error.errors and all(item["field"] for item in error.errors)
    else:
        assert facts.event_time.tzinfo is UTC
        assert facts.event_time.microsecond % 1000 == 0
        assert facts.dedupe_key.startswith(event + ":")


@settings(max_examples=300, deadline=None)
@given(
    body=st.binary(max_size=200),
    content_type=st.sampled_from(
        [
            JSON,
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "text/plain",
            "application/json; charset=latin-1",
        ]
    ),
)
def test_fuzzed_bytes_never_raise_anything_but_body_error(body: bytes, content_type: str) -> None:
    try:
        parse_delivery("participant-left", body, content_type, RECEIVED)
    except BodyError as error:
        assert error.status in {400, 415, 422}
