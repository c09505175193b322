"""Erasure: one person's name, email and external user id replaced by a pseudonym everywhere, figures kept.

The pseudonym (`erased:<random hex>`) stands in as the person's externalUserId in their deliveries' raw
bodies and columns, so a rebuild from the raw bodies keys them as `ext:erased:<hex>` and gives the same
figures; their email is dropped and their name becomes the pseudonym. Random rather than derived from the
person: a hash of an email address can be matched against a list of addresses, a random id cannot. For the
same reason the salts of their sealed records are destroyed (crypto-shredding, see workers.sealing).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Select, and_, false, func, or_, select, update
from sqlalchemy.orm import Session

from workers import audit
from workers.deliveries.parsing import (
    JSON_TYPES,
    PARTICIPANT_EVENTS,
    BodyError,
    media_type,
    read_fields,
)
from workers.locks import lock_room_row
from workers.models import (
    AttendanceRow,
    AuditRecord,
    Delivery,
    MeetingSession,
    Notification,
    ParticipantSession,
    RosterMember,
    SealedRecord,
    SessionChange,
    StatusOverride,
)
from workers.pseudonyms import Scrubber, new_pseudonym
from workers.retention import PURGED_BODY

ERASURE = "erasure"
ERASED = "person.erased"  # the audit action; its `after` lists the sealed records it rewrote, for verify


PeopleRow = ParticipantSession | AttendanceRow | RosterMember
PEOPLE_TABLES: tuple[type[PeopleRow], ...] = (ParticipantSession, AttendanceRow, RosterMember)


class UnknownPerson(LookupError):
    """No attendance, participant session or roster row has this participant key."""


@dataclass(frozen=True)
class Erased:
    """What an erasure did: the person's new key, and how many rows of each table it rewrote."""

    pseudonym: str
    participant_key: str
    rows: dict[str, int]


@dataclass
class Person:
    """Everything that identifies one person: their key and the values found on their rows."""

    participant_key: str
    values: set[str] = field(default_factory=set)
    segments: set[tuple[int, str]] = field(default_factory=set)  # (session row id, participant session id)

    def note(self, *values: str | None) -> None:
        """Add identifying values (names, emails, external ids) found on one of the person's rows."""
        self.values.update(value for value in values if value)


def erase_person(db: Session, participant_key: str, actor: str, now: datetime) -> Erased:
    """Replace one person's personal data with a pseudonym in every table, and audit it without the data."""
    # Every writer of a room's rows locks its row first: with the person's rooms locked, no fold can write
    # their old name back from what it read before. Then read them again, as the lock holders left them.
    for room_id in sorted(_rooms_of(db, find_person(db, participant_key))):
        lock_room_row(db, room_id)
    person = find_person(db, participant_key)
    pseudonym = new_pseudonym()
    scrub = Scrubber(person.participant_key, person.values, pseudonym)
    deliveries = _erase_deliveries(db, person, scrub, now)
    audit_records = _erase_audit(db, scrub, now)
    rows = {
        "deliveries": len(deliveries),
        "participant_sessions": _erase_people_rows(db, ParticipantSession, person, scrub),
        "attendance": _erase_people_rows(db, AttendanceRow, person, scrub),
        "roster_members": _erase_people_rows(db, RosterMember, person, scrub),
        "status_overrides": _erase_overrides(db, person, scrub),
        "session_changes": _erase_history(db, person, scrub),
        "notifications": _erase_notifications(db, person, deliveries, scrub),
        "audit_records": len(audit_records),
    }
    _destroy_salts(db, deliveries, audit_records)
    # The pseudonym and record ids name nobody; they let verify tell this rewrite from tampering.
    listed = {"pseudonym": pseudonym, "deliveries": deliveries, "auditRecords": audit_records}
    audit.record(db, actor, ERASED, subject=scrub.new_key, after={"rows": rows, **listed})
    return Erased(pseudonym, scrub.new_key, rows)


def _destroy_salts(db: Session, deliveries: list[int], audit_records: list[int]) -> None:
    """Destroy the salts of the erased records' seals: their sealed hashes can confirm no guess from then on.

    The hashes stay, so each day's Merkle root still holds; verify reports these records redacted.
    """
    sealed = or_(
        and_(SealedRecord.kind == "delivery", SealedRecord.record_id.in_(deliveries)),
        and_(SealedRecord.kind == "audit", SealedRecord.record_id.in_(audit_records)),
    )
    db.execute(update(SealedRecord).where(sealed).values(salt=None))


def find_person(db: Session, participant_key: str) -> Person:
    """Gather what identifies the person keyed `participant_key`; UnknownPerson when nothing has that key."""
    person = Person(participant_key)
    for model in PEOPLE_TABLES:
        for row in _rows_keyed(db, model, participant_key):
            person.note(row.external_user_id, row.email, row.name)
            if isinstance(row, ParticipantSession):
                person.segments.add((row.session_id, row.participant_session_id))
    if not (person.values or person.segments):
        raise UnknownPerson(participant_key)
    return person


def _rooms_of(db: Session, person: Person) -> set[int]:
    meetings = select(MeetingSession.room_id).where(MeetingSession.id.in_(_sessions_of(person)))
    roster = select(RosterMember.room_id).where(RosterMember.participant_key == person.participant_key)
    deliveries = _person_deliveries(person).with_only_columns(Delivery.room_id)
    return {room_id for query in (meetings, roster, deliveries) for room_id in db.scalars(query)}


def _rows_keyed(db: Session, model: type[PeopleRow], participant_key: str) -> list[PeopleRow]:
    rows: list[PeopleRow] = list(db.scalars(select(model).where(model.participant_key == participant_key)))
    return rows


