"""Every JSON answer of the API as a pydantic model, and the one mapping from stored rows to each.

The views build their answers from these classes, the post-meeting notifications their payloads, and
webhooks.openapi generates the OpenAPI document's schemas from the same classes.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    model_serializer,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import SkipJsonSchema

from workers.deliveries.parsing import EVENTS
from workers.erasure import Erased
from workers.models import AttendanceRow, AuditRecord, DeliveryStatus, MeetingSession, Room, SessionStatus
from workers.models.notifications import NotificationState
from workers.models.roster import RosterMember, RosterRole
from workers.models.seals import Seal
from workers.rooms import trusts_participant_emails
from workers.statuses import Judged, Override, Status
from workers.timefmt import UtcTime, zone_of
from workers.verification import Problem, Verification

Item = TypeVar("Item")

# A field left out of the answer where it does not apply, but never null when present.
Absent = SkipJsonSchema[None]


class WireModel(BaseModel):
    """camelCase on the wire, as Metered spells its fields."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True)

    def answer(self) -> dict[str, Any]:
        """Return the JSON object this model answers: every field given, none of the absent ones."""
        return self.model_dump(exclude_unset=True)


def absent(description: str) -> Any:
    """Declare an optional, non-nullable field (its `None` default is Python's, not the wire's)."""
    return Field(default=None, description=description, json_schema_extra=_drop_default)


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


class Listing(WireModel, Generic[Item]):
    """A page of a list: its items, and the cursor of the next page (null on the last)."""

    items: list[Item]
    next_cursor: str | None


class FieldProblem(WireModel):
    """One problem with a request: the field's dotted path and what is wrong."""

    field: str
    message: str


class ProblemDetails(WireModel):
    """An error answer, application/problem+json (RFC 9457)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    metered_status: int | Absent = absent("Metered's HTTP status (502 only).")
    event_code: str | Absent = absent("Metered's eventCode (502 only).")
    checks: dict[str, Literal["ok", "unreachable"]] | Absent = absent("Each dependency (readyz only).")
    errors: list[FieldProblem] | Absent = absent("Every problem with the request (validation errors only).")


class Health(WireModel):
    """The process is up (ops.healthz)."""

    status: Literal["ok"]


class Readiness(WireModel):
    """The database and Redis both answer (ops.readyz)."""

    status: Literal["ready"]
    checks: dict[str, Literal["ok"]]


class WebhookUrls(WireModel):
    """The four webhook URLs registered at Metered, keyed by Metered's field names."""

    meeting_join_webhook: str
    meeting_left_webhook: str
    meeting_started_webhook: str
    meeting_ended_webhook: str


