"""(being written) Fold processed deliveries into meeting sessions and attendance."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from workers.models import Delivery


def apply_deliveries(session: Session, room_id: int, deliveries: Sequence[Delivery]) -> None:
    """Fold `deliveries` (all of one room, not yet processed) into sessions and attendance."""
    del session, room_id, deliveries
