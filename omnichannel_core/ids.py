"""Identifiers: time-ordered, URL-safe, prefixed by what they name."""

from __future__ import annotations

import base64
import random
import time

# base32's alphabet, in value order, mapped onto Crockford's (lower case), whose characters
# are in ASCII order: the encoded text sorts as the number does.
_TO_CROCKFORD = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789abcdefghjkmnpqrstvwxyz"
)


def new_id(prefix: str) -> str:
    """A new id like ``msg_06h1...``: 48 bits of milliseconds then 80 random bits, in 26
    characters of Crockford base32.

    Ids made later sort after ids made earlier (to the millisecond), so they page well.
    """
    millis = time.time_ns() // 1_000_000
    randomness = random.getrandbits(80)  # ids are not secrets; no system call per id
    raw = ((millis << 80) | randomness).to_bytes(16, "big")
    encoded = base64.b32encode(raw)[:26].translate(_TO_CROCKFORD)
    return f"{prefix}_{encoded.decode()}"
