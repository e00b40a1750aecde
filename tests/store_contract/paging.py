"""Cursor paging, the same on every list."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from omnichannel_core.errors import InvalidInput
from omnichannel_core.models import ConversationStatus
from omnichannel_core.paging import encode_cursor
from tests.store_contract.fixtures import Run, StoreFixtures, inbound

INVALID_CURSORS = ["not a cursor!", "bm9wZQ", "W10", "WzEsMl0", "WyJhIiwiYiIsImMiXQ"]
FORGED_AT = "2026-01-02T03:04:05.678901Z"
FORGED_ID_BODY = "06h4ryy5a9en2w1h2y3nnv3pw4"


def forged_keys(prefix: str) -> dict[str, tuple[str, str]]:
    """Sort keys of the right shape (two texts) that a list of ``prefix`` ids never makes:
    as cursors they decode, but name no position the list could have given."""
    record_id = f"{prefix}_{FORGED_ID_BODY}"
    other = "zz" if prefix != "zz" else "yy"
    return {
        "both-empty": ("", ""),
        "date-only": ("2026-01-02", record_id),
        "iso-offset": ("2026-01-02T03:04:05.678901+00:00", record_id),
        "no-microseconds": ("2026-01-02T03:04:05Z", record_id),
        "no-such-day": ("2026-02-30T03:04:05.678901Z", record_id),
        "empty-id": (FORGED_AT, ""),
        "prefix-only": (FORGED_AT, f"{prefix}_"),
        "no-underscore": (FORGED_AT, f"{prefix}{FORGED_ID_BODY}"),
        "another-lists-id": (FORGED_AT, f"{other}_{FORGED_ID_BODY}"),
        "path-in-id": (FORGED_AT, f"{prefix}_a/b"),
        "overlong-id": (FORGED_AT, f"{prefix}_{'a' * 65}"),
    }


def forged_cursors(prefix: str) -> list[str]:
    """:func:`forged_keys` as cursors."""
    return [encode_cursor(*key) for key in forged_keys(prefix).values()]


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

    def test_a_forged_cursor_is_invalid_input(self, store, run):
        """A cursor of the right shape whose timestamp is not one the store writes, or whose
        id is not of the list's records (``["", ""]``, another list's id...), raises
        InvalidInput naming the cursor on every list."""
        conversation = run(store.ingest_inbound("sms", inbound("p1"))).conversation
        lists = {
            "ct": lambda cursor: store.list_contacts(None, cursor, 10),
            "cv": lambda cursor: store.list_conversations(None, None, None, cursor, 10),
            "msg": lambda cursor: store.list_messages(conversation.id, cursor, 10),
        }
        for prefix, fetch in lists.items():
            for cursor in forged_cursors(prefix):
                with pytest.raises(InvalidInput) as refused:
                    run(fetch(cursor))
                assert refused.value.details == {"parameter": "cursor"}
            assert run(fetch(encode_cursor(FORGED_AT, f"{prefix}_{FORGED_ID_BODY}"))) is not None
        with pytest.raises(InvalidInput):  # the search scans pages too
            run(store.list_contacts("a", forged_cursors("ct")[0], 10))