class RoomOut(WireModel):
    """A room: Metered's room object plus Rollcall's own fields."""

    # Metered's fields are whatever Metered answered (the Create Room options echoed back, and more).
    model_config = ConfigDict(extra="allow")

    metered_id: str | Absent = Field(default=None, alias="_id", json_schema_extra=_drop_default)
    room_name: str
    app: str | Absent = absent("Metered's app id.")
    created: str | Absent = absent("When Metered created the room.")
    archived: bool | Absent = absent("Whether the room is archived at Metered.")
    organizer_email: str | None
    notify_participants: bool
    min_attendance_percent: float | None
    trust_participant_emails: bool
    late_after_seconds: int | None = Field(description="Joined this long after the start: late.")
    early_leave_seconds: int | None = Field(description="Left this long before the end: left early.")
    include_hosts_in_attendance: bool = Field(description="Whether hosts count in rates and present counts.")
    absence_alert_after: int | None = Field(description="Consecutive absences that alert the organizer.")
    billing_increment_minutes: int | None = Field(description="Billable time is rounded up to this.")
    time_zone: str = Field(description="The organizer's IANA time zone (UTC unless set).")
    archived_at: UtcTime | None
    _order: tuple[str, ...] = PrivateAttr(default=())

    # No return annotation: pydantic would take it for the answer's schema.
    @model_serializer(mode="wrap")
    def _in_given_order(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        # Metered's fields first, in Metered's order, then Rollcall's: as the room was given.
        shown = handler(self)
        return {**{name: shown[name] for name in self._order if name in shown}, **shown}


class RoomCreated(RoomOut):
    """The answer to POST /api/rooms: the room and the webhook URLs registered for it."""

    webhook_urls: WebhookUrls


class RoomRotated(RoomCreated):
    """The answer to POST /api/rooms/{roomName}/rotate-token: the room, its new URLs, the old token's fate."""

    metered_updated: bool = Field(
        description="Whether Metered took the new URLs (an archived room may refuse; it rotates anyway)."
    )
    previous_token_expires_at: UtcTime | None = Field(
        description="Until when the replaced token still works; null: it no longer does."
    )


def room_out(room: Room, webhook_urls: dict[str, str] | None = None) -> RoomOut:
    """Map a stored room to its wire shape; with the webhook URLs registered for it, to RoomCreated."""
    if webhook_urls is None:
        return _in_order(RoomOut, _room_fields(room))
    return _in_order(RoomCreated, {**_room_fields(room), "webhookUrls": webhook_urls})


def rotation_out(room: Room, webhook_urls: dict[str, str], metered_updated: bool) -> RoomRotated:
    """Map a room whose token was just rotated to the rotation's answer."""
    fields = {
        **_room_fields(room),
        "webhookUrls": webhook_urls,
        "meteredUpdated": metered_updated,
        "previousTokenExpiresAt": room.previous_token_expires_at,
    }
    return _in_order(RoomRotated, fields)


def _room_fields(room: Room) -> dict[str, Any]:
    return {
        **room.metered_room,
        "roomName": room.room_name,
        "organizerEmail": room.organizer_email,
        "notifyParticipants": room.notify_participants,
        "minAttendancePercent": room.min_attendance_percent,
        "trustParticipantEmails": trusts_participant_emails(room.options),
        "lateAfterSeconds": room.options.get("lateAfterSeconds"),
        "earlyLeaveSeconds": room.options.get("earlyLeaveSeconds"),
        "includeHostsInAttendance": room.options.get("includeHostsInAttendance") is True,
        "absenceAlertAfter": room.options.get("absenceAlertAfter"),
        "billingIncrementMinutes": room.options.get("billingIncrementMinutes"),
        "timeZone": zone_of(room.options).key,
        "archivedAt": room.archived_at,
    }


Shape = TypeVar("Shape", bound=RoomOut)


def _in_order(shape: type[Shape], fields: dict[str, Any]) -> Shape:
    room = shape.model_validate(fields)
    room._order = tuple(fields)
    return room


class RoomPage(Listing[RoomOut]):
    """A page of rooms, oldest first (rooms.list_rooms)."""


class SegmentOut(WireModel):
    """One participant session of a person: from its join to its leave (null while present)."""

    participant_session_id: str
    joined_at: UtcTime
    left_at: UtcTime | None
    inferred: bool


class AttendanceOut(WireModel):
    """One person's attendance in one meeting session."""

    participant_key: str
    identified_by: str
    name: str | None
    email: str | None
    external_user_id: str | None
    first_join_at: UtcTime
    last_left_at: UtcTime | None
    attended_seconds: float
    attendance_percent: float | None
    join_count: int
    present: bool | None
    inferred: bool
    segments: list[SegmentOut]


class SessionOut(WireModel):
    """One meeting session's figures (nulls while it is live)."""

    meeting_session_id: str
    room_name: str
    status: SessionStatus
    started_at: UtcTime | None
    ended_at: UtcTime | None
    duration_seconds: float | None
    participant_count: int
    peak_concurrency: int
    inferred: bool
    min_attendance_percent: float | None


class OverrideOut(WireModel):
    """An organizer's status for a person in a session, laid over the computed one: who set it, when, why."""

    status: Status
    reason: str | None
    set_by: str = Field(description='"api", or "cli:<os user>" for the flask command.')
    set_at: UtcTime


class JudgedAttendanceOut(AttendanceOut):
    """One person's attendance in one meeting session, and their status in it."""

    status: Status = Field(description="After any override; guest: not on the roster in force.")
    host: bool = Field(description="Metered marked them isAdmin, or the roster names them host.")
    override: OverrideOut | None


class PersonStatus(WireModel):
    """One person's status in a session, without figures: a roster member who did not come, say."""

    participant_key: str
    name: str | None
    email: str | None
    external_user_id: str | None
    status: Status
    host: bool
    override: OverrideOut | None


def override_out(override: Override | None) -> OverrideOut | None:
    """Map an organizer's override to its wire shape."""
    if override is None:
        return None
    return OverrideOut(
        status=override.status, reason=override.reason, set_by=override.set_by, set_at=override.set_at
    )


def judged_attendance_out(row: AttendanceRow, judged: Judged) -> JudgedAttendanceOut:
    """Map a stored attendance row and the person's judgement to the session answer's entry."""
    return JudgedAttendanceOut(
        **dict(attendance_out(row)),
        status=judged.status,
        host=judged.is_host,
        override=override_out(judged.override),
    )


def person_status_out(judged: Judged, row: AttendanceRow | None) -> PersonStatus:
    """Map a person's judgement to its wire shape, named as their attendance row, else roster entry, says."""
    named = row or judged.member
    return PersonStatus(
        participant_key=judged.participant_key,
        name=named.name if named else None,
        email=named.email if named else None,
        external_user_id=named.external_user_id if named else None,
        status=judged.status,
        host=judged.is_host,
        override=override_out(judged.override),
    )


class SessionWithAttendance(SessionOut):
    """A meeting session, its attendance by participant key, and statuses: the report mailed and posted."""

    attendance: list[JudgedAttendanceOut]
    status_counts: dict[Status, int] = Field(
        description="People of each status; hosts left out unless the room's includeHostsInAttendance."
    )
    expected_count: int = Field(description="Roster members in force when it began (hosts likewise).")
    attendance_rate: float | None = Field(
        description="Of those expected, the share present or late (0 to 1, 4 places); null without a roster."
    )
    absentees: list[PersonStatus] = Field(
        description="Roster members (and people with an override) with no attendance, by participant key."
    )


class NotificationOut(WireModel):
    """One post-meeting notification and where it is."""

    recipient: str
    kind: str
    state: NotificationState
    reason: str | None
    attempts: int
    updated_at: UtcTime


class SessionReport(SessionWithAttendance):
    """A session with its attendance and its post-meeting notifications (reports.show_session)."""

    notifications: list[NotificationOut]


class PersonAttendance(AttendanceOut):
    """One person's attendance in one session, with that session (reports.person_attendance)."""

    session: SessionOut


def session_out(meeting: MeetingSession, room_name: str) -> SessionOut:
    """Map a stored session to its wire shape (nulls while live, as the contract says)."""
    return SessionOut(
        meeting_session_id=meeting.meeting_session_id,
        room_name=room_name,
        status=meeting.status,
        started_at=meeting.started_at,
        ended_at=meeting.ended_at,
        duration_seconds=None if meeting.duration_ms is None else meeting.duration_ms / 1000,
        participant_count=meeting.participant_count,
        peak_concurrency=meeting.peak_concurrency,
        inferred=meeting.inferred,
        min_attendance_percent=meeting.min_attendance_percent,
    )


def attendance_out(row: AttendanceRow) -> AttendanceOut:
    """Map a stored attendance row to its wire shape."""
    return AttendanceOut(
        participant_key=row.participant_key,
        identified_by=row.identified_by,
        name=row.name,
        email=row.email,
        external_user_id=row.external_user_id,
        first_join_at=row.first_join_at,
        last_left_at=row.last_left_at,
        attended_seconds=row.attended_ms / 1000,
        attendance_percent=row.attendance_percent,
        join_count=row.join_count,
        present=row.present,
        inferred=row.inferred,
        segments=[SegmentOut.model_validate(segment) for segment in row.segments],
    )


class SessionPage(Listing[SessionOut]):
    """A page of a room's meeting sessions, newest first (reports.room_sessions)."""


class AttendanceList(Listing[JudgedAttendanceOut]):
    """A page of a session's attendance, a judged entry per person, by key (reports.session_attendance)."""


class PersonAttendancePage(Listing[PersonAttendance]):
    """A page of one person's attendance across sessions, newest first (reports.person_attendance)."""


class HistoryEntry(WireModel):
    """One change to a session's results and its cause."""

    id: int
    changed_at: UtcTime
    cause: str
    delivery_ids: list[int]
    job_id: str | None
    figures: dict[str, Any]
    people: list[dict[str, Any]]


class SessionHistory(Listing[HistoryEntry]):
    """A page of the changes to a session's results, oldest first (reports.session_history)."""


class RebuildQueued(WireModel):
    """The answer to a rebuild: the queued job (session_admin.rebuild)."""

    queued: Literal[True]
    job_id: str
    meeting_session_id: str


class DeliveryAccepted(WireModel):
    """A webhook delivery stored for the first time (hooks.receive, 202)."""

    accepted: Literal[True]
    id: int


class DeliveryDuplicate(WireModel):
    """A repeat of a stored delivery (hooks.receive, 200)."""

    duplicate: Literal[True]
    id: int


class StoredEvent(WireModel):
    """One stored webhook delivery and what became of it (audit.list_events)."""

    id: int
    room: str
    event: str = Field(json_schema_extra={"enum": list(EVENTS)})
    status: DeliveryStatus
    status_reason: str | None
    received_at: UtcTime
    event_time: UtcTime | None
    time_reported: bool
    processed_at: UtcTime | None
    dedupe_key: str
    duplicate_count: int
    meeting_session_id: str | None
    participant_session_id: str | None
    content_type: str
    raw_body: Any = Field(description="The body as received: parsed when it was JSON, else the text.")
    headers: dict[str, str]
    source_address: str | None
    redaction: str | None = Field(
        description="retention: body, headers and address purged; erasure: a person in them pseudonymized."
    )
    redacted_at: UtcTime | None


class EventPage(Listing[StoredEvent]):
    """A page of stored deliveries, newest first (audit.list_events)."""


class ReplayQueued(WireModel):
    """The answer to a replay: the delivery and its status now (audit.replay)."""

    id: int
    status: Literal["queued", "received"]


# The management audit (issue 15): who changed what, and the export of the whole audit log.


class AuditEntry(WireModel):
    """One change made through the API or the CLI: who, when, in which request, before and after."""

    id: int
    at: UtcTime
    actor: str = Field(description="`api` or `api:<token name>` for the API, `cli:<os user>` for the CLI.")
    action: str = Field(description="What was done, e.g. room.created, roster.added, delivery.replayed.")
    room: str | None
    meeting_session_id: str | None
    subject: str | None = Field(description="Whom or what it was done to: a participant key, a delivery id.")
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None
    redaction: str | None = Field(description="erasure: a person in subject, before or after pseudonymized.")
    redacted_at: UtcTime | None


class AuditPage(Listing[AuditEntry]):
    """A page of the management audit, newest first (audit_records.list_records)."""


class BulkReplayQueued(WireModel):
    """The answer to a bulk replay: the job replaying the matching deliveries."""

    job_id: str


class JobProgress(WireModel):
    """A queued job's state as RQ tells it, and its progress so far (bulk_replay.show_job)."""

    id: str
    status: str = Field(description="RQ's: queued, started, finished, failed, scheduled, ...")
    progress: dict[str, int] = Field(description="A bulk replay's `matched` and `replayed` counts.")


class DeliveryFailedAlert(WireModel):
    """The data of a signed `delivery.failed` event: a delivery no fold could get past, and why."""

    id: int
    room: str
    event: str
    status_reason: str | None
    received_at: UtcTime
    meeting_session_id: str | None
    participant_session_id: str | None


# Across a room's sessions (issue 13): the series report, billable time, and the absence alert's data.


class SeriesCell(WireModel):
    """One person in one session of a series: their status, and how long they attended."""

    status: Status
    attended_minutes: float = Field(description="Attended time in minutes, one decimal.")
    host: bool


class SeriesPerson(WireModel):
    """One row of the series matrix: a person, a cell per session, their attendance rate and absence run."""

    participant_key: str
    name: str | None
    email: str | None
    group: str | None
    cells: list[SeriesCell | None] = Field(
        description="One per session, in the sessions' order; null: neither expected nor there."
    )
    attendance_rate: float | None = Field(
        description="Sessions present or late ÷ sessions expected at (0 to 1), excused ones left out of "
        "both; null for a guest, or a host when the room leaves hosts out."
    )
    absence_run: int = Field(
        description="Absences counted back from the latest session; excused ones and sessions the person "
        "was not expected at are passed over, any other status ends the run."
    )


class SeriesReport(WireModel):
    """A room's sessions that began in [from, to), oldest first, and everyone in them (series.room_series)."""

    room_name: str
    began_from: UtcTime = Field(alias="from")
    began_to: UtcTime = Field(alias="to")
    sessions: list[SessionOut]
    people: list[SeriesPerson]


class BilledSession(WireModel):
    """One session a person attended, and the time billed for it."""

    meeting_session_id: str
    attended_seconds: float
    billed_minutes: int = Field(description="Attended time rounded up to the room's increment; 0 for none.")


class BilledPerson(WireModel):
    """One person's billable time over a range: per session and in total."""

    participant_key: str
    name: str | None
    email: str | None
    sessions: list[BilledSession]
    attended_seconds: float
    billed_minutes: int


class BillingReport(WireModel):
    """Billable time of a room's sessions that began in [from, to), per person (series.room_billing)."""

    room_name: str
    began_from: UtcTime = Field(alias="from")
    began_to: UtcTime = Field(alias="to")
    increment_minutes: int = Field(description="The room's billingIncrementMinutes (1 when unset).")
    sessions: list[SessionOut]
    people: list[BilledPerson]
    billed_minutes: int = Field(description="Everyone's billed minutes together.")


class AbsenceStreak(WireModel):
    """The data of a `person.absence_streak` event: a roster member absent `absences` sessions running."""

    room_name: str
    meeting_session_id: str = Field(description="The session whose absence made the run reach the option.")
    run_began_with: str = Field(description="The session of the run's first absence: one alert per run.")
    participant_key: str
    name: str | None
    email: str | None
    group: str | None
    absences: int


class RosterMemberOut(WireModel):
    """One person a room expects, in the version in force at the time asked for (roster.list_members)."""

    participant_key: str = Field(description="The person key attendance is matched by: ext:… else email:….")
    external_user_id: str | None
    email: str | None
    name: str | None
    role: Literal["host", "attendee"]
    group: str | None
    valid_from: UtcTime = Field(description="From when this version of the member is in force.")
    valid_to: UtcTime | None = Field(description="Until when; null while it is.")


def roster_member_out(row: RosterMember) -> RosterMemberOut:
    """Map a stored roster row to its wire shape."""
    return RosterMemberOut(
        participant_key=row.participant_key,
        external_user_id=row.external_user_id,
        email=row.email,
        name=row.name,
        role=RosterRole(row.role).value,
        group=row.group,
        valid_from=row.valid_from,
        valid_to=row.valid_to,
    )


class RosterPage(Listing[RosterMemberOut]):
    """A page of a room's roster, by participant key (roster.list_members)."""


class RosterChange(WireModel):
    """One change to a room's roster, from the audit: who made it, when, and the member before and after."""

    id: int
    at: UtcTime
    actor: str = Field(description='"api", or "cli:<user>" for the command line.')
    action: Literal["roster.added", "roster.updated", "roster.removed"]
    participant_key: str
    before: dict[str, Any] | None = Field(description="The member's version closed (a RosterMemberOut).")
    after: dict[str, Any] | None = Field(description="The member's version opened (a RosterMemberOut).")


def roster_change_out(record: AuditRecord) -> RosterChange:
    """Map a stored audit record of a roster change to its wire shape."""
    return RosterChange.model_validate(
        {
            "id": record.id,
            "at": record.at,
            "actor": record.actor,
            "action": record.action,
            "participant_key": record.subject,
            "before": record.before,
            "after": record.after,
        }
    )


class RosterHistory(Listing[RosterChange]):
    """A page of a room's roster changes, newest first (roster.history)."""


class RosterImported(WireModel):
    """What a roster CSV import did: members added, updated, removed (with ?replace=true) and unchanged."""

    added: int
    updated: int
    removed: int
    unchanged: int


# Retention, erasure and seals (issue 15): an erasure's outcome, the seals, and what verify found.


class PersonErased(WireModel):
    """What an erasure did: the pseudonym, the person's key from now on, and the rows rewritten per table."""

    pseudonym: str
    participant_key: str
    rows: dict[str, int]


# A UTC day as ISO-8601 (YYYY-MM-DD): Flask's JSON would write a date as an HTTP date.
UtcDay = Annotated[date, PlainSerializer(date.isoformat, return_type=str)]


class SealOut(WireModel):
    """One sealed UTC day, as an auditor keeps a copy of it elsewhere."""

    day: UtcDay
    record_count: int = Field(description="Deliveries received and audit records made that day.")
    merkle_root: str = Field(description="SHA-256 Merkle root over the records' leaf hashes, hex.")
    previous_hash: str | None = Field(description="The day before's sealHash; null on the first seal.")
    seal_hash: str = Field(description="SHA-256 of 'day:recordCount:merkleRoot:previousHash'.")
    sealed_at: UtcTime


class SealPage(Listing[SealOut]):
    """A page of seals, oldest day first (seals.list_seals)."""


class VerifyFinding(WireModel):
    """One thing verify found: a record changed, added, removed or redacted, a seal that does not hold, a
    closed day with records left unsealed, or a kept seal missing from the database or unlike its seal."""

    day: UtcDay
    problem: Problem
    kind: Literal["delivery", "audit"] | None = Field(description="The record's kind; null for a day's seal.")
    id: int | None = Field(description="The delivery's or audit record's id; null for a day's seal.")
    redaction: Literal["retention", "erasure"] | None = Field(description="What redacted the record.")


class AuditVerification(WireModel):
    """The answer of verify: intact unless something other than a redaction was found."""

    intact: bool
    seals_checked: int
    findings: list[VerifyFinding]


class VerificationQueued(WireModel):
    """The answer to POST /api/audit/verify: the job verifying the log (its progress at Location)."""

    job_id: str


class VerificationProgress(WireModel):
    """A verify's state as RQ tells it, its progress, and once it has finished, what it found."""

    id: str
    status: str = Field(description="RQ's: queued, started, finished, failed, ...")
    checked: int = Field(description="Seals checked so far.")
    seals: int | None = Field(description="Seals to check; null until the job has begun.")
    result: AuditVerification | Absent = absent("What verify found; only once the job has finished.")


def person_erased_out(erased: Erased) -> PersonErased:
    """Map an erasure's outcome to its wire shape."""
    return PersonErased(pseudonym=erased.pseudonym, participant_key=erased.participant_key, rows=erased.rows)


def seal_out(seal: Seal) -> SealOut:
    """Map one stored seal to its wire shape."""
    return SealOut(
        day=seal.day,
        record_count=seal.record_count,
        merkle_root=seal.merkle_root,
        previous_hash=seal.previous_hash,
        seal_hash=seal.seal_hash,
        sealed_at=seal.sealed_at,
    )


def verification_out(verification: Verification) -> AuditVerification:
    """Map what verify found to its wire shape."""
    findings = [
        VerifyFinding.model_validate(
            {
                "day": finding.day,
                "problem": finding.problem,
                "kind": finding.kind,
                "id": finding.record_id,
                "redaction": finding.redaction,
            }
        )
        for finding in verification.findings
    ]
    return AuditVerification(
        intact=verification.intact, seals_checked=verification.seals_checked, findings=findings
    )
