"""The append-only trail of changes to a meeting session's results, each with its cause."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from workers.models.base import Base, utcnow


class SessionChange(Base):
    """One change to a session's figures or attendance, and what caused it."""

    __tablename__ = "session_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("meeting_sessions.id"), index=True)
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    # deliveries, amendment, rebuild, regroup, sweep or finalize
    cause: Mapped[str] = mapped_column(String(16))
    delivery_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    job_id: Mapped[str | None] = mapped_column(String(200))
    figures: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    people: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
