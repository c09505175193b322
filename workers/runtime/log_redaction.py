"""Runtime: one redaction for every log line a process writes: no configured secret, room token, URL
credential or participant key in a path.

Installed as the logging record factory, so it covers every logger and every handler at once (the app's,
the worker's, gunicorn's access and error logs, Werkzeug's, httpx's), including handlers added later:
a record is cleaned when it is made, before any filter or formatter sees it.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit

from workers.runtime.settings import Settings

REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 4  # shorter values would blank ordinary words

# A path separator however it is spelled: doubled or backslashed, with dot segments.
_SEP = r"(?:[/\\]+\.)*[/\\]+"
# A webhook path, in any case and spelling. It is matched after percent-decoding, so `%2F` and `%61`
# spellings are caught too.
_HOOK_TOKEN = re.compile(rf"(hooks{_SEP}metered{_SEP})[^/\\?#\s\"']+", re.IGNORECASE)
# A path that names a person by their participant key (which may hold slashes): the key is masked, the
# route kept. /api/people/{key}/erase|attendance, /api/sessions/{id}/people/{key}/status, and
# /api/rooms/{room}/roster/{key} (not its history or import).
_PERSON_KEY = re.compile(
    rf"(api{_SEP}(?:sessions{_SEP}[^?#]+?{_SEP})?people{_SEP})[^?#]+?"
    rf"((?:{_SEP}(?:erase|attendance|status))?[/\\]*(?:[?#].*)?)$"
    "|"
    rf"(api{_SEP}rooms{_SEP}[^/\\?#]+{_SEP}roster{_SEP})(?!(?:history|import)[/\\]*(?:[?#]|$))[^?#]+?"
    r"([/\\]*(?:[?#].*)?)$",
    re.IGNORECASE,
)
# Only the words that could spell such a path: they name hooks, people or a roster, or hold a percent-escape.
_PATH_WORD = re.compile(r"(?<![^\s\"'<>])[^\s\"'<>]*?(?:hooks|people|roster|%)[^\s\"'<>]*", re.IGNORECASE)
_URL_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/@\s\"'<>]+@", re.IGNORECASE)
# The query of an absolute URL (an outbound call: its query is the caller's secret), and any query
# parameter whose name says it holds a credential, wherever it appears.
_URL_QUERY = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s\"'<>?#]*\?)([^\s\"'<>#]+)", re.IGNORECASE)
_QUERY_VALUE = re.compile(r"([^&=;]+=)[^&;]*")
_SECRET_PARAMETER = re.compile(
    r"([?&;](?:[\w.-]*?)(?:secret|token|key|password|passwd|sig|signature|auth|credential)[\w.-]*=)"
    r"[^&;\s\"'<>#]*",
    re.IGNORECASE,
)


class Redactor:
    """Blanks every known secret, room token and URL credential out of a text."""

    def __init__(self) -> None:
        self._secrets: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def add_secrets(self, values: Iterable[str]) -> None:
        """Blank these values (and their URL-encoded spellings) from now on."""
        spellings = {form for value in values for form in _spellings(value)}
        with self._lock:  # longest first, so a secret containing another is blanked whole
            self._secrets = tuple(sorted(spellings | set(self._secrets), key=len, reverse=True))

    def redact(self, text: str) -> str:
        """Return `text` with every secret, room token, URL credential and person key in a path blanked."""
        lowered = text.lower()
        if "%" in text or "hooks" in lowered or "people" in lowered or "roster" in lowered:
            text = _PATH_WORD.sub(_path_redacted, text)
        if "://" in text:
            text = _URL_USERINFO.sub(rf"\1{REDACTED}@", text)
            text = _URL_QUERY.sub(lambda m: m.group(1) + _QUERY_VALUE.sub(rf"\1{REDACTED}", m.group(2)), text)
        text = _SECRET_PARAMETER.sub(rf"\1{REDACTED}", text)
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def clean(self, record: logging.LogRecord) -> None:
        """Replace a record's message, exception and stack text with their redacted forms."""
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep the pieces, never the arguments unredacted
            message = f"{record.msg} {record.args}"
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)


REDACTOR = Redactor()
_install_lock = threading.Lock()
_installed = False


def install_log_redaction(settings: Settings, *extra_secrets: str) -> Redactor:
    """Redact every log record this process makes from now on; the settings' secrets are blanked too.

    Call it once at the start of each process (the web app, the worker, gunicorn's master); calling it
    again adds the new settings' secrets.
    """
    global _installed
    REDACTOR.add_secrets([*secret_values(settings), *extra_secrets])
    with _install_lock:
        if not _installed:
            logging.setLogRecordFactory(_redacting(logging.getLogRecordFactory()))
            _installed = True
    return REDACTOR


def _redacting(make_record: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        REDACTOR.clean(record)
        return record

    return factory


def redacted(text: str, settings: Settings) -> str:
    """Return `text` fit to store or show: the settings' secrets, room tokens and credentials blanked."""
    redactor = Redactor()
    redactor.add_secrets(secret_values(settings))
    return redactor.redact(text)


def secret_values(settings: Settings) -> list[str]:
    """Return every secret the settings hold: tokens, keys, passwords, and the credentials in URLs."""
    values = [*settings.api_tokens(), *settings.read_tokens()]
    for secret in (settings.metered_secret_key, settings.smtp_url, settings.notify_webhook_secret):
        if secret is not None:
            values.append(secret.get_secret_value())
    urls = [settings.database_url, settings.redis_url, settings.notify_webhook_url]
    if settings.smtp_url is not None:
        urls.append(settings.smtp_url.get_secret_value())
    for url in filter(None, urls):
        values.extend(_url_credentials(url))
    return [value for value in values if len(value) >= MIN_SECRET_LENGTH]


def _url_credentials(url: str) -> list[str]:
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return []
    query_values = [value for _, _, value in (pair.partition("=") for pair in parts.query.split("&"))]
    return [unquote(value) for value in [password or "", *query_values] if value]


def _spellings(value: str) -> set[str]:
    return {value, quote(value, safe=""), quote_plus(value, safe="")} - {""}


def _path_redacted(match: re.Match[str]) -> str:
    word = match.group()
    decoded = word
    for _ in range(3):  # doubly encoded spellings too
        decoded, before = unquote(decoded), decoded
        if decoded == before:
            break
    if not (_HOOK_TOKEN.search(decoded) or _PERSON_KEY.search(decoded)):
        return word
    return _PERSON_KEY.sub(_person_key_masked, _HOOK_TOKEN.sub(rf"\1{REDACTED}", decoded))


def _person_key_masked(match: re.Match[str]) -> str:
    route, rest = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), match.group(4))
    return f"{route}{REDACTED}{rest}"
