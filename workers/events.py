"""The four webhook events Metered sends, by the names Rollcall's webhook URLs give them."""

from __future__ import annotations

JOIN, LEAVE, START, END = "participant-joined", "participant-left", "meeting-started", "meeting-ended"
EVENTS = (JOIN, LEAVE, START, END)
PARTICIPANT_EVENTS = frozenset((JOIN, LEAVE))
