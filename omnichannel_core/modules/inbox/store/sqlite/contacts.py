"""Contacts and conversations in SQLite: upserts for inbound and outbound, and search.

Search words (`omnichannel_core.modules.inbox.store.search`) are kept in
``contacts.search_terms`` as one text, each word preceded by a space; a token matches with
``LIKE '% token%'``.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable
from typing import Any

from omnichannel_core.module import Consent, ConversationStatus, Identity, new_id
from omnichannel_core.modules.inbox.store.profiles import identity_reach
from omnichannel_core.modules.inbox.store.search import search_tokens, search_words
from omnichannel_core.modules.inbox.store.sqlite.rows import ContactRows

_WHITESPACE = re.compile(r"\s")


def search_text(display_name: str | None, addresses: Iterable[str]) -> str:
    """The ``search_terms`` column: `` word word ...``.

    A word holding whitespace (an address such as ``+1 555 0001``) is stored up to its first
    whitespace: a token never holds whitespace, so it is a prefix of the word exactly when it
    is a prefix of that first part, and no token can match from the middle of the word.
    """
    words = search_words(display_name, addresses)
    parts = (_WHITESPACE.split(word, maxsplit=1)[0] for word in words)
    return "".join(f" {part}" for part in parts if part)


def search_clause(query: str | None) -> tuple[str, list[Any]]:
    """The SQL condition (``AND ...`` for each token, wildcards escaped) and its values."""
    clause, params = "", []
    for token in search_tokens(query):
        escaped = token.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        clause += " AND search_terms LIKE ? ESCAPE '\\'"
        params.append(f"% {escaped}%")
    return clause, params


def recompute_search_terms(connection: sqlite3.Connection) -> None:
    """Migration step: rewrite every contact's ``search_terms`` with the current rules.

    Whenever `omnichannel_core.modules.inbox.store.search` changes which words a contact has, add a
    migration that recomputes them, so contacts stored before are found the new way. This
    one is step 4's, from names and identities only: since step 10 a contact's profile
    emails and phones are words too (`store.profiles.search_addresses`), so a later step
    needs a version that reads them.
    """
    contacts = connection.execute("SELECT id, display_name FROM contacts").fetchall()
    for contact_id, display_name in contacts:
        addresses = [
            address
            for (address,) in connection.execute(
                "SELECT address FROM identities WHERE contact_id = ? ORDER BY channel, address",
                (contact_id,),
            )
        ]
        connection.execute(
            "UPDATE contacts SET search_terms = ? WHERE id = ?",
            (search_text(display_name, addresses), contact_id),
        )


def store_reach(connection: sqlite3.Connection, contact_id: str, values: Iterable[str]) -> None:
    """Make ``values`` the contact's reach (``contact_reach``: what ``find_contacts`` looks
    up, `store.profiles`)."""
    connection.execute("DELETE FROM contact_reach WHERE contact_id = ?", (contact_id,))
    connection.executemany(
        "INSERT OR IGNORE INTO contact_reach (value, contact_id) VALUES (?, ?)",
        [(value, contact_id) for value in values],
    )


def fill_reach(connection: sqlite3.Connection) -> None:
    """Migration step: every contact's reach from its identities (contacts had no profile
    emails or phones before it)."""
    rows = connection.execute("SELECT channel, address, contact_id FROM identities").fetchall()
    for channel, address, contact_id in rows:
        value = identity_reach(Identity(channel, address))
        if value is not None:
            connection.execute(
                "INSERT OR IGNORE INTO contact_reach (value, contact_id) VALUES (?, ?)",
                (value, contact_id),
            )


SENDER = """
SELECT contacts.*,
    (SELECT json_group_array(json_array(channel, address)) FROM (
        SELECT channel, address FROM identities AS known
        WHERE known.contact_id = contacts.id ORDER BY channel, address
    )) AS identity_list,
    conversations.id AS conversation_id,
    conversations.address AS conversation_address,
    conversations.status AS conversation_status
