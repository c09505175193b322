"""The room page's roster forms over real HTTP: add, remove, import; CSRF; read-only; the range form."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import API_TOKEN
from tests.test_folding import end, fold, join, leave, make_room, start
from tests.test_pages import Node, cell_texts, parse_html
from webhooks import runtime_of
from workers.models import AuditRecord, Room, RosterMember

READ_TOKEN = "read-only-forms-token"
HEADER = "externalUserId,email,name,role,group"


@pytest.fixture
def room(live_app: Callable[..., Any]) -> Iterator[tuple[httpx.Client, sessionmaker[Session], str]]:
    """Serve an app with one room; return a Basic-auth client sending this site's Origin, Db, room name."""
    with live_app(read_token=(READ_TOKEN,)) as (app, base_url):
        Db = runtime_of(app).Db
        with Db() as db:
            room_name = db.get_one(Room, make_room(Db)).room_name
        headers = {"Origin": base_url}
        with httpx.Client(
            base_url=base_url, auth=("anyone", API_TOKEN), headers=headers, timeout=10
        ) as client:
            yield client, Db, room_name


def room_page(client: httpx.Client, room_name: str, **query: str) -> Node:
    answer = client.get(f"/rooms/{room_name}", params=query)
    assert answer.status_code == 200, answer.text
    return parse_html(answer.text)


def token_of(page: Node, form_id: str) -> str:
    form = page.by_id(form_id)
    [token] = [
        node.attrs["value"] for node in form.find_all("input") if node.attrs.get("name") == "csrfToken"
    ]
    return token


def roster_names(page: Node) -> list[str]:
    return [cell_texts(row)[0] for row in page.by_id("roster").find_all("tr", "member")]


def problems_on(page: Node) -> list[str]:
    return [item.text() for item in page.by_id("roster-problems").find_all("li")]


def add(client: httpx.Client, room_name: str, **fields: str) -> httpx.Response:
    token = token_of(room_page(client, room_name), "add-member")
    return client.post(f"/rooms/{room_name}/roster", data={"csrfToken": token, **fields})


def upload(client: httpx.Client, room_name: str, text: str, mode: str) -> httpx.Response:
    token = token_of(room_page(client, room_name), "import-roster")
    files = {"file": ("roster.csv", text.encode(), "text/csv")}
    return client.post(
        f"/rooms/{room_name}/roster/import", data={"csrfToken": token, "mode": mode}, files=files
    )


def test_a_member_added_through_the_form_is_on_the_roster_and_in_its_history(room: Any) -> None:
    client, Db, room_name = room
    answer = add(client, room_name, externalUserId="u-1", name="Ann Lee", role="host", group="", email="")
    assert answer.status_code == 303 and answer.headers["Location"].endswith(f"/rooms/{room_name}")
    page = room_page(client, room_name)
    assert roster_names(page) == ["Ann Lee"]
    assert cell_texts(page.by_id("roster").find_all("tr", "member")[0])[1:5] == ["-", "u-1", "host", "-"]
    [change] = [cell_texts(row) for row in page.by_id("roster-changes").find_all("tr", "change")]
    assert change[1:] == ["added", "ext:u-1", "api"]  # the API's actor, as the API records it
    with Db() as db:
        assert db.scalars(select(AuditRecord.actor)).all() == ["api"]


def test_a_bad_member_shows_each_problem_on_the_page_and_adds_nothing(room: Any) -> None:
    client, Db, room_name = room
    answer = add(client, room_name, email="not-an-address", role="boss")
    assert answer.status_code == 422 and answer.headers["content-type"].startswith("text/html")
    problems = problems_on(parse_html(answer.text))
    assert [problem.split(":")[0] for problem in problems] == ["email", "role"]
    assert add(client, room_name, externalUserId="u-1").status_code == 303
    twice = add(client, room_name, externalUserId="u-1")
    assert twice.status_code == 409 and problems_on(parse_html(twice.text)) == [
        "member: ext:u-1 is on the roster already"
    ]
    with Db() as db:
        assert len(db.scalars(select(RosterMember)).all()) == 1


def test_a_member_is_removed_through_the_form(room: Any) -> None:
    client, _, room_name = room
    add(client, room_name, externalUserId="u-1", name="Ann")
    add(client, room_name, externalUserId="u-2", name="Bo")
    forms = room_page(client, room_name).find_all("form", "remove-member")  # one a member, one token
    assert len(forms) == 2
    [remove_token] = {
        node.attrs["value"]
        for form in forms
        for node in form.find_all("input")
        if node.attrs["name"] == "csrfToken"
    }
    answer = client.post(
        f"/rooms/{room_name}/roster/remove", data={"csrfToken": remove_token, "participantKey": "ext:u-1"}
    )
    assert answer.status_code == 303
    assert roster_names(room_page(client, room_name)) == ["Bo"]
    again = client.post(
        f"/rooms/{room_name}/roster/remove", data={"csrfToken": remove_token, "participantKey": "ext:u-1"}
    )
    assert again.status_code == 404 and problems_on(parse_html(again.text)) == [
        "participantKey: ext:u-1 is not on the roster"
    ]


