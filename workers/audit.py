"""The management audit: who changed what through the API or the CLI, when, and what it was before."""

from __future__ import annotations

import getpass
from typing import Any

from sqlalchemy.orm import Session

from workers.models import AuditRecord

API_ACTOR = "api"  # API tokens carry no names yet: every API change is recorded as the API's


def cli_actor() -> str:
    """Return the actor a CLI command is recorded as: the operating-system user running it."""
    return f"cli:{getpass.getuser()}"


def record(
    db: Session,
    actor: str,
    action: str,
    *,
    room_id: int | None = None,
    session_id: int | None = None,
    subject: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> AuditRecord:
    """Add one audit record to `db`'s transaction, so it commits with the change it describes."""
    entry = AuditRecord(
        actor=actor,
        action=action,
        room_id=room_id,
        session_id=session_id,
        subject=subject,
        before=before,
        after=after,
        request_id=request_id,
    )
    db.add(entry)
    return entry
