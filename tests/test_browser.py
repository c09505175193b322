"""A real browser loads the pages: headless Chromium dumps their DOM and takes screenshots.

Needs Debian's `chromium` package (CI installs it); skipped where it is absent. The screenshot is kept in
test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import base64
import json
import os
import selectors
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import API_TOKEN
from tests.test_folding import end, fold, join, leave, make_room, start
from tests.test_pages import HOSTILE, T0, add_member, cell_texts, parse_html, set_options, set_status
from webhooks import runtime_of
from workers.models import MeetingSession, Room, RosterMember

CHROMIUM = shutil.which("chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not installed (apt-get install chromium; .ci/run does)"
)


def hold_busy_meeting(Db: sessionmaker[Session], msid: str) -> int:
    """Fold a 90-minute meeting of 12 people with late joiners, early leavers, reconnects, two devices
    and a leave that never comes; return how many people attended."""
    room_id = make_room(Db, min_percent=75)
    events = [start(msid, 0), end(msid, 90)]
    for n in range(9):
        joined, left = 3 * n, 90 - 4 * n
        events += [join(msid, f"p{n}", joined, name=f"Person {n}"), leave(msid, f"p{n}", left)]
    events += [  # a reconnect within the grace, then a real return after a break
        join(msid, "r1", 5, email="rec@example.com", name="Rae Connect"),
        leave(msid, "r1", 30, email="rec@example.com"),
        join(msid, "r2", 30.2, email="rec@example.com", name="Rae Connect"),
        leave(msid, "r2", 50, email="rec@example.com"),
        join(msid, "r3", 65, email="rec@example.com", name="Rae Connect"),
        leave(msid, "r3", 85, email="rec@example.com"),
    ]
    events += [  # one person on a laptop and a phone at once
        join(msid, "d1", 10, externalUserId="dev", name="Two Devices"),
        join(msid, "d2", 40, externalUserId="dev", name="Two Devices"),
        leave(msid, "d1", 60, externalUserId="dev"),
        leave(msid, "d2", 80, externalUserId="dev"),
    ]
    events.append(join(msid, "h1", 70, name=HOSTILE))  # never leaves: closed at the end, inferred
    fold(Db, room_id, [events])
    return 12


def with_credentials(base_url: str, path: str) -> str:
    """Return the page's URL with the API token as the Basic password (Chromium sends it on navigation)."""
    parts = urlsplit(base_url)
    return f"{parts.scheme}://rollcall:{API_TOKEN}@{parts.netloc}{path}"


