"""`flask --app wsgi demo` as a user runs it: a real process on embedded defaults, and nothing left after.

The latest meeting's table and the series are checked for the fixed cast (devtools.demo_meeting.CAST) and
the two on the roster who never come (devtools.demo_series.NEVER_COME): the crowd around them is random.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
FLASK = Path(sys.executable).with_name("flask")
TIMEOUT_SECONDS = 120


def run_demo(cwd: Path, *options: str) -> tuple[int, str]:
    """Run the demo in a session of its own; on a timeout interrupt it (so it stops its children) and fail."""
    env = {key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "DATABASE_URL")}
    env["PYTHONPATH"] = str(PROJECT)  # wsgi.py, even where the checkout is not installed
    demo = subprocess.Popen(
        [str(FLASK), "--app", "wsgi", "demo", *options],
        cwd=cwd,  # no .env of the developer's is read
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = demo.communicate(timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(demo.pid, signal.SIGINT)
        output, _ = demo.communicate(timeout=30)
        pytest.fail(f"the demo took more than {TIMEOUT_SECONDS} s:\n{output}")
    return demo.returncode, output


def table_rows(output: str, heading: str) -> list[list[str]]:
    """Return the cells of the rows of the first table printed after a line that starts with `heading`."""
    lines = output.splitlines()
    after = next(number for number, line in enumerate(lines) if line.startswith(heading))
    first = next(number for number, line in enumerate(lines) if number > after and line.startswith("---")) + 1
    rows = lines[first : lines.index("", first)]
    return [re.split(r"\s{2,}", row) for row in rows]


def process_groups() -> set[int]:
    """Return the process group of every running process."""
    listing = subprocess.run(["ps", "-eo", "pgid="], capture_output=True, text=True, check=True).stdout
    return {int(group) for group in listing.split()}


def accepts(address: str) -> bool:
    """Return whether something accepts connections at a host:port or a unix socket path."""
    family = socket.AF_UNIX if address.startswith("/") else socket.AF_INET
    host, _, port = address.rpartition(":")
    target: str | tuple[str, int] = address if family == socket.AF_UNIX else (host, int(port))
    with socket.socket(family) as probe:
        return probe.connect_ex(target) == 0


@pytest.mark.slow
def test_the_demo_prints_the_attendance_and_the_series_and_leaves_nothing_running(tmp_path: Path) -> None:
    returncode, output = run_demo(tmp_path, "--people", "30")

    assert returncode == 0, output
    rows = table_rows(output, "Meeting ")
    assert len(rows) == 30, output
    assert len({row[1] for row in rows}) == 30  # one row per person, however many devices and reconnects
    assert {row[1].split(":")[0] for row in rows} == {"ext", "email", "name"}
    figures = {row[0]: row[2:] for row in rows}  # attended, %, joins, present, inferred, status
    # Grace joins at 10:00, after the room's 5 minutes; Alan is known by his name alone, so not on the roster.
    assert figures["Grace Hopper"] == ["45:00", "75.0", "1", "yes", "no", "late"]  # two devices at once
    assert figures["Alan Turing"] == ["30:00", "50.0", "1", "yes", "yes", "guest"]  # the leave never came
    assert figures["Ada Lovelace"] == ["59:40", "99.4", "1", "yes", "no", "present"]  # back within the grace
    assert figures["Linus Pauling"] == ["46:00", "76.7", "2", "yes", "no", "present"]  # back after it
    assert "on the roster and absent: Rosalind Franklin, Carl Gauss" in output

    # The series of three weeks: the cast does the same every week; the two never come.
    series = {row[1]: row[2:] for row in table_rows(output, "Room demo-")}  # three weeks, rate, absences
    assert series["email:grace.hopper@example.org"] == ["late", "late", "late", "100.0%", "0"]
    assert series["name:Alan Turing"] == ["guest", "guest", "guest", "-", "0"]
    assert series["email:ada.lovelace@example.org"] == ["present", "present", "present", "100.0%", "0"]
    assert series["ext:u-1003"] == ["present", "present", "present", "100.0%", "0"]
    never = ["absent", "absent", "absent", "0.0%", "3"]
    assert series["ext:u-0042"] == series["email:rosalind.franklin@example.org"] == never
    # Everyone came to the latest meeting: the series has them, and the roster's two who never did.
    assert set(series) == {row[1] for row in rows} | {"ext:u-0042", "email:rosalind.franklin@example.org"}
    page = re.search(r"HTML page: (http://127\.0\.0\.1:(\d+))/sessions/[0-9a-f]+", output)
    assert page, output
    assert "password" in output

    pids = {int(pid) for pid in re.findall(r"pid (\d+)", output)}  # the web server's and the worker's
    assert len(pids) == 2, output
    assert not pids & process_groups()  # each child led a group: none of them, nor anything they forked
    emulator = re.search(r"emulator at http://(127\.0\.0\.1:\d+)", output)
    redis = re.search(r"unix://(/\S+)\?", output)
    assert emulator and redis, output
    for address in (f"127.0.0.1:{page.group(2)}", emulator.group(1), redis.group(1)):
        assert not accepts(address), f"{address} still answers"
