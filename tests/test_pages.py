"""The HTML report over real HTTP: Basic auth, figures and table, the SVG timeline, the room page."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.arranged import make_meeting_session
from tests.conftest import API_TOKEN
from tests.test_folding import end, fold, join, leave, make_room, start
from webhooks import runtime_of
from webhooks.pages import ROWS_PER_PAGE
from workers.models import AttendanceRow, MeetingSession, Room, RosterMember, StatusOverride
from workers.timefmt import iso_ms

HOSTILE = "<script>alert(1)</script>"
VOID = frozenset({"meta", "link", "br", "hr", "img", "input", "col", "source", "wbr"})


@dataclass
class Node:
    """An element of a parsed page: enough of a DOM to find elements by tag and class."""

    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def find_all(self, tag: str, cls: str | None = None) -> list[Node]:
        found = []
        for child in self.children:
            if isinstance(child, Node):
                if child.tag == tag and (cls is None or cls in child.classes):
                    found.append(child)
                found += child.find_all(tag, cls)
        return found

    def by_id(self, element_id: str) -> Node:
        matches = [n for n in self.find_all_elements() if n.attrs.get("id") == element_id]
        assert len(matches) == 1, f"expected one #{element_id}, found {len(matches)}"
        return matches[0]

    def find_all_elements(self) -> list[Node]:
        nodes = [c for c in self.children if isinstance(c, Node)]
        return nodes + [n for c in nodes for n in c.find_all_elements()]

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        if any(node.tag == tag for node in self.stack[1:]):
            while self.stack.pop().tag != tag:
                pass

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse_html(markup: str) -> Node:
    """Parse a page into a tree of Nodes."""
    builder = _TreeBuilder()
    builder.feed(markup)
    builder.close()
    return builder.root


def hold_meeting(Db: sessionmaker[Session], msid: str = "m-weekly") -> str:
    """Fold a 60-minute meeting of four people into the database; return the room's name.

    Ann 0-60; Bob 10-20 and 20:10-40 (a reconnect: one join); a hostile name 5-15; Cy joins at 50 and never
    leaves, so the end closes him (inferred). Peak 3 (Ann, Bob, the hostile name at 10-15).
    """
    room_id = make_room(Db, min_percent=50)
    events = [
        start(msid, 0),
        join(msid, "a1", 0, externalUserId="ann", name="Ann Lee"),
        leave(msid, "a1", 60, externalUserId="ann"),
        join(msid, "b1", 10, email="bob@example.com", name="Bob"),
        leave(msid, "b1", 20, email="bob@example.com"),
        join(msid, "b2", 20 + 10 / 60, email="bob@example.com", name="Bob"),
        leave(msid, "b2", 40, email="bob@example.com"),
        join(msid, "h1", 5, name=HOSTILE),
        leave(msid, "h1", 15, name=HOSTILE),
        join(msid, "c1", 50, name="Cy"),
        end(msid, 60),
    ]
    fold(Db, room_id, [events])
    with Db() as db:
        return db.scalars(select(Room.room_name).where(Room.id == room_id)).one()


@pytest.fixture
def site(live_app: Callable[..., Any]) -> Iterator[tuple[httpx.Client, sessionmaker[Session]]]:
    """Serve a fresh app; return an HTTP client logged in with Basic auth, and the app's sessionmaker."""
    with (
        live_app() as (app, base_url),
        httpx.Client(base_url=base_url, auth=("anyone", API_TOKEN), timeout=10) as client,
    ):
        yield client, runtime_of(app).Db


def test_pages_refuse_without_the_token_and_ask_for_basic_auth(site: Any) -> None:
    client, Db = site
    room_name = hold_meeting(Db)
    for path in ("/sessions/m-weekly", f"/rooms/{room_name}"):
        for auth in (None, ("anyone", "wrong-token")):
            answer = httpx.get(str(client.base_url) + path, auth=auth, timeout=10)
            assert answer.status_code == 401
            assert answer.headers["WWW-Authenticate"].startswith("Basic")
        assert client.get(path).status_code == 200


