"""The tables, one module per aggregate."""

from workers.models.base import Base, UTCDateTime
from workers.models.history import SessionChange
from workers.models.inbox import Delivery, DeliveryStatus
from workers.models.notifications import Notification, NotificationState
from workers.models.rooms import Room
from workers.models.roster import AuditRecord, RosterMember, RosterRole, StatusOverride
from workers.models.seals import Seal, SealedRecord
from workers.models.sessions import AttendanceRow, MeetingSession, ParticipantSession, SessionStatus

__all__ = [
    "AttendanceRow",
    "AuditRecord",
    "Base",
    "Delivery",
    "DeliveryStatus",
    "MeetingSession",
    "Notification",
    "NotificationState",
    "ParticipantSession",
    "Room",
    "RosterMember",
    "RosterRole",
    "Seal",
    "SealedRecord",
    "SessionChange",
    "SessionStatus",
    "StatusOverride",
    "UTCDateTime",
]
