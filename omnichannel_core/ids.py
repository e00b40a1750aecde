"""Identifiers: time-ordered, URL-safe, prefixed by what they name."""

from __future__ import annotations

import random
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def _base32(number: int, length: int) -> str:
    chars = []
    for _ in range(length):
        number, rest = divmod(number, 32)
        chars.append(_ALPHABET[rest])
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """A new id like ``msg_01j9...``: 48 bits of milliseconds then 80 random bits.

    Ids made later sort after ids made earlier (to the millisecond), so they page well.
    """
    millis = time.time_ns() // 1_000_000
    randomness = random.getrandbits(80)  # ids are not secrets; no system call per id
    return f"{prefix}_{_base32(millis, 10)}{_base32(randomness, 16)}"