FROM identities
JOIN contacts ON contacts.id = identities.contact_id
LEFT JOIN conversations ON conversations.id = (
    SELECT latest.id FROM conversations AS latest
    WHERE latest.contact_id = contacts.id AND latest.channel = identities.channel
    ORDER BY latest.created_at DESC, latest.id DESC LIMIT 1
)
WHERE identities.channel = ? AND identities.address = ?
"""
"""One read of everything about the contact at an address: its row, its identities as JSON,
and its conversation on that channel, the most recently created when it has several
(columns ``conversation_id``, ``conversation_address``, ``conversation_status``; NULL when it
has none yet)."""


def find_sender(connection: sqlite3.Connection, channel: str, address: str) -> sqlite3.Row | None:
    """The contact reached at ``address`` on ``channel`` (see :data:`SENDER`), or None."""
    return connection.execute(SENDER, (channel, address)).fetchone()


def insert_contact(
    connection: sqlite3.Connection,
    channel: str,
    address: str,
    display_name: str | None,
    contact_id: str,
    now: str,
) -> ContactRows:
    """A new contact with its one identity."""
    row = connection.execute(
        "INSERT INTO contacts (id, display_name, search_terms, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?) RETURNING *",
        (contact_id, display_name, search_text(display_name, [address]), now, now),
    ).fetchone()
    connection.execute(
        "INSERT INTO identities (channel, address, contact_id) VALUES (?, ?, ?)",
        (channel, address, contact_id),
    )
    reached = identity_reach(Identity(channel, address))
    if reached is not None:
        connection.execute(
            "INSERT INTO contact_reach (value, contact_id) VALUES (?, ?)", (reached, contact_id)
        )
    return row, [{"channel": channel, "address": address}]


def known_contact(
    connection: sqlite3.Connection, sender: sqlite3.Row, display_name: str | None, now: str
) -> ContactRows:
    """A found contact's rows, with the name filled in when it had none."""
    identities = [
        {"channel": channel, "address": address}
        for channel, address in json.loads(sender["identity_list"])
    ]
    if not display_name or sender["display_name"] is not None:
        return sender, identities
    addresses = [identity["address"] for identity in identities]
    addresses += [*json.loads(sender["emails"]), *json.loads(sender["phones"])]
    row = connection.execute(
        "UPDATE contacts SET display_name = ?, search_terms = ?, updated_at = ?"
        " WHERE id = ? RETURNING *",
        (display_name, search_text(display_name, addresses), now, sender["id"]),
    ).fetchone()
    return row, identities


def upsert_contact(
    connection: sqlite3.Connection, channel: str, address: str, display_name: str | None, now: str
) -> ContactRows:
    """The contact reached at ``address`` on ``channel``, created if new; a name given when
    the contact has none fills it in."""
    sender = find_sender(connection, channel, address)
    if sender is None:
        return insert_contact(connection, channel, address, display_name, new_id("ct"), now)
    return known_contact(connection, sender, display_name, now)


def apply_consent(
    connection: sqlite3.Connection,
    contact: ContactRows,
    channel: str,
    consent: Consent | None,
    now: str,
) -> ContactRows:
    """Record an opt-out (add ``channel`` to the contact's ``opted_out``) or an opt-in
    (remove it); nothing else changes."""
    row, identities = contact
    if consent is None:
        return contact
    opted_out = json.loads(row["opted_out"])
    if consent is Consent.OPT_OUT and channel not in opted_out:
        opted_out = sorted([*opted_out, channel])
    elif consent is Consent.OPT_IN and channel in opted_out:
        opted_out = [name for name in opted_out if name != channel]
    else:
        return contact
    row = connection.execute(
        "UPDATE contacts SET opted_out = ?, updated_at = ? WHERE id = ? RETURNING *",
        (json.dumps(opted_out), now, row["id"]),
    ).fetchone()
    return row, identities


def upsert_conversation(
    connection: sqlite3.Connection,
    contact_id: str,
    channel: str,
    address: str,
    now: str,
    new_conversation: bool = False,
) -> str:
    """The id of the contact's conversation on ``channel`` (the most recently created), opened
    if it has none or ``new_conversation`` asks; it answers to ``address``."""
    row = None
    if not new_conversation:
        row = connection.execute(
            "SELECT id, address FROM conversations WHERE contact_id = ? AND channel = ?"
            " ORDER BY created_at DESC, id DESC LIMIT 1",
            (contact_id, channel),
        ).fetchone()
    if row is not None:
        if row["address"] != address:
            connection.execute(
                "UPDATE conversations SET address = ? WHERE id = ?", (address, row["id"])
            )
        return row["id"]
    conversation_id = new_id("cv")
    connection.execute(
        "INSERT INTO conversations (id, contact_id, channel, address, status, unread_count,"
        " last_activity_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?)",
        (conversation_id, contact_id, channel, address, ConversationStatus.OPEN, now, now, now),
    )
    return conversation_id
