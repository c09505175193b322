"""Pseudonyms: a person's identifying values replaced in text and JSON, for erasure (workers.erasure)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from typing import Any

PSEUDONYM_PREFIX = "erased:"
MIN_INSIDE = 4


def new_pseudonym() -> str:
    """Return a fresh pseudonym: random, so that nothing about the person can be matched against it."""
    return PSEUDONYM_PREFIX + secrets.token_hex(8)


class Scrubber:
    """Replace a person's identifying values in text and JSON: their key by the new one, the rest by the
    pseudonym."""

    def __init__(self, participant_key: str, values: Iterable[str], pseudonym: str) -> None:
        self.old_key, self.new_key, self.pseudonym = participant_key, f"ext:{pseudonym}", pseudonym
        given = set(values)
        self.whole = {_folded(value) for value in given}
        # Inside longer text (a reason, a payload) values are replaced as whole words, and only from
        # MIN_INSIDE characters: "Ann" or "42" would rewrite other people's text too.
        inside = {self.old_key, *(value for value in given if len(value) >= MIN_INSIDE)}
        distinctive = sorted(inside, key=len, reverse=True)
        alternatives = "|".join(re.escape(value) for value in distinctive)
        self.inside = re.compile(rf"(?<![\w.+-])(?:{alternatives})(?![\w-])", re.IGNORECASE)

    def text(self, value: str) -> str:
        """Return `value` with the person's key and identifying values replaced (see __init__)."""
        if _folded(value) == _folded(self.old_key):
            return self.new_key
        if _folded(value) in self.whole:
            return self.pseudonym
        return self.inside.sub(self._replacement, value)

    def _replacement(self, match: re.Match[str]) -> str:
        return self.new_key if match.group().lower() == self.old_key.lower() else self.pseudonym

    def json(self, value: Any) -> Any:
        """Return a copy of a JSON value with every string in it (keys too) scrubbed."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.json(item) for item in value]
        if isinstance(value, dict):
            return {self.text(key): self.json(item) for key, item in value.items()}
        return value


def _folded(value: str) -> str:
    return " ".join(value.split()).lower()
