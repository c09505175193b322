"""Absence alerts: when a final session makes a roster member's run of absences reach the room's
absenceAlertAfter, the organizer gets one email and the outbound webhook one signed person.absence_streak,
through the notification ledger: real RQ workers, a real SMTP server, a real webhook receiver.

Sessions, rosters and overrides are arranged as rows; what the alert depends on is their statuses.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rq.scheduler import RQScheduler
from sqlalchemy import select
from werkzeug.wrappers import Request, Response

from tests.conftest import WorkerProcess
from tests.pure.test_notify import parts
from tests.test_jobs import wait_for
from tests.test_mailer import Mailbox
from tests.test_notify_jobs import SECRET, finalized, mail_and_hooks, run_due_retries
from tests.test_outbound import Receiver
from workers import jobs
from workers.models import AttendanceRow, MeetingSession, Room, RosterMember, StatusOverride
from workers.models.notifications import Notification
from workers.notifications.ledger import event_data
from workers.runtime.process import NOTIFY_QUEUE_NAME, QUEUE_NAME, Runtime
from workers.statuses import rules_of

WEEK_1 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
ORGANIZER = "teacher@school.example"


def alert_room(runtime: Runtime, **options: Any) -> int:
    """Store a room alerting after two absences running, expecting ann, bo, dee and cy (a host)."""
    with runtime.Db.begin() as db:
        room = Room(
            room_name="algebra",
            webhook_token_hash=uuid.uuid4().hex,
            organizer_email=ORGANIZER,
            options={"absenceAlertAfter": 2, **options},
        )
        db.add(room)
        db.flush()
        for name in ("ann", "bo", "cy", "dee"):
            db.add(
                RosterMember(
                    room_id=room.id,
                    participant_key=f"ext:{name}",
                    external_user_id=name,
                    name=name.title(),
                    email=f"{name}@school.example",
                    group="4B",
                    role="host" if name == "cy" else "attendee",
                    valid_from=WEEK_1 - timedelta(days=7),
                )
            )
        return room.id


def final_week(
    runtime: Runtime, room_id: int, week: int, came: set[str], excused: frozenset[str] = frozenset()
) -> int:
    """Store week `week`'s meeting, final, attended all along by `came`; excuse `excused`; return its id."""
    began = WEEK_1 + timedelta(weeks=week)
    with runtime.Db.begin() as db:
        meeting = MeetingSession(
            room_id=room_id,
            meeting_session_id=f"week-{week}",
            # As a fold stamps it when the session is created.
            include_hosts_in_attendance=rules_of(db.get_one(Room, room_id).options).include_hosts,
            status="final",
            started_at=began,
            ended_at=began + timedelta(hours=1),
            duration_ms=3_600_000,
            participant_count=len(came),
            end_received_at=began + timedelta(hours=1),
            finalized_at=began + timedelta(hours=1, minutes=2),
        )
        db.add(meeting)
        db.flush()
        for name in came:
            db.add(
                AttendanceRow(
                    session_id=meeting.id,
                    participant_key=f"ext:{name}",
                    identified_by="externalUserId",
                    external_user_id=name,
                    first_join_at=began,
                    last_left_at=began + timedelta(hours=1),
                    attended_ms=3_600_000,
                    join_count=1,
                    segments=[],
                )
            )
        for name in excused:
            override = StatusOverride(session_id=meeting.id, participant_key=f"ext:{name}", status="excused")
            override.set_by = "api"
            db.add(override)
        return meeting.id


def alerts(runtime: Runtime) -> list[tuple[str, str, str, str]]:
    """Return every absence alert in the ledger, oldest first: (session, person, mail or hook, state)."""
    query = (
        select(MeetingSession.meeting_session_id, Notification)
        .join(MeetingSession, MeetingSession.id == Notification.session_id)
        .where(Notification.kind.like("absence-%"))
        .order_by(Notification.id)
    )
    with runtime.Db() as db:
        return [
            (msid, event_data(note)["participantKey"], note.kind.split("-")[1], note.state)
            for msid, note in db.execute(query)
        ]


def absence_mails(mailbox: Mailbox) -> list[str]:
    return [message["Subject"] for message in mailbox.received if message["Subject"].startswith("Absent")]


def streak_events(receiver: Receiver) -> list[tuple[str, Any]]:
    return [(mid, event) for mid, event in receiver.events if event["type"] == "person.absence_streak"]


