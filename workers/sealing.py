"""Sealed digests: each UTC day's deliveries and audit records hashed, rooted and chained.

A record's canonical content is three lists of column values, hashed apart: its facts, which nothing may
change once sealed; its identity (who it names, which folding reads) and its body, which a redaction may
rewrite (see workers.verification). The identity and body hashes are keyed by a random salt of the
record's own, kept with it: a plain hash of a name or an email would confirm a guess, and would outlive an
erasure, which destroys the salt instead. A processed delivery's status is sealed too: failing it would
take it out of its session's figures. The rest of the workflow state (other statuses, fold count, session)
changes after sealing by design and is not sealed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from workers.models import AuditRecord, Delivery, Seal, SealedRecord
from workers.models.inbox import DeliveryStatus
from workers.models.seals import SALT_LENGTH

Kind = Literal["delivery", "audit"]
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
EMPTY_ROOT = hashlib.sha256(b"").hexdigest()
# A record is stamped before its transaction commits: a day is sealed only this long after it ends, so that
# one stamped 23:59:59.999 and committed a moment later is in its day's seal.
COMMIT_MARGIN = timedelta(minutes=5)
BATCH = 1000


def content_hash(record: Delivery | AuditRecord, columns: Sequence[str]) -> str:
    """Return the SHA-256 of `columns`' values of `record` as canonical JSON (sorted keys, ISO times)."""
    return hashlib.sha256(_canonical(record, columns)).hexdigest()


def keyed_hash(record: Delivery | AuditRecord, columns: Sequence[str], salt: str) -> str:
    """Return the HMAC-SHA256, keyed by the hex `salt`, of `columns`' values of `record` as canonical JSON."""
    return hmac.new(bytes.fromhex(salt), _canonical(record, columns), hashlib.sha256).hexdigest()


def _canonical(record: Delivery | AuditRecord, columns: Sequence[str]) -> bytes:
    values = [getattr(record, column) for column in columns]
    text = json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_iso)
    return text.encode("utf-8", "surrogatepass")


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
    first_day = last.day + timedelta(days=1) if last else first_record_day(db)
    previous_hash = last.seal_hash if last else None
    sealed = []
    day = first_day
    while day is not None and day_start(day) + timedelta(days=1) + COMMIT_MARGIN <= now:
        seal = _seal_day(db, day, previous_hash)
        sealed.append(seal)
        previous_hash, day = seal.seal_hash, day + timedelta(days=1)
    return sealed


def first_record_day(db: Session) -> date | None:
    """Return the UTC day of the oldest delivery or audit record; None if there is none."""
    firsts = [db.scalar(select(func.min(Delivery.received_at))), db.scalar(select(func.min(AuditRecord.at)))]
    known = [moment for moment in firsts if moment is not None]
    return min(known).date() if known else None


def _seal_day(db: Session, day: date, previous_hash: str | None) -> Seal:
    items = [_sealed_record(kind, record) for kind, record in records_of(db, day)]
    root = merkle_root([leaf(item) for item in items])
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


def _sealed_record(kind: Kind, record: Delivery | AuditRecord) -> SealedRecord:
    salt = secrets.token_hex(SALT_LENGTH // 2)
    return SealedRecord(
        kind=kind,
        record_id=record.id,
        facts_hash=content_hash(record, FACTS[kind]),
        identity_hash=keyed_hash(record, IDENTITY[kind], salt),
        body_hash=keyed_hash(record, BODY[kind], salt),
        status=_sealed_status(record),
        salt=salt,
    )


def leaf(item: SealedRecord) -> str:
    """Return the Merkle leaf of a sealed record."""
    return leaf_hash(
        item.kind, item.record_id, item.facts_hash, item.identity_hash, item.body_hash, item.status
    )


def _sealed_status(record: Delivery | AuditRecord) -> str | None:
    """Return the status to seal: a processed delivery's, on which its session's figures rest; else None."""
    processed = isinstance(record, Delivery) and record.status == DeliveryStatus.PROCESSED
    return DeliveryStatus.PROCESSED.value if processed else None


def day_start(day: date) -> datetime:
    """Return the start of a UTC day."""
    return datetime.combine(day, time(), UTC)


def records_of(db: Session, day: date) -> Iterator[tuple[Kind, Delivery | AuditRecord]]:
    """Yield the day's records, in the order their leaves are sealed: deliveries, then audit, by id."""
    start = day_start(day)
    end = start + timedelta(days=1)
    # In batches: a busy day's raw bodies need not all be in memory at once.
    deliveries = select(Delivery).where(Delivery.received_at >= start, Delivery.received_at < end)
    for delivery in db.scalars(deliveries.order_by(Delivery.id).execution_options(yield_per=BATCH)):
        yield "delivery", delivery
    audits = select(AuditRecord).where(AuditRecord.at >= start, AuditRecord.at < end)
    for record in db.scalars(audits.order_by(AuditRecord.id).execution_options(yield_per=BATCH)):
        yield "audit", record
