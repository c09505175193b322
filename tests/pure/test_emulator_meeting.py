"""The emulator's meeting script: the webhook bodies each step becomes."""

from __future__ import annotations

from datetime import UTC, datetime

from devtools.emulator_meeting import MeetingStep, meeting_bodies


def test_meeting_bodies_carry_the_contract_fields() -> None:
    room = {"roomName": "standup", "_id": "a" * 24}
    steps = [
        MeetingStep(event="start", meetingSessionId="m1", time=datetime(2024, 5, 1, 9, 0, tzinfo=UTC)),
        MeetingStep(
            event="join",
            participantSessionId="p1",
            name="Ada",
            email="ada@example.com",
            externalUserId="u-ada",
            isAdmin=True,
            time=datetime(2024, 5, 1, 9, 1, tzinfo=UTC),
        ),
        MeetingStep(
            event="leave", participantSessionId="p1", time=datetime(2024, 5, 1, 9, 30, 0, 250000, UTC)
        ),
        MeetingStep(event="end", time=datetime(2024, 5, 1, 9, 31, tzinfo=UTC)),
    ]
    start, join, leave, end = meeting_bodies(room, steps)
    assert start == {
        "meetingSessionId": "m1",
        "roomName": "standup",
        "roomId": "a" * 24,
        "startTime": "2024-05-01T09:00:00.000Z",
    }
    assert join == {
        "meetingSessionId": "m1",
        "roomName": "standup",
        "roomId": "a" * 24,
        "participantSessionId": "p1",
        "_id": "p1",
        "isAdmin": True,
        "externalUserId": "u-ada",
        "email": "ada@example.com",
        "name": "Ada",
        "joinTime": "2024-05-01T09:01:00.000Z",
    }
    assert leave == {**join, "leftTime": "2024-05-01T09:30:00.250Z"}
    assert end["endTime"] == "2024-05-01T09:31:00.000Z" and end["meetingSessionId"] == "m1"


def test_a_step_may_leave_out_its_meeting_session_id() -> None:
    room = {"roomName": "standup", "_id": "a" * 24}
    named, unnamed = meeting_bodies(
        room, [MeetingStep(event="join"), MeetingStep(event="join", omitMeetingSessionId=True)]
    )
    assert "meetingSessionId" in named
    assert "meetingSessionId" not in unnamed
    assert unnamed["roomName"] == "standup" and unnamed["joinTime"]  # the rest of the body is still there
