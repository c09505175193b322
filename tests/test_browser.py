"""A real browser loads the session page: headless Chromium dumps its DOM and takes a screenshot.

Needs Debian's `chromium` package (CI installs it); skipped where it is absent. The screenshot is kept in
test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import API_TOKEN
from tests.test_folding import end, fold, join, leave, make_room, start
from tests.test_pages import HOSTILE, parse_html
from webhooks import runtime_of

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
