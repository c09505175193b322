"""Retention: raw bodies, headers and source addresses older than RETENTION_DAYS are purged.

The delivery's fact columns stay (what folding reads: who, when, which session), and so do attendance,
history and the audit trail; the row is marked redacted so that verify reports it as such.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from workers.models import Delivery

RETENTION = "retention"
PURGED_BODY = ""  # raw_body is NOT NULL: an empty body says it was purged, with redacted_at saying when


def purge_expired_bodies(db: Session, now: datetime, retention_days: int, limit: int) -> int:
    """Purge the raw body and headers of up to `limit` deliveries received over `retention_days` ago.

    Return how many; the caller commits each batch, so a first purge of years of bodies never holds a
    long transaction over rows the folds update.
    """
    expired = (
        select(Delivery.id)
        .where(
            Delivery.received_at < now - timedelta(days=retention_days),
            Delivery.redaction.is_distinct_from(RETENTION),  # an erased body is purged in its turn
        )
        .limit(limit)
    )
    ids = list(db.scalars(expired))
    db.execute(
        update(Delivery)
        .where(Delivery.id.in_(ids))
        .values(raw_body=PURGED_BODY, headers={}, source_address=None, redacted_at=now, redaction=RETENTION)
        .execution_options(synchronize_session=False)
    )
    return len(ids)