def test_a_run_reaching_the_option_alerts_once_and_not_again_as_it_grows(
    start_runtime: Callable[..., Runtime],
) -> None:
    mailbox, receiver = Mailbox(), Receiver(SECRET)
    with mail_and_hooks(mailbox, receiver) as config:
        runtime = start_runtime(**config)
        room_id = alert_room(runtime)
        weeks = [
            final_week(runtime, room_id, 0, {"ann", "cy", "dee"}),  # bo: 1 absence
            final_week(runtime, room_id, 1, {"ann"}),  # bo: 2, an alert; dee: 1; cy, a host: no run
            final_week(runtime, room_id, 2, {"ann"}, excused=frozenset({"dee"})),  # bo: 3, no alert
            final_week(runtime, room_id, 3, {"ann"}),  # dee: 2, the excused week passed over: an alert
        ]
        for session_id in weeks:
            finalized(runtime, session_id)
        finalized(runtime, weeks[1])  # planned again (a retry, finalize_overdue): nothing new
    assert alerts(runtime) == [  # each on its run's first absent session
        ("week-0", "ext:bo", "mail", "sent"),
        ("week-0", "ext:bo", "hook", "sent"),
        ("week-1", "ext:dee", "mail", "sent"),
        ("week-1", "ext:dee", "hook", "sent"),
    ]
    assert absence_mails(mailbox) == ["Absent 2 times running: Bo", "Absent 2 times running: Dee"]
    [bo_mail, _] = [m for m in mailbox.received if m["Subject"].startswith("Absent")]
    assert bo_mail["To"] == ORGANIZER
    assert parts(bo_mail)[0].startswith(
        "Bo has been absent from the last 2 meetings in algebra, the latest on 2026-01-12."
    )
    # The two sends race in the notify process: the receiver may hear Dee's first.
    [(_, bo_event), (_, dee_event)] = sorted(
        streak_events(receiver), key=lambda e: e[1]["data"]["participantKey"]
    )
    assert bo_event["data"] == {
        "roomName": "algebra",
        "meetingSessionId": "week-1",
        "runBeganWith": "week-0",
        "participantKey": "ext:bo",
        "name": "Bo",
        "email": "bo@school.example",
        "group": "4B",
        "absences": 2,
    }
    dee = dee_event["data"]
    assert (dee["participantKey"], dee["meetingSessionId"], dee["runBeganWith"]) == (
        "ext:dee",
        "week-3",
        "week-1",
    )


def test_a_new_run_alerts_again_and_hosts_only_when_the_room_counts_them(
    start_runtime: Callable[..., Runtime],
) -> None:
    runtime = start_runtime()  # no SMTP_URL: each alert is recorded, failed, on its session
    room_id = alert_room(runtime, includeHostsInAttendance=True)
    everyone = {"ann", "bo", "cy", "dee"}
    for week, came in enumerate(
        [{"ann", "dee"}, {"ann", "dee"}, everyone, {"ann", "cy", "dee"}, {"ann", "cy", "dee"}]
    ):
        finalized(runtime, final_week(runtime, room_id, week, came))
    assert alerts(runtime) == [
        ("week-0", "ext:bo", "mail", "failed"),
        ("week-0", "ext:cy", "mail", "failed"),
        ("week-3", "ext:bo", "mail", "failed"),  # back in week 2, then absent twice again
    ]


def test_a_run_alerts_once_even_when_an_excuse_lets_it_reach_the_option_again(
    start_runtime: Callable[..., Runtime],
) -> None:
    runtime = start_runtime()
    room_id = alert_room(runtime)
    for week in (0, 1):  # bo absent twice: an alert
        finalized(runtime, final_week(runtime, room_id, week, {"ann", "cy", "dee"}))
    with runtime.Db.begin() as db:  # then excused for week 1, after the fact
        week_1 = db.scalar(select(MeetingSession.id).where(MeetingSession.meeting_session_id == "week-1"))
        db.add(StatusOverride(session_id=week_1, participant_key="ext:bo", status="excused", set_by="api"))
    # Absent again: week 0 and week 2 make two running once more, but it is the run already alerted.
    finalized(runtime, final_week(runtime, room_id, 2, {"ann", "cy", "dee"}))
    assert alerts(runtime) == [("week-0", "ext:bo", "mail", "failed")]


def test_without_the_option_nobody_is_alerted(start_runtime: Callable[..., Runtime]) -> None:
    runtime = start_runtime()
    room_id = alert_room(runtime)
    with runtime.Db.begin() as db:
        db.get_one(Room, room_id).options = {}
    for week in range(3):
        finalized(runtime, final_week(runtime, room_id, week, set()))
    assert alerts(runtime) == []


@dataclass
class HeldMailbox(Mailbox):
    """A mailbox that takes the absence alert, then holds its answer until released: the mail has gone,
    but its sender does not know it yet."""

    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        answer = await super().handle_DATA(server, session, envelope)
        if b"Subject: Absent" in envelope.content and not self.holding.is_set():
            self.holding.set()
            while not self.release.is_set():
                await asyncio.sleep(0.05)
        return answer


