"""Folding stored deliveries into sessions and attendance, on real SQLite and PostgreSQL.

The incremental fold (only the people a batch touches are re-derived) must always equal the pure
compute_session over every fact, whatever the order, batching or duplication of the deliveries.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from workers import inbox
from workers.attendance import AttendanceRules, Identity, SegmentFacts, compute_session
from workers.deliveries.parsing import END, JOIN, START, parse_delivery
from workers.folding import fold_batch, rebuild
from workers.inbox import AMENDMENT
from workers.lifecycle import close_stale, finalize, stale_sessions
from workers.meetings import FoldRules, Mark, Timeline, place
from workers.models import (
    AttendanceRow,
    Delivery,
    MeetingSession,
    Notification,
    Room,
    SessionChange,
    SessionStatus,
)
from workers.rooms import new_token, token_hash
from workers.timefmt import iso_ms

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
RULES = FoldRules(reconnect_grace_seconds=30, finalize_after_seconds=120)  # the settings' defaults
EVENT_TIME_FIELD = {
    "participant-joined": "joinTime",
    "participant-left": "leftTime",
    "meeting-started": "startTime",
    "meeting-ended": "endTime",
}


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def make_room(Db: sessionmaker[Session], min_percent: float | None = None) -> int:
    with Db.begin() as db:
        room = Room(
            room_name=f"room-{uuid.uuid4().hex[:8]}",
            webhook_token_hash=token_hash(new_token()),
            min_attendance_percent=min_percent,
        )
        db.add(room)
        db.flush()
        return room.id


def body(event: str, msid: str | None, when: datetime | None, **fields: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
    if msid:
        payload["meetingSessionId"] = msid
    if when is not None:
        payload[EVENT_TIME_FIELD[event]] = iso_ms(when)
    return payload


def store(
    Db: sessionmaker[Session], room_id: int, event: str, payload: dict[str, Any], received_at: datetime
) -> int | None:
    """Store a delivery through the receiver's own inbox; return its id, or None for a duplicate."""
    raw = json.dumps(payload)
    facts = parse_delivery(event, raw.encode(), "application/json", received_at)
    arrival = inbox.Arrival(room_id, facts, raw, "application/json", {}, None, received_at)
    stored = inbox.store(Db.kw["bind"], arrival)
    return stored.id if stored.new else None


def delivered(delivery_id: int | None) -> int:
    """Return the id of a delivery stored for the first time (a duplicate here is a broken test)."""
    assert delivery_id is not None, "stored as a duplicate"
    return delivery_id


def fold(
    Db: sessionmaker[Session],
    room_id: int,
    batches: list[list[tuple[str, dict[str, Any], datetime]]],
    rules: FoldRules | None = None,
) -> None:
    """Store each batch through the inbox, then fold it in one transaction as a worker's drain does."""
    for batch in batches:
        ids = [i for e, p, r in batch if (i := store(Db, room_id, e, p, r)) is not None]
        with Db.begin() as db:
            fold_batch(db, room_id, inbox.unprocessed_of(db, ids), rules or RULES)


def sweep(Db: sessionmaker[Session], now: datetime, stale_seconds: int = 6 * 3600) -> list[str | None]:
    """Close the sessions stale at `now` as the sweeper job does; return the meeting session ids closed."""
    with Db.begin() as db:
        closed = [
            close_stale(db, sid, now, stale_seconds) for sid, _ in stale_sessions(db, now, stale_seconds)
        ]
        return [None if meeting is None else meeting.meeting_session_id for meeting in closed]


