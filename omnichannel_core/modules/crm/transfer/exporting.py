"""Contacts written out as CSV or JSON, a page at a time, for a streamed response.

The writers take any ``AsyncIterator[Contact]`` (every contact through
``ContactBook.scan``, :func:`every_contact`, or a segment's members) and yield the bytes
of :data:`CHUNK_CONTACTS` contacts at a time: memory holds one chunk, whatever the number
of contacts.

CSV: a header, then a row per contact, in UTF-8 (no byte order mark), ``\\r\\n`` line ends.
Lists (``emails``, ``phones``, ``tags``, ``opted_out``) are joined with ``;`` (what an
import splits on), ``identities`` as ``channel:address`` joined with ``;``, times in RFC
3339 UTC, and ``attributes`` as one column of JSON text (a contact's attribute keys vary:
a column per key would need every contact read before the header). A cell that starts with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a ``'`` before it (OWASP's
advice against CSV injection: a spreadsheet would run it as a formula), so phones read
``'+34600111222``; an import of the file takes the ``'`` off again.

JSON: an array of contacts as ``GET /api/contacts/{id}`` shows them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable

from omnichannel_core.module import (
    Contact,
    ContactBook,
    compact_json,
    format_timestamp,
    safe_cell,
    to_json,
)

CHUNK_CONTACTS = 200
"""Contacts written per chunk yielded (and read per ``scan`` page)."""
COLUMNS = (
    "id",
    "display_name",
    "emails",
    "phones",
    "company",
    "locale",
    "timezone",
    "tags",
    "identities",
    "opted_out",
    "created_at",
    "updated_at",
    "attributes",
)
SEPARATOR = ";"


async def every_contact(
    book: ContactBook, page_size: int = CHUNK_CONTACTS
) -> AsyncIterator[Contact]:
    """Every contact once (``ContactBook.scan``, a page at a time)."""
    cursor: str | None = None
    while True:
        page = await book.scan(cursor, page_size)
        for contact in page.items:
            yield contact
        cursor = page.next_cursor
        if cursor is None:
            return


def contact_row(contact: Contact) -> list[str]:
    """The contact's CSV cells, in :data:`COLUMNS` order."""
    cells = [
        contact.id,
        contact.display_name or "",
        SEPARATOR.join(contact.emails),
        SEPARATOR.join(contact.phones),
        contact.company or "",
        contact.locale or "",
        contact.timezone or "",
        SEPARATOR.join(contact.tags),
        SEPARATOR.join(f"{each.channel}:{each.address}" for each in contact.identities),
        SEPARATOR.join(contact.opted_out),
        format_timestamp(contact.created_at),
        format_timestamp(contact.updated_at),
        compact_json(to_json(contact.attributes)) if contact.attributes else "",
    ]
    return [safe_cell(cell) for cell in cells]


async def contacts_csv(contacts: AsyncIterator[Contact]) -> AsyncIterator[bytes]:
    """The CSV file of ``contacts``, a chunk at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    written = 0
    async for contact in contacts:
        writer.writerow(contact_row(contact))
        written += 1
        if written % CHUNK_CONTACTS == 0:
            yield _drain(buffer)
    rest = _drain(buffer)
    if rest:
        yield rest


def _drain(buffer: io.StringIO) -> bytes:
    chunk = buffer.getvalue().encode()
    buffer.seek(0)
    buffer.truncate()
    return chunk


async def contacts_json(contacts: AsyncIterator[Contact]) -> AsyncIterator[bytes]:
    """A JSON array of ``contacts``, a chunk at a time."""
    parts = ["["]
    written = 0
    async for contact in contacts:
        parts.append(("\n" if written == 0 else ",\n") + compact_json(to_json(contact)))
        written += 1
        if written % CHUNK_CONTACTS == 0:
            yield "".join(parts).encode()
            parts = []
    parts.append("\n]\n" if written else "]\n")
    yield "".join(parts).encode()


WRITERS: dict[str, tuple[Callable[[AsyncIterator[Contact]], AsyncIterator[bytes]], str]] = {
    "csv": (contacts_csv, "text/csv; charset=utf-8"),
    "json": (contacts_json, "application/json"),
}
"""Each format's writer and content type."""
