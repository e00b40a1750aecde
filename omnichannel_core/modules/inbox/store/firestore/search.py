"""Contact search on Firestore: an array of word prefixes, one token on the index, the rest
checked in memory.

Firestore has no ``LIKE`` and takes one ``array_contains`` per query. So each contact stores:

- ``search_words``: its search words (`omnichannel_core.modules.inbox.store.search`), each
  cut at its first whitespace (a token never holds whitespace, so it can only be a prefix of
  that first part);
- ``search_prefixes``: every prefix of each word, up to :data:`PREFIX_LENGTH` characters.

A query picks its longest token (the likeliest to be rare), asks the index for the contacts
whose ``search_prefixes`` contain it (cut to :data:`PREFIX_LENGTH`), newest first, and keeps
those whose ``search_words`` match every token (``matches`` of
`omnichannel_core.modules.inbox.store.search`, the definition itself). The in-memory check
reads at most :data:`SCAN_LIMIT` contacts per page: a page that reaches it before filling up
comes back short, with a cursor that goes on from the last contact read, so a rare
combination of common tokens costs several small pages, never one unbounded read.
"""

from __future__ import annotations

import re
from typing import Any

from omnichannel_core.modules.inbox.store.search import search_tokens, search_words

PREFIX_LENGTH = 20
"""The longest stored prefix: enough for a full phone number with its ``whatsapp:+`` scheme
or most email addresses, while a 500-character address costs 20 entries, not 500. A longer
token is looked up by its first 20 characters and checked whole in memory."""
MAX_PREFIXES = 2000
"""At most this many prefixes per contact (Firestore allows 40,000 index entries per
document): a contact with hundreds of words is found by its first ones."""
SCAN_LIMIT = 300
"""At most this many contacts read for one page of a search."""

_WHITESPACE = re.compile(r"\s")


def stored_words(display_name: str | None, addresses: list[str]) -> list[str]:
    words = search_words(display_name, addresses)
    parts = (_WHITESPACE.split(word, maxsplit=1)[0] for word in words)
    return list(dict.fromkeys(part for part in parts if part))


def word_prefixes(words: list[str]) -> list[str]:
    prefixes: dict[str, None] = {}
    for word in words:
        for length in range(1, min(len(word), PREFIX_LENGTH) + 1):
            prefixes[word[:length]] = None
            if len(prefixes) >= MAX_PREFIXES:
                return list(prefixes)
    return list(prefixes)


def search_fields(display_name: str | None, addresses: list[str]) -> dict[str, Any]:
    """The fields a contact is searched by, recomputed whenever its name or addresses
    change."""
    words = stored_words(display_name, addresses)
    return {"search_words": words, "search_prefixes": word_prefixes(words)}


def index_token(query: str | None) -> tuple[str | None, list[str]]:
    """The prefix to ask the index for (None: no search) and every token to check."""
    tokens = search_tokens(query)
    if not tokens:
        return None, []
    return max(tokens, key=len)[:PREFIX_LENGTH], tokens
