"""Post-meeting notifications end to end: real RQ workers, a real SMTP server, a real webhook receiver.

Jobs run in `SimpleWorker`s on the test Redis; retries are RQ's own (scheduled with backoff), made due at
once by `run_due_retries`, which stands in for the passing of time and nothing else.
"""

from __future__ import annotations

import base64
import csv
import io
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis import Redis
from rq import Queue, SimpleWorker
from rq.job import Job
from sqlalchemy import select, update

from tests.conftest import run_worker
from tests.pure.test_notify import parts
from tests.test_mailer import Mailbox, check_login, smtp_server
from tests.test_outbound import Receiver, receiving
from workers import jobs, notify_jobs
from workers.models import AttendanceRow, MeetingSession, Room
from workers.models.notifications import Notification
from workers.notifications.ledger import UNTRUSTED, notifications_for
from workers.reports import attendance_csv, session_report
from workers.runtime import metrics
from workers.runtime.process import NOTIFY_QUEUE_NAME, Runtime
from workers.timefmt import UTC_ZONE
from workers.wire import SessionWithAttendance

SECRET = "whsec_" + base64.b64encode(b"the outbound webhook secret key!").decode()
START = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
PEOPLE = [  # (key, name, email, attended minutes)
    ("ada@example.com", "Ada Lovelace", "ada@example.com", 50),
    ("grace", "Grace Hopper", None, 30),
    ("u-42", "Linus", "Linus@Example.com", 10),
]


@contextmanager
def mail_and_hooks(mailbox: Mailbox, receiver: Receiver) -> Iterator[dict[str, Any]]:
    """Run the SMTP server and the webhook receiver; yield the settings that point at them."""
    with smtp_server(mailbox) as port, receiving(receiver) as url:
        yield {
            "smtp_url": f"smtp://127.0.0.1:{port}",
            "mail_from": "Rollcall <rollcall@example.com>",
            "notify_webhook_url": url,
            "notify_webhook_secret": SECRET,
        }


def final_session(
    runtime: Runtime,
    organizer: str | None = "organizer@example.com",
    thank: bool = False,
    trust: bool = False,
) -> int:
    """Store a final meeting session of an hour with PEOPLE in it; return its id."""
    with runtime.Db.begin() as db:
        room = Room(
            room_name="weekly-sync",
            webhook_token_hash=uuid.uuid4().hex,
            organizer_email=organizer,
            notify_participants=thank,
            options={"trustParticipantEmails": trust},
            min_attendance_percent=40,
        )
        db.add(room)
        db.flush()
        meeting = MeetingSession(
            room_id=room.id,
            meeting_session_id="ms-1",
            status="final",
            reported_start=START,
            started_at=START,
            ended_at=START + timedelta(hours=1),
            duration_ms=3_600_000,
            participant_count=len(PEOPLE),
            peak_concurrency=2,
            min_attendance_percent=40,
            end_received_at=START + timedelta(hours=1),
            finalized_at=START + timedelta(hours=1, minutes=2),
        )
        db.add(meeting)
        db.flush()
        db.add_all(attendance(meeting.id, *person) for person in PEOPLE)
        return meeting.id


def attendance(session_id: int, key: str, name: str, email: str | None, minutes: int) -> AttendanceRow:
    left = START + timedelta(minutes=minutes)
    segment = {
        "participantSessionId": f"ps-{key}",
        "joinedAt": START.isoformat().replace("+00:00", "Z"),
        "leftAt": left.isoformat().replace("+00:00", "Z"),
        "inferred": False,
    }
    return AttendanceRow(
        session_id=session_id,
        participant_key=key,
        identified_by="email",
        name=name,
        email=email,
        first_join_at=START,
        last_left_at=left,
        attended_ms=minutes * 60_000,
        attendance_percent=round(minutes / 60 * 100, 1),
        join_count=1,
        present=minutes >= 24,
        segments=[segment],
    )


def report(runtime: Runtime, session_id: int) -> SessionWithAttendance:
    """Return the session as the report API shows it."""
    with runtime.Db() as db:
        meeting = db.get_one(MeetingSession, session_id)
        return session_report(db, meeting, db.get_one(Room, meeting.room_id))


