"""Retention: raw bodies, headers and source addresses older than RETENTION_DAYS are purged.

The delivery's fact columns stay (what folding reads: who, when, which session), and so do attendance,
history and the audit trail; the row is marked redacted so that verify reports it as such.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from workers.models import Delivery

RETENTION = "retention"
PURGED_BODY = ""  # raw_body is NOT NULL: an empty body says it was purged, with redacted_at saying when


def purge_expired_bodies(db: Session, now: datetime, retention_days: int) -> int:
    """Purge the raw body and headers of deliveries received over `retention_days` ago; return how many."""
    purged = db.execute(
        update(Delivery)
        .where(
            Delivery.received_at < now - timedelta(days=retention_days),
            Delivery.redaction.is_distinct_from(RETENTION),  # an erased body is purged in its turn
        )
        .values(
            raw_body=PURGED_BODY,
            headers={},
            source_address=None,
            redacted_at=now,
            redaction=RETENTION,
        )
        .execution_options(synchronize_session=False)
    )
    count: int = purged.rowcount  # type: ignore[attr-defined]
    return count
