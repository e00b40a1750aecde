"""Identifiers: time-ordered, URL-safe, prefixed by what they name."""

from __future__ import annotations

import base64
import random
import secrets
import time

# base32's alphabet, in value order, mapped onto Crockford's (lower case), whose characters
# are in ASCII order: the encoded text sorts as the number does.
_TO_CROCKFORD = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789abcdefghjkmnpqrstvwxyz"
)


def new_id(prefix: str, *, unguessable: bool = False) -> str:
    """A new id like ``msg_06h1...``: 48 bits of milliseconds then 80 random bits, in 26
    characters of Crockford base32.

    Ids made later sort after ids made earlier (to the millisecond), so they page well.
    Most ids are not secrets, and their bits come from :mod:`random` (no system call per
    id, on the webhook's path); but that generator can be predicted from the ids it made.
    ``unguessable`` draws them from the operating system (:mod:`secrets`) for an id that
    must not be guessed even by one who has seen others (a media id: docs/media.md).
    """
    millis = time.time_ns() // 1_000_000
    randomness = secrets.randbits(80) if unguessable else random.getrandbits(80)
    raw = ((millis << 80) | randomness).to_bytes(16, "big")
    encoded = base64.b32encode(raw)[:26].translate(_TO_CROCKFORD)
    return f"{prefix}_{encoded.decode()}"
