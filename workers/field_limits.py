"""How long each text a webhook carries may be: the parser refuses longer, the columns are sized from these.

One source of truth, so that whatever the receiver accepts fits every column it lands in, on PostgreSQL
(which enforces a VARCHAR's length) as on SQLite (which does not).
"""

from __future__ import annotations

from workers.events import EVENTS

ID_LENGTH = 200  # meeting and participant session ids, room ids, external user ids
NAME_LENGTH = 200  # display names and room names
EMAIL_LENGTH = 320  # RFC 5321's longest address
EVENT_LENGTH = 32

# The longest dedupe key: event + ":" + meeting session id + ":" + participant session id.
DEDUPE_KEY_LENGTH = EVENT_LENGTH + 1 + ID_LENGTH + 1 + ID_LENGTH
# The longest participant key. An email key is lower-cased, and lower() can double a character's length
# ("İ", U+0130, becomes "i" + a combining dot), so an email key may be twice as long as the address.
PARTICIPANT_KEY_LENGTH = max(
    len("ext:") + ID_LENGTH,
    len("email:") + 2 * EMAIL_LENGTH,
    len("name:") + NAME_LENGTH,
    len("ps:") + ID_LENGTH,
)

assert max(len(event) for event in EVENTS) <= EVENT_LENGTH
