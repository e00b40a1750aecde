"""Segment evaluation (omnichannel_core/modules/crm/segments.py) over a ContactBook's scan:
counts, whole passes, and pages of members that neither skip nor repeat a contact, whatever
the page sizes, with a bounded scan per page, and with contacts added or removed between
pages.

The ContactBook here is an in-memory fake of ``scan`` and ``activity`` alone: this unit is
the paging over them; the stores' own scans are tested against the real stores.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from omnichannel_core.module import (
    Contact,
    ContactActivity,
    ContactBook,
    InvalidInput,
    Page,
    encode_cursor,
)
from omnichannel_core.modules.crm.filters import Filter, parse_filter
from omnichannel_core.modules.crm.segments import SCAN_BUDGET, SCAN_PAGE, SegmentEvaluator

NOW = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)


class FakeBook:
    """Contacts in id order, scanned ``limit`` at a time (the cursor: the last id read,
    prefixed so it is not mistaken for an id); records every call."""

    def __init__(self, contacts: Collection[Contact] = ()) -> None:
        self.contacts = {c.id: c for c in contacts}
        self.activities: dict[str, ContactActivity] = {}
        self.scans: list[tuple[str | None, int]] = []
        self.activity_calls: list[list[str]] = []

    async def scan(self, cursor: str | None, limit: int) -> Page:
        self.scans.append((cursor, limit))
        after = "" if cursor is None else cursor.removeprefix("after:")
        rest = [self.contacts[i] for i in sorted(self.contacts) if i > after]
        items = rest[:limit]
        more = len(rest) > limit
        return Page(items, f"after:{items[-1].id}" if more else None)

    async def activity(self, contact_ids: Collection[str]) -> dict[str, ContactActivity]:
        self.activity_calls.append(list(contact_ids))
        return {i: self.activities.get(i, ContactActivity()) for i in contact_ids}


def numbered(count: int, **attributes: Any) -> list[Contact]:
    """Contacts ct_0000... with attribute ``n`` their number."""
    return [
        Contact(f"ct_{n:04}", None, (), attributes={"n": n, **attributes}) for n in range(count)
    ]


def evaluator(book: FakeBook, **options: Any) -> SegmentEvaluator:
    return SegmentEvaluator(cast(ContactBook, book), clock=lambda: NOW, **options)


def multiple_of(k: int) -> Filter:
    """Contacts whose ``n`` is one of k's multiples below 10,000."""
    return parse_filter(
        {"field": "attributes.n", "op": "in", "value": list(range(0, 10_000, k))[:100]}
    )


EVERYONE = parse_filter({"field": "attributes.n", "op": "exists"})
NOBODY = parse_filter({"field": "company", "op": "exists"})
EVEN = parse_filter({"or": [{"field": "attributes.even", "op": "eq", "value": True}]})


def with_even(count: int) -> list[Contact]:
    return [
        Contact(f"ct_{n:04}", None, (), attributes={"n": n, "even": n % 2 == 0})
        for n in range(count)
    ]


def walk(
    evaluation: SegmentEvaluator, segment: Filter, limit: int, cursor: str | None = None
) -> list[Page]:
    """Every page of members, from ``cursor``'s to the one without a next cursor."""

    async def pages() -> list[Page]:
        got = [await evaluation.members(segment, cursor, limit)]
        while got[-1].next_cursor is not None:
            assert len(got) < 10_000, "paging does not end"
            got.append(await evaluation.members(segment, got[-1].next_cursor, limit))
        return got

    return asyncio.run(pages())


def ids(pages: list[Page]) -> list[str]:
    return [c.id for page in pages for c in page.items]


def test_count_and_iterate_make_a_whole_pass():
    """count is the number of matching contacts and iterate yields each once, in scan
    order, reading the book SCAN_PAGE at a time."""
    book = FakeBook(with_even(1234))
    evaluation = evaluator(book)

    async def both() -> tuple[int, list[str]]:
        return await evaluation.count(EVEN), [c.id async for c in evaluation.iterate(EVEN)]

    counted, iterated = asyncio.run(both())
    assert counted == 617
    assert iterated == [f"ct_{n:04}" for n in range(0, 1234, 2)]
    assert {limit for _, limit in book.scans} == {SCAN_PAGE}
    assert len(book.scans) == 2 * 3  # 500 + 500 + 234, twice


