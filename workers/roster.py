"""The roster stage: who a room expects, read as it was at any moment and changed in versions, audited.

A change closes the member's open row (valid_to) and opens another from the change's effective time, so a
session is judged against the roster in force when it began (workers.reports.judge_sessions). A change
dated back amends every session of the room that began since: each gets a history entry (cause
"roster"), and the final ones a `session.amended` once the change is committed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from workers import audit
from workers.attendance import Identity, person_key
from workers.deliveries.parsing import ID_LENGTH, NAME_LENGTH, metered_time, summary
from workers.jobs import notify_amended
from workers.locks import lock_room_row
from workers.models import AuditRecord, MeetingSession, Room, RosterMember, RosterRole, SessionStatus
from workers.models.base import utcnow
from workers.models.roster import GROUP_LENGTH
from workers.results import ResultChange, figures, record
from workers.rooms import RoomNotFound
from workers.runtime.process import Runtime
from workers.timefmt import iso_ms
from workers.wire import roster_member_out

IDENTITY_FIELDS = ("externalUserId", "email")

Text = Annotated[str, Field(min_length=1)]
# A time as the API reads times everywhere: ISO-8601 (no offset means UTC), Unix seconds or milliseconds.
Moment = Annotated[
    datetime,
    PlainValidator(metered_time),
    WithJsonSchema(
        {"type": "string", "format": "date-time", "description": "ISO-8601; no offset means UTC."}
    ),
]
EFFECTIVE = "When the change takes effect (default now); sessions begun since are amended."


class MemberRequest(BaseModel):
    """A roster member as the API or a CSV row gives it: an externalUserId, an email, or both."""

    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)

    externalUserId: Annotated[Text, Field(max_length=ID_LENGTH)] | None = None
    email: EmailStr | None = None
    name: Annotated[Text, Field(max_length=NAME_LENGTH)] | None = None
    role: Literal["host", "attendee"] = "attendee"
    group: Annotated[Text, Field(max_length=GROUP_LENGTH)] | None = None

    @model_validator(mode="after")
    def _identified(self) -> MemberRequest:
        if self.externalUserId is None and self.email is None:
            raise _problem(type(self).__name__, "externalUserId", "externalUserId or email is required")
        return self


class AddMemberRequest(MemberRequest):
    """The body of POST /api/rooms/{roomName}/roster."""

    effectiveFrom: Moment | None = Field(default=None, description=EFFECTIVE)


class UpdateMemberRequest(BaseModel):
    """The body of PATCH /api/rooms/{roomName}/roster/{participantKey}: the fields to change.

    Null clears a field (the role back to attendee). The member's key must stay theirs.
    """

    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)

    externalUserId: Annotated[Text, Field(max_length=ID_LENGTH)] | None = None
    email: EmailStr | None = None
    name: Annotated[Text, Field(max_length=NAME_LENGTH)] | None = None
    role: Literal["host", "attendee"] | None = None
    group: Annotated[Text, Field(max_length=GROUP_LENGTH)] | None = None
    effectiveFrom: Moment | None = Field(default=None, description=EFFECTIVE)


@dataclass(frozen=True)
class Member:
    """What the roster holds about one person, keyed as attendance keys them."""

    external_user_id: str | None
    email: str | None
    name: str | None = None
    role: str = RosterRole.ATTENDEE
    group: str | None = None

    @property
    def key(self) -> str:
        """Return the contract's person key: ext:<externalUserId>, else email:<lower-cased email>."""
        # Attendance's own rule, so a member and their attendance share a key. With neither field it is no
        # key a roster takes (a bare "ps:"), which update refuses as another person.
        return person_key(Identity(self.external_user_id, self.email, None), "")[0]


def member_of(request: MemberRequest) -> Member:
    """Return the member a validated request describes."""
    return Member(request.externalUserId, request.email, request.name, request.role, request.group)


class MemberExists(Exception):
    """That person is on the room's roster already."""


class MemberNotFound(LookupError):
    """That person is not on the room's roster."""


class RosterProblems(ValueError):
    """A roster change refused: each problem as {field, message}; nothing was changed."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__(summary(errors))
        self.errors = errors


@dataclass(frozen=True)
class Counts:
    """What a roster import did, member by member."""

    added: int
    updated: int
    removed: int
    unchanged: int


@dataclass
class _Changes:
    """The changes of one transaction: each (participant key, action), for the history and the audit."""

    room: Room
    effective: datetime
    actor: str
    actions: list[tuple[str, str]] = field(default_factory=list)


def list_members(
    runtime: Runtime, room_name: str, at: datetime, after_key: str | None = None, limit: int | None = None
) -> list[RosterMember]:
    """Return the room's roster in force at `at`, by participant key: all of it, or a page after a key."""
    query = (
        select(RosterMember)
        .join(Room, Room.id == RosterMember.room_id)
        .where(Room.room_name == room_name, RosterMember.valid_from <= at)
        .where(or_(RosterMember.valid_to.is_(None), RosterMember.valid_to > at))
    )
    if after_key is not None:
        query = query.where(RosterMember.participant_key > after_key)
    with runtime.Db() as db:
        if db.scalar(select(Room.id).where(Room.room_name == room_name)) is None:
            raise RoomNotFound(room_name)
        return list(db.scalars(query.order_by(RosterMember.participant_key).limit(limit)))


