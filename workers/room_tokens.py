"""Per-room webhook tokens: unguessable, stored only as a hash, and rotated with an overlap."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from workers.models import Room

TOKEN_BYTES = 32  # 256 bits; the contract asks for at least 128


def new_token() -> str:
    """Return a fresh URL-safe webhook token."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """Return the hex SHA-256 under which a token is stored (the token is random, so no salt is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def replace_token(room: Room, token: str, overlap_seconds: int, now: datetime) -> None:
    """Make `token` the room's webhook token; the one it replaces stays valid for `overlap_seconds`."""
    # One previous token only: a second rotation within the overlap drops the oldest at once, which is
    # what rotating again after a leak is for.
    keep = overlap_seconds > 0
    room.previous_token_hash = room.webhook_token_hash if keep else None
    room.previous_token_expires_at = now + timedelta(seconds=overlap_seconds) if keep else None
    room.webhook_token_hash = token_hash(token)
    room.token_rotated_at = now
