"""Sealed digests: each UTC day's deliveries and audit records hashed, rooted and chained; and verify.

A record's canonical content is three lists of column values, hashed apart: its facts, which nothing may
change once sealed; its identity (who it names, which folding reads) and its body. A difference in identity
or body is reported as redacted only when a redaction made after the seal accounts for it exactly (see
_redaction_holds), and as changed otherwise. A processed delivery's status is sealed too: failing it would
take it out of its session's figures. The rest of the workflow state (other statuses, fold count, session)
changes after sealing by design and is not sealed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from workers.erasure import ERASED, ERASURE
from workers.models import AuditRecord, Delivery, Seal, SealedRecord
from workers.models.inbox import UNPROCESSED, DeliveryStatus
from workers.retention import PURGED_BODY, RETENTION

Kind = Literal["delivery", "audit"]
Problem = Literal["changed", "added", "removed", "redacted", "root-mismatch", "chain-broken"]
MODELS: dict[Kind, type[Delivery] | type[AuditRecord]] = {"delivery": Delivery, "audit": AuditRecord}
FACTS: dict[Kind, tuple[str, ...]] = {
    "delivery": (
        "id", "room_id", "event", "dedupe_key", "meeting_session_ref", "participant_session_id",
        "event_time", "time_reported", "join_time", "is_admin", "received_at",
    ),
    "audit": ("id", "at", "actor", "action", "room_id", "session_id", "request_id"),
}  # fmt: skip
IDENTITY: dict[Kind, tuple[str, ...]] = {
    "delivery": ("external_user_id", "email", "name"),
    "audit": ("subject",),
}
BODY: dict[Kind, tuple[str, ...]] = {
    "delivery": ("raw_body", "content_type", "headers", "source_address"),
    "audit": ("before", "after"),
}
# A replay sets a processed delivery back to unprocessed until it is folded again: no change of figures.
STILL_PROCESSED = (DeliveryStatus.PROCESSED.value, *UNPROCESSED)
EMPTY_ROOT = hashlib.sha256(b"").hexdigest()
# A record is stamped before its transaction commits: a day is sealed only this long after it ends, so that
# one stamped 23:59:59.999 and committed a moment later is in its day's seal.
COMMIT_MARGIN = timedelta(minutes=5)
BATCH = 1000


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


def content_hash(record: Delivery | AuditRecord, columns: Sequence[str]) -> str:
    """Return the SHA-256 of `columns`' values of `record` as canonical JSON (sorted keys, ISO times)."""
    values = [getattr(record, column) for column in columns]
    text = json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_iso)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot seal a {type(value).__name__}")


def leaf_hash(
    kind: str, record_id: int, facts_hash: str, identity_hash: str, body_hash: str, status: str | None
) -> str:
    """Return a record's Merkle leaf: its kind and id bound to its three content hashes and sealed status."""
    leaf = f"{kind}:{record_id}:{facts_hash}:{identity_hash}:{body_hash}:{status or ''}"
    return hashlib.sha256(leaf.encode()).hexdigest()


def merkle_root(leaves: Sequence[str]) -> str:
    """Return the Merkle root of hex `leaves` in order (an odd node is carried up; no leaves: sha256(''))."""
    level = list(leaves)
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        pairs = [level[i : i + 2] for i in range(0, len(level), 2)]
        level = [hashlib.sha256(("\x01" + "".join(pair)).encode()).hexdigest() if len(pair) == 2 else pair[0]
                 for pair in pairs]  # fmt: skip
    return level[0]


def seal_hash(day: date, record_count: int, root: str, previous_hash: str | None) -> str:
    """Return the hash that chains a day's seal to the one before it."""
    chained = f"{day.isoformat()}:{record_count}:{root}:{previous_hash or ''}"
    return hashlib.sha256(chained.encode()).hexdigest()


def seal_closed_days(db: Session, now: datetime) -> list[Seal]:
    """Seal every UTC day over by `now` (and COMMIT_MARGIN) not sealed yet, from the day after the last."""
    last = db.scalar(select(Seal).order_by(Seal.day.desc()).limit(1))
    first_day = last.day + timedelta(days=1) if last else _first_record_day(db)
    previous_hash = last.seal_hash if last else None
    sealed = []
    day = first_day
    while day is not None and _day_start(day) + timedelta(days=1) + COMMIT_MARGIN <= now:
        seal = _seal_day(db, day, previous_hash)
        sealed.append(seal)
        previous_hash, day = seal.seal_hash, day + timedelta(days=1)
    return sealed


def _first_record_day(db: Session) -> date | None:
    firsts = [db.scalar(select(func.min(Delivery.received_at))), db.scalar(select(func.min(AuditRecord.at)))]
    known = [moment for moment in firsts if moment is not None]
    return min(known).date() if known else None


def _seal_day(db: Session, day: date, previous_hash: str | None) -> Seal:
    items = [
        SealedRecord(
            kind=kind,
            record_id=record.id,
            facts_hash=content_hash(record, FACTS[kind]),
            identity_hash=content_hash(record, IDENTITY[kind]),
            body_hash=content_hash(record, BODY[kind]),
            status=_sealed_status(record),
        )
        for kind, record in _records_of(db, day)
    ]
    root = merkle_root([_leaf(item) for item in items])
    seal = Seal(
        day=day,
        record_count=len(items),
        merkle_root=root,
        previous_hash=previous_hash,
        seal_hash=seal_hash(day, len(items), root, previous_hash),
    )
    db.add(seal)
    db.flush()
    for item in items:
        item.seal_id = seal.id
    db.add_all(items)
    return seal