def chromium(profile: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with a throwaway profile and return what it printed."""
    assert CHROMIUM is not None
    command = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=90, check=True)


def test_chromium_renders_the_table_and_the_timeline(live_app: Callable[..., Any], tmp_path: Path) -> None:
    with live_app() as (app, base_url):
        people = hold_busy_meeting(runtime_of(app).Db, "m-browser")
        url = with_credentials(base_url, "/sessions/m-browser")
        dom = chromium(tmp_path / "profile", "--dump-dom", url).stdout
        ARTIFACTS.mkdir(exist_ok=True)
        screenshot = ARTIFACTS / "session-timeline.png"
        screenshot.unlink(missing_ok=True)
        chromium(tmp_path / "profile", f"--screenshot={screenshot}", "--window-size=1400,1000", url)

    page = parse_html(dom)
    assert len(page.by_id("attendance").find_all("tr", "attendee")) == people
    svg = page.by_id("timeline")
    assert len(svg.find_all("g", "person")) == people
    segments = svg.find_all("rect", "segment")
    assert len(segments) == 9 + 3 + 2 + 1
    assert sum("inferred" in rect.classes for rect in segments) == 1
    assert len(svg.find_all("polyline", "concurrency")) == 1
    assert not page.find_all("script")  # the hostile name stayed text in the browser too
    assert HOSTILE in page.by_id("attendance").text()
    assert screenshot.stat().st_size > 10_000


def test_chromium_renders_statuses_on_the_organizers_clock_and_the_room_with_its_matrix(
    live_app: Callable[..., Any], tmp_path: Path
) -> None:
    with live_app() as (app, base_url):
        Db = runtime_of(app).Db
        people = hold_busy_meeting(Db, "m-statuses")
        with Db() as db:
            room_name = db.scalars(
                select(Room.room_name)
                .join(MeetingSession)
                .where(MeetingSession.meeting_session_id == "m-statuses")
            ).one()
        set_options(Db, room_name, timeZone="Europe/Paris", lateAfterSeconds=600)
        add_member(Db, room_name, "email:rec@example.com", "Rae Connect")
        add_member(Db, room_name, "ext:dev", "Two Devices", role="host")
        add_member(Db, room_name, "ext:zed", "Zed Absent")
        add_member(Db, room_name, "ext:yan", "Yan Excused")
        set_status(Db, "m-statuses", "ext:yan", "excused", "on a field trip", "api", T0)
        ARTIFACTS.mkdir(exist_ok=True)
        doms = {}
        for name, path in (
            ("session-statuses", "/sessions/m-statuses"),
            ("room-matrix", f"/rooms/{room_name}"),
        ):
            url = with_credentials(base_url, path)
            doms[name] = parse_html(chromium(tmp_path / "profile", "--dump-dom", url).stdout)
            screenshot = ARTIFACTS / f"{name}.png"
            screenshot.unlink(missing_ok=True)
            chromium(tmp_path / "profile", f"--screenshot={screenshot}", "--window-size=1400,1000", url)
            assert screenshot.stat().st_size > 10_000

    session = doms["session-statuses"]
    assert session.by_id("started-at").text() == "2026-03-02 10:00:00 Europe/Paris"
    rows = {
        cells[0]: cells for cells in map(cell_texts, session.by_id("attendance").find_all("tr", "attendee"))
    }
    assert len(rows) == people
    assert rows["Two Devices host"][10] == "present"  # joined at 10 minutes: not late for a host either
    assert rows["Rae Connect"][10] == "present" and rows["Person 5"][10] == "guest"
    missing = [cell_texts(row) for row in session.by_id("absentees").find_all("tr", "absentee")]
    assert [cells[:3] for cells in missing] == [
        ["Yan Excused", "-", "excused (computed: absent)"],
        ["Zed Absent", "-", "absent"],
    ]
    assert (
        session.by_id("attendance-rate").text() == "1 of 2, 50.0%"
    )  # Rae of Rae, Yan, Zed; the host left out

    room = doms["room-matrix"]
    assert [cell_texts(row)[0] for row in room.by_id("roster").find_all("tr", "member")] == [
        "Rae Connect", "Two Devices", "Yan Excused", "Zed Absent"
    ]  # fmt: skip
    matrix = [cell_texts(row) for row in room.by_id("matrix").find_all("tr", "person")]
    assert matrix[:4] == [  # roster members first, by key
        ["Rae Connect", "present 64.8 min", "100.0%", "0"],  # 25 + 19.8 + 20 minutes
        ["Two Devices host", "present 70.0 min", "-", "0"],  # a host: out of the rate
        ["Yan Excused", "excused", "-", "0"],  # excused every time: no rate
        ["Zed Absent", "absent", "0.0%", "1"],
    ]
    assert len(matrix) == 4 + 10  # and the ten guests
    assert not room.find_all("script") and not session.find_all("script")


class DevTools:
    """Headless Chromium driven over --remote-debugging-pipe: DevTools protocol messages, each JSON ending in
    a NUL byte, written to the browser's fd 3 and read from its fd 4."""

    def __init__(self, profile: Path) -> None:
        assert CHROMIUM is not None
        browser_reads, self._to_browser = os.pipe()
        self._from_browser, browser_writes = os.pipe()

        def wire_pipes() -> None:
            os.dup2(browser_reads, 3)
            os.dup2(browser_writes, 4)

        command = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"]
        self.process = subprocess.Popen(  # close_fds would close 3 and 4 after wire_pipes made them
            command,
            preexec_fn=wire_pipes,
            close_fds=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(browser_reads)
        os.close(browser_writes)
        self._unread = b""
        self._events: list[dict[str, Any]] = []
        self._last_id = 0

    def close(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)
        os.close(self._to_browser)
        os.close(self._from_browser)

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send one command (to a page's session, if given) and return its result."""
        self._last_id += 1
        message: dict[str, Any] = {"id": self._last_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._last_id:
                assert "error" not in reply, reply["error"]
                result: dict[str, Any] = reply["result"]
                return result
            self._events.append(reply)

    def wait_for(self, event: str) -> None:
        """Wait for the next `event` (e.g. Page.loadEventFired), passing over the others."""
        while True:
            message = self._events.pop(0) if self._events else self._read()
            if message.get("method") == event:
                return

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self._unread:
            with selectors.DefaultSelector() as waiting:
                waiting.register(self._from_browser, selectors.EVENT_READ)
                assert waiting.select(60), "Chromium said nothing for 60 seconds"
            chunk = os.read(self._from_browser, 1 << 16)
            assert chunk, "Chromium closed its DevTools pipe"
            self._unread += chunk
        message, _, self._unread = self._unread.partition(b"\0")
        parsed: dict[str, Any] = json.loads(message)
        return parsed


def test_chromium_adds_a_member_through_the_room_pages_form(
    live_app: Callable[..., Any], tmp_path: Path
) -> None:
    with live_app() as (app, base_url):
        Db = runtime_of(app).Db
        with Db() as db:
            room_name = db.get_one(Room, make_room(Db)).room_name
        browser = DevTools(tmp_path / "profile")
        try:
            target = browser.call("Target.createTarget", url="about:blank")["targetId"]
            page = browser.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            browser.call("Page.enable", page)
            browser.call("Network.enable", page)
            basic = base64.b64encode(f"rollcall:{API_TOKEN}".encode()).decode()
            browser.call("Network.setExtraHTTPHeaders", page, headers={"Authorization": f"Basic {basic}"})
            browser.call("Page.navigate", page, url=f"{base_url}/rooms/{room_name}")
            browser.wait_for("Page.loadEventFired")
            fill_and_submit = """
                const form = document.getElementById("add-member");
                form.elements.externalUserId.value = "u-42";
                form.elements.name.value = "Ada Lovelace";
                form.elements.role.value = "host";
                form.requestSubmit();
            """
            browser.call("Runtime.evaluate", page, expression=fill_and_submit)
            browser.wait_for("Page.loadEventFired")  # the POST, its 303, and the room page again
            shown = browser.call("Runtime.evaluate", page, expression="location.pathname")["result"]["value"]
            html = "document.documentElement.outerHTML"
            dom = browser.call("Runtime.evaluate", page, expression=html, returnByValue=True)["result"][
                "value"
            ]
        finally:
            browser.close()
        with Db() as db:
            members = db.scalars(select(RosterMember.participant_key).where(RosterMember.valid_to.is_(None)))
            assert members.all() == ["ext:u-42"]
    assert shown == f"/rooms/{room_name}"
    room = parse_html(dom)
    [member] = [cell_texts(row) for row in room.by_id("roster").find_all("tr", "member")]
    assert member[:4] == ["Ada Lovelace", "-", "u-42", "host"]
    assert [cell_texts(row)[1:3] for row in room.by_id("roster-changes").find_all("tr", "change")] == [
        ["added", "ext:u-42"]
    ]
