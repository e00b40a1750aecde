"""Which contacts a filter holds: a pass over ``ContactBook.scan``, reading each scanned
page's ``ContactBook.activity`` only for a filter that needs it.

No store indexes the filter language: counting a segment reads every contact, and a page
of members reads until it has filled (or until :data:`SCAN_BUDGET` contacts were read, when
it comes back short, perhaps empty, with a ``next_cursor`` to go on from).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime

from omnichannel_core.module import (
    Contact,
    ContactActivity,
    ContactBook,
    Page,
    decode_cursor,
    encode_cursor,
    utcnow,
)
from omnichannel_core.modules.crm.filters import Filter, Predicate

SCAN_PAGE = 500
"""Contacts read from the store at a time."""
SCAN_BUDGET = 5000
"""Contacts a page of members reads at most before it answers short."""


class SegmentEvaluator:
    """Evaluates filters over the contacts ``contacts`` holds. Relative times in a filter
    are taken back from ``clock()`` once per call."""

    def __init__(
        self,
        contacts: ContactBook,
        clock: Callable[[], datetime] = utcnow,
        scan_page: int = SCAN_PAGE,
        scan_budget: int = SCAN_BUDGET,
    ) -> None:
        if not 1 <= scan_page <= scan_budget:
            raise ValueError("scan_page must be from 1 to scan_budget")
        self.contacts = contacts
        self.clock = clock
        self.scan_page = scan_page
        self.scan_budget = scan_budget

    async def count(self, segment: Filter) -> int:
        """How many contacts match (a whole pass)."""
        matched = 0
        async for members in self._passes(segment):
            matched += len(members)
        return matched

    async def iterate(self, segment: Filter) -> AsyncIterator[Contact]:
        """Every matching contact once, in scan order (a whole pass, a page at a time)."""
        async for members in self._passes(segment):
            for contact in members:
                yield contact

    async def members(self, segment: Filter, cursor: str | None, limit: int) -> Page:
        """The next ``limit`` matching contacts in scan order after ``cursor`` (a previous
        page's ``next_cursor``; None: from the start). Reads at most :attr:`scan_budget`
        contacts (plus the rest of a scanned page): a page that reaches the bound first is
        short, even empty, and has a ``next_cursor``; only the last page has None.
        InvalidInput (``"parameter": "cursor"``) for a cursor no page made."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        scan_cursor, after = _decode(cursor)
        predicate = segment.compile(self.clock())
        found: list[Contact] = []
        scanned = 0
        while True:
            page = await self.contacts.scan(scan_cursor, self.scan_page)
            scanned += len(page.items)
            # Resuming inside a scanned page: the contacts up to ``after`` were given.
            candidates = [c for c in page.items if c.id > after] if after else page.items
            after = ""
            matches = await self._matches(segment, predicate, candidates)
            if len(found) + len(matches) > limit:
                last = matches[limit - len(found) - 1]
                found.extend(matches[: limit - len(found)])
                return Page(found, encode_cursor(scan_cursor or "", last.id))
            found.extend(matches)
            if page.next_cursor is None:
                return Page(found, None)
            scan_cursor = page.next_cursor
            if len(found) == limit or scanned >= self.scan_budget:
                return Page(found, encode_cursor(scan_cursor, ""))

    async def _passes(self, segment: Filter) -> AsyncIterator[list[Contact]]:
        """The matching contacts of each scanned page, through a whole pass."""
        predicate = segment.compile(self.clock())
        cursor: str | None = None
        while True:
            page = await self.contacts.scan(cursor, self.scan_page)
            yield await self._matches(segment, predicate, page.items)
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def _matches(
        self, segment: Filter, predicate: Predicate, contacts: Sequence[Contact]
    ) -> list[Contact]:
        if not contacts:
            return []
        if not segment.needs_activity:
            return [contact for contact in contacts if predicate(contact, None)]
        activity: dict[str, ContactActivity] = await self.contacts.activity(
            [contact.id for contact in contacts]
        )
        return [contact for contact in contacts if predicate(contact, activity.get(contact.id))]


def _decode(cursor: str | None) -> tuple[str | None, str]:
    """A members cursor: the scan cursor of the page to read next (None: the first), and
    the id of the last member given from it ("": none, read it whole). Resuming skips the
    contacts up to that id: a scan is in id order (the ContactBook contract), so one added
    or removed meanwhile moves no other contact in or out of what is left."""
    if cursor is None:
        return None, ""
    scan_cursor, after = decode_cursor(cursor, 2)
    return scan_cursor or None, after
