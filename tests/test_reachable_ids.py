"""Every id the receiver accepts can be reached: the session's API, CSV, history, rebuild and page, and the
person's attendance, for ids with slashes, percent signs, spaces, non-ASCII and line breaks."""

from __future__ import annotations

import csv
import io
import re
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import API_TOKEN, run_worker
from tests.test_inbox import make_room
from webhooks import runtime_of
from workers.runtime.process import Runtime

IDS = ["a/b", "/lead//x/", "50%25 off %", "sp ace", "Zürich 会议 😀", "line\r\nbreak", "a/../b"]


def path_of(text: str) -> str:
    """Percent-encode `text` as one path segment, as any client would (independently of url_for)."""
    return quote(text, safe="")


def hold_meeting(api: httpx.Client, runtime: Runtime, meeting_session_id: str) -> None:
    """Play one meeting through the receiver whose session id and person's external id are both the id."""
    _, token = make_room(runtime)
    ms = {"meetingSessionId": meeting_session_id}
    person = {**ms, "participantSessionId": "p1", "externalUserId": meeting_session_id}
    for event, body in [
        ("meeting-started", {**ms, "startTime": "2026-11-01T10:00:00Z"}),
        ("participant-joined", {**person, "joinTime": "2026-11-01T10:00:00Z"}),
        ("participant-left", {**person, "leftTime": "2026-11-01T10:30:00Z"}),
        ("meeting-ended", {**ms, "endTime": "2026-11-01T11:00:00Z"}),
    ]:
        assert api.post(f"/hooks/metered/{token}/{event}", json=body).status_code == 202
    run_worker(runtime)


@pytest.mark.parametrize("meeting_session_id", IDS)
def test_every_endpoint_of_an_accepted_id_answers(api: httpx.Client, meeting_session_id: str) -> None:
    runtime = runtime_of(api.app)  # type: ignore[attr-defined]
    hold_meeting(api, runtime, meeting_session_id)
    base = f"/api/sessions/{path_of(meeting_session_id)}"
    assert ok(api.get(base))["meetingSessionId"] == meeting_session_id
    assert ok(api.get(f"{base}/attendance"))["items"][0]["attendedSeconds"] == 1800.0
    assert [entry["cause"] for entry in ok(api.get(f"{base}/history"))["items"]]
    rebuilt = api.post(f"{base}/rebuild")
    assert (rebuilt.status_code, rebuilt.json()["meetingSessionId"]) == (202, meeting_session_id)
    person = ok(api.get(f"/api/people/{path_of('ext:' + meeting_session_id)}/attendance"))
    assert [item["session"]["meetingSessionId"] for item in person["items"]] == [meeting_session_id]
    page = api.get(f"/sessions/{path_of(meeting_session_id)}", auth=("anyone", API_TOKEN))
    assert page.status_code == 200


@pytest.mark.parametrize("meeting_session_id", IDS)
def test_the_csv_download_names_the_file_after_the_id(api: httpx.Client, meeting_session_id: str) -> None:
    runtime = runtime_of(api.app)  # type: ignore[attr-defined]
    hold_meeting(api, runtime, meeting_session_id)
    response = api.get(f"/api/sessions/{path_of(meeting_session_id)}/attendance?format=csv")
    assert response.status_code == 200
    assert list(csv.reader(io.StringIO(response.text)))[1][0] == f"ext:{meeting_session_id}"
    disposition = response.headers["content-disposition"]
    fallback = re.fullmatch(r'attachment; filename="([ -~]+)"(?:; filename\*=UTF-8\'\'(\S+))?', disposition)
    assert fallback is not None, disposition
    exact = fallback[2] or quote(fallback[1])
    assert exact == quote(f"attendance-{meeting_session_id}.csv", safe="!#$&+^`|")


@pytest.mark.parametrize("meeting_session_id", IDS)
def test_the_room_page_links_to_the_session_page(api: httpx.Client, meeting_session_id: str) -> None:
    runtime = runtime_of(api.app)  # type: ignore[attr-defined]
    hold_meeting(api, runtime, meeting_session_id)
    room_page = api.get("/rooms/standup", auth=("anyone", API_TOKEN))
    links = set(re.findall(r'href="(/sessions/[^"]+)"', room_page.text))  # the list's and the matrix's
    assert len(links) == 1
    session_page = api.get(links.pop(), auth=("anyone", API_TOKEN))
    assert session_page.status_code == 200
    room_link = re.search(r'href="(/rooms/[^"]+)"', session_page.text)
    assert room_link is not None and api.get(room_link[1], auth=("anyone", API_TOKEN)).status_code == 200


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()
