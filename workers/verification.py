"""Verify: every seal recomputed, and each day's rows compared with what was sealed.

The database is compared with itself, so a copy of the seals kept elsewhere (`kept`) is what catches
seals deleted and taken again over rewritten rows: each kept seal must match the database's of its day.
A closed day that holds records but has no seal is named too: the sealing job would have sealed it.

A record whose facts or sealed status differ is changed. One whose identity or body differ is redacted
only when a redaction made after the seal accounts for the difference exactly (see _redaction_holds):
a mark alone excuses nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal, Protocol

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from workers import sealing
from workers.erasure import ERASED, ERASURE
from workers.models import AuditRecord, Delivery, Seal, SealedRecord
from workers.models.inbox import UNPROCESSED, DeliveryStatus
from workers.retention import PURGED_BODY, RETENTION
from workers.sealing import (
    BODY,
    COMMIT_MARGIN,
    FACTS,
    IDENTITY,
    Kind,
    content_hash,
    keyed_hash,
    merkle_root,
    seal_hash,
)

Problem = Literal[
    "changed", "added", "removed", "redacted", "root-mismatch", "chain-broken",
    "unsealed", "seal-missing", "seal-differs",
]  # fmt: skip
# The worker runs the sealing job hourly (workers/__main__.py): a day is sealed this long after it ends.
SEALED_WITHIN = COMMIT_MARGIN + timedelta(hours=1)
# A replay sets a processed delivery back to unprocessed until it is folded again: no change of figures.
STILL_PROCESSED = (DeliveryStatus.PROCESSED.value, *UNPROCESSED)


@dataclass(frozen=True)
class Finding:
    """One thing verify found: a record (kind and id) or a whole seal (kind and id None) and what is wrong."""

    day: date
    problem: Problem
    kind: str | None = None
    record_id: int | None = None
    redaction: str | None = None


@dataclass(frozen=True)
class Verification:
    """What verify found over every seal; intact when nothing but redactions was found."""

    seals_checked: int
    findings: list[Finding]

    @property
    def intact(self) -> bool:
        """Return whether the log is as sealed, redactions apart."""
        return all(finding.problem == "redacted" for finding in self.findings)


class KeptSeal(Protocol):
    """A seal as an auditor kept it (what `flask audit seals` printed)."""

    @property
    def day(self) -> date: ...
    @property
    def record_count(self) -> int: ...
    @property
    def merkle_root(self) -> str: ...
    @property
    def previous_hash(self) -> str | None: ...
    @property
    def seal_hash(self) -> str: ...


Progress = Callable[[int, int], None]  # seals checked so far, of how many


def verify(
    db: Session, now: datetime, kept: Sequence[KeptSeal] = (), progress: Progress | None = None
) -> Verification:
    """Recompute every seal, name each record changed, added, removed or redacted since, each closed day
    left unsealed, and each of the `kept` seals missing from the database or unlike its seal there.

    `progress`, if given, is told after each sealed day how many have been checked, of how many.
    """
    findings: list[Finding] = []
    previous_hash = None
    seals = list(db.scalars(select(Seal).order_by(Seal.day)))
    erasures = _erasures(db, seals[-1].day if seals else None)
    for checked, seal in enumerate(seals, start=1):
        items = list(db.scalars(select(SealedRecord).where(SealedRecord.seal_id == seal.id)))
        items.sort(key=lambda item: (item.kind != "delivery", item.record_id))
        root = merkle_root([sealing.leaf(item) for item in items])
        if root != seal.merkle_root or len(items) != seal.record_count:
            findings.append(Finding(seal.day, "root-mismatch"))
        expected = seal_hash(seal.day, seal.record_count, seal.merkle_root, previous_hash)
        if seal.previous_hash != previous_hash or seal.seal_hash != expected:
            findings.append(Finding(seal.day, "chain-broken"))
        previous_hash = seal.seal_hash
        findings.extend(_record_findings(db, seal, items, erasures))
        db.expunge_all()  # one day's records at a time in memory
        if progress is not None:
            progress(checked, len(seals))
    findings.extend(_unsealed_days(db, {seal.day for seal in seals}, now))
    findings.extend(_against_kept(db, kept))
    return Verification(len(seals), findings)


def _unsealed_days(db: Session, sealed_days: set[date], now: datetime) -> Iterator[Finding]:
    """Yield each day the sealing job should have sealed by `now` that holds records and has no seal."""
    day = sealing.first_record_day(db)
    while day is not None and sealing.day_start(day) + timedelta(days=1) + SEALED_WITHIN <= now:
        if day not in sealed_days and _holds_records(db, day):
            yield Finding(day, "unsealed")
        day += timedelta(days=1)


def _holds_records(db: Session, day: date) -> bool:
    start = sealing.day_start(day)
    end = start + timedelta(days=1)
    deliveries = exists().where(Delivery.received_at >= start, Delivery.received_at < end)
    audits = exists().where(AuditRecord.at >= start, AuditRecord.at < end)
    return bool(db.scalar(select(deliveries | audits)))


def _against_kept(db: Session, kept: Sequence[KeptSeal]) -> Iterator[Finding]:
    """Yield each kept seal the database lacks, or holds with another count, root or chain."""
    held = {seal.day: seal for seal in db.scalars(select(Seal).where(Seal.day.in_([k.day for k in kept])))}
    for copy in sorted(kept, key=lambda copy: copy.day):
        seal = held.get(copy.day)
        if seal is None:
            yield Finding(copy.day, "seal-missing")
        elif _sealed(seal) != _sealed(copy):
            yield Finding(copy.day, "seal-differs")


def _sealed(seal: Seal | KeptSeal) -> tuple[int, str, str | None, str]:
    return seal.record_count, seal.merkle_root, seal.previous_hash, seal.seal_hash


@dataclass(frozen=True)
class Erasure:
    """What a `person.erased` audit record says it did: when, under which pseudonym, to which records."""

    at: datetime
    pseudonym: str
    records: frozenset[tuple[str, int]]


def _erasures(db: Session, last_sealed_day: date | None) -> list[Erasure]:
    """Return the erasures verify may trust: those sealed, and those made since the last sealed day.

    One added to a sealed day is found as added; this keeps it from also excusing what it lists.
    """
    sealed = select(SealedRecord.record_id).where(SealedRecord.kind == "audit")
    query = select(AuditRecord).where(AuditRecord.action == ERASED)
    if last_sealed_day is not None:
        since = sealing.day_start(last_sealed_day) + timedelta(days=1)
        query = query.where((AuditRecord.id.in_(sealed)) | (AuditRecord.at >= since))
    return [erasure for record in db.scalars(query) if (erasure := _erasure(record)) is not None]


def _erasure(record: AuditRecord) -> Erasure | None:
    """Read what an erasure record lists; None if it lists nothing readable (it is in the log as written)."""
    after = record.after if isinstance(record.after, dict) else {}
    pseudonym = after.get("pseudonym")
    if not isinstance(pseudonym, str) or not pseudonym:
        return None
    listed = {("delivery", record_id) for record_id in _ids(after.get("deliveries"))}
    # It lists the audit records it rewrote, all older than itself: it cannot excuse its own rewrite.
    listed |= {("audit", record_id) for record_id in _ids(after.get("auditRecords")) if record_id < record.id}
    return Erasure(record.at, pseudonym, frozenset(listed))


def _ids(listed: object) -> list[int]:
    return [item for item in listed if isinstance(item, int)] if isinstance(listed, list) else []


def _record_findings(
    db: Session, seal: Seal, items: list[SealedRecord], erasures: list[Erasure]
) -> Iterator[Finding]:
    day = seal.day
    sealed = {(item.kind, item.record_id): item for item in items}
    for kind, record in sealing.records_of(db, day):
        item = sealed.pop((kind, record.id), None)
        if item is None:
            yield Finding(day, "added", kind, record.id)
        elif content_hash(record, FACTS[kind]) != item.facts_hash or not _status_holds(record, item):
            yield Finding(day, "changed", kind, record.id)
        elif not _as_sealed(kind, record, item, IDENTITY) or not _as_sealed(kind, record, item, BODY):
            pseudonyms = {
                erasure.pseudonym
                for erasure in erasures
                if (kind, record.id) in erasure.records and erasure.at > seal.sealed_at
            }
            if _redaction_holds(kind, record, item, seal, pseudonyms):
                yield Finding(day, "redacted", kind, record.id, record.redaction)
            else:
                yield Finding(day, "changed", kind, record.id)
    for sealed_kind, record_id in sorted(sealed):
        yield Finding(day, "removed", sealed_kind, record_id)


def _redaction_holds(
    kind: Kind, record: Delivery | AuditRecord, item: SealedRecord, seal: Seal, pseudonyms: set[str]
) -> bool:
    """Return whether the record's mark accounts for how its identity and body differ from the seal.

    Retention purges a delivery's body and touches no identity; erasure rewrites the identity of the records
    a later `person.erased` record lists, to its pseudonym, and destroys their salt. Either mark, made before
    the seal, explains nothing: the seal was taken of the redacted row. A salt destroyed with no erasure to
    account for it hides what the record was: changed.
    """
    if record.redacted_at is None or record.redacted_at <= seal.sealed_at:
        return False
    erased = any(_names(record, pseudonym) for pseudonym in pseudonyms)
    if record.redaction == ERASURE:
        return erased
    if record.redaction == RETENTION and isinstance(record, Delivery):
        identity_kept = _as_sealed(kind, record, item, IDENTITY)
        purged = (record.raw_body, record.headers, record.source_address) == (PURGED_BODY, {}, None)
        return purged and (identity_kept or erased)  # an erased delivery is purged in its turn
    return False


def _as_sealed(
    kind: Kind, record: Delivery | AuditRecord, item: SealedRecord, part: dict[Kind, tuple[str, ...]]
) -> bool:
    """Return whether the record's identity (or body) hashes as sealed; never once its salt is destroyed."""
    sealed = item.identity_hash if part is IDENTITY else item.body_hash
    return item.salt is not None and keyed_hash(record, part[kind], item.salt) == sealed


def _names(record: Delivery | AuditRecord, pseudonym: str) -> bool:
    """Return whether the record names the person by `pseudonym` alone, as erasure leaves it."""
    if isinstance(record, Delivery):
        return (record.external_user_id, record.email, record.name) == (pseudonym, None, pseudonym)
    text = json.dumps([record.subject, record.before, record.after], ensure_ascii=False)
    return pseudonym in text


def _status_holds(record: Delivery | AuditRecord, item: SealedRecord) -> bool:
    """Return whether a delivery sealed processed still is, or is waiting to be folded again by a replay."""
    return item.status is None or (isinstance(record, Delivery) and record.status in STILL_PROCESSED)
