"""Reading a roster CSV: every row checked, each bad one named by its line and column; members keyed."""

from __future__ import annotations

import pytest

from workers.roster import Member, RosterProblems
from workers.roster_csv import parse_csv

HEADER = "externalUserId,email,name,role,group"


def problems(text: str) -> list[tuple[str, str]]:
    """Return each (field, message) parse_csv refuses `text` with."""
    with pytest.raises(RosterProblems) as refused:
        parse_csv(text)
    return [(error["field"], error["message"]) for error in refused.value.errors]


def students(rows: int, bad: dict[int, str]) -> str:
    """Return a roster of `rows` students (the header is line 1), some lines replaced by `bad`."""
    lines = [
        HEADER,
        *(f"s-{n:02},student{n}@school.example,Student {n},attendee,A" for n in range(1, rows + 1)),
    ]
    for line_number, text in bad.items():
        lines[line_number - 1] = text
    return "\r\n".join(lines) + "\r\n"


def test_every_bad_row_is_named_by_line_and_column() -> None:
    text = students(
        12,
        bad={
            3: ",,No Id,attendee,A",
            5: "s-04,student4@school.example,Student 4,teacher,B",
            7: "s-06,student6@school.example",
            9: "s-03,,Twice,attendee,A",
            11: "s-10,x@@school.example,Student 10,host,",
        },
    )
    found = problems(text)
    assert [field for field, _ in found] == [
        "line 3: externalUserId",
        "line 5: role",
        "line 7",
        "line 9: externalUserId",
        "line 11: email",
    ]
    assert found[:4] == [
        ("line 3: externalUserId", "externalUserId or email is required"),
        ("line 5: role", "Input should be 'host' or 'attendee'"),
        ("line 7", "has 2 cells where the header names 5"),
        ("line 9: externalUserId", "the same person as line 4 (ext:s-03)"),
    ]


def test_a_person_is_the_same_by_email_whatever_its_case() -> None:
    text = f"{HEADER}\n,Ann@Example.com,Ann,,\n,ann@example.COM,Ann again,,\n"
    assert problems(text) == [("line 3: email", "the same person as line 2 (email:ann@example.com)")]


def test_line_numbers_count_lines_as_an_editor_does() -> None:
    # A quoted name over two lines, a blank line, a cell holding a line separator: the bad row is line 6.
    text = f'{HEADER}\n"s-1",,"Ann\nLee",attendee,A\n\ns-2,bo@example.com,Bo\u2028Bo,,\ns-3,bad,Cy,,\n'
    assert [field for field, _ in problems(text)] == ["line 6: email"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", [("line 1", "the header row is missing: externalUserId,email,name,role,group")]),
        ("name,role\nAnn,host\n", [("line 1", "needs an externalUserId or an email column")]),
        (
            "email,colour\nann@example.com,red\n",
            [
                (
                    "line 1: colour",
                    "not a roster column (the columns are externalUserId, email, name, role, group)",
                )
            ],
        ),
        ("email,email\na@example.com,b@example.com\n", [("line 1: email", "named twice")]),
        (f'{HEADER}\nu-1,"unclosed\n', [("line 2", "not readable as CSV: unexpected end of data")]),
    ],
)
def test_a_bad_header_or_unreadable_text_is_named(text: str, expected: list[tuple[str, str]]) -> None:
    assert problems(text) == expected


def test_columns_in_any_order_with_a_bom_and_only_some_of_them() -> None:
    text = "\ufeffgroup,email,name\r\nA,ann@example.com,Ann\r\n,bo@example.com,\r\n\r\n"
    assert parse_csv(text) == [
        Member(None, "ann@example.com", "Ann", "attendee", "A"),
        Member(None, "bo@example.com", None, "attendee", None),
    ]


def test_a_member_is_keyed_as_attendance_keys_a_person() -> None:
    assert Member("u-42", "Ann@Example.com").key == "ext:u-42"
    assert Member(None, "Ann@Example.com").key == "email:ann@example.com"
    assert parse_csv(f"{HEADER}\n  u-1 , ann@example.com ,  Ann Lee ,host,\n") == [
        Member("u-1", "ann@example.com", "Ann Lee", "host", None)
    ]