def finalized(runtime: Runtime, session_id: int) -> None:
    """Enqueue session_finalized as the lifecycle does, and run the worker."""
    queue = runtime.queue()
    queue.enqueue("workers.notify_jobs.session_finalized", session_id, job_id=f"notify-final-{session_id}")
    run_worker(runtime)


def run_due_retries(runtime: Runtime) -> int:
    """Make scheduled retries due now (as if backoff passed), run a worker with its scheduler; count them."""
    registry = runtime.notify_queue().scheduled_job_registry
    job_ids = registry.get_job_ids()
    for job_id in job_ids:
        registry.schedule(
            Job.fetch(job_id, connection=runtime.redis), datetime.now(UTC) - timedelta(seconds=1)
        )
    SimpleWorker([NOTIFY_QUEUE_NAME], connection=runtime.redis).work(burst=True, with_scheduler=True)
    return len(job_ids)


def cells(message: Any) -> list[list[str]]:
    """Return the plain-text part's lines, split into their label/value or table cells."""
    text = message.get_body(("plain",)).get_content()
    return [re.split(r"\s{2,}|:\s+", line.strip()) for line in text.splitlines()]


def ledger(runtime: Runtime, session_id: int) -> dict[tuple[str, str], dict[str, Any]]:
    with runtime.Db() as db:
        notes = [note.model_dump() for note in notifications_for(db, session_id)]
    return {(n["kind"], n["recipient"]): n for n in notes}


def set_state(runtime: Runtime, kind: str, state: str) -> None:
    with runtime.Db.begin() as db:
        db.execute(update(Notification).where(Notification.kind == kind).values(state=state))


def test_one_summary_with_the_csv_and_the_figures(start_runtime: Callable[..., Runtime]) -> None:
    mailbox = Mailbox()
    with mail_and_hooks(mailbox, Receiver(SECRET)) as config:
        runtime = start_runtime(**config)
        session_id = final_session(runtime)
        finalized(runtime, session_id)
    [summary] = mailbox.received
    assert summary["X-Envelope-To"] == "organizer@example.com"
    assert summary["Subject"] == "Attendance summary: weekly-sync, 2024-05-01"
    lines = cells(summary)
    assert ["Duration", "1h 00m 00s"] in lines and ["Started", "2024-05-01 09:00:00 UTC"] in lines
    assert ["Participants", "3"] in lines and ["Peak concurrency", "2"] in lines
    # No roster: everyone who came is a guest.
    assert ["Ada Lovelace", "guest", "50m 00s", "83.3%", "yes", "1", "no"] in lines
    assert ["Linus", "guest", "10m 00s", "16.7%", "no", "1", "no"] in lines
    [csv] = list(summary.iter_attachments())
    assert csv.get_content() == attendance_csv(report(runtime, session_id), UTC_ZONE)
    entry = ledger(runtime, session_id)["summary", "organizer@example.com"]
    assert entry["state"] == "sent" and entry["attempts"] == 1 and entry["reason"] is None


def test_the_summary_is_on_the_organizers_clock_and_links_to_the_sessions_page(
    start_runtime: Callable[..., Runtime],
) -> None:
    mailbox = Mailbox()
    with mail_and_hooks(mailbox, Receiver(SECRET)) as config:
        runtime = start_runtime(**config, public_base_url="https://rollcall.example.com/")
        session_id = final_session(runtime)
        with runtime.Db.begin() as db:
            room = db.scalars(select(Room).where(Room.room_name == "weekly-sync")).one()
            room.options = {**room.options, "timeZone": "Asia/Tokyo"}
        finalized(runtime, session_id)
    [summary] = mailbox.received
    lines = cells(summary)
    # 09:00 UTC is 18:00 in Tokyo; the attached CSV adds the same clock's columns.
    assert ["Started", "2024-05-01 18:00:00 Asia/Tokyo"] in lines
    assert ["The session's page", "https://rollcall.example.com/sessions/ms-1"] in lines
    [attachment] = list(summary.iter_attachments())
    rows = list(csv.reader(io.StringIO(attachment.get_content())))
    assert rows[1][-3:] == ["2024-05-01 18:00:00", "2024-05-01 18:50:00", "Asia/Tokyo"]