def test_a_csv_merges_or_replaces_and_a_bad_one_shows_its_lines_and_imports_nothing(room: Any) -> None:
    client, _, room_name = room
    add(client, room_name, externalUserId="keep", name="Kept")
    assert upload(client, room_name, f"{HEADER}\r\ns-1,,Sam,,A\r\n", "merge").status_code == 303
    assert roster_names(room_page(client, room_name)) == ["Kept", "Sam"]
    bad = f"{HEADER}\r\ns-2,,Sue,,A\r\ns-3,nope,Sid,,A\r\ns-4,,Sal,chief,A\r\n"
    refused = upload(client, room_name, bad, "replace")
    assert refused.status_code == 422
    assert [p.split(":")[:2] for p in problems_on(parse_html(refused.text))] == [
        ["line 3", " email"],
        ["line 4", " role"],
    ]
    assert roster_names(room_page(client, room_name)) == ["Kept", "Sam"]  # nothing imported
    assert upload(client, room_name, f"{HEADER}\r\ns-2,,Sue,,A\r\n", "replace").status_code == 303
    assert roster_names(room_page(client, room_name)) == ["Sue"]
    assert upload(client, room_name, "", "sideways").status_code == 422


def test_a_form_without_its_token_or_from_another_site_is_refused(room: Any) -> None:
    client, Db, room_name = room
    token = token_of(room_page(client, room_name), "add-member")
    path = f"/rooms/{room_name}/roster"
    refusals = [
        client.post(path, data={"externalUserId": "u-1"}),  # no token
        client.post(path, data={"csrfToken": "0" * 64, "externalUserId": "u-1"}),
        client.post(
            path,
            data={"csrfToken": token, "externalUserId": "u-1"},
            headers={"Origin": "https://evil.example"},
        ),
        client.post(  # the token of another form
            f"{path}/remove", data={"csrfToken": token, "participantKey": "ext:u-1"}
        ),
    ]
    no_origin = httpx.post(
        str(client.base_url) + path, data={"csrfToken": token}, auth=("anyone", API_TOKEN), timeout=10
    )
    for answer in [*refusals, no_origin]:
        assert answer.status_code == 403 and answer.headers["content-type"] == "application/problem+json"
    by_referer = httpx.post(
        str(client.base_url) + path,
        data={"csrfToken": token, "externalUserId": "u-1"},
        headers={"Referer": str(client.base_url.join(f"/rooms/{room_name}"))},
        auth=("anyone", API_TOKEN),
        timeout=10,
    )
    assert by_referer.status_code == 303  # a browser that sends no Origin
    with Db() as db:
        assert db.scalars(select(RosterMember.participant_key)).all() == ["ext:u-1"]


def test_a_read_only_token_sees_the_roster_and_its_forms_are_refused(room: Any) -> None:
    client, Db, room_name = room
    add(client, room_name, externalUserId="u-1", name="Ann")
    reader = httpx.Client(base_url=client.base_url, auth=("anyone", READ_TOKEN), headers=client.headers)
    page = room_page(reader, room_name)
    assert roster_names(page) == ["Ann"]
    for path, form_id, data in (
        ("roster", "add-member", {"externalUserId": "u-2"}),
        ("roster/remove", "add-member", {"participantKey": "ext:u-1"}),
        ("roster/import", "import-roster", {"mode": "merge"}),
    ):
        answer = reader.post(
            f"/rooms/{room_name}/{path}", data={"csrfToken": token_of(page, form_id), **data}
        )
        assert answer.status_code == 403 and "read-only" in answer.json()["detail"]
    with Db() as db:
        assert db.scalars(select(RosterMember.participant_key)).all() == ["ext:u-1"]


def test_the_room_page_shows_the_series_of_a_range_on_the_organizers_clock(room: Any) -> None:
    client, Db, room_name = room
    with Db.begin() as db:
        stored = db.scalars(select(Room).where(Room.room_name == room_name)).one()
        stored.options = {"timeZone": "Pacific/Honolulu"}  # 09:00 UTC is 23:00 the day before
        room_id = stored.id
    for number, day in enumerate((0, 1, 7)):  # T0 is 2026-03-02 09:00 UTC
        msid, t = f"m-{number}", day * 24 * 60
        ann = {"externalUserId": "ann"}
        steps = [start(msid, t), join(msid, f"{msid}-a", t, **ann), leave(msid, f"{msid}-a", t + 60, **ann)]
        fold(Db, room_id, [[*steps, end(msid, t + 60)]])
    heads = [
        th.text() for th in room_page(client, room_name).by_id("matrix").find_all("th", "session-column")
    ]
    assert len(heads) == 3  # no range: the sessions listed
    page = room_page(client, room_name, **{"from": "2026-03-01", "to": "2026-03-03"})
    heads = [th.text() for th in page.by_id("matrix").find_all("th", "session-column")]
    assert heads == ["2026-03-01 23:00:00", "2026-03-02 23:00:00"]
    bad = client.get(f"/rooms/{room_name}", params={"from": "2026-03-03", "to": "soon"})
    assert bad.status_code == 422 and [e["field"] for e in bad.json()["errors"]] == ["to"]