def _leaf(item: SealedRecord) -> str:
    return leaf_hash(
        item.kind, item.record_id, item.facts_hash, item.identity_hash, item.body_hash, item.status
    )


def _sealed_status(record: Delivery | AuditRecord) -> str | None:
    """Return the status to seal: a processed delivery's, on which its session's figures rest; else None."""
    processed = isinstance(record, Delivery) and record.status == DeliveryStatus.PROCESSED
    return DeliveryStatus.PROCESSED.value if processed else None


def _status_holds(record: Delivery | AuditRecord, item: SealedRecord) -> bool:
    """Return whether a delivery sealed processed still is, or is waiting to be folded again by a replay."""
    return item.status is None or (isinstance(record, Delivery) and record.status in STILL_PROCESSED)


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def _records_of(db: Session, day: date) -> Iterator[tuple[Kind, Delivery | AuditRecord]]:
    """Yield the day's records, in the order their leaves are sealed: deliveries, then audit, by id."""
    start = _day_start(day)
    end = start + timedelta(days=1)
    # In batches: a busy day's raw bodies need not all be in memory at once.
    deliveries = select(Delivery).where(Delivery.received_at >= start, Delivery.received_at < end)
    for delivery in db.scalars(deliveries.order_by(Delivery.id).execution_options(yield_per=BATCH)):
        yield "delivery", delivery
    audits = select(AuditRecord).where(AuditRecord.at >= start, AuditRecord.at < end)
    for record in db.scalars(audits.order_by(AuditRecord.id).execution_options(yield_per=BATCH)):
        yield "audit", record


def verify(db: Session) -> Verification:
    """Recompute every seal and name each record changed, added, removed or redacted since."""
    findings: list[Finding] = []
    previous_hash = None
    seals = list(db.scalars(select(Seal).order_by(Seal.day)))
    erasures = _erasures(db, seals[-1].day if seals else None)
    for seal in seals:
        items = list(db.scalars(select(SealedRecord).where(SealedRecord.seal_id == seal.id)))
        items.sort(key=lambda item: (item.kind != "delivery", item.record_id))
        root = merkle_root([_leaf(item) for item in items])
        if root != seal.merkle_root or len(items) != seal.record_count:
            findings.append(Finding(seal.day, "root-mismatch"))
        expected = seal_hash(seal.day, seal.record_count, seal.merkle_root, previous_hash)
        if seal.previous_hash != previous_hash or seal.seal_hash != expected:
            findings.append(Finding(seal.day, "chain-broken"))
        previous_hash = seal.seal_hash
        findings.extend(_record_findings(db, seal, items, erasures))
        db.expunge_all()  # one day's records at a time in memory
    return Verification(len(seals), findings)


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
        since = _day_start(last_sealed_day) + timedelta(days=1)
        query = query.where((AuditRecord.id.in_(sealed)) | (AuditRecord.at >= since))
    return [_erasure(record) for record in db.scalars(query)]


def _erasure(record: AuditRecord) -> Erasure:
    after = record.after or {}
    listed = {("delivery", record_id) for record_id in after.get("deliveries", [])}
    # It lists the audit records it rewrote, all older than itself: it cannot excuse its own rewrite.
    listed |= {("audit", record_id) for record_id in after.get("auditRecords", []) if record_id < record.id}
    return Erasure(record.at, str(after.get("pseudonym", "")), frozenset(listed))


def _record_findings(
    db: Session, seal: Seal, items: list[SealedRecord], erasures: list[Erasure]
) -> Iterator[Finding]:
    day = seal.day
    sealed = {(item.kind, item.record_id): item for item in items}
    for kind, record in _records_of(db, day):
        item = sealed.pop((kind, record.id), None)
        if item is None:
            yield Finding(day, "added", kind, record.id)
        elif content_hash(record, FACTS[kind]) != item.facts_hash or not _status_holds(record, item):
            yield Finding(day, "changed", kind, record.id)
        elif (content_hash(record, IDENTITY[kind]), content_hash(record, BODY[kind])) != (
            item.identity_hash,
            item.body_hash,
        ):
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
    a later `person.erased` record lists, to its pseudonym. Either mark, made before the seal, explains
    nothing: the seal was taken of the redacted row.
    """
    if record.redacted_at is None or record.redacted_at <= seal.sealed_at:
        return False
    erased = any(_names(record, pseudonym) for pseudonym in pseudonyms)
    if record.redaction == ERASURE:
        return erased
    if record.redaction == RETENTION and isinstance(record, Delivery):
        identity_kept = content_hash(record, IDENTITY[kind]) == item.identity_hash
        purged = (record.raw_body, record.headers, record.source_address) == (PURGED_BODY, {}, None)
        return purged and (identity_kept or erased)  # an erased delivery is purged in its turn
    return False


def _names(record: Delivery | AuditRecord, pseudonym: str) -> bool:
    """Return whether the record names the person by `pseudonym` alone, as erasure leaves it."""
    if isinstance(record, Delivery):
        return (record.external_user_id, record.email, record.name) == (pseudonym, None, pseudonym)
    text = json.dumps([record.subject, record.before, record.after], ensure_ascii=False)
    return pseudonym in text