def test_thank_yous_go_only_to_attendees_with_an_email_when_asked(
    start_runtime: Callable[..., Runtime],
) -> None:
    mailbox = Mailbox()
    with mail_and_hooks(mailbox, Receiver(SECRET)) as config:
        runtime = start_runtime(**config)
        session_id = final_session(runtime, organizer=None, thank=True, trust=True)
        finalized(runtime, session_id)
    sent = {message["X-Envelope-To"]: message for message in mailbox.received}
    assert set(sent) == {"ada@example.com", "linus@example.com"}  # no organizer, Grace has no address
    assert ["Time attended", "50m 00s"] in cells(sent["ada@example.com"])
    assert ["Time attended", "10m 00s"] in cells(sent["linus@example.com"])
    assert {kind for kind, _ in ledger(runtime, session_id)} == {"thank-you", "webhook-finalized"}


def test_a_mail_whose_counting_fails_is_sent_once_all_the_same(
    start_runtime: Callable[..., Runtime],
) -> None:
    mailbox = Mailbox()
    with mail_and_hooks(mailbox, Receiver(SECRET)) as config:
        runtime = start_runtime(**config)
        runtime.redis.set(metrics.NOTIFICATIONS_KEY, "not a hash")  # every HINCRBY on it fails (WRONGTYPE)
        session_id = final_session(runtime)
        finalized(runtime, session_id)
        run_due_retries(runtime)  # a retry, had the send job failed, would find the mail `sending`
    assert len(mailbox.received) == 1
    entry = ledger(runtime, session_id)["summary", "organizer@example.com"]
    assert (entry["state"], entry["attempts"], entry["reason"]) == ("sent", 1, None)


def test_finalizing_again_sends_nothing_new(start_runtime: Callable[..., Runtime]) -> None:
    mailbox, receiver = Mailbox(), Receiver(SECRET)
    with mail_and_hooks(mailbox, receiver) as config:
        runtime = start_runtime(**config)
        session_id = final_session(runtime, thank=True, trust=True)
        finalized(runtime, session_id)
        # Duplicate end webhooks, a replay, a rebuild: the job runs again, each time in a fresh worker.
        for _ in range(3):
            finalized(runtime, session_id)
        notify_jobs.session_finalized(session_id)
        run_worker(runtime)
    assert len(mailbox.received) == 3  # the summary and two thank-yous
    assert len(receiver.events) == 1
    assert all(
        entry["state"] == "sent" and entry["attempts"] == 1 for entry in ledger(runtime, session_id).values()
    )


def test_a_lost_queue_is_refilled_once(start_runtime: Callable[..., Runtime]) -> None:
    mailbox = Mailbox()
    with mail_and_hooks(mailbox, Receiver(SECRET)) as config:
        runtime = start_runtime(**config)
        session_id = final_session(runtime)
        notify_jobs.session_finalized(session_id)  # ledger committed, send jobs queued ...
        runtime.redis.flushdb()  # ... and lost with Redis before any worker ran them
        for _ in range(2):  # the worker's minutely check, twice: it refills, then finds nothing to do
            runtime.queue().enqueue(jobs.finalize_overdue)
            run_worker(runtime)
    assert len(mailbox.received) == 1


def test_an_email_interrupted_while_sending_is_not_resent(start_runtime: Callable[..., Runtime]) -> None:
    mailbox = Mailbox()
    with mail_and_hooks(mailbox, Receiver(SECRET)) as config:
        runtime = start_runtime(**config)
        session_id = final_session(runtime)
        notify_jobs.session_finalized(session_id)
        set_state(runtime, "summary", "sending")  # what a worker killed mid-conversation leaves behind
        run_worker(runtime)
    assert mailbox.received == []
    entry = ledger(runtime, session_id)["summary", "organizer@example.com"]
    assert entry["state"] == "failed" and entry["reason"] == notify_jobs.UNCERTAIN


def test_a_4xx_is_retried_with_backoff_and_the_mail_sent_once(start_runtime: Callable[..., Runtime]) -> None:
    mailbox = Mailbox(answers=["451 4.7.1 Greylisted, try again later"])
    with mail_and_hooks(mailbox, Receiver(SECRET)) as config:
        runtime = start_runtime(**config)
        session_id = final_session(runtime)
        finalized(runtime, session_id)
        entry = ledger(runtime, session_id)["summary", "organizer@example.com"]
        assert mailbox.received == [] and entry["state"] == "pending" and "451" in entry["reason"]
        assert run_due_retries(runtime) == 1
        assert run_due_retries(runtime) == 0
    assert len(mailbox.received) == 1 and mailbox.data_attempts == 2
    entry = ledger(runtime, session_id)["summary", "organizer@example.com"]
    assert entry["state"] == "sent" and entry["attempts"] == 2


