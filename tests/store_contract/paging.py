"""Cursor paging, the same on every list."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from omnichannel_core.errors import InvalidInput
from omnichannel_core.models import ConversationStatus
from tests.store_contract.fixtures import Run, StoreFixtures, inbound

INVALID_CURSORS = ["not a cursor!", "bm9wZQ", "W10", "WzEsMl0", "WyJhIiwiYiIsImMiXQ"]


def all_pages(
    run: Run[Any], fetch: Callable[[str | None, int], Awaitable[Any]], limit: int
) -> list[str]:
    """Every item id, following ``next_cursor`` from the first page to the last."""
    ids: list[str] = []
    cursor = None
    for _ in range(1000):
        page = run(fetch(cursor, limit))
        assert len(page.items) <= limit
        ids += [item.id for item in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return ids
    raise AssertionError("paging never ended")


class PagingContract(StoreFixtures):
    """What every list promises about ``cursor``, ``limit`` and ``next_cursor``."""

    def test_cursor_paging_returns_every_item_exactly_once(self, store, run):
        """Following next_cursor through any list, at any page size, yields every item
        exactly once and in the same order as one big page."""
        for number in range(7):
            run(store.ingest_inbound("sms", inbound(f"a{number}", f"+1000{number}", "x", "Ann")))
            run(store.ingest_inbound("sms", inbound(f"b{number}", "+19999", "y", "Bob")))
        conversation = run(store.resolve_recipient("sms", "+19999"))[1]
        for number in range(4):
            run(store.create_outbound(conversation.id, f"r{number}", (), {}, None))
        lists: dict[str, Callable[[str | None, int], Awaitable[Any]]] = {
            "contacts": lambda cursor, limit: store.list_contacts(None, cursor, limit),
            "search": lambda cursor, limit: store.list_contacts("ann", cursor, limit),
            "conversations": lambda cursor, limit: store.list_conversations(
                None, None, None, cursor, limit
            ),
            "sms conversations": lambda cursor, limit: store.list_conversations(
                ConversationStatus.OPEN, "sms", None, cursor, limit
            ),
            "messages": lambda cursor, limit: store.list_messages(conversation.id, cursor, limit),
        }
        sizes = {"contacts": 8, "search": 7, "conversations": 8, "sms conversations": 8}
        sizes["messages"] = 11
        for name, fetch in lists.items():
            everything = [item.id for item in run(fetch(None, 1000)).items]
            assert len(everything) == sizes[name], name
            for limit in (1, 2, 3, len(everything), len(everything) + 1):
                assert all_pages(run, fetch, limit) == everything, (name, limit)

    def test_last_page_has_no_cursor(self, store, run):
        """A page that ends the list carries next_cursor None; an empty list is one page."""
        assert run(store.list_contacts(None, None, 5)).next_cursor is None
        assert run(store.list_contacts(None, None, 5)).items == []
        run(store.ingest_inbound("sms", inbound("p1")))
        assert run(store.list_contacts(None, None, 1)).next_cursor is None

    @pytest.mark.parametrize("cursor", INVALID_CURSORS)
    def test_invalid_cursor_is_invalid_input(self, store, run, cursor):
        """A cursor the store did not make raises InvalidInput on every list."""
        conversation = run(store.ingest_inbound("sms", inbound("p1"))).conversation
        calls = [
            lambda: store.list_contacts(None, cursor, 10),
            lambda: store.list_contacts("a", cursor, 10),
            lambda: store.list_conversations(None, None, None, cursor, 10),
            lambda: store.list_messages(conversation.id, cursor, 10),
        ]
        for call in calls:
            with pytest.raises(InvalidInput):
                run(call())