def history(runtime: Runtime, room_name: str, before_id: int | None, limit: int) -> list[AuditRecord]:
    """Return the audit records of the room's roster changes, newest first: up to `limit` before an id."""
    query = select(AuditRecord).join(Room, Room.id == AuditRecord.room_id)
    query = query.where(Room.room_name == room_name, AuditRecord.action.startswith("roster."))
    if before_id is not None:
        query = query.where(AuditRecord.id < before_id)
    with runtime.Db() as db:
        if db.scalar(select(Room.id).where(Room.room_name == room_name)) is None:
            raise RoomNotFound(room_name)
        return list(db.scalars(query.order_by(AuditRecord.id.desc()).limit(limit)))


def add(
    runtime: Runtime,
    room_name: str,
    member: Member,
    effective: datetime | None,
    actor: str,
) -> RosterMember:
    """Put a person on the room's roster from `effective` (default now); MemberExists if they are on it."""
    try:
        with runtime.Db.begin() as db:
            changes = _begin(db, room_name, effective, actor)
            if _open_row(db, changes.room.id, member.key) is not None:
                raise MemberExists(member.key)
            _check_after_last_change(db, changes, member.key)
            row = _open(db, changes, member, None)
            amended = _amend(db, changes)
    except IntegrityError as error:  # a concurrent add committed first: uq_roster_members_open
        raise MemberExists(member.key) from error
    notify_amended(runtime.queue(), amended)
    return row


def update(
    runtime: Runtime,
    room_name: str,
    key: str,
    request: UpdateMemberRequest,
    actor: str,
) -> RosterMember:
    """Change a roster member's fields from `request.effectiveFrom` (default now); the key stays theirs."""
    given = request.model_dump(exclude_unset=True, exclude={"effectiveFrom"})
    with runtime.Db.begin() as db:
        changes = _begin(db, room_name, request.effectiveFrom, actor)
        current = _open_row(db, changes.room.id, key)
        if current is None:
            raise MemberNotFound(key)
        before = _member(current)
        after = replace(
            before,
            external_user_id=given.get("externalUserId", before.external_user_id),
            email=given.get("email", before.email),
            name=given.get("name", before.name),
            role=given.get("role", before.role) or RosterRole.ATTENDEE,
            group=given.get("group", before.group),
        )
        if after.key != key:
            # The key is who attendance matches: another key is another person, not an edit of this one.
            changed = next(name for name in IDENTITY_FIELDS if name in given)
            message = f"would make this member {after.key}: remove {key} and add the new one"
            raise RosterProblems([{"field": changed, "message": message}])
        if after == before:
            return current
        _check_after_last_change(db, changes, key)
        row = _open(db, changes, after, current)
        amended = _amend(db, changes)
    notify_amended(runtime.queue(), amended)
    return row


def remove(
    runtime: Runtime,
    room_name: str,
    key: str,
    effective: datetime | None,
    actor: str,
) -> RosterMember:
    """Take a person off the room's roster from `effective` (default now); return their closed row."""
    with runtime.Db.begin() as db:
        changes = _begin(db, room_name, effective, actor)
        current = _open_row(db, changes.room.id, key)
        if current is None:
            raise MemberNotFound(key)
        _check_after_last_change(db, changes, key)
        _close(db, changes, current)
        amended = _amend(db, changes)
    notify_amended(runtime.queue(), amended)
    return current


def import_members(
    runtime: Runtime,
    room_name: str,
    members: Sequence[Member],
    *,
    replace_all: bool,
    effective: datetime | None,
    actor: str,
) -> Counts:
    """Add or update every member listed, one transaction (`replace_all`: and remove those not listed).

    The members are a roster CSV's, read by workers.roster_csv.parse_csv; RosterProblems if a change
    would reach back before a member's last one, and then nothing is changed.
    """
    with runtime.Db.begin() as db:
        changes = _begin(db, room_name, effective, actor)
        room_id = changes.room.id
        current = {row.participant_key: row for row in _open_rows(db, room_id)}
        listed = {member.key for member in members}
        gone = sorted(set(current) - listed) if replace_all else []
        touched = [
            member
            for member in members
            if member.key not in current or _member(current[member.key]) != member
        ]
        problems = _changed_before(db, changes, [m.key for m in touched] + gone)
        if problems:
            raise RosterProblems(problems)
        for member in touched:
            _open(db, changes, member, current.get(member.key))
        for key in gone:
            _close(db, changes, current[key])
        amended = _amend(db, changes)
    notify_amended(runtime.queue(), amended)
    added = sum(1 for member in touched if member.key not in current)
    return Counts(added, len(touched) - added, len(gone), len(members) - len(touched))