def test_a_4xx_every_time_ends_failed(start_runtime: Callable[..., Runtime]) -> None:
    mailbox = Mailbox(answers=["421 4.3.2 Service not available"] * 10)
    with mail_and_hooks(mailbox, Receiver(SECRET)) as config:
        runtime = start_runtime(**config)
        session_id = final_session(runtime)
        finalized(runtime, session_id)
        assert sum(run_due_retries(runtime) for _ in range(8)) == len(notify_jobs.BACKOFF_SECONDS)
    entry = ledger(runtime, session_id)["summary", "organizer@example.com"]
    assert entry["state"] == "failed" and entry["reason"].startswith("gave up") and "421" in entry["reason"]
    assert entry["attempts"] == mailbox.data_attempts == len(notify_jobs.BACKOFF_SECONDS) + 1


def test_a_5xx_is_recorded_failed_and_not_retried(start_runtime: Callable[..., Runtime]) -> None:
    mailbox = Mailbox(answers=["550 5.1.1 Mailbox unavailable"])
    with mail_and_hooks(mailbox, Receiver(SECRET)) as config:
        runtime = start_runtime(**config)
        session_id = final_session(runtime)
        finalized(runtime, session_id)
        assert run_due_retries(runtime) == 0
    entry = ledger(runtime, session_id)["summary", "organizer@example.com"]
    assert entry["state"] == "failed" and "550 5.1.1 Mailbox unavailable" in entry["reason"]
    assert mailbox.data_attempts == 1 and mailbox.received == []


def test_without_smtp_url_the_summary_is_recorded_failed(start_runtime: Callable[..., Runtime]) -> None:
    runtime = start_runtime()
    session_id = final_session(runtime)
    finalized(runtime, session_id)
    assert ledger(runtime, session_id) == {
        ("summary", "organizer@example.com"): {
            "recipient": "organizer@example.com",
            "kind": "summary",
            "state": "failed",
            "reason": "SMTP_URL is not set",
            "attempts": 0,
            "updatedAt": ledger(runtime, session_id)["summary", "organizer@example.com"]["updatedAt"],
        }
    }
    assert len(runtime.queue()) == len(runtime.notify_queue()) == 0


def test_the_webhook_is_signed_retried_on_5xx_and_sent_once(start_runtime: Callable[..., Runtime]) -> None:
    receiver = Receiver(SECRET, answers=[500])
    with mail_and_hooks(Mailbox(), receiver) as config:
        runtime = start_runtime(**config)
        session_id = final_session(runtime)
        finalized(runtime, session_id)
        assert receiver.events == [] and run_due_retries(runtime) == 1
        finalized(runtime, session_id)
    [(message_id, event)] = receiver.events
    assert [attempt["webhook-id"] for attempt in receiver.attempts] == [message_id, message_id]
    assert event["type"] == "session.finalized"
    assert event["data"] == report(runtime, session_id).model_dump()
    entry = ledger(runtime, session_id)["webhook-finalized", config["notify_webhook_url"]]
    assert entry["state"] == "sent" and entry["attempts"] == 2


def test_a_webhook_interrupted_while_sending_is_resent_under_the_same_id(
    start_runtime: Callable[..., Runtime],
) -> None:
    receiver = Receiver(SECRET)
    with mail_and_hooks(Mailbox(), receiver) as config:
        runtime = start_runtime(**config)
        session_id = final_session(runtime, organizer=None)
        notify_jobs.session_finalized(session_id)
        set_state(runtime, "webhook-finalized", "sending")
        run_worker(runtime)
    [(message_id, _)] = receiver.events
    with runtime.Db() as db:
        assert db.scalar(select(Notification.message_id)) == message_id  # receivers dedupe on webhook-id


