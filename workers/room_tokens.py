"""Per-room webhook tokens: unguessable, and stored only as a hash."""

from __future__ import annotations

import hashlib
import secrets

TOKEN_BYTES = 32  # 256 bits; the contract asks for at least 128


def new_token() -> str:
    """Return a fresh URL-safe webhook token."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """Return the hex SHA-256 under which a token is stored (the token is random, so no salt is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()
