"""Contact search terms: what a search prefix is matched against, for every backend."""

from __future__ import annotations

from collections.abc import Iterable


def search_terms(display_name: str | None, addresses: Iterable[str]) -> str:
    """The words a contact is found by, lower case, each preceded by a space.

    A search for ``q`` matches when ``" " + q.lower()`` occurs in this text, i.e. when ``q``
    is a prefix of a word of the display name or of an address.
    """
    words = (display_name or "").lower().split()
    words += [address.lower() for address in addresses]
    return "".join(f" {word}" for word in words)
