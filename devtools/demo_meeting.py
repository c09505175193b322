"""The demo's meeting: an hour-long call of N people as a script of emulator steps (pure: no clock, no I/O).

Most people get a random pattern (on time, late, early leaver, a short visit, a dropped connection back
within the grace), and four fixed people show the rules the table must get right; CAST describes them.
The people are the same every week, so that a series of meetings (devtools.demo_series) follows them.
Deliveries are messy on purpose: some steps are sent twice or three times, some swapped with the next.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Container, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

MEETING_SECONDS = 3600
Segment = tuple[int, int | None]  # a device's join and leave, in seconds from the start; None: never left


class Character(NamedTuple):
    """One of the fixed people: the rule they show, and what the table should say of them."""

    name: str
    segments: list[Segment]
    identity: str  # which field identifies them: externalUserId, email or name
    note: str


CAST = [
    Character("Grace Hopper", [(600, 3000), (1200, 3300)], "email", "two devices at once: 45:00, 1 join"),
    Character("Alan Turing", [(1800, None)], "name", "leave never came: 30:00 to the end, inferred"),
    Character("Ada Lovelace", [(0, 1200), (1220, 3600)], "email", "dropped for 20 s: 59:40, 1 join"),
    Character("Linus Pauling", [(120, 900), (1500, 3480)], "externalUserId", "back after 10 min: 2 joins"),
]

FIRST = "Amara Bruno Chen Dalia Emeka Freya Goran Hana Idris Jonas Kaia Luca Mei Nadia Omar Priya"
LAST = "Abbott Bauer Costa Dube Eriksen Fofana Garcia Horvat Ito Jensen Kowalski Moreau Novak Okafor"
IDENTITIES = ("externalUserId", "email", "name")
PATTERNS = ("on time", "late", "early", "dropped", "on time", "visit", "late", "on time", "early", "dropped")


def attendees(people: int, seed: int = 6) -> list[tuple[str, str]]:
    """Return the name and identifying field of each of `people` people, the same every week: CAST first."""
    pool = [f"{first} {last}" for first, last in itertools.product(FIRST.split(), LAST.split())]
    names = random.Random(seed).sample(pool, people - len(CAST))
    return [(person.name, person.identity) for person in CAST] + [
        (name, IDENTITIES[i % 3]) for i, name in enumerate(names)
    ]


def identity_fields(number: int, name: str, identity: str) -> dict[str, str]:
    """Return the fields by which the `number`th attendee is known: an externalUserId, an email or a name."""
    if identity == "externalUserId":
        return {"externalUserId": f"u-{1000 + number}", "name": name}
    if identity == "email":
        return {"email": f"{name.replace(' ', '.')}@Example.org", "name": name}
    return {"name": name}


def meeting_script(
    people: int, start: datetime, meeting_id: str, weeks_ago: int = 0, seed: int = 6
) -> list[dict[str, Any]]:
    """Return the emulator steps (MeetingStep dicts) of a one-hour meeting of `people` people.

    The cast is the same every week. The crowd comes in full to this week's meeting (`weeks_ago` 0); in
    earlier weeks each of them keeps to another pattern, and one in six stays away.
    """
    rng = random.Random(seed * 100 + weeks_ago)
    timed: list[tuple[int, int, dict[str, Any]]] = [(0, 0, {"event": "start"})]
    for number, (name, identity) in enumerate(attendees(people, seed)):
        crowd_index = number - len(CAST)
        if crowd_index < 0:
            segments = CAST[number].segments
        elif weeks_ago and (crowd_index + weeks_ago) % 6 == 0:
            continue
        else:
            segments = _segments(rng, crowd_index + weeks_ago)
        timed += _person_steps(number, name, segments, identity)
    timed.append((MEETING_SECONDS, 2, {"event": "end"}))  # after the leaves of the same second
    timed.sort(key=lambda item: item[:2])
    steps = [
        {**step, "meetingSessionId": meeting_id, "time": (start + timedelta(seconds=offset)).isoformat()}
        for offset, _, step in timed
    ]
    _mess_up_delivery(rng, steps)
    return steps


def _segments(rng: random.Random, index: int) -> list[Segment]:
    # Cycled rather than drawn, so that even a small crowd has every pattern.
    pattern = PATTERNS[index % len(PATTERNS)]
    if pattern == "late":
        return [(rng.randint(300, 1500), rng.randint(3420, MEETING_SECONDS))]
    if pattern == "early":
        return [(rng.randint(0, 180), rng.randint(1200, 2700))]
    if pattern == "visit":
        join = rng.randint(2400, 2900)
        return [(join, join + rng.randint(300, 600))]
    if pattern == "dropped":  # back within the reconnect grace on a new participant session: one join
        drop = rng.randint(600, 3000)
        return [(rng.randint(0, 180), drop), (drop + rng.randint(5, 25), MEETING_SECONDS)]
    return [(rng.randint(0, 180), rng.randint(3420, MEETING_SECONDS))]


def _person_steps(
    number: int, name: str, segments: list[Segment], identity: str
) -> list[tuple[int, int, dict[str, Any]]]:
    steps = []
    for device, (joined, left) in enumerate(segments):
        session_id = f"ps-{number:03d}-{device}"
        who = identity_fields(number, name, identity)
        if (
            device and "email" in who
        ):  # a second device may give the address in lower case: one key either way
            who["email"] = who["email"].lower()
        join = {"event": "join", "participantSessionId": session_id, **who}
        steps.append((joined, 1, join))
        if left is not None:  # the emulator repeats the join's person fields on the leave
            steps.append((left, 1, {"event": "leave", "participantSessionId": session_id}))
    return steps


def _mess_up_delivery(rng: random.Random, steps: list[dict[str, Any]]) -> None:
    # Metered retries (duplicates) and parallel senders (out of order); the result must not change.
    for step in steps[1:-1]:
        if rng.random() < 0.1:
            step["duplicate"] = rng.randint(1, 2)
        if rng.random() < 0.1:
            step["reorder"] = True
    steps[-1]["duplicate"] = 1


def attendance_table(session: dict[str, Any]) -> list[str]:
    """Return the lines of a session's attendance table (from GET /api/sessions/<id>) and its notes."""
    people = sorted(session["attendance"], key=lambda row: (row["firstJoinAt"], row["participantKey"]))
    table = [("name", "key", "attended", "%", "joins", "present", "inferred", "status")]
    for row in people:
        figures = [_minutes(row["attendedSeconds"]), f"{row['attendancePercent']:.1f}", str(row["joinCount"])]
        flags = ["yes" if row[flag] else "no" for flag in ("present", "inferred")]
        status = row["status"].replace("_", " ")
        table.append((row["name"] or "-", row["participantKey"], *figures, *flags, status))
    lines = [
        f"\nMeeting {session['meetingSessionId']} in room {session['roomName']}, {session['status']}: "
        f"{session['startedAt']} to {session['endedAt']}, at most {session['peakConcurrency']} at once\n",
        *aligned(table, right=range(2, 5)),
        f"\n{len(people)} people; on the roster and absent: "
        + (
            ", ".join(person["name"] or person["participantKey"] for person in session["absentees"]) or "none"
        ),
        "Worth a look:",
    ]
    return lines + [f"  {person.name}: {person.note}" for person in CAST]


def aligned(table: Sequence[Sequence[str]], right: Container[int]) -> list[str]:
    """Return a table's rows as lines of aligned columns (those in `right` to the right), the header ruled."""
    widths = [max(len(line[column]) for line in table) for column in range(len(table[0]))]
    lines = []
    for line in table:
        cells = [cell.rjust(width) if column in right else cell.ljust(width)
                 for column, (cell, width) in enumerate(zip(line, widths, strict=True))]  # fmt: skip
        lines.append("  ".join(cells).rstrip())
    return [lines[0], "  ".join("-" * width for width in widths), *lines[1:]]


def _minutes(seconds: float) -> str:
    return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"