def report(Db: sessionmaker[Session], msid: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    with Db() as db:
        meeting = db.scalars(select(MeetingSession).where(MeetingSession.meeting_session_id == msid)).one()
        rows = db.scalars(
            select(AttendanceRow)
            .where(AttendanceRow.session_id == meeting.id)
            .order_by(AttendanceRow.participant_key)
        ).all()
        summary = {
            k: getattr(meeting, k)
            for k in (
                "status",
                "started_at",
                "ended_at",
                "duration_ms",
                "participant_count",
                "peak_concurrency",
                "inferred",
            )
        }
        people = [
            {
                k: getattr(r, k)
                for k in (
                    "participant_key",
                    "identified_by",
                    "name",
                    "email",
                    "external_user_id",
                    "first_join_at",
                    "last_left_at",
                    "attended_ms",
                    "attendance_percent",
                    "join_count",
                    "present",
                    "inferred",
                    "is_host",
                    "segments",
                )
            }
            for r in rows
        ]
        return summary, people


def join(msid: str, psid: str, minute: float, **who: Any) -> tuple[str, dict[str, Any], datetime]:
    return (
        "participant-joined",
        body("participant-joined", msid, at(minute), participantSessionId=psid, **who),
        at(minute),
    )


def leave(msid: str, psid: str, minute: float, **who: Any) -> tuple[str, dict[str, Any], datetime]:
    return (
        "participant-left",
        body("participant-left", msid, at(minute), participantSessionId=psid, **who),
        at(minute),
    )


def start(msid: str, minute: float) -> tuple[str, dict[str, Any], datetime]:
    return "meeting-started", body("meeting-started", msid, at(minute)), at(minute)


def end(msid: str, minute: float) -> tuple[str, dict[str, Any], datetime]:
    return "meeting-ended", body("meeting-ended", msid, at(minute)), at(minute)


def test_a_plain_meeting_gives_the_hand_worked_figures(Db: sessionmaker[Session]) -> None:
    room_id = make_room(Db, min_percent=50)
    msid = "m-plain"
    # 60-minute meeting. Ann: 0-60 (100%). Bob: 10-20, reconnect at 20:10 (<30 s), 20:10-40
    # → 10 min + 19 min 50 s = 1,790 s = 49.7% (not present at 50), 1 join.
    # Cy: joins at 50 and never leaves → closed at the end (inferred), 10 min = 16.7%, not present.
    fold(
        Db,
        room_id,
        [
            [
                start(msid, 0),
                join(msid, "a1", 0, externalUserId="ann"),
                leave(msid, "a1", 60, externalUserId="ann"),
                join(msid, "b1", 10, email="Bob@X.com"),
                leave(msid, "b1", 20, email="bob@x.com"),
                join(msid, "b2", 20 + 10 / 60, email="BOB@x.com"),
                leave(msid, "b2", 40),
                join(msid, "c1", 50, name="Cy"),
                end(msid, 60),
            ]
        ],
    )
    summary, people = report(Db, msid)
    assert summary["status"] == SessionStatus.ENDED
    assert summary["duration_ms"] == 3_600_000
    assert summary["participant_count"] == 3
    assert summary["peak_concurrency"] == 2
    by_key = {p["participant_key"]: p for p in people}
    assert by_key["ext:ann"]["attendance_percent"] == 100.0 and by_key["ext:ann"]["present"] is True
    bob = by_key["email:bob@x.com"]
    assert (bob["attended_ms"], bob["join_count"], bob["attendance_percent"], bob["present"]) == (
        1_790_000,
        1,
        49.7,
        False,
    )
    cy = by_key["name:Cy"]
    assert (cy["attended_ms"], cy["inferred"], cy["attendance_percent"], cy["present"]) == (
        600_000,
        True,
        16.7,
        False,
    )
    assert cy["segments"][0]["leftAt"] == iso_ms(at(60)) and cy["segments"][0]["inferred"] is True


def test_live_session_leaves_open_segments_and_null_percent(Db: sessionmaker[Session]) -> None:
    room_id = make_room(Db)
    fold(Db, room_id, [[start("m-live", 0), join("m-live", "a1", 5, name="Ann")]])
    summary, people = report(Db, "m-live")
    assert summary["status"] == SessionStatus.LIVE and summary["ended_at"] is None
    assert people[0]["segments"][0]["leftAt"] is None
    assert people[0]["attendance_percent"] is None and people[0]["present"] is None


def test_end_that_arrives_in_a_later_batch_recomputes_everyone(Db: sessionmaker[Session]) -> None:
    room_id = make_room(Db)
    fold(
        Db,
        room_id,
        [
            [
                start("m-late", 0),
                join("m-late", "a1", 0, name="Ann"),
                join("m-late", "b1", 30, name="Bo"),
                leave("m-late", "b1", 45, name="Bo"),
            ],
            [end("m-late", 60)],
        ],
    )
    _, people = report(Db, "m-late")
    assert [(p["name"], p["attended_ms"], p["attendance_percent"]) for p in people] == [
        ("Ann", 3_600_000, 100.0),
        ("Bo", 900_000, 25.0),
    ]


def test_delivery_after_final_folds_in_as_an_amendment(Db: sessionmaker[Session]) -> None:
    room_id = make_room(Db)
    fold(Db, room_id, [[start("m-fin", 0), join("m-fin", "a1", 0, name="Ann"), end("m-fin", 10)]])
    with Db.begin() as db:
        meeting_id = db.scalars(select(MeetingSession.id)).one()
        assert finalize(db, meeting_id, at(10) + timedelta(seconds=119), 120) is False
        assert finalize(db, meeting_id, at(10) + timedelta(seconds=120), 120) is True
    late_id = store(Db, room_id, *leave("m-fin", "a1", 5, name="Ann"))
    with Db.begin() as db:
        outcome = fold_batch(db, room_id, inbox.unprocessed_of(db, [delivered(late_id)]), RULES)
        assert db.get_one(Delivery, late_id).status_reason == AMENDMENT
        assert outcome.amended_session_ids == {meeting_id}
    summary, people = report(Db, "m-fin")
    assert summary["status"] == SessionStatus.FINAL
    assert people[0]["attended_ms"] == 300_000


def test_sweeper_closes_a_session_at_its_latest_leave(Db: sessionmaker[Session]) -> None:
    room_id = make_room(Db)
    fold(
        Db,
        room_id,
        [
            [
                join("m-stale", "a1", 0, name="Ann"),
                leave("m-stale", "a1", 20, name="Ann"),
                join("m-stale", "b1", 5, name="Bo"),
            ]
        ],
    )
    with Db.begin() as db:
        assert stale_sessions(db, at(20) + timedelta(hours=5), 6 * 3600) == []
    assert sweep(Db, at(20) + timedelta(hours=6, seconds=1)) == ["m-stale"]
    summary, people = report(Db, "m-stale")
    assert summary["status"] == SessionStatus.ENDED and summary["inferred"] is True
    assert summary["started_at"] == at(0) and summary["ended_at"] == at(20)
    assert [(p["name"], p["attended_ms"], p["inferred"]) for p in people] == [
        ("Ann", 1_200_000, False),
        ("Bo", 900_000, True),
    ]


def test_events_without_meeting_session_id_join_the_open_session(Db: sessionmaker[Session]) -> None:
    room_id = make_room(Db)
    fold(Db, room_id, [[start("m-open", 0)], [join("", "a1", 3, name="Ann"), leave("", "a1", 9, name="Ann")]])
    _, people = report(Db, "m-open")
    assert [(p["name"], p["attended_ms"]) for p in people] == [("Ann", 360_000)]
    assert people[0]["segments"][0]["joinedAt"] == iso_ms(at(3))


def test_unnamed_meetings_are_told_apart_whichever_comes_first(Db: sessionmaker[Session]) -> None:
    first = [start("", 0), join("", "a1", 5, name="Ann"), leave("", "a1", 25, name="Ann"), end("", 30)]
    second = [start("", 60), join("", "b1", 65, name="Bo"), leave("", "b1", 85, name="Bo"), end("", 90)]
    people = first[1:3] + second[1:3]
    marks = [first[0], first[3], second[0], second[3]]
    for order in (
        [first + second],
        [people, marks],
        [people[::-1], marks[::-1]],
        [[e] for e in people + marks],
    ):
        room_id = make_room(Db)
        fold(Db, room_id, order)
        with Db() as db:
            rows = db.execute(
                select(MeetingSession.meeting_session_id, AttendanceRow.name, AttendanceRow.attended_ms)
                .join(AttendanceRow, AttendanceRow.session_id == MeetingSession.id)
                .where(MeetingSession.room_id == room_id)
                .order_by(MeetingSession.meeting_session_id)
            ).all()
            sessions = db.scalars(
                select(MeetingSession.status).where(MeetingSession.room_id == room_id)
            ).all()
        assert [tuple(row) for row in rows] == [
            (f"room-{room_id}-20260302T090000.000Z", "Ann", 1_200_000),
            (f"room-{room_id}-20260302T100000.000Z", "Bo", 1_200_000),
        ]
        assert sessions == [SessionStatus.ENDED, SessionStatus.ENDED]


def test_after_the_sweeper_closes_an_unnamed_meeting_the_next_one_is_new(Db: sessionmaker[Session]) -> None:
    room_id = make_room(Db)
    fold(Db, room_id, [[join("", "a1", 0, name="Ann"), leave("", "a1", 20, name="Ann")]])
    assert sweep(Db, at(20) + timedelta(hours=6, seconds=1)) == [f"room-{room_id}-first"]
    # The next day's meeting, and a late leave of the first one's, each go where they belong.
    fold(Db, room_id, [[join("", "b1", 24 * 60, name="Bo"), leave("", "a2", 15, joinTime=iso_ms(at(10)))]])
    with Db() as db:
        people = db.execute(
            select(MeetingSession.meeting_session_id, AttendanceRow.participant_key)
            .join(AttendanceRow, AttendanceRow.session_id == MeetingSession.id)
            .where(MeetingSession.room_id == room_id)
            .order_by(MeetingSession.id, AttendanceRow.participant_key)
        ).all()
    assert [tuple(row) for row in people] == [
        (f"room-{room_id}-first", "name:Ann"),
        (f"room-{room_id}-first", "ps:a2"),
        (f"room-{room_id}-after-20260302T092000.000Z", "name:Bo"),
    ]


def sessions_and_people(Db: sessionmaker[Session], room_id: int) -> dict[str, list[str]]:
    """Map each of the room's sessions to the keys of the people in it."""
    with Db() as db:
        rows = db.execute(
            select(MeetingSession.meeting_session_id, AttendanceRow.participant_key)
            .outerjoin(AttendanceRow, AttendanceRow.session_id == MeetingSession.id)
            .where(MeetingSession.room_id == room_id)
            .order_by(AttendanceRow.participant_key)
        ).all()
    people: dict[str, list[str]] = {}
    for name, key in rows:
        people.setdefault(name, []).extend([key] if key else [])
    return people


def test_a_late_sweeper_fold_does_not_move_the_cut_it_made(Db: sessionmaker[Session]) -> None:
    room_id = make_room(Db)
    fold(Db, room_id, [[join("", "a1", 0, name="Ann"), leave("", "a1", 20, name="Ann")]])
    assert sweep(Db, at(20) + timedelta(hours=6, seconds=1)) == [f"room-{room_id}-first"]
    fold(Db, room_id, [[join("", "b1", 30, name="Bo")]])
    # A late leave of the first meeting, reporting its join: it goes to the first, and leaves the cut at 20.
    fold(Db, room_id, [[leave("", "c1", 40, name="Cy", joinTime=iso_ms(at(10)))]])
    fold(Db, room_id, [[join("", "d1", 35, name="Dee")]])
    assert sessions_and_people(Db, room_id) == {
        f"room-{room_id}-first": ["name:Ann", "name:Cy"],
        f"room-{room_id}-after-20260302T092000.000Z": ["name:Bo", "name:Dee"],
    }


def test_a_replayed_delivery_regrouped_in_the_same_batch_leaves_no_copy_behind(
    Db: sessionmaker[Session],
) -> None:
    room_id = make_room(Db)
    fold(Db, room_id, [[join("", "a1", 5, name="Ann")]])
    with Db.begin() as db:
        inbox.reset_for_replay(db, db.scalars(select(Delivery.id).where(Delivery.room_id == room_id)).one())
    store(Db, room_id, *start("", 0))  # the room's start arrives before the replay is drained
    with Db.begin() as db:
        fold_batch(db, room_id, inbox.unprocessed(db, room_id, 1000), RULES)
    assert sessions_and_people(Db, room_id) == {f"room-{room_id}-20260302T090000.000Z": ["name:Ann"]}


def test_a_late_start_renames_a_final_notified_meeting_instead_of_making_a_second(
    Db: sessionmaker[Session],
) -> None:
    room_id = make_room(Db)
    fold(Db, room_id, [[join("", "a1", 5, name="Ann"), leave("", "a1", 25, name="Ann"), end("", 30)]])
    with Db.begin() as db:
        first = db.scalars(select(MeetingSession).where(MeetingSession.room_id == room_id)).one()
        first_id = first.id
        assert finalize(db, first_id, at(30) + timedelta(days=1), 120)
        db.add(Notification(session_id=first_id, recipient="org@x.io", kind="summary", message_id="m1"))
    with Db.begin() as db:  # the delayed start arrives after the summary went out
        late_id = store(Db, room_id, *start("", 0))
        outcome = fold_batch(db, room_id, inbox.unprocessed_of(db, [delivered(late_id)]), RULES)
        assert db.get_one(Delivery, late_id).status_reason == AMENDMENT
    with Db() as db:
        meeting = db.scalars(select(MeetingSession).where(MeetingSession.room_id == room_id)).one()
        facts = (
            meeting.id,
            meeting.meeting_session_id,
            meeting.status,
            meeting.started_at,
            meeting.participant_count,
        )
        causes = db.scalars(select(SessionChange.cause).where(SessionChange.session_id == first_id)).all()
    assert facts == (first_id, f"room-{room_id}-20260302T090000.000Z", SessionStatus.FINAL, at(0), 1)
    assert outcome.amended_session_ids == {first_id} and outcome.finalize_due == {}
    assert causes[-1] == "regroup"


def test_a_late_named_end_renames_the_unnamed_meeting_and_keeps_the_history_of_its_fold(
    Db: sessionmaker[Session],
) -> None:
    # The end makes a session "m-named" in its fold, then the regroup gives that name to the older unnamed
    # session and deletes the new one: the end's history must move with it, and no finalize be left for it.
    room_id = make_room(Db)
    fold(Db, room_id, [[join("", "a1", 5, name="Ann"), leave("", "a1", 25, name="Ann")]])
    with Db.begin() as db:
        first_id = db.scalars(select(MeetingSession.id).where(MeetingSession.room_id == room_id)).one()
        late_id = store(Db, room_id, *end("m-named", 30))
        outcome = fold_batch(db, room_id, inbox.unprocessed_of(db, [delivered(late_id)]), RULES)
    with Db() as db:
        sessions = db.execute(select(MeetingSession.id, MeetingSession.meeting_session_id)).all()
        folded = db.scalars(
            select(SessionChange.delivery_ids).where(SessionChange.session_id == first_id)
        ).all()
    assert sessions == [(first_id, "m-named")]
    assert set(outcome.finalize_due) == {first_id}
    assert any(late_id in ids for ids in folded)


def test_a_start_naming_another_rooms_session_names_no_stretch_here(Db: sessionmaker[Session]) -> None:
    other = make_room(Db)
    fold(Db, other, [[start("m-theirs", 0)]])
    room_id = make_room(Db)
    fold(Db, room_id, [[join("", "a1", 5, name="Ann"), start("m-theirs", 0), end("", 60)]])
    with Db() as db:
        outcomes = db.execute(
            select(Delivery.event, Delivery.status).where(Delivery.room_id == room_id).order_by(Delivery.id)
        ).all()
    assert [tuple(row) for row in outcomes] == [
        ("participant-joined", "processed"),
        ("meeting-started", "failed"),
        ("meeting-ended", "processed"),
    ]
    assert sessions_and_people(Db, room_id) == {f"room-{room_id}-first": ["name:Ann"]}


def test_a_session_that_loses_its_end_to_a_late_start_is_live_again(Db: sessionmaker[Session]) -> None:
    room_id = make_room(Db)
    fold(Db, room_id, [[join("", "a1", 5, name="Ann"), leave("", "a1", 25, name="Ann"), end("", 30)]])
    fold(Db, room_id, [[start("", 10)]])  # the end, and the leave, belong to the meeting that starts at 10
    with Db() as db:
        first = db.scalars(
            select(MeetingSession).where(MeetingSession.meeting_session_id == f"room-{room_id}-first")
        ).one()
    assert (first.status, first.reported_end, first.end_received_at) == (SessionStatus.LIVE, None, None)


def test_a_regroup_records_who_left_a_session_with_their_deliveries(Db: sessionmaker[Session]) -> None:
    room_id = make_room(Db)
    fold(
        Db,
        room_id,
        [[join("", "a1", 5, name="Ann"), join("", "b1", 15, name="Bo"), leave("", "b1", 25, name="Bo")]],
    )
    fold(Db, room_id, [[start("", 10)]])  # Bo's join and leave belong to the meeting that starts at 10
    with Db() as db:
        first_id = db.scalars(
            select(MeetingSession.id).where(MeetingSession.meeting_session_id == f"room-{room_id}-first")
        ).one()
        last = db.scalars(
            select(SessionChange)
            .where(SessionChange.session_id == first_id)
            .order_by(SessionChange.id.desc())
        ).first()
    assert last is not None and last.cause == "regroup"
    assert {"participantKey": "name:Bo", "removed": True} in last.people


def test_back_to_back_unnamed_meetings_are_told_apart(Db: sessionmaker[Session]) -> None:
    room_id = make_room(Db)
    a = [start("", 0), join("", "a1", 5, name="Ann"), leave("", "a1", 60, name="Ann"), end("", 60)]
    b = [start("", 60), join("", "b1", 60, name="Bo"), leave("", "b1", 85, name="Bo"), end("", 120)]
    fold(Db, room_id, [b + a])
    assert sessions_and_people(Db, room_id) == {
        f"room-{room_id}-20260302T090000.000Z": ["name:Ann"],
        f"room-{room_id}-20260302T100000.000Z": ["name:Bo"],
    }


def test_rebuild_gives_the_same_answer(Db: sessionmaker[Session]) -> None:
    room_id = make_room(Db, min_percent=75)
    events = [
        start("m-rb", 0),
        join("m-rb", "a1", 0, name="Ann"),
        leave("m-rb", "a1", 50, name="Ann"),
        join("m-rb", "b1", 20, externalUserId="u2"),
        end("m-rb", 60),
    ]
    fold(Db, room_id, [events[:2], events[2:]])
    before = report(Db, "m-rb")
    with Db.begin() as db:
        meeting = db.scalars(select(MeetingSession)).one()
        rebuild(db, meeting)
    assert report(Db, "m-rb") == before


# --- order independence, checked against the pure core --------------------------------------------------

People = st.lists(
    st.tuples(
        st.sampled_from(
            [
                {"externalUserId": "u1"},
                {"email": "P@x.io"},
                {"email": "p@X.io"},
                {"name": "Dee"},
                {"name": "Eve"},
                {},
            ]
        ),
        st.lists(
            st.tuples(
                st.integers(0, 110),
                st.integers(0, 40),
                st.booleans(),
                st.booleans(),
                st.sampled_from([None, False, True]),  # the isAdmin its join says
                st.sampled_from([None, False, True]),  # the isAdmin its leave says
            ),
            min_size=1,
            max_size=3,
        ),
    ),
    min_size=1,
    max_size=5,
)


def meeting_events(msid: str, people: list[Any], has_start: bool, end_minute: int | None) -> list[Any]:
    events: list[Any] = [start(msid, 0)] if has_start else []
    for person_index, (who, stays) in enumerate(people):
        for stay_index, (joined, length, join_seen, leave_seen, join_admin, leave_admin) in enumerate(stays):
            psid = f"p{person_index}s{stay_index}"
            if join_seen or not leave_seen:
                events.append(join(msid, psid, joined, isAdmin=join_admin, **who))
            if leave_seen:
                events.append(leave(msid, psid, joined + length, isAdmin=leave_admin, **who))
    if end_minute is not None:
        events.append(end(msid, end_minute))
    return events


def pure_result(events: list[Any], min_percent: float | None) -> Any:
    starts = [r for e, p, r in events if e == "meeting-started"]
    ends = [r for e, p, r in events if e == "meeting-ended"]
    facts = []
    for event, payload, when in events:
        if event.startswith("participant"):
            identity = Identity(payload.get("externalUserId"), payload.get("email"), payload.get("name"))
            joined = when if event == "participant-joined" else reported_join(payload)
            left = when if event == "participant-left" else None
            psid, is_admin = payload["participantSessionId"], payload.get("isAdmin")
            facts.append(SegmentFacts(psid, joined, left, identity, is_admin))
    return compute_session(
        min(starts, default=None),
        max(ends, default=None),
        facts,
        AttendanceRules(30_000, min_percent),
        fallback_start=min(r for _, _, r in events),
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    people=People,
    has_start=st.booleans(),
    end_minute=st.one_of(st.none(), st.integers(60, 160)),
    order=st.randoms(use_true_random=False),
    batch_size=st.integers(1, 7),
    duplicates=st.integers(0, 4),
)
def test_any_order_batching_and_duplication_gives_the_pure_result(
    Db: sessionmaker[Session],
    people: list[Any],
    has_start: bool,
    end_minute: int | None,
    order: Any,
    batch_size: int,
    duplicates: int,
) -> None:
    room_id = make_room(Db, min_percent=40)
    msid = f"m-{uuid.uuid4().hex}"
    events = meeting_events(msid, people, has_start, end_minute)
    shuffled = events + [order.choice(events) for _ in range(duplicates)]
    order.shuffle(shuffled)
    fold(Db, room_id, [shuffled[i : i + batch_size] for i in range(0, len(shuffled), batch_size)])
    assert_folded_as_pure(Db, msid, events, 40)


def assert_folded_as_pure(
    Db: sessionmaker[Session], msid: str, events: list[Any], min_percent: float
) -> None:
    """The stored session equals the pure computation over `events`, and so does a rebuild of it."""
    summary, stored = report(Db, msid)
    expected = pure_result(events, min_percent)
    assert summary["started_at"] == expected.bounds.started_at
    assert summary["ended_at"] == expected.bounds.ended_at
    assert summary["participant_count"] == expected.participant_count
    assert summary["peak_concurrency"] == expected.peak_concurrency
    assert [
        (
            p["participant_key"],
            p["attended_ms"] / 1000,
            p["attendance_percent"],
            p["join_count"],
            p["present"],
            p["inferred"],
            p["is_host"],
        )
        for p in stored
    ] == [
        (
            a.participant_key,
            a.attended_seconds,
            a.attendance_percent,
            a.join_count,
            a.present,
            a.inferred,
            a.is_host,
        )
        for a in expected.attendance
    ]
    # The bulk rebuild from the raw deliveries must land on exactly the same rows.
    with Db.begin() as db:
        rebuild(db, db.scalars(select(MeetingSession).where(MeetingSession.meeting_session_id == msid)).one())
    assert report(Db, msid) == (summary, stored)


# --- deliveries that name no meeting session, in a room that holds several meetings ---------------------

Meetings = st.lists(
    st.tuples(
        st.booleans(),  # its start was delivered
        st.booleans(),  # its end was delivered
        st.booleans(),  # its start names the meeting session (the joins and leaves never do)
        st.booleans(),  # it starts the very ms the meeting before it ends
        st.lists(
            st.tuples(st.integers(0, 59), st.integers(1, 10), st.booleans(), st.booleans()),
            min_size=1,
            max_size=4,
        ),
    ),
    min_size=1,
    max_size=3,
)


def unnamed_meetings(meetings: list[Any]) -> list[Any]:
    """Meetings of 60 minutes in one room, an hour apart or back to back; joins and leaves name none."""
    events: list[Any] = []
    base, run = 0, uuid.uuid4().hex[:8]  # meeting session ids are global: each example has its own
    for index, (has_start, has_end, named, back_to_back, stays) in enumerate(meetings):
        base += 0 if index == 0 else 60 if back_to_back else 120
        events += [start(f"m{index}-{run}" if named else "", base)] if has_start else []
        for stay, (joined, length, leave_seen, leave_says_join) in enumerate(stays):
            psid, who = f"m{index}p{stay}", {"name": f"N{stay % 3}"}
            events.append(join("", psid, base + joined, **who))
            if leave_seen:
                join_time = {"joinTime": iso_ms(at(base + joined))} if leave_says_join else {}
                events.append(leave("", psid, min(base + joined + length, base + 60), **who, **join_time))
        events += [end("", base + 60)] if has_end else []
    return events


def reported_join(payload: dict[str, Any]) -> datetime | None:
    """Return the join time a leave's body reports, if any."""
    return datetime.fromisoformat(payload["joinTime"]) if "joinTime" in payload else None


def split_by_timeline(room_id: int, events: list[Any]) -> dict[str, list[Any]]:
    """Group events by the meeting the pure room timeline gives each."""
    marks = [
        Mark(event, when, body.get("meetingSessionId"))
        for event, body, when in events
        if event in (START, END)
    ]
    timeline = Timeline(room_id, marks)
    groups: dict[str, list[Any]] = {}
    for event, body, when in events:
        at = place(event, when, when if event == JOIN else reported_join(body))
        groups.setdefault(timeline.meeting_at(at), []).append((event, body, when))
    return groups


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    meetings=Meetings,
    order=st.randoms(use_true_random=False),
    batch_size=st.integers(1, 6),
    duplicates=st.integers(0, 3),
)
def test_unnamed_deliveries_of_several_meetings_land_the_same_in_any_order(
    Db: sessionmaker[Session], meetings: list[Any], order: Any, batch_size: int, duplicates: int
) -> None:
    room_id = make_room(Db, min_percent=40)
    events = unnamed_meetings(meetings)
    shuffled = events + [order.choice(events) for _ in range(duplicates)]
    order.shuffle(shuffled)
    fold(Db, room_id, [shuffled[i : i + batch_size] for i in range(0, len(shuffled), batch_size)])
    groups = split_by_timeline(room_id, events)
    with Db() as db:
        stored = set(
            db.scalars(select(MeetingSession.meeting_session_id).where(MeetingSession.room_id == room_id))
        )
    assert stored == set(groups)
    for msid, group in groups.items():
        assert_folded_as_pure(Db, msid, group, 40)
    if all(has_start and has_end for has_start, has_end, *_ in meetings):
        assert len(groups) == len(meetings)  # every meeting delivered its start and end: told apart
