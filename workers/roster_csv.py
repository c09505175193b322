"""Roster CSVs read: a header row naming the columns, then a member a row, every problem named by line.

A pure function over the file's text: workers.roster applies what it reads, in one transaction.
"""

from __future__ import annotations

import csv
import io

from pydantic import ValidationError

from workers.deliveries.parsing import field_errors
from workers.roster import IDENTITY_FIELDS, Member, MemberRequest, RosterProblems, member_of

CSV_COLUMNS = ("externalUserId", "email", "name", "role", "group")


def parse_csv(text: str) -> list[Member]:
    """Read a roster CSV (a header row naming CSV_COLUMNS, in any order); RosterProblems names each bad cell.

    A problem's field is "line N: column", N counted from 1 at the header as a text editor counts lines.
    """
    # newline="": the csv module's own line handling, so a quoted cell may hold a line break.
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""), strict=True)
    problems: list[dict[str, str]] = []
    try:
        header = next(reader, None)
        columns = _columns(header, problems)
        if problems:
            raise RosterProblems(problems)  # rows read under a wrong header would only add noise
        members: list[Member] = []
        first_line: dict[str, int] = {}
        line = reader.line_num + 1
        for cells in reader:
            row_line, line = line, reader.line_num + 1
            if not any(cell.strip() for cell in cells):
                continue  # a blank line, as spreadsheets leave at the end
            member = _row(cells, columns, row_line, problems)
            if member is None:
                continue
            if member.key in first_line:
                column = "externalUserId" if member.external_user_id else "email"
                message = f"the same person as line {first_line[member.key]} ({member.key})"
                problems.append({"field": f"line {row_line}: {column}", "message": message})
                continue
            first_line[member.key] = row_line
            members.append(member)
    except csv.Error as error:
        problems.append({"field": f"line {reader.line_num}", "message": f"not readable as CSV: {error}"})
    if problems:
        raise RosterProblems(problems)
    return members


def _columns(header: list[str] | None, problems: list[dict[str, str]]) -> list[str]:
    names = [name.strip() for name in header or []]
    if not any(names):
        problems.append({"field": "line 1", "message": f"the header row is missing: {','.join(CSV_COLUMNS)}"})
        return []
    for name in names:
        if name not in CSV_COLUMNS:
            message = f"not a roster column (the columns are {', '.join(CSV_COLUMNS)})"
            problems.append({"field": f"line 1: {name}", "message": message})
    for name in sorted({name for name in names if names.count(name) > 1}):
        problems.append({"field": f"line 1: {name}", "message": "named twice"})
    if not set(IDENTITY_FIELDS) & set(names):
        problems.append({"field": "line 1", "message": "needs an externalUserId or an email column"})
    return names


def _row(cells: list[str], columns: list[str], line: int, problems: list[dict[str, str]]) -> Member | None:
    if len(cells) != len(columns):
        message = f"has {len(cells)} cells where the header names {len(columns)}"
        problems.append({"field": f"line {line}", "message": message})
        return None
    # An empty cell is a value not given: the role defaults, the rest stay empty.
    given = {name: cell for name, cell in zip(columns, cells, strict=True) if cell.strip()}
    try:
        return member_of(MemberRequest.model_validate(given))
    except ValidationError as error:
        problems.extend(
            {"field": f"line {line}: {problem['field']}", "message": problem["message"]}
            for problem in field_errors(error)
        )
        return None