def _person_deliveries(person: Person) -> Select[Delivery]:
    """Select the person's joins and leaves: of their segments, and any naming them by their id or email.

    By name only under a `name:` key: elsewhere a name is too common to say whose a delivery is.
    """
    prefix, _, value = person.participant_key.partition(":")
    known = person.values | {value}
    emails = {known_value.lower() for known_value in known if "@" in known_value}
    unnamed_ext = Delivery.external_user_id.is_(None)
    names_them = or_(
        Delivery.external_user_id.in_(known),
        and_(unnamed_ext, func.lower(Delivery.email).in_(emails)),
        and_(unnamed_ext, Delivery.email.is_(None), Delivery.name == value) if prefix == "name" else false(),
    )
    ids = {participant_session_id for _, participant_session_id in person.segments}
    return select(Delivery).where(
        Delivery.event.in_(PARTICIPANT_EVENTS), or_(names_them, Delivery.participant_session_id.in_(ids))
    )


def _erase_deliveries(db: Session, person: Person, scrub: Scrubber, now: datetime) -> list[int]:
    erased = []
    for delivery in db.scalars(_person_deliveries(person)):
        own_segment = (delivery.session_id, delivery.participant_session_id) in person.segments
        if not (own_segment or delivery.session_id is None):
            # The same participant session id in another meeting: someone else. Or a segment of theirs folded
            # under another key (their email, no id): that key's attendance, erased by that key.
            continue
        delivery.external_user_id, delivery.email, delivery.name = scrub.pseudonym, None, scrub.pseudonym
        if delivery.status_reason:  # an error may quote the body
            delivery.status_reason = scrub.text(delivery.status_reason)
        delivery.headers = scrub.json(delivery.headers)
        if delivery.raw_body != PURGED_BODY:
            delivery.raw_body, delivery.content_type = _erased_body(delivery, scrub)
        delivery.redacted_at, delivery.redaction = now, ERASURE
        erased.append(delivery.id)
    return erased


def _erased_body(delivery: Delivery, scrub: Scrubber) -> tuple[str, str]:
    """Return the body rewritten as JSON, naming the person by the pseudonym alone, and its content type."""
    try:
        fields = scrub.json(read_fields(delivery.raw_body.encode(), delivery.content_type))
    except BodyError:  # stored before the receiver refused such bodies: scrub it as text
        return scrub.text(delivery.raw_body), delivery.content_type
    fields.pop("email", None)
    fields.update(externalUserId=scrub.pseudonym, name=scrub.pseudonym)
    # A form body comes back as JSON: one writer, and the receiver reads both the same.
    is_json = JSON_TYPES.match(media_type(delivery.content_type))
    kind = delivery.content_type if is_json else "application/json"
    return json.dumps(fields, ensure_ascii=False), kind


def _erase_people_rows(db: Session, model: type[PeopleRow], person: Person, scrub: Scrubber) -> int:
    rows = _rows_keyed(db, model, person.participant_key)
    for row in rows:
        row.participant_key = scrub.new_key
        row.external_user_id, row.email, row.name = scrub.pseudonym, None, scrub.pseudonym
        if isinstance(row, AttendanceRow):
            row.identified_by = "externalUserId"  # as a rebuild from the rewritten bodies keys them
    return len(rows)


def _erase_overrides(db: Session, person: Person, scrub: Scrubber) -> int:
    query = select(StatusOverride).where(StatusOverride.participant_key == person.participant_key)
    overrides = list(db.scalars(query))
    for override in overrides:
        override.participant_key = scrub.new_key
        override.reason = scrub.text(override.reason) if override.reason else override.reason
    return len(overrides)


def _sessions_of(person: Person) -> set[int]:
    return {session_id for session_id, _ in person.segments}


def _erase_history(db: Session, person: Person, scrub: Scrubber) -> int:
    erased = 0
    for change in db.scalars(select(SessionChange).where(SessionChange.session_id.in_(_sessions_of(person)))):
        if (people := scrub.json(change.people)) != change.people:
            change.people = people
            erased += 1
    return erased


def _erase_notifications(db: Session, person: Person, delivery_ids: list[int], scrub: Scrubber) -> int:
    emails = {value.lower() for value in person.values if "@" in value}
    query = select(Notification).where(
        or_(
            Notification.session_id.in_(_sessions_of(person)),
            Notification.delivery_id.in_(delivery_ids),  # a delivery.failed alert: its reason may quote them
            func.lower(Notification.recipient).in_(emails),
        )
    )
    erased = 0
    for notification in db.scalars(query):
        recipient = scrub.text(notification.recipient)
        reason = scrub.text(notification.reason) if notification.reason else notification.reason
        sent = None if notification.payload is None else json.loads(notification.payload)
        scrubbed = scrub.json(sent)
        if (recipient, reason, scrubbed) != (notification.recipient, notification.reason, sent):
            notification.recipient, notification.reason = recipient, reason
            notification.payload = None if scrubbed is None else json.dumps(scrubbed, ensure_ascii=False)
            erased += 1
    return erased


def _erase_audit(db: Session, scrub: Scrubber, now: datetime) -> list[int]:
    # Every record is read: a roster or status change may name the person in its before or after.
    erased = []
    for record in db.scalars(select(AuditRecord)).all():
        subject = scrub.text(record.subject) if record.subject else record.subject
        before, after = scrub.json(record.before), scrub.json(record.after)
        if (subject, before, after) != (record.subject, record.before, record.after):
            record.subject, record.before, record.after = subject, before, after
            record.redacted_at, record.redaction = now, ERASURE
            erased.append(record.id)
    return erased
