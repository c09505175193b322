"""Cross-site request forgery: a page's forms carry a token, and their POSTs must come from this site.

Pages log in with HTTP Basic, which a browser sends on any request to this site, including one another
site's page makes it submit. So each form carries a token: an HMAC, keyed by the credential that loaded the
page, of what the form does and to which room. Another site can neither read it (the same-origin policy)
nor compute it without the credential; nothing is stored, the credential never leaves in clear, and the
tokens change when the credential is rotated. The Origin (else Referer) check is a second wall, and the
only one in the open demo, whose requests carry no credential.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from flask import current_app, request

from webhooks.errors import Problem

FORGED = "The form did not come from this site's page: load the page again and resubmit."


def form_token(purpose: str) -> str:
    """Return the token a form for `purpose` (e.g. roster-add:algebra) carries, for this credential."""
    credential = request.authorization.password if request.authorization else ""
    message = f"rollcall form\0{purpose}".encode()
    return hmac.new((credential or "").encode(), message, hashlib.sha256).hexdigest()


def check_form(purpose: str) -> None:
    """Refuse (403) a form POST that comes from another site or lacks the token of a form for `purpose`."""
    offered = request.form.get("csrfToken", "")
    if not _from_this_site() or not hmac.compare_digest(offered.encode(), form_token(purpose).encode()):
        raise Problem(403, "Forbidden", FORGED)


def _from_this_site() -> bool:
    # A browser sends Origin on every POST; Referer is the fallback of older ones. Neither: refused.
    sent = request.headers.get("Origin") or request.headers.get("Referer")
    if not sent:
        return False
    settings = current_app.extensions["rollcall"].settings
    return _origin(sent) in {_origin(request.host_url), _origin(settings.public_base_url)}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()
