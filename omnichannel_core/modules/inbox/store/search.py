"""Contact search, defined once for every backend.

A query is split on whitespace into tokens; a contact matches when every token is a prefix
(case-insensitive) of at least one of its search words. A query of only whitespace matches
every contact. Characters have no special meaning (``%`` and ``_`` are plain characters).

A contact's search words are, lower case:

- each word of its display name;
- each identity address, whole;
- for an address that looks like a phone number (1 to 15 digits among spaces and
  ``+ - ( ) .``, optionally after a ``whatsapp:``-style prefix), also its digits alone and
  each ending of those digits at least 7 long (``PHONE_ENDING_DIGITS``), so ``1555`` finds
  ``+15550001`` by its digits and ``5550001`` by an ending: a number is found without its
  country or area code;
- for an email address, also the part after ``@``, so ``example.com`` finds
  ``ann@example.com``.

Each backend stores :func:`search_words` with the contact and matches :func:`search_tokens`
against them; no backend computes words any other way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

PHONE_ADDRESS = re.compile(r"(?:[a-z][a-z0-9+.\-]*:)?[0-9\s+\-().]+")
"""A phone-like address (when it also holds a digit): phone characters after an optional
``scheme:`` prefix (``whatsapp:``, ``tel:``)."""

PHONE_DIGITS_MAX = 15
"""E.164's longest number: more digits is an id, not a phone number (and a long address
must not yield thousands of endings)."""

PHONE_ENDING_DIGITS = 7
"""The shortest ending of a phone number's digits that is a search word: a local number."""


def _address_words(address: str) -> list[str]:
    words = [address]
    digits = "".join(character for character in address if character in "0123456789")
    if 0 < len(digits) <= PHONE_DIGITS_MAX and PHONE_ADDRESS.fullmatch(address):
        last_start = len(digits) - PHONE_ENDING_DIGITS
        words += [digits[start:] for start in range(max(last_start, 0) + 1)]
    elif "@" in address:
        domain = address.rsplit("@", 1)[1]
        if domain:
            words.append(domain)
    return words


def search_words(display_name: str | None, addresses: Iterable[str]) -> list[str]:
    """The words a contact is found by, lower case, each once, in a stable order."""
    words = (display_name or "").lower().split()
    for address in addresses:
        words += _address_words(address.lower())
    return list(dict.fromkeys(word for word in words if word))


def search_tokens(query: str | None) -> list[str]:
    """The tokens of a query, lower case; an empty list matches every contact."""
    return (query or "").lower().split()


def matches(words: Iterable[str], tokens: Iterable[str]) -> bool:
    """The definition itself: every token is a prefix of at least one word."""
    words = list(words)
    return all(any(word.startswith(token) for word in words) for token in tokens)
