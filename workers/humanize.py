"""How people read Rollcall's figures: in emails and on the HTML pages alike (times: workers.timefmt)."""

from __future__ import annotations


def span_text(seconds: float | None) -> str:
    """Format a duration as e.g. 1h 02m 05s, or a dash."""
    if seconds is None:
        return "-"
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def percent_text(value: float | None) -> str:
    """Format a percentage with one decimal, or a dash (a live session has none yet)."""
    return "-" if value is None else f"{value:.1f}%"


def yes_no(value: bool | None) -> str:
    """Format a flag as yes or no, or a dash when it is not known yet."""
    return "-" if value is None else "yes" if value else "no"