def test_session_page_shows_the_figures_and_one_table_row_per_person(site: Any) -> None:
    client, Db = site
    hold_meeting(Db)
    answer = client.get("/sessions/m-weekly")
    assert answer.headers["Content-Type"].startswith("text/html")
    page = parse_html(answer.text)
    assert page.by_id("participant-count").text() == "4"
    assert page.by_id("peak-concurrency").text() == "3"
    rows = page.by_id("attendance").find_all("tr", "attendee")
    cells = {r.find_all("td")[0].text(): [td.text() for td in r.find_all("td")] for r in rows}
    assert list(cells) == ["Ann Lee", HOSTILE, "Bob", "Cy"]  # in order of first join, as the timeline
    assert cells["Ann Lee"][5:10] == ["1h 00m 00s", "100.0%", "1", "yes", "no"]
    assert cells["Bob"][5:10] == ["29m 50s", "49.7%", "1", "no", "no"]
    assert cells["Cy"][5:10] == ["10m 00s", "16.7%", "1", "no", "yes"]


def test_timeline_has_a_row_per_person_a_bar_per_segment_and_the_concurrency_curve(site: Any) -> None:
    client, Db = site
    hold_meeting(Db)
    svg = parse_html(client.get("/sessions/m-weekly").text).by_id("timeline")
    people = svg.find_all("g", "person")
    bars = {
        p.find_all("text", "name")[0].find_all("title")[0].text(): p.find_all("rect", "segment")
        for p in people
    }
    assert {name: len(found) for name, found in bars.items()} == {"Ann Lee": 1, HOSTILE: 1, "Bob": 2, "Cy": 1}
    assert [("inferred" in bar.classes) for bar in bars["Cy"]] == [True]
    assert not any("inferred" in bar.classes for bar in bars["Ann Lee"] + bars["Bob"])
    assert len(svg.find_all("pattern")) == 1  # the hatching the inferred bars use
    (curve,) = svg.find_all("polyline", "concurrency")
    assert len(curve.attrs["points"].split()) >= 2 * 8  # two points per change, four people in and out
    labels = {t.text() for t in svg.find_all("text", "tick-label")}
    assert labels == {"time (UTC)", "09:00", "09:10", "09:20", "09:30", "09:40", "09:50", "10:00"}


def test_a_hostile_participant_name_is_escaped_everywhere(site: Any) -> None:
    client, Db = site
    hold_meeting(Db)
    markup = client.get("/sessions/m-weekly").text
    assert HOSTILE not in markup
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markup
    assert len(parse_html(markup).find_all("script")) == 0


def test_a_live_session_draws_the_open_segment_up_to_now(site: Any) -> None:
    client, Db = site
    room_id = make_room(Db)
    fold(Db, room_id, [[start("m-live", 0), join("m-live", "a1", 5, name="Ann")]])
    page = parse_html(client.get("/sessions/m-live").text)
    (bar,) = page.by_id("timeline").find_all("rect", "segment")
    assert "open" in bar.classes and "still present" in bar.text()
    assert "open segments are drawn up to" in page.text()
    assert page.by_id("attendance").find_all("td")[6].text() == "-"  # no percentage while live


def test_an_unknown_session_or_room_is_a_404_problem(site: Any) -> None:
    client, _ = site
    for path in ("/sessions/nope", "/rooms/nope"):
        answer = client.get(path)
        assert answer.status_code == 404
        assert answer.headers["Content-Type"] == "application/problem+json"


def test_room_page_lists_sessions_newest_first_linking_to_each(site: Any) -> None:
    client, Db = site
    room_id = make_room(Db)
    fold(Db, room_id, [[start("m-first", 0), end("m-first", 30)]])
    fold(Db, room_id, [[start("m-second", 60), end("m-second", 90)]])
    with Db() as db:
        room_name = db.scalars(select(Room.room_name).where(Room.id == room_id)).one()
    page = parse_html(client.get(f"/rooms/{room_name}").text)
    links = [a.attrs["href"] for a in page.by_id("sessions").find_all("a")]
    assert links == ["/sessions/m-second", "/sessions/m-first"]
    assert client.get(links[0]).status_code == 200