def _begin(db: Session, room_name: str, effective: datetime | None, actor: str) -> _Changes:
    room = db.scalar(select(Room).where(Room.room_name == room_name))
    if room is None:
        raise RoomNotFound(room_name)
    # One roster writer per room at a time: two adds of one person cannot both find them absent.
    room = lock_room_row(db, room.id)
    return _Changes(room, effective or utcnow(), actor)


def _open_rows(db: Session, room_id: int) -> Sequence[RosterMember]:
    query = select(RosterMember).where(RosterMember.room_id == room_id, RosterMember.valid_to.is_(None))
    return db.scalars(query).all()


def _open_row(db: Session, room_id: int, key: str) -> RosterMember | None:
    query = select(RosterMember).where(
        RosterMember.room_id == room_id, RosterMember.participant_key == key, RosterMember.valid_to.is_(None)
    )
    return db.scalars(query).first()


def _check_after_last_change(db: Session, changes: _Changes, key: str) -> None:
    problems = _changed_before(db, changes, [key])
    if problems:
        raise RosterProblems(problems)


def _changed_before(db: Session, changes: _Changes, keys: Iterable[str]) -> list[dict[str, str]]:
    # A person's versions follow one another, so a change may not reach back before their last one.
    wanted = set(keys)
    if not wanted:
        return []
    last_changes = db.execute(
        select(
            RosterMember.participant_key,
            func.max(RosterMember.valid_from),
            func.max(RosterMember.valid_to),
        )
        .where(RosterMember.room_id == changes.room.id)
        .group_by(RosterMember.participant_key)
    )
    problems = []
    for key, opened, closed in last_changes:
        last = max(opened, closed or opened)
        if key in wanted and changes.effective < last:
            message = f"is before the last change to {key} ({iso_ms(last)})"
            problems.append({"field": "effectiveFrom", "message": message})
    return sorted(problems, key=lambda problem: problem["message"])


def _open(db: Session, changes: _Changes, member: Member, current: RosterMember | None) -> RosterMember:
    before = None
    if current is not None:
        before = roster_member_out(current).answer()
        current.valid_to = changes.effective
    row = RosterMember(
        room_id=changes.room.id,
        participant_key=member.key,
        external_user_id=member.external_user_id,
        email=member.email,
        name=member.name,
        role=member.role,
        group=member.group,
        valid_from=changes.effective,
    )
    db.add(row)
    db.flush()
    action = "roster.added" if current is None else "roster.updated"
    _audit(db, changes, action, member.key, before, roster_member_out(row).answer())
    return row


def _close(db: Session, changes: _Changes, row: RosterMember) -> None:
    before = roster_member_out(row).answer()
    row.valid_to = changes.effective
    _audit(db, changes, "roster.removed", row.participant_key, before, None)


def _audit(
    db: Session,
    changes: _Changes,
    action: str,
    key: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    audit.record(
        db,
        changes.actor,
        action,
        room_id=changes.room.id,
        subject=key,
        before=before,
        after=after,
    )
    changes.actions.append((key, action.removeprefix("roster.")))


def _amend(db: Session, changes: _Changes) -> set[int]:
    """Record the change in the history of every session begun since it took effect; return the final ones."""
    if not changes.actions:
        return set()
    people = [
        {"participantKey": key, "roster": action, "by": changes.actor}
        for key, action in sorted(changes.actions)
    ]
    query = select(MeetingSession).where(
        MeetingSession.room_id == changes.room.id, MeetingSession.began_at >= changes.effective
    )
    final: set[int] = set()
    for meeting in db.scalars(query):
        # The figures do not move: what a roster change alters is who was expected, read when judged.
        now = figures(meeting)
        record(db, meeting, "roster", ResultChange(now, now, people))
        if meeting.status == SessionStatus.FINAL:
            final.add(meeting.id)
    return final


def _member(row: RosterMember) -> Member:
    return Member(row.external_user_id, row.email, row.name, row.role, row.group)


def _problem(title: str, field_name: str, message: str) -> ValidationError:
    details = [InitErrorDetails(type=PydanticCustomError("roster", message), loc=(field_name,), input=None)]
    return ValidationError.from_exception_data(title, details)
