"""`flask --app wsgi demo`: the whole loop on embedded defaults, end to end, leaving nothing running.

It serves the Metered emulator from a thread, migrates a fresh SQLite file (DATABASE_URL when set), uses an
embedded redis-server (REDIS_URL when set), starts gunicorn and `python -m workers` (whose RQ scheduler
runs the finalize job) as children, creates a room and its roster through the API, plays three weekly
meetings (devtools.demo_series) through the room's webhook URLs, waits for them to be final and prints the
latest one's attendance and the series. The command and its options are declared in webhooks/cli.py,
which imports this module only when the demo runs.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import click
import httpx

from devtools.demo_meeting import attendance_table
from devtools.demo_processes import HINT, Children, DemoFailed, Emulator, free_port, serve_emulator
from devtools.demo_series import NEVER_COME, WEEKS, roster_csv, series_table, weekly_meetings
from devtools.emulator_meeting import play_meeting
from devtools.emulator_state import emulator_state
from workers.runtime import connections, migrate
from workers.runtime.settings import Settings

FINALIZE_AFTER_SECONDS = 3
# The demo never mails or notifies anyone and talks to the emulator only, whatever the environment says.
NOT_INHERITED = ("SMTP_URL", "MAIL_FROM", "NOTIFY_WEBHOOK_URL", "NOTIFY_WEBHOOK_SECRET", "METERED_APP_NAME")


def run_demo(settings: Settings, people: int, port: int, keep_running: bool) -> None:
    """Run the whole loop on embedded defaults; print the latest meeting's attendance and the series."""
    for name in ("werkzeug", "httpx"):  # their per-request lines would bury the progress
        logging.getLogger(name).setLevel(logging.WARNING)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    children = Children(Path(tempfile.mkdtemp(prefix="rollcall-demo-")))
    try:
        with serve_emulator() as emulator:
            try:
                _run(settings, emulator, children, people, port or free_port())
                if keep_running:
                    _serve_until_interrupted(children)
            finally:
                for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                    signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
                children.stop()
    except KeyboardInterrupt:
        click.echo("\nInterrupted: every process the demo started has been stopped.", err=True)
        shutil.rmtree(children.folder, ignore_errors=True)
        raise SystemExit(130) from None
    except Exception as error:
        _explain(error, children)
        raise SystemExit(1) from None
    shutil.rmtree(children.folder, ignore_errors=True)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwind through the cleanup, as Ctrl-C does


def _run(settings: Settings, emulator: Emulator, children: Children, people: int, port: int) -> None:
    began, base_url, token = time.monotonic(), f"http://127.0.0.1:{port}", secrets.token_urlsafe(18)
    _step(1, f"Metered emulator at {emulator.url} (in this process)")
    env = _child_env(settings, children.folder, emulator, base_url, token)
    _step(2, "Redis: " + ("REDIS_URL" if settings.redis_url else f"embedded, {env['REDIS_URL']}"))
    _step(3, "database: " + ("DATABASE_URL" if settings.database_url else env["DATABASE_URL"]))
    migrate.upgrade(env["DATABASE_URL"])
    web = children.start("web server", _gunicorn(port), env)
    _step(4, f"web server at {base_url}: gunicorn pid {web.pid}, log {children.log_of('web server')}")
    worker = children.start("worker", [sys.executable, "-m", "workers"], env)
    _step(5, f"worker, with RQ's scheduler: pid {worker.pid}, log {children.log_of('worker')}")
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as api:
        _wait_ready(api, children)
        room = _create_room(api, children, people)
        meeting_ids, first_start = _play(emulator_state(emulator.app).rooms[room], people, children)
        click.echo("\n".join(attendance_table(_wait_final(api, children, meeting_ids))))
        span = {"from": first_start.isoformat(), "to": datetime.now(UTC).isoformat()}
        series = _expect(200, api.get(f"/api/rooms/{room}/series", params=span), children)
        click.echo("\n".join(series_table(series.json())))
    meeting_id = meeting_ids[-1]
    page = httpx.get(f"{base_url}/sessions/{meeting_id}", auth=("demo", token), timeout=10)
    if page.status_code != 200:
        raise DemoFailed(f"the HTML page answered {page.status_code}", children.log_of("web server"))
    click.echo(f"\nHTML page: {base_url}/sessions/{meeting_id}")
    click.echo(f"  log in with any user name and the password {token}")
    click.echo(f"Done in {time.monotonic() - began:.1f} s.")


def _step(number: int, text: str) -> None:
    click.echo(f"[{number}/9] {text}")


def _child_env(settings: Settings, folder: Path, emulator: Emulator, base: str, token: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in NOT_INHERITED}
    env.update(
        DATABASE_URL=settings.database_url or f"sqlite:///{folder / 'rollcall.sqlite'}",
        REDIS_URL=settings.redis_url or connections.embedded_url(connections.embedded_redis()),
        METERED_API_URL=f"{emulator.url}/api/v1",
        METERED_SECRET_KEY=emulator.secret,
        PUBLIC_BASE_URL=base,
        API_TOKEN=token,
        FINALIZE_AFTER_SECONDS=str(FINALIZE_AFTER_SECONDS),
        RECONNECT_GRACE_SECONDS="30",  # the grace the meeting's reconnects are written for
        PYTHONUNBUFFERED="1",
    )
    return env


