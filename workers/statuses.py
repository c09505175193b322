"""Judging attendance against a roster: each person's status in a session, and a series of sessions.

Pure, like the attendance core it reads from: no clock, no I/O. Statuses are derived when read from the
stored attendance, the roster in force when the session began, the organizer's overrides and the rules
stamped on the session when it was created, so a rebuild, a late delivery or a roster amendment changes them
without any status being stored, and a later change to the room's options changes none.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, get_args


class Status(enum.StrEnum):
    """A person's standing in one session."""

    PRESENT = "present"
    LATE = "late"
    LEFT_EARLY = "left_early"
    ABSENT = "absent"
    EXCUSED = "excused"
    GUEST = "guest"  # attended without being on the roster


# What an organizer may set by hand. Guest is a fact about the roster, not a judgement. A Literal, so that
# the override request's model and its OpenAPI schema list exactly these.
OverridableStatus = Literal["present", "late", "left_early", "absent", "excused"]
OVERRIDABLE = tuple(Status(value) for value in get_args(OverridableStatus))
# Statuses that count as having come, in a session's rate and a series' rate.
ATTENDED = frozenset({Status.PRESENT, Status.LATE})


@dataclass(frozen=True)
class StatusRules:
    """The rules a session is judged by, stamped on it from its room's options: None leaves a rule out."""

    late_after_seconds: int | None = None
    early_leave_seconds: int | None = None
    include_hosts: bool = False  # hosts count in rates and present counts


@dataclass(frozen=True)
class Expected:
    """A roster member in force when the session began."""

    participant_key: str
    name: str | None = None
    email: str | None = None
    external_user_id: str | None = None
    is_host: bool = False
    group: str | None = None


@dataclass(frozen=True)
class Attended:
    """What the attendance row says about a person who came."""

    participant_key: str
    first_join_at: datetime
    last_left_at: datetime | None  # None: still there
    is_host: bool = False  # Metered's isAdmin
    name: str | None = None
    email: str | None = None
    attended_ms: int = 0


@dataclass(frozen=True)
class Override:
    """An organizer's status for a person in a session, and why."""

    status: Status
    reason: str | None
    set_by: str
    set_at: datetime


@dataclass(frozen=True)
class Judged:
    """One person's status in one session: `computed` from the figures, `status` after any override."""

    participant_key: str
    status: Status
    computed: Status
    is_host: bool
    member: Expected | None  # their roster entry in force, None for a guest
    attended: Attended | None  # what their attendance row says, None if they did not come
    counted: bool  # in the session's counts and rates: not a host, or the session's rules include hosts
    override: Override | None = None

    @property
    def on_roster(self) -> bool:
        """Say whether the person was on the roster in force when the session began."""
        return self.member is not None


def computed_status(
    attended: Attended | None,
    on_roster: bool,
    started_at: datetime,
    ended_at: datetime | None,
    rules: StatusRules,
) -> Status:
    """Return the status the figures give: guest, absent, late, left early or present (late wins)."""
    if attended is None:
        return Status.ABSENT
    if not on_roster:
        return Status.GUEST
    if rules.late_after_seconds is not None and attended.first_join_at > started_at + timedelta(
        seconds=rules.late_after_seconds
    ):
        return Status.LATE
    if (
        rules.early_leave_seconds is not None
        and ended_at is not None
        and attended.last_left_at is not None
        and attended.last_left_at < ended_at - timedelta(seconds=rules.early_leave_seconds)
    ):
        return Status.LEFT_EARLY
    return Status.PRESENT


def judge(
    started_at: datetime,
    ended_at: datetime | None,
    attended: Iterable[Attended],
    roster: Iterable[Expected],
    overrides: Mapping[str, Override],
    rules: StatusRules,
) -> list[Judged]:
    """Return every person's status in a session: each who came, then each roster member who did not.

    A host is a person Metered marked isAdmin or a roster host. An override replaces the computed
    status, whatever the figures say, and is kept even for a person neither present nor expected.
    """
    expected = {member.participant_key: member for member in roster}
    came = {person.participant_key: person for person in attended}
    keys = [*came, *(key for key in expected if key not in came)]
    keys += [key for key in overrides if key not in came and key not in expected]
    judged: list[Judged] = []
    for key in keys:
        person, member = came.get(key), expected.get(key)
        computed = computed_status(person, member is not None, started_at, ended_at, rules)
        override = overrides.get(key)
        is_host = bool((person and person.is_host) or (member and member.is_host))
        judged.append(
            Judged(
                participant_key=key,
                status=override.status if override else computed,
                computed=computed,
                is_host=is_host,
                member=member,
                attended=person,
                counted=rules.include_hosts or not is_host,
                override=override,
            )
        )
    return judged