def test_a_4xx_from_the_receiver_is_recorded_failed(start_runtime: Callable[..., Runtime]) -> None:
    receiver = Receiver(SECRET, answers=[410])
    with mail_and_hooks(Mailbox(), receiver) as config:
        runtime = start_runtime(**config)
        session_id = final_session(runtime, organizer=None)
        finalized(runtime, session_id)
        assert run_due_retries(runtime) == 0
    entry = ledger(runtime, session_id)["webhook-finalized", config["notify_webhook_url"]]
    assert entry["state"] == "failed" and "410" in entry["reason"]


def test_an_amendment_sends_session_amended_and_no_second_email(
    start_runtime: Callable[..., Runtime],
) -> None:
    mailbox, receiver = Mailbox(), Receiver(SECRET)
    with mail_and_hooks(mailbox, receiver) as config:
        runtime = start_runtime(**config)
        session_id = final_session(runtime)
        finalized(runtime, session_id)
        runtime.queue().enqueue("workers.notify_jobs.session_amended", session_id)  # nothing changed yet
        run_worker(runtime)
        with runtime.Db.begin() as db:  # a late leave folded in: Linus stayed longer
            db.execute(
                update(AttendanceRow)
                .where(AttendanceRow.participant_key == "u-42")
                .values(attended_ms=20 * 60_000, attendance_percent=33.3)
            )
        for _ in range(2):  # the amendment job delivered twice
            runtime.queue().enqueue("workers.notify_jobs.session_amended", session_id)
            run_worker(runtime)
    assert [event["type"] for _, event in receiver.events] == ["session.finalized", "session.amended"]
    amended = receiver.events[1][1]["data"]
    assert amended == report(runtime, session_id).model_dump()
    linus = next(row for row in amended["attendance"] if row["participantKey"] == "u-42")
    assert linus["attendedSeconds"] == 1200
    assert len(mailbox.received) == 1
    assert ledger(runtime, session_id)["webhook-amended-1", config["notify_webhook_url"]]["state"] == "sent"


def test_a_session_that_is_not_final_gets_nothing(start_runtime: Callable[..., Runtime]) -> None:
    mailbox = Mailbox()
    with mail_and_hooks(mailbox, Receiver(SECRET)) as config:
        runtime = start_runtime(**config)
        session_id = final_session(runtime)
        with runtime.Db.begin() as db:
            db.execute(update(MeetingSession).values(status="ended"))
        finalized(runtime, session_id)
    assert mailbox.received == [] and ledger(runtime, session_id) == {}


def test_an_invalid_attendee_address_is_recorded_not_mailed(start_runtime: Callable[..., Runtime]) -> None:
    mailbox = Mailbox()
    with mail_and_hooks(mailbox, Receiver(SECRET)) as config:
        runtime = start_runtime(**config)
        session_id = final_session(runtime, organizer=None, thank=True, trust=True)
        with runtime.Db.begin() as db:
            db.add(attendance(session_id, "mallory", "Mallory", "m@example.com\r\nBcc: all@example.com", 5))
        finalized(runtime, session_id)
    assert {message["X-Envelope-To"] for message in mailbox.received} == {
        "ada@example.com",
        "linus@example.com",
    }
    [bad] = [entry for entry in ledger(runtime, session_id).values() if entry["state"] == "failed"]
    assert bad["kind"] == "thank-you" and bad["reason"] == "not a valid email address"


def test_the_smtp_password_never_reaches_the_ledger_or_the_log(
    start_runtime: Callable[..., Runtime], caplog: pytest.LogCaptureFixture
) -> None:
    password = "pw-that-must-not-leak"
    with smtp_server(Mailbox(), authenticator=check_login, auth_require_tls=False) as port:
        runtime = start_runtime(
            smtp_url=f"smtp://mailer:{password}@127.0.0.1:{port}", mail_from="r@example.com"
        )
        session_id = final_session(runtime)
        finalized(runtime, session_id)
    entry = ledger(runtime, session_id)["summary", "organizer@example.com"]
    assert entry["state"] == "failed" and "535" in entry["reason"]
    with runtime.Db() as db:
        stored = [
            str(value) for row in db.execute(select(Notification)).scalars() for value in vars(row).values()
        ]
    assert not any(password in value for value in stored)
    assert password not in caplog.text