def _gunicorn(port: int) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--threads", "4",
            "--graceful-timeout", "3", "--access-logfile", "-", "wsgi:app"]  # fmt: skip


def _wait_ready(api: httpx.Client, children: Children, timeout: float = 30) -> None:
    _step(6, "waiting for the web server's /readyz")
    began, answer = time.monotonic(), "no answer"
    while time.monotonic() - began < timeout:
        children.check()
        with suppress(httpx.TransportError):
            response = api.get("/readyz")
            if response.status_code == 200:
                click.echo(f"      ready after {time.monotonic() - began:.1f} s")
                return
            answer = f"{response.status_code} {response.text[:200]}"  # 503 names what is unreachable
        time.sleep(0.2)
    raise DemoFailed(
        f"/readyz did not answer 200 in {timeout:.0f} s: {answer}", children.log_of("web server")
    )


def _create_room(api: httpx.Client, children: Children, people: int) -> str:
    name = f"demo-{secrets.token_hex(3)}"
    _step(7, f"creating the room {name} and its roster through the API")
    options = {"minAttendancePercent": 50, "lateAfterSeconds": 300, "earlyLeaveSeconds": 600}
    click.echo(
        "      present: attended 50 % or more; late: joined after 5:00; left early: 10 min before the end"
    )
    _expect(201, api.post("/api/rooms", json={"roomName": name, **options}), children)
    # From a month back, so that it is in force when every meeting of the series began.
    since = (datetime.now(UTC) - timedelta(weeks=WEEKS + 1)).isoformat()
    imported = api.post(
        f"/api/rooms/{name}/roster/import",
        params={"effectiveFrom": since},
        content=roster_csv(people),
        headers={"Content-Type": "text/csv"},
    )
    never = " and ".join(person["name"] for person in NEVER_COME)
    click.echo(f"      roster: {_expect(200, imported, children).json()['added']} people; {never} never come")
    return name


def _expect(status: int, response: httpx.Response, children: Children) -> httpx.Response:
    if response.status_code != status:
        detail = f"{response.request.method} {response.request.url.path} answered {response.status_code}"
        raise DemoFailed(f"{detail}: {response.text[:300]}", children.log_of("web server"))
    return response


def _play(room: dict[str, Any], people: int, children: Children) -> tuple[list[str], datetime]:
    meeting_ids = [secrets.token_hex(12) for _ in range(WEEKS)]
    latest_start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    scripts = weekly_meetings(people, latest_start, meeting_ids)
    webhooks = sum(map(len, scripts))
    _step(8, f"playing {WEEKS} weekly hour-long meetings of up to {people} people: {webhooks} webhooks")
    statuses = Counter(delivery.status for steps in scripts for delivery in play_meeting(room, steps))
    refused = {status: count for status, count in statuses.items() if status not in (200, 202)}
    if refused:
        raise DemoFailed(f"deliveries refused (status: count): {refused}", children.log_of("web server"))
    late = sum(bool(step.get("reorder")) for steps in scripts for step in steps)
    click.echo(f"      {statuses[202]} accepted (202), {statuses[200]} duplicates (200), {late} out of order")
    return meeting_ids, latest_start - timedelta(weeks=WEEKS - 1)


def _wait_final(api: httpx.Client, children: Children, meeting_ids: list[str], timeout: float = 60) -> Any:
    """Wait until every meeting is final; return the latest one's session answer."""
    _step(9, f"waiting for the worker: it folds, then finalizes {FINALIZE_AFTER_SECONDS} s after each end")
    began, seen, noted = time.monotonic(), "", 0.0
    while (elapsed := time.monotonic() - began) < timeout:
        children.check()
        answers = [api.get(f"/api/sessions/{meeting_id}") for meeting_id in meeting_ids]
        statuses = [a.json()["status"] if a.status_code == 200 else "not folded yet" for a in answers]
        status = ", ".join(statuses)
        if status != seen or elapsed - noted >= 5:
            click.echo(f"      {elapsed:4.1f} s: {status}")
            seen, noted = status, elapsed
        if set(statuses) == {"final"}:
            return answers[-1].json()
        time.sleep(0.3)
    hint = "The worker folds the deliveries and its RQ scheduler runs the finalize job: see its log."
    raise DemoFailed(f"the sessions were still {seen} after {timeout:.0f} s", children.log_of("worker"), hint)


def _serve_until_interrupted(children: Children) -> None:
    click.echo("\nThe web server and worker keep running; press Ctrl-C to stop them.")
    with suppress(KeyboardInterrupt):
        while True:
            children.check()
            time.sleep(1)


def _explain(error: Exception, children: Children) -> None:
    if not isinstance(error, DemoFailed):  # not a failure the demo foresaw: show where it came from
        traceback.print_exc()
    click.echo(f"\nThe demo failed at the step above: {error}", err=True)
    log = error.log if isinstance(error, DemoFailed) else None
    if log is not None and log.exists():
        click.echo(f"The last lines of {log}:", err=True)
        for line in log.read_text(errors="replace").splitlines()[-15:]:
            click.echo(f"  | {line}", err=True)
    click.echo(f"Every process it started has been stopped; their logs are in {children.folder}", err=True)
    click.echo(error.hint if isinstance(error, DemoFailed) else HINT, err=True)