@dataclass(frozen=True)
class StatusTally:
    """A session's statuses counted, and its attendance rate over the roster."""

    counts: dict[Status, int]
    expected: int  # roster members who count (hosts left out unless the rules include them)
    attended: int  # of those, present or late
    rate: float | None  # attendance_rate of the session's people


def tally(judged: Sequence[Judged]) -> StatusTally:
    """Count a session's statuses; hosts are left out unless the session's rules include them."""
    counted = [j for j in judged if j.counted]
    counts = {status: sum(1 for j in counted if j.status == status) for status in Status}
    expected = [j for j in counted if j.on_roster]
    came = sum(1 for j in expected if j.status in ATTENDED)
    return StatusTally(counts, len(expected), came, attendance_rate(judged))


def attendance_rate(judged: Iterable[Judged | None]) -> float | None:
    """Return present-or-late ÷ expected, excused ones counted in neither part: one session's, or a series'.

    None where nothing counts: no roster, a guest, a host left out, a person excused every time.
    """
    held = [j for j in judged if j is not None and counts_in_rates(j) and j.status != Status.EXCUSED]
    came = sum(1 for j in held if j.status in ATTENDED)
    return round(came / len(held), 4) if held else None


def rules_of(options: Mapping[str, object]) -> StatusRules:
    """Return the judging rules a room's stored options set (Rollcall's camelCase option names)."""

    def seconds(name: str) -> int | None:
        value = options.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    return StatusRules(
        late_after_seconds=seconds("lateAfterSeconds"),
        early_leave_seconds=seconds("earlyLeaveSeconds"),
        include_hosts=options.get("includeHostsInAttendance") is True,
    )


# A series of sessions (issue 13's series report, billable time and absence alerts). A person's cells run
# oldest session first; None where the person was neither expected nor there.


def counts_in_rates(cell: Judged) -> bool:
    """Return whether a cell counts in rates and runs: expected, and not a host its session left out."""
    return cell.on_roster and cell.counted


@dataclass(frozen=True)
class AbsenceRun:
    """A person's absences running back from the newest session."""

    length: int
    ended: bool  # False: the cells ran out first, so older sessions may lengthen it
    first: int | None  # the index (newest first) of the run's oldest absence, its identity; None: no run


def absence_run(cells_newest_first: Iterable[Judged | None]) -> AbsenceRun:
    """Count the absences back from the newest session, and find the oldest of them.

    Sessions the person was not expected at, and excused ones, are passed over; any other status ends
    the run.
    """
    length, first = 0, None
    for index, cell in enumerate(cells_newest_first):
        if cell is None or not counts_in_rates(cell) or cell.status == Status.EXCUSED:
            continue
        if cell.status != Status.ABSENT:
            return AbsenceRun(length, True, first)
        length, first = length + 1, index
    return AbsenceRun(length, False, first)


def billable_ms(attended_ms: int, increment_minutes: int) -> int:
    """Return attended time rounded up to a whole number of increments; nothing attended bills nothing."""
    increment_ms = increment_minutes * 60_000
    return -(-attended_ms // increment_ms) * increment_ms


DEFAULT_BILLING_INCREMENT_MINUTES = 1  # unset: attended time billed to the next whole minute


def billing_increment(options: Mapping[str, object]) -> int:
    """Return the room's billing increment in minutes (`billingIncrementMinutes`, else one minute)."""
    return _count_option(options, "billingIncrementMinutes") or DEFAULT_BILLING_INCREMENT_MINUTES


def absence_alert_after(options: Mapping[str, object]) -> int | None:
    """Return the run of absences that alerts the organizer (`absenceAlertAfter`); None: no alerts."""
    return _count_option(options, "absenceAlertAfter")


def _count_option(options: Mapping[str, object], name: str) -> int | None:
    value = options.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else None
