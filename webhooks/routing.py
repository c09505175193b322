"""The URL converter for ids that Metered chose: any text at all, one path segment when built.

Meeting session ids and participant keys come from webhooks, so they may hold `/`, `%`, spaces, non-ASCII
or line breaks. url_for percent-encodes every such character (`/` as `%2F`, so no client or proxy takes
the id apart or normalises it); the server decodes the path before routing, so the rule must match any
text, slashes and line breaks included, and leave a suffix such as `/attendance` to a longer rule.
"""

from __future__ import annotations

from urllib.parse import quote

from werkzeug.routing import BaseConverter


class AnyText(BaseConverter):
    """Match any non-empty text, `/` and line breaks included; build it percent-encoded in full."""

    part_isolating = False  # it spans slashes
    regex = "(?s:.+?)"  # (?s): "." takes line breaks too
    weight = 200  # as Werkzeug's path converter: tried after static parts and plain segments

    def to_url(self, value: str) -> str:
        return quote(value, safe="")


CONVERTERS = {"id": AnyText}
