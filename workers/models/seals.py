"""Daily seals: a Merkle root over one UTC day's deliveries and audit records, chained day to day."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from workers.models.base import Base, utcnow

DIGEST_LENGTH = 64  # a SHA-256 in hex
SALT_LENGTH = 32  # 128 random bits in hex


class Seal(Base):
    """One sealed day: how many records, their Merkle root, and the hash chaining it to the day before."""

    __tablename__ = "seals"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(unique=True)
    record_count: Mapped[int]
    merkle_root: Mapped[str] = mapped_column(String(DIGEST_LENGTH))
    previous_hash: Mapped[str | None] = mapped_column(String(DIGEST_LENGTH))
    seal_hash: Mapped[str] = mapped_column(String(DIGEST_LENGTH))
    sealed_at: Mapped[datetime] = mapped_column(default=utcnow)


class SealedRecord(Base):
    """One record's hashes as sealed: its facts, its identity and its body apart, so that a redaction can be
    told from tampering; and a processed delivery's status, on which its session's figures rest."""

    __tablename__ = "sealed_records"
    __table_args__ = (UniqueConstraint("kind", "record_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    seal_id: Mapped[int] = mapped_column(ForeignKey("seals.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # delivery or audit
    record_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    facts_hash: Mapped[str] = mapped_column(String(DIGEST_LENGTH))
    identity_hash: Mapped[str] = mapped_column(String(DIGEST_LENGTH))
    body_hash: Mapped[str] = mapped_column(String(DIGEST_LENGTH))
    status: Mapped[str | None] = mapped_column(String(16))  # "processed", or None: not sealed
    # The key of the identity and body hashes, so that they cannot confirm a guessed name or email; None once
    # an erasure has destroyed it (the hashes still hold the leaf, but no one can recompute them).
    salt: Mapped[str | None] = mapped_column(String(SALT_LENGTH))
