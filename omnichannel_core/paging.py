"""Lists in pages: the one envelope (:class:`Page`), and opaque cursors that hold the sort
key of a page's last item (base64 JSON)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import attrs

from omnichannel_core.errors import InvalidInput


@attrs.frozen
class Page:
    """One page of a list, and the cursor of the next page (None on the last)."""

    items: list[Any]
    next_cursor: str | None = None


def encode_cursor(*key: Any) -> str:
    raw = json.dumps(list(key), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> list[Any]:
    """The sort key a cursor holds, or raise InvalidInput if it was not made by us."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidInput("cursor is not valid", parameter="cursor") from None
    if not isinstance(key, list) or len(key) != size or not all(isinstance(k, str) for k in key):
        raise InvalidInput("cursor is not valid", parameter="cursor")
    return key
