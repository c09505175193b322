"""What a room's audit records keep of it: never a credential."""

from __future__ import annotations

import json

from workers.audit import room_state
from workers.models import Room


def test_a_stream_url_is_kept_as_a_digest_and_other_options_as_they_are() -> None:
    url = "rtmps://live.example.com/app/sk_live_secret-stream-key"
    room = Room(room_name="r", options={"rtmpOutURL": url, "enableRTMPOut": True}, notify_participants=False)
    state = room_state(room)
    assert url not in json.dumps(state) and "sk_live" not in json.dumps(state)
    assert state["options"]["rtmpOutURL"].startswith("sha256:")
    assert state["options"]["enableRTMPOut"] is True
    other = room_state(Room(room_name="r", options={"rtmpOutURL": url + "2"}, notify_participants=False))
    assert other["options"]["rtmpOutURL"] != state["options"]["rtmpOutURL"]  # a change still shows
