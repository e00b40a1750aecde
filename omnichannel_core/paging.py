"""Lists in pages: the one envelope (:class:`Page`), and opaque cursors that hold the sort
key of a page's last item (base64 JSON).

Every list's key is a timestamp and an id (:func:`decode_list_cursor`); the event log's
cursors have their own form, checked by each store.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime
from typing import Any

import attrs

from omnichannel_core.errors import InvalidInput
from omnichannel_core.serialization import compact_json
from omnichannel_core.timestamps import TIMESTAMP_FORMAT

STORED_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
"""The shape of :data:`~omnichannel_core.timestamps.TIMESTAMP_FORMAT`'s text."""
ID_BODY = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""What follows an id's prefix: ``new_id`` makes 26 characters of Crockford base32; older
or imported records may have other URL-safe ones, never none, never hundreds."""


@attrs.frozen
class Page:
    """One page of a list, and the cursor of the next page (None on the last)."""

    items: list[Any]
    next_cursor: str | None = None


def encode_cursor(*key: Any) -> str:
    raw = compact_json(list(key)).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _invalid() -> InvalidInput:
    return InvalidInput("cursor is not valid", parameter="cursor")


def decode_cursor(cursor: str, size: int) -> list[Any]:
    """The ``size`` texts a cursor holds, or raise InvalidInput if it does not have that
    shape (what the texts may be is for the caller to check)."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _invalid() from None
    if not isinstance(key, list) or len(key) != size or not all(isinstance(k, str) for k in key):
        raise _invalid()
    try:  # JSON may spell a lone surrogate (\ud800), which no store can take
        "".join(key).encode()
    except UnicodeEncodeError:
        raise _invalid() from None
    return key


def is_stored_timestamp(text: str) -> bool:
    """Whether ``text`` is a time as the stores write it (a real date, too)."""
    if not STORED_TIMESTAMP.fullmatch(text):
        return False
    try:
        datetime.strptime(text, TIMESTAMP_FORMAT)
    except ValueError:  # the 31st of February, hour 24...
        return False
    return True


def is_record_id(text: str, prefix: str) -> bool:
    """Whether ``text`` can be the id of a record whose ids start ``<prefix>_``."""
    head, underscore, body = text.partition("_")
    return head == prefix and bool(underscore) and ID_BODY.fullmatch(body) is not None


def decode_list_cursor(cursor: str, id_prefix: str) -> tuple[str, str]:
    """The (timestamp, id) a list's cursor holds: the sort key of the last item of a page.
    InvalidInput (``"parameter": "cursor"``) unless both are what that list could have made:
    a timestamp as the stores write it, and an id of the list's records (``<id_prefix>_``)."""
    at, record_id = decode_cursor(cursor, 2)
    if not (is_stored_timestamp(at) and is_record_id(record_id, id_prefix)):
        raise _invalid()
    return at, record_id