def test_an_empty_book():
    """No contacts: a count of 0, nothing iterated, one empty last page."""
    evaluation = evaluator(FakeBook())

    async def all_of_it() -> tuple[int, list[Contact], Page]:
        iterated = [c async for c in evaluation.iterate(EVERYONE)]
        return (
            await evaluation.count(EVERYONE),
            iterated,
            await evaluation.members(EVERYONE, None, 10),
        )

    assert asyncio.run(all_of_it()) == (0, [], Page([], None))


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 10, 11, 25, 49, 50, 51, 200])
@pytest.mark.parametrize("scan_page", [1, 5, 10, 50])
def test_members_pages_neither_skip_nor_repeat(limit, scan_page):
    """Walking the pages gives every matching contact once, in scan order, whether a page
    of members ends inside a scanned page, at its end, or spans several; every page but
    the last is full (the scan bound is not reached here)."""
    book = FakeBook(with_even(50))
    pages = walk(evaluator(book, scan_page=scan_page), EVEN, limit)
    assert ids(pages) == [f"ct_{n:04}" for n in range(0, 50, 2)]
    assert all(len(page.items) == limit for page in pages[:-1])
    assert pages[-1].next_cursor is None


def test_a_page_filled_by_the_last_match_is_the_last_page():
    """When the page fills with the last matching contact of the last scanned page, its
    next_cursor is None: no empty page follows."""
    book = FakeBook(with_even(20))  # 10 matches, the last ct_0018; ct_0019 does not match
    pages = walk(evaluator(book, scan_page=10), EVEN, 10)
    assert len(pages) == 1
    assert pages[0].next_cursor is None


def test_a_page_filled_at_the_end_of_a_scanned_page_goes_on_from_the_next():
    """A page that fills at the end of a scanned page resumes from the next scanned page:
    the contacts already read are not scanned again."""
    book = FakeBook(with_even(40))
    evaluation = evaluator(book, scan_page=10)
    first = asyncio.run(evaluation.members(EVEN, None, 5))
    assert [c.id for c in first.items] == ["ct_0000", "ct_0002", "ct_0004", "ct_0006", "ct_0008"]
    book.scans.clear()
    second = asyncio.run(evaluation.members(EVEN, first.next_cursor, 5))
    assert second.items[0].id == "ct_0010"
    assert book.scans == [("after:ct_0009", 10)]


def test_a_page_that_fills_inside_a_scanned_page_resumes_after_its_last_member():
    """A page that fills inside a scanned page reads that page again and goes on after its
    last member."""
    book = FakeBook(with_even(40))
    evaluation = evaluator(book, scan_page=10)
    first = asyncio.run(evaluation.members(EVEN, None, 3))
    assert first.items[-1].id == "ct_0004"
    book.scans.clear()
    second = asyncio.run(evaluation.members(EVEN, first.next_cursor, 3))
    assert [c.id for c in second.items] == ["ct_0006", "ct_0008", "ct_0010"]
    assert book.scans == [(None, 10), ("after:ct_0009", 10)]


def test_a_page_reads_at_most_the_scan_budget():
    """A filter matching nothing answers an empty page with a next_cursor after reading the
    budget, not the whole book; walking on reaches the end."""
    book = FakeBook(numbered(100))
    evaluation = evaluator(book, scan_page=10, scan_budget=30)
    first = asyncio.run(evaluation.members(NOBODY, None, 10))
    assert first == Page([], first.next_cursor)
    assert first.next_cursor is not None
    assert len(book.scans) == 3
    book.scans.clear()
    pages = walk(evaluation, NOBODY, 10)
    assert ids(pages) == []
    assert len(pages) == 4  # 30 + 30 + 30 + 10 read
    assert len(book.scans) == 10


def test_rare_members_come_in_short_pages():
    """Members sparser than the budget come in short pages, each after at most the budget,
    yet all of them, once."""
    book = FakeBook(numbered(1000))
    sevens = multiple_of(7)  # 0, 7, ... 693 (100 values)
    evaluation = evaluator(book, scan_page=20, scan_budget=60)
    pages = walk(evaluation, sevens, 20)
    assert ids(pages) == [f"ct_{n:04}" for n in range(0, 700, 7)]
    assert any(0 < len(page.items) < 20 for page in pages[:-1])
    assert all(len(page.items) <= 20 for page in pages)
    assert len(book.scans) <= len(pages) * 3  # a re-read page counts in the budget