@dataclass
class HeldReceiver(Receiver):
    """A receiver that holds the first person.absence_streak attempt until released, then takes it."""

    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def answer(self, request: Request) -> Response:
        if b"person.absence_streak" in request.get_data() and not self.holding.is_set():
            self.holding.set()
            self.release.wait(timeout=120)
        return super().answer(request)


@pytest.mark.slow
@pytest.mark.parametrize("held", ["mail", "hook"])
def test_an_alert_is_sent_once_when_the_worker_is_killed_while_sending_it(
    start_runtime: Callable[..., Runtime],
    database_url: str,
    redis_url: str,
    spawn_worker: Callable[..., WorkerProcess],
    held: str,
) -> None:
    mailbox, receiver = (
        (HeldMailbox(), Receiver(SECRET)) if held == "mail" else (Mailbox(), HeldReceiver(SECRET))
    )
    server = mailbox if held == "mail" else receiver
    assert isinstance(server, HeldMailbox | HeldReceiver)
    with mail_and_hooks(mailbox, receiver) as config:
        runtime = start_runtime(**config)
        room_id = alert_room(runtime)
        final_week(runtime, room_id, 0, {"ann", "cy", "dee"})
        week_1 = final_week(runtime, room_id, 1, {"ann", "cy", "dee"})  # bo's second absence running
        worker = spawn_worker(
            database_url,
            redis_url,
            **{name.upper(): str(value) for name, value in config.items()},
            NOTIFY_TIMEOUT_SECONDS="60",
        )
        jobs.plan_notifications(runtime.queue(), week_1)  # as finalize_session does
        wait_for(server.holding.is_set, f"the worker to be sending the alert's {held}", seconds=60)
        assert ("week-0", "ext:bo", held, "sending") in alerts(runtime)
        worker.kill()
        server.release.set()
        # What a restarted worker's RQ does once the dead worker's leases lapse (its job's in the started
        # registry, its scheduler's lock on the queues: a minute or more), made due now: the abandoned
        # send is retried after its backoff.
        runtime.notify_queue().started_job_registry.cleanup(timestamp=time.time() + 3600)
        runtime.redis.delete(*(RQScheduler.get_locking_key(name) for name in (QUEUE_NAME, NOTIFY_QUEUE_NAME)))
        assert run_due_retries(runtime) == 1
        finalized(runtime, final_week(runtime, room_id, 2, {"ann", "cy", "dee"}))  # bo's third: no alert
    # The mail may have gone when the worker died, so it is never resent; the webhook is, under its id.
    mail_state = "failed" if held == "mail" else "sent"
    assert alerts(runtime) == [("week-0", "ext:bo", "mail", mail_state), ("week-0", "ext:bo", "hook", "sent")]
    assert absence_mails(mailbox) == ["Absent 2 times running: Bo"]
    assert len({message_id for message_id, _ in streak_events(receiver)}) == 1


def test_the_alert_dates_the_meeting_on_the_organizers_clock(start_runtime: Callable[..., Runtime]) -> None:
    mailbox, receiver = Mailbox(), Receiver(SECRET)
    with mail_and_hooks(mailbox, receiver) as config:
        runtime = start_runtime(**config)
        room_id = alert_room(runtime, timeZone="Pacific/Honolulu")  # 09:00 UTC is 23:00 the day before
        weeks = [final_week(runtime, room_id, week, {"ann", "cy", "dee"}) for week in (0, 1)]
        for session_id in weeks:
            finalized(runtime, session_id)
    [bo_mail] = [m for m in mailbox.received if m["Subject"].startswith("Absent")]
    text = parts(bo_mail)[0]
    assert "the latest on 2026-01-11." in text and "2026-01-12" not in text
    assert "Latest meeting:   2026-01-11 (week-1)" in text.splitlines()


def test_a_run_is_counted_back_across_pages_of_earlier_sessions(
    start_runtime: Callable[..., Runtime],
) -> None:
    runtime = start_runtime()
    room_id = alert_room(runtime)
    excused = frozenset({"bo"})
    weeks = [final_week(runtime, room_id, 0, {"ann"})]  # bo's first absence, and dee's
    weeks += [final_week(runtime, room_id, n, {"ann"}, excused) for n in range(1, 12)]  # more than a page
    weeks.append(final_week(runtime, room_id, 12, {"ann"}))
    finalized(runtime, weeks[12])  # bo: 2, eleven excused weeks passed over; dee: 13, long past 2
    finalized(runtime, weeks[1])  # dee: 2
    assert alerts(runtime) == [
        ("week-0", "ext:bo", "mail", "failed"),
        ("week-0", "ext:dee", "mail", "failed"),
    ]
