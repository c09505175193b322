"""The notification ledger: what Rollcall must send about a session, and what became of each."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from workers.models.base import Base, utcnow


class NotificationState(enum.StrEnum):
    """Where a notification is: `sending` is recorded before talking to the server, `sent` after."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class Notification(Base):
    """One message about a session or a delivery to one recipient; its unique key makes it sent once."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("session_id", "recipient", "kind"),
        UniqueConstraint("delivery_id", "recipient", "kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # A session's message, or (delivery_id) an alert about a delivery that may never have reached one.
    session_id: Mapped[int | None] = mapped_column(ForeignKey("meeting_sessions.id"))
    delivery_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("deliveries.id")
    )
    # An email address, or the outbound webhook's URL without credentials or query.
    recipient: Mapped[str] = mapped_column(String(1000))
    # summary, thank-you, webhook-finalized, webhook-amended-<n>
    kind: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default=NotificationState.PENDING)
    reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)
    # Stable across retries: the webhook-id header and the email's Message-ID, so receivers can dedupe.
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    # A webhook's body, frozen when the notification is created so every retry sends the same bytes.
    payload: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    sent_at: Mapped[datetime | None]