def test_without_trust_no_thank_you_goes_to_an_address_a_participant_gave(
    start_runtime: Callable[..., Runtime],
) -> None:
    mailbox = Mailbox()
    with mail_and_hooks(mailbox, Receiver(SECRET)) as config:
        runtime = start_runtime(**config)
        session_id = final_session(runtime, thank=True, trust=False)
        finalized(runtime, session_id)
    assert [message["X-Envelope-To"] for message in mailbox.received] == ["organizer@example.com"]
    refused = {r: e for (kind, r), e in ledger(runtime, session_id).items() if kind == "thank-you"}
    assert set(refused) == {"ada@example.com", "linus@example.com"}  # the session's record says why
    assert all(e["state"] == "failed" and e["reason"] == UNTRUSTED for e in refused.values())


def test_trust_withdrawn_after_planning_stops_the_thank_yous(start_runtime: Callable[..., Runtime]) -> None:
    mailbox = Mailbox()
    with mail_and_hooks(mailbox, Receiver(SECRET)) as config:
        runtime = start_runtime(**config)
        session_id = final_session(runtime, organizer=None, thank=True, trust=True)
        notify_jobs.session_finalized(session_id)  # planned and queued while the room trusted them
        with runtime.Db.begin() as db:
            db.execute(update(Room).values(options={"trustParticipantEmails": False}))
        run_worker(runtime)
    assert mailbox.received == []
    assert {e["reason"] for (kind, _), e in ledger(runtime, session_id).items() if kind == "thank-you"} == {
        UNTRUSTED
    }


def test_one_thank_you_per_address_across_devices_and_keys(start_runtime: Callable[..., Runtime]) -> None:
    mailbox = Mailbox()
    with mail_and_hooks(mailbox, Receiver(SECRET)) as config:
        runtime = start_runtime(**config)
        session_id = final_session(runtime, organizer=None, thank=True, trust=True)
        with runtime.Db.begin() as db:  # Ada again: her phone, her address cased and spaced otherwise
            db.add(attendance(session_id, "ext:ada-phone", "Ada (phone)", "ADA@Example.com", 20))
            db.add(attendance(session_id, "name:Ada", "Ada", " ada@example.com", 5))
        finalized(runtime, session_id)
        finalized(runtime, session_id)  # and the plan made again
    sent = sorted(message["X-Envelope-To"] for message in mailbox.received)
    assert sent == ["ada@example.com", "linus@example.com"]
    thanks = [r for kind, r in ledger(runtime, session_id) if kind == "thank-you"]
    assert sorted(thanks) == ["ada@example.com", "linus@example.com"]


def test_a_hostile_name_arrives_as_one_harmless_line(start_runtime: Callable[..., Runtime]) -> None:
    mailbox = Mailbox()
    name = "Eve\r\nBcc: x@evil.example\r\nSubject: you won https://evil.example/prize"
    with mail_and_hooks(mailbox, Receiver(SECRET)) as config:
        runtime = start_runtime(**config)
        session_id = final_session(runtime, organizer=None, thank=True, trust=True)
        with runtime.Db.begin() as db:
            db.add(attendance(session_id, "eve", name, "eve@example.com", 40))
        finalized(runtime, session_id)
    [eve] = [message for message in mailbox.received if message["To"] == "eve@example.com"]
    assert eve["X-Envelope-To"] == "eve@example.com" and eve["Bcc"] is None  # one recipient, no new header
    assert eve["Subject"] == "Thank you for attending weekly-sync"
    text, html = parts(eve)
    assert text.splitlines()[0] == "Hello Eve Bcc: x@evil.example Subject: you won https://evil.examp…,"
    assert "evil.example" not in html and "https://" not in html and "<a" not in html


def test_an_amendment_announced_during_a_redis_outage_is_logged_not_raised(
    own_redis: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Rosters, overrides and rebuilds announce after their commit: an outage must not look like a refusal."""
    server = own_redis()
    queue = Queue(connection=Redis.from_url(own_redis.url, socket_timeout=2))
    jobs.notify_amended(queue, {7})
    assert [job.args for job in queue.jobs] == [(7,)]
    server.kill()
    server.wait()
    jobs.notify_amended(queue, {8, 9})
    assert "session.amended not queued for 2 session(s)" in caplog.text
