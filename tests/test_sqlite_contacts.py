"""Contact search in SQLite (``omnichannel_core.modules.inbox.store.sqlite.contacts``): the
LIKE encoding finds exactly what the backend-neutral definition in
``omnichannel_core.modules.inbox.store.search`` does."""

from __future__ import annotations

import asyncio

from omnichannel_core.hooktypes import InboundMessage
from omnichannel_core.modules.inbox.store.search import matches, search_tokens, search_words
from tests.support.sqlite_files import stores_on_file

SEARCH_PEOPLE = [
    ("+15550001", "Ann Smith"),
    ("whatsapp:+44 20 7946 0000", "Ann-Marie O'Neil"),
    ("ann@example.com", None),
    ("bob_1%@mail.example.org", "Bob  Jones"),
    ("1234567890123456", "Page User"),
    ("+1 (415) 666-0199", "Élodie Durand"),
]
SEARCH_QUERIES = [
    "ann", "ann smi", "smi ann", "ann jon", "an", "+1", "1", "15", "1555", "5550001",
    "4420", "whatsapp:", "example", "example.com", "mail.", "bob_", "bob_1%", "_", "%",
    "ann-m", "o'n", "élo", "ÉLODIE dur", "7946", "20", "4567890", "page user", "zzz",
]  # fmt: skip


def test_sqlite_search_is_the_definition(tmp_path):
    """For a range of contacts and queries, SQLite's search finds exactly the contacts the
    definition in omnichannel_core.modules.inbox.store.search (every token a prefix of a
    search word) selects: the LIKE encoding neither adds nor loses a match."""
    with stores_on_file(tmp_path / "search.db") as stores:
        store = stores.inbox
        contacts = []
        for number, (address, name) in enumerate(SEARCH_PEOPLE):
            message = InboundMessage(f"s{number}", address, "x", sender_name=name)
            contacts.append(asyncio.run(store.ingest_inbound("sms", message)).contact)
        for query in SEARCH_QUERIES:
            expected = {
                contact.id
                for contact in contacts
                if matches(
                    search_words(contact.display_name, [i.address for i in contact.identities]),
                    search_tokens(query),
                )
            }
            page = asyncio.run(store.list_contacts(query, None, 100))
            assert {contact.id for contact in page.items} == expected, query