def test_room_page_pages_through_older_sessions(site: Any) -> None:
    client, Db = site
    room_id = make_room(Db)
    for n in range(3):
        fold(Db, room_id, [[start(f"m-{n}", n * 60), end(f"m-{n}", n * 60 + 30)]])
    with Db() as db:
        room_name = db.scalars(select(Room.room_name).where(Room.id == room_id)).one()
    seen: list[str] = []
    path: str | None = f"/rooms/{room_name}?limit=2"
    while path:
        page = parse_html(client.get(path).text)
        seen += [a.text() for a in page.by_id("sessions").find_all("a")]
        older = [a for a in page.find_all("a") if a.attrs.get("rel") == "next"]
        path = older[0].attrs["href"] if older else None
    assert seen == ["m-2", "m-1", "m-0"]


Stay = tuple[datetime, datetime | None]


def arrange_session(
    Db: sessionmaker[Session],
    people: Sequence[Sequence[Stay]],
    started: datetime | None,
    ended: datetime | None,
    room_name: str | None = None,
) -> tuple[str, str]:
    """Store a session and one attendance row per person directly, as the fold would leave them; return
    the session's meeting session id and its room's name."""
    session_id = make_meeting_session(Db, room_name)
    with Db.begin() as db:
        meeting = db.get_one(MeetingSession, session_id)
        meeting.started_at, meeting.ended_at = started, ended
        meeting.status = "live" if ended is None else "final"
        if started is not None and ended is not None:
            meeting.duration_ms = (ended - started) // timedelta(milliseconds=1)
        meeting.participant_count = meeting.peak_concurrency = len(people)
        db.add_all(attendance_row(session_id, n, stays) for n, stays in enumerate(people))
        room = db.get_one(Room, meeting.room_id)
        return meeting.meeting_session_id, room.room_name


def attendance_row(session_id: int, n: int, stays: Sequence[Stay]) -> AttendanceRow:
    """Return person n's attendance row: named Person 00n, their stays as its segments."""
    segments = [
        {
            "participantSessionId": f"{n}-{i}",
            "joinedAt": iso_ms(joined),
            "leftAt": None if left is None else iso_ms(left),
            "inferred": False,
        }
        for i, (joined, left) in enumerate(stays)
    ]
    closed = [left for _, left in stays if left is not None]
    return AttendanceRow(
        session_id=session_id,
        participant_key=f"name:Person {n:03d}",
        identified_by="name",
        name=f"Person {n:03d}",
        first_join_at=min(joined for joined, _ in stays),
        last_left_at=max(closed, default=None),
        join_count=1,
        segments=segments,
    )


