"""The demo's series: the room's roster, three weekly meetings, and the series matrix (pure: no I/O).

The roster is every attendee known by an externalUserId or an email (the name-only ones come as guests),
and two people who never come; so the series shows statuses, rates and a run of absences.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from typing import Any

from devtools.demo_meeting import aligned, attendees, identity_fields, meeting_script

WEEKS = 3
# On the roster, never in a meeting: their run of absences is the series' length.
NEVER_COME = [{"externalUserId": "u-0042", "name": "Carl Gauss"},
              {"email": "Rosalind.Franklin@Example.org", "name": "Rosalind Franklin"}]  # fmt: skip


def roster_csv(people: int) -> str:
    """Return the demo room's roster as the CSV POST /api/rooms/{roomName}/roster/import takes."""
    columns = ["externalUserId", "email", "name"]
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    for number, (name, identity) in enumerate(attendees(people)):
        if identity != "name":
            writer.writerow(identity_fields(number, name, identity))
    writer.writerows(NEVER_COME)
    return out.getvalue()


def weekly_meetings(
    people: int, latest_start: datetime, meeting_ids: list[str]
) -> list[list[dict[str, Any]]]:
    """Return the scripts of WEEKS weekly meetings, oldest first, the latest starting at `latest_start`."""
    return [
        meeting_script(people, latest_start - timedelta(weeks=weeks_ago), meeting_id, weeks_ago)
        for weeks_ago, meeting_id in zip(range(WEEKS - 1, -1, -1), meeting_ids, strict=True)
    ]


def series_table(series: dict[str, Any]) -> list[str]:
    """Return the lines of a series (from GET /api/rooms/{roomName}/series): a status per person and week."""
    days = [session["startedAt"][:10] for session in series["sessions"]]
    table = [("name", "key", *days, "rate", "absences")]
    for person in series["people"]:
        statuses = [cell["status"].replace("_", " ") if cell else "-" for cell in person["cells"]]
        rate = "-" if person["attendanceRate"] is None else f"{person['attendanceRate'] * 100:.1f}%"
        table.append(
            (person["name"] or "-", person["participantKey"], *statuses, rate, str(person["absenceRun"]))
        )
    heading = (
        f"\nRoom {series['roomName']}, {len(days)} weekly meetings: each person's status, their rate "
        "(present or late, of the meetings\nheld while on the roster) and their absences running back from "
        "the latest.\n"
    )
    return [heading, *aligned(table, right=range(len(days) + 2, len(days) + 4))]