def test_the_default_budget_and_page():
    """By default a page of members reads SCAN_PAGE at a time, at most SCAN_BUDGET."""
    book = FakeBook(numbered(SCAN_BUDGET + 1))
    first = asyncio.run(evaluator(book).members(NOBODY, None, 50))
    assert first.next_cursor is not None
    assert book.scans[-1][1] == SCAN_PAGE
    assert len(book.scans) == SCAN_BUDGET // SCAN_PAGE


def test_contacts_added_or_removed_between_pages():
    """A cursor inside a scanned page holds the last member's id: removing that contact or
    one before it, or adding one after it, between two pages skips or repeats no other (one
    added before it is behind the pass, and not given)."""
    book = FakeBook(with_even(30))
    evaluation = evaluator(book, scan_page=10)
    first = asyncio.run(evaluation.members(EVEN, None, 3))
    assert [c.id for c in first.items] == ["ct_0000", "ct_0002", "ct_0004"]
    del book.contacts["ct_0004"]  # the last member given
    del book.contacts["ct_0000"]  # before the cursor: the scanned page shifts
    for added in ("ct_0001a", "ct_0004a"):  # one before the cursor, one after
        book.contacts[added] = Contact(added, None, (), attributes={"even": True})
    rest = walk(evaluation, EVEN, 3, first.next_cursor)
    assert [c.id for c in rest[0].items] == ["ct_0004a", "ct_0006", "ct_0008"]
    assert ids(rest) == ["ct_0004a"] + [f"ct_{n:04}" for n in range(6, 30, 2)]


def test_activity_is_read_only_when_the_filter_needs_it():
    """A filter on the contact alone reads no activity; one on the conversations reads it
    for each scanned page (after the cursor's member, when resuming inside a page)."""
    book = FakeBook(numbered(25))
    book.activities = {
        f"ct_{n:04}": ContactActivity(last_activity_at=NOW - timedelta(days=n), channels=("sms",))
        for n in range(0, 25, 2)
    }
    evaluation = evaluator(book, scan_page=10)
    recent = parse_filter({"field": "last_activity_at", "op": "gt", "value": "-5d"})
    asyncio.run(evaluation.count(EVERYONE))
    assert book.activity_calls == []
    first = asyncio.run(evaluation.members(recent, None, 2))
    assert [c.id for c in first.items] == ["ct_0000", "ct_0002"]
    assert book.activity_calls == [[f"ct_{n:04}" for n in range(10)]]
    book.activity_calls.clear()
    second = asyncio.run(evaluation.members(recent, first.next_cursor, 2))
    assert [c.id for c in second.items] == ["ct_0004"]
    assert second.next_cursor is None  # it read on to the end: nothing else matches
    assert book.activity_calls[0] == [f"ct_{n:04}" for n in range(3, 10)]


def test_relative_times_are_taken_from_the_clock():
    """The evaluator's clock is the ``now`` of relative times, read once per call."""
    book = FakeBook(
        [
            Contact("ct_a", None, (), created_at=NOW - timedelta(days=3)),
            Contact("ct_b", None, (), created_at=NOW),
        ]
    )
    recent = parse_filter({"field": "created_at", "op": "gt", "value": "-2d"})
    assert asyncio.run(evaluator(book).count(recent)) == 1  # ct_b
    later = SegmentEvaluator(cast(ContactBook, book), clock=lambda: NOW - timedelta(days=2))
    assert asyncio.run(later.count(recent)) == 2


@pytest.mark.parametrize(
    "cursor",
    ["not base64!", encode_cursor("only one"), encode_cursor(1, 2), encode_cursor("a", "b", "c")],
)
def test_a_cursor_no_page_made_is_invalid_input(cursor):
    """A cursor not of a members page's shape is InvalidInput naming the cursor."""
    with pytest.raises(InvalidInput) as refused:
        asyncio.run(evaluator(FakeBook(numbered(3))).members(EVERYONE, cursor, 10))
    assert refused.value.details == {"parameter": "cursor"}


def test_bad_sizes_are_refused():
    """A scan page larger than the budget, or an empty one, or a limit below 1, is a bug."""
    book = cast(ContactBook, FakeBook())
    with pytest.raises(ValueError, match="scan_page"):
        SegmentEvaluator(book, scan_page=100, scan_budget=50)
    with pytest.raises(ValueError, match="scan_page"):
        SegmentEvaluator(book, scan_page=0)
    with pytest.raises(ValueError, match="limit"):
        asyncio.run(SegmentEvaluator(book).members(EVERYONE, None, 0))