T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_a_big_session_pages_its_people_and_says_how_many_there_are(site: Any) -> None:
    client, Db = site
    count = 2 * ROWS_PER_PAGE + 50
    # Person n joins at minute n % 60, so the order of first join interleaves their keys.
    people = [
        [(T0 + timedelta(minutes=n % 60, seconds=n // 60), T0 + timedelta(minutes=90))] for n in range(count)
    ]
    msid, _ = arrange_session(Db, people, T0, T0 + timedelta(minutes=90))
    seen: list[str] = []
    path: str | None = f"/sessions/{msid}"
    while path:
        page = parse_html(client.get(path).text)
        names = [row.find_all("td")[0].text() for row in page.by_id("attendance").find_all("tr", "attendee")]
        chart = [p.find_all("title")[0].text() for p in page.by_id("timeline").find_all("g", "person")]
        assert names == chart and len(names) <= ROWS_PER_PAGE
        first = len(seen) + 1
        assert f"People {first:,} to {len(seen) + len(names):,} of {count:,}" in page.text()
        assert "counts all" in page.text()  # the curve is everyone's on every page
        assert page.by_id("peak-concurrency").text() == str(count)
        seen += names
        onward = [a for a in page.find_all("a") if a.attrs.get("rel") == "next"]
        path = onward[0].attrs["href"] if onward else None
    expected = sorted(range(count), key=lambda n: (n % 60, n))
    assert seen == [f"Person {n:03d}" for n in expected]
    first_page = [a for a in page.find_all("a") if a.attrs.get("rel") == "first"]
    assert first_page and client.get(first_page[0].attrs["href"]).status_code == 200


def test_a_page_number_out_of_range_is_a_problem_naming_the_field(site: Any) -> None:
    client, Db = site
    msid, _ = arrange_session(Db, [[(T0, T0 + timedelta(minutes=5))]], T0, T0 + timedelta(minutes=5))
    assert "People 1" not in client.get(f"/sessions/{msid}").text  # one page: no pager
    for page in ("0", "2", "x", "1" * 5000, "-1"):
        answer = client.get(f"/sessions/{msid}", params={"page": page})
        assert answer.status_code == 422
        assert answer.headers["Content-Type"] == "application/problem+json"
        assert answer.json()["errors"] == [{"field": "page", "message": "must be a whole number from 1 to 1"}]


def test_a_person_on_too_many_devices_at_once_is_drawn_as_their_union_and_the_page_says_so(site: Any) -> None:
    client, Db = site
    devices = [(T0 + timedelta(seconds=n), T0 + timedelta(minutes=30, seconds=n)) for n in range(500)]
    msid, _ = arrange_session(Db, [devices, [(T0, T0 + timedelta(minutes=45))]], T0, T0 + timedelta(hours=1))
    page = parse_html(client.get(f"/sessions/{msid}").text)
    merged = page.by_id("timeline").find_all("g", "merged")
    (bar,) = merged[0].find_all("rect", "segment")
    assert "500 segments drawn as one" in bar.text()
    assert "1 row draws the union" in page.by_id("merged-rows").text()
    assert len(page.by_id("timeline").find_all("rect", "segment")) == 2


LAST = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
FIRST = datetime(1, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("stays", "started", "ended"),
    [
        ([(LAST, LAST)], LAST, LAST),
        ([(LAST - timedelta(hours=1), None)], LAST - timedelta(hours=1), None),
        ([(LAST, None)], LAST, None),
        ([(FIRST, FIRST + timedelta(seconds=1))], FIRST, FIRST + timedelta(seconds=1)),
        ([(FIRST, None)], FIRST, None),
        # Live, so no duration is stored: eight thousand years of milliseconds overflow the duration column.
        ([(FIRST, LAST)], FIRST, None),
    ],
    ids=["instant-9999", "live-9999", "live-last-ms", "year-1", "live-year-1", "year-1-to-9999"],
)
def test_pages_draw_times_at_either_end_of_the_calendar(
    site: Any, stays: list[Stay], started: datetime, ended: datetime | None
) -> None:
    client, Db = site
    msid, room_name = arrange_session(Db, [stays], started, ended)
    answer = client.get(f"/sessions/{msid}")
    assert answer.status_code == 200, answer.text
    page = parse_html(answer.text)
    assert len(page.by_id("timeline").find_all("rect", "segment")) == 1
    assert page.by_id("timeline").find_all("text", "tick-label")
    assert f"{iso_ms(started)[:10]} {iso_ms(started)[11:19]} UTC" in page.text()  # 0001-01-01, not 1-01-01
    room = parse_html(client.get(f"/rooms/{room_name}").text)
    assert [a.text() for a in room.by_id("sessions").find_all("a")] == [msid]


def test_room_page_pages_from_a_session_in_year_9999_to_one_in_year_1(site: Any) -> None:
    client, Db = site
    late, room_name = arrange_session(Db, [[(LAST, LAST)]], LAST, LAST)
    with Db.begin() as db:  # a second session in the same room, at the other end of the calendar
        room_id = db.scalars(select(Room.id).where(Room.room_name == room_name)).one()
        db.add(
            MeetingSession(room_id=room_id, meeting_session_id="m-year-1", started_at=FIRST, ended_at=FIRST)
        )
    seen: list[str] = []
    path: str | None = f"/rooms/{room_name}?limit=1"
    while path:
        answer = client.get(path)
        assert answer.status_code == 200, answer.text
        page = parse_html(answer.text)
        seen += [a.text() for a in page.by_id("sessions").find_all("a")]
        older = [a for a in page.find_all("a") if a.attrs.get("rel") == "next"]
        path = older[0].attrs["href"] if older else None
    assert seen == [late, "m-year-1"]
    assert client.get("/sessions/m-year-1").status_code == 200


# Issue 13: the organizer's clock, rosters, statuses and the series matrix. Roster rows and overrides are
# stored with the ORM, as their API would leave them.

DAY_BEFORE = T0 - timedelta(days=1)


def set_options(Db: sessionmaker[Session], room_name: str, **options: Any) -> None:
    """Set a room's Rollcall options (timeZone, lateAfterSeconds...) as the rooms API stores them."""
    with Db.begin() as db:
        room = db.scalars(select(Room).where(Room.room_name == room_name)).one()
        room.options = {**room.options, **options}


def add_member(
    Db: sessionmaker[Session],
    room_name: str,
    key: str,
    name: str,
    role: str = "attendee",
    valid_from: datetime = DAY_BEFORE,
    valid_to: datetime | None = None,
) -> None:
    """Store one roster row, in force from `valid_from` until `valid_to`."""
    with Db.begin() as db:
        room_id = db.scalars(select(Room.id).where(Room.room_name == room_name)).one()
        kind, _, value = key.partition(":")
        db.add(
            RosterMember(
                room_id=room_id,
                participant_key=key,
                external_user_id=value if kind == "ext" else None,
                email=value if kind == "email" else None,
                name=name,
                role=role,
                group="tuesday",
                valid_from=valid_from,
                valid_to=valid_to,
            )
        )


def set_status(
    Db: sessionmaker[Session], msid: str, key: str, status: str, reason: str, set_by: str, set_at: datetime
) -> None:
    """Store an organizer's status for one person in one session."""
    with Db.begin() as db:
        session_id = db.scalars(
            select(MeetingSession.id).where(MeetingSession.meeting_session_id == msid)
        ).one()
        db.add(
            StatusOverride(
                session_id=session_id,
                participant_key=key,
                status=status,
                reason=reason,
                set_by=set_by,
                set_at=set_at,
            )
        )


def cell_texts(row: Node) -> list[str]:
    """Return the text of each cell of a table row, its heading cell included."""
    return [" ".join(cell.text().split()) for cell in row.find_all_elements() if cell.tag in ("td", "th")]


def test_session_page_shows_each_persons_status_host_mark_and_override_and_who_is_missing(site: Any) -> None:
    client, Db = site
    room_name = hold_meeting(Db)
    set_options(Db, room_name, timeZone="Europe/Paris")
    with Db.begin() as db:  # a session is judged by the rules stamped on it, as a fold stamps the room's
        db.scalars(
            select(MeetingSession).where(MeetingSession.meeting_session_id == "m-weekly")
        ).one().late_after_seconds = 300
    add_member(Db, room_name, "ext:ann", "Ann Lee", role="host")
    add_member(Db, room_name, "email:bob@example.com", "Bob")
    add_member(Db, room_name, "ext:eve", "Eve Excused")
    add_member(Db, room_name, "ext:dee", "Dee Absent")
    add_member(Db, room_name, "ext:old", "Old Member", valid_to=T0 - timedelta(hours=1))  # left the roster
    set_status(Db, "m-weekly", "ext:eve", "excused", "doctor's note", "api", T0 + timedelta(hours=2))
    set_status(Db, "m-weekly", "email:bob@example.com", "present", "joined by phone first", "cli:ops", T0)
    page = parse_html(client.get("/sessions/m-weekly").text)

    rows = {cells[0]: cells for cells in map(cell_texts, page.by_id("attendance").find_all("tr", "attendee"))}
    assert list(rows) == ["Ann Lee host", HOSTILE, "Bob", "Cy"]
    assert [cells[10:] for cells in rows.values()] == [
        ["present", "-"],
        ["guest", "-"],  # not on the roster
        ["present (computed: late)", "cli:ops, 2026-03-02 10:00:00 Europe/Paris: joined by phone first"],
        ["guest", "-"],
    ]
    missing = [cell_texts(row) for row in page.by_id("absentees").find_all("tr", "absentee")]
    assert missing == [
        ["Dee Absent", "-", "absent", "-"],
        [
            "Eve Excused",
            "-",
            "excused (computed: absent)",
            "api, 2026-03-02 12:00:00 Europe/Paris: doctor's note",
        ],
    ]
    # The host is left out of the counts and the rate: Bob came of the three attendees on the roster.
    counts = {
        status: page.by_id(f"count-{status}").text()
        for status in ("present", "late", "absent", "excused", "guest")
    }
    assert counts == {"present": "1", "late": "0", "absent": "1", "excused": "1", "guest": "2"}
    assert page.by_id("attendance-rate").text() == "1 of 2, 50.0%"  # Eve excused: in neither part of the rate


def test_session_page_shows_times_on_the_organizers_clock_naming_the_zone(site: Any) -> None:
    client, Db = site
    room_name = hold_meeting(Db)
    set_options(Db, room_name, timeZone="America/New_York")
    page = parse_html(client.get("/sessions/m-weekly").text)
    assert page.by_id("started-at").text() == "2026-03-02 04:00:00 America/New_York"  # EST: UTC-5
    assert page.by_id("ended-at").text() == "2026-03-02 05:00:00 America/New_York"
    heads = [th.text() for th in page.by_id("attendance").find_all("th")]
    assert heads[3:5] == ["First join (America/New_York)", "Last leave (America/New_York)"]
    first = page.by_id("attendance").find_all("tr", "attendee")[0]
    assert cell_texts(first)[3:5] == ["2026-03-02 04:00:00", "2026-03-02 05:00:00"]
    labels = [t.text() for t in page.by_id("timeline").find_all("text", "tick-label")]
    assert labels[:3] == ["04:00", "04:00", "04:10"] and "time (America/New_York)" in labels  # both axes


def test_a_room_without_a_time_zone_or_with_an_unknown_one_is_shown_in_utc(site: Any) -> None:
    client, Db = site
    room_name = hold_meeting(Db)
    for options in ({}, {"timeZone": "Mars/Olympus_Mons"}):
        set_options(Db, room_name, **options)
        page = parse_html(client.get("/sessions/m-weekly").text)
        assert page.by_id("started-at").text() == "2026-03-02 09:00:00 UTC"
        assert parse_html(client.get(f"/rooms/{room_name}").text).by_id("time-zone").text() == "UTC"


def test_a_time_the_zone_cannot_show_is_written_in_utc_and_says_so(site: Any) -> None:
    client, Db = site
    msid, room_name = arrange_session(Db, [[(FIRST, FIRST + timedelta(seconds=1))]], FIRST, None)
    set_options(Db, room_name, timeZone="America/New_York")  # year 1 at 00:00 UTC is year 0 in New York
    page = parse_html(client.get(f"/sessions/{msid}").text)
    assert page.by_id("started-at").text() == "0001-01-01 00:00:00 UTC"
    first = page.by_id("attendance").find_all("tr", "attendee")[0]
    assert cell_texts(first)[3] == "0001-01-01 00:00:00 UTC"  # in a column headed America/New_York
    assert client.get(f"/rooms/{room_name}").status_code == 200


def test_room_page_shows_the_roster_in_force_and_the_series_matrix(site: Any) -> None:
    client, Db = site
    room_id = make_room(Db)
    fold(Db, room_id, [[start("m-1", 0), join("m-1", "a1", 0, externalUserId="ann", name="Ann typed"),
                        join("m-1", "b1", 0, email="bob@example.com", name="Bob"),
                        leave("m-1", "b1", 30, email="bob@example.com"),
                        join("m-1", "g1", 0, name="Gus"), leave("m-1", "g1", 10, name="Gus"),
                        leave("m-1", "a1", 60, externalUserId="ann"), end("m-1", 60)]])  # fmt: skip
    fold(Db, room_id, [[start("m-2", 1440), join("m-2", "a2", 1440, externalUserId="ann", name="Ann"),
                        leave("m-2", "a2", 1500, externalUserId="ann"), end("m-2", 1500)]])  # fmt: skip
    with Db() as db:
        room_name = db.get_one(Room, room_id).room_name
    set_options(Db, room_name, timeZone="America/New_York")
    add_member(Db, room_name, "ext:ann", "Ann Lee")
    add_member(Db, room_name, "email:bob@example.com", "Bob")
    add_member(
        Db, room_name, "ext:dee", "Dee", valid_from=T0 + timedelta(hours=12)
    )  # joined the course later
    add_member(Db, room_name, "ext:old", "Old", valid_to=T0 + timedelta(hours=12))  # left it
    set_status(Db, "m-2", "email:bob@example.com", "excused", "ill", "api", T0 + timedelta(days=1))
    page = parse_html(client.get(f"/rooms/{room_name}").text)

    roster = [cell_texts(row) for row in page.by_id("roster").find_all("tr", "member")]
    assert [cells[0] for cells in roster] == ["Ann Lee", "Bob", "Dee"]  # by name; Old's row is closed
    assert roster[2][3:6] == ["attendee", "tuesday", "2026-03-02 16:00:00 America/New_York"]
    matrix = page.by_id("matrix")
    heads = [th.text() for th in matrix.find_all("th", "session-column")]
    assert heads == ["2026-03-02 04:00:00", "2026-03-03 04:00:00"]  # oldest first, on the organizer's clock
    rows = [cell_texts(row) for row in matrix.find_all("tr", "person")]
    assert rows == [  # roster members first, by key; a rate of present or late over sessions expected at
        ["Bob", "present 30.0 min", "excused", "100.0%", "0"],  # excused: in neither part of the rate
        ["Ann Lee", "present 60.0 min", "present 60.0 min", "100.0%", "0"],  # the roster's name, not typed
        ["Dee", "", "absent", "0.0%", "1"],
        ["Old", "absent", "", "0.0%", "1"],
        ["Gus", "guest 10.0 min", "", "-", "0"],
    ]
    sessions = [cell_texts(row)[2] for row in page.by_id("sessions").find_all("tr", "session")]
    assert sessions == ["2026-03-03 04:00:00", "2026-03-02 04:00:00"]  # newest first


def test_room_page_without_a_roster_or_a_session_says_so(site: Any) -> None:
    client, Db = site
    room_id = make_room(Db)
    with Db() as db:
        room_name = db.get_one(Room, room_id).room_name
    page = parse_html(client.get(f"/rooms/{room_name}").text)
    assert "No roster" in page.by_id("roster").text()
    assert "No meeting has been held" in page.by_id("sessions").text()
    assert not [node for node in page.find_all_elements() if node.attrs.get("id") == "matrix"]


def test_home_page_lists_every_room_linking_to_its_page(site: Any) -> None:
    client, Db = site
    names = []
    for _ in range(3):
        with Db() as db:
            names.append(db.get_one(Room, make_room(Db)).room_name)
    with Db.begin() as db:
        db.scalars(select(Room).where(Room.room_name == names[1])).one().archived_at = T0
    assert httpx.get(str(client.base_url) + "/", timeout=10).status_code == 401
    seen: list[list[str]] = []
    path: str | None = "/?limit=2"
    while path:
        page = parse_html(client.get(path).text)
        seen += [cell_texts(row) for row in page.by_id("rooms").find_all("tr", "room")]
        links = [a.attrs["href"] for a in page.by_id("rooms").find_all("a")]
        assert all(client.get(link).status_code == 200 for link in links)
        more = [a for a in page.find_all("a") if a.attrs.get("rel") == "next"]
        path = more[0].attrs["href"] if more else None
    assert [cells[0] for cells in seen] == [names[0], f"{names[1]} archived", names[2]]


def test_the_series_matrix_of_a_big_session_pages_its_people(site: Any) -> None:
    client, Db = site
    count = ROWS_PER_PAGE + 5
    _, room_name = arrange_session(
        Db, [[(T0, T0 + timedelta(minutes=30))]] * count, T0, T0 + timedelta(hours=1)
    )
    seen: list[str] = []
    path: str | None = f"/rooms/{room_name}?limit=5"
    while path:
        page = parse_html(client.get(path).text)
        seen += [cell_texts(row)[0] for row in page.by_id("matrix").find_all("tr", "person")]
        onward = [a.attrs["href"] for a in page.find_all("a") if a.attrs.get("id") == "matrix-next"]
        assert all("limit=5" in href for href in onward)  # the same sessions, the next people
        path = onward[0] if onward else None
    assert seen == [f"Person {n:03d}" for n in range(count)]
    answer = client.get(f"/rooms/{room_name}", params={"matrixPage": "3"})
    assert answer.status_code == 422
    assert answer.json()["errors"] == [
        {"field": "matrixPage", "message": "must be a whole number from 1 to 2"}
    ]
