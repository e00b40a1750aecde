"""Who sent each outbound message, and each conversation's history of status and assignee:
kept in the store for good, and read back whole for a rebuild."""

from __future__ import annotations

import pytest

from omnichannel_core.errors import InvalidInput, NotFound
from omnichannel_core.models import Author, AuthorKind, ConversationStatus, Direction
from omnichannel_core.paging import encode_cursor
from tests.store_contract.events import logged
from tests.store_contract.fixtures import IMPOSSIBLE_IDS, StoreFixtures, inbound
from tests.store_contract.paging import (
    FORGED_AT,
    FORGED_ID_BODY,
    INVALID_CURSORS,
    all_pages,
    forged_cursors,
)

AGENT = Author(AuthorKind.USER, "u_agent", "Ana")
AWAY = Author(AuthorKind.AUTOMATION, "away_message", "away message")


class HistoryContract(StoreFixtures):
    """What ``create_outbound(author=...)``, ``update_conversation(by=...)``,
    ``conversation_changes``, ``list_changes`` and ``scan_history`` promise."""

    def test_an_outbound_message_keeps_its_author(self, store, run):
        """The author is stored with the message, read back with it, and named in its
        ``message.created`` event; a message without one has none."""
        conversation = run(store.ingest_inbound("sms", inbound("h1"))).conversation
        message, _ = run(store.create_outbound(conversation.id, "hi", (), {}, None, author=AGENT))
        assert message.author == AGENT
        assert run(store.get_message(message.id)).author == AGENT
        plain, _ = run(store.create_outbound(conversation.id, "hi", (), {}, None))
        assert run(store.get_message(plain.id)).author is None
        created = [e for e in logged(self.events, run) if e.type == "message.created"]
        assert created[1].data["author"] == {"kind": "user", "id": "u_agent"}
        assert "author" not in created[0].data  # inbound
        assert "author" not in created[2].data

    def test_status_and_assignee_changes_are_kept_in_order_with_who_made_them(self, store, run):
        conversation = run(store.ingest_inbound("sms", inbound("h2"))).conversation
        run(store.update_conversation(conversation.id, assignee="u_agent", by=AGENT))
        run(store.update_conversation(conversation.id, unread_count=0, by=AGENT))  # not kept
        run(
            store.update_conversation(conversation.id, status=ConversationStatus.RESOLVED, by=AGENT)
        )
        run(store.ingest_inbound("sms", inbound("h2b")))  # the contact writes: reopened
        changes = run(store.conversation_changes(conversation.id))
        assert [(c.previous_status, c.status) for c in changes] == [
            (ConversationStatus.OPEN, ConversationStatus.OPEN),
            (ConversationStatus.OPEN, ConversationStatus.RESOLVED),
            (ConversationStatus.RESOLVED, ConversationStatus.OPEN),
        ]
        assert [(c.previous_assignee, c.assignee) for c in changes] == [
            (None, "u_agent"),
            ("u_agent", "u_agent"),
            ("u_agent", "u_agent"),
        ]
        assert [c.by for c in changes] == [AGENT, AGENT, None]
        assert changes[0].at <= changes[1].at <= changes[2].at
        updated = [e for e in logged(self.events, run) if e.type == "conversation.updated"]
        with_change = [e.data.get("change_id") for e in updated]
        assert with_change == [changes[0].id, None, changes[1].id, changes[2].id]

    def test_changes_of_an_unknown_conversation_is_not_found(self, store, run):
        with pytest.raises(NotFound):
            run(store.conversation_changes("cv_unknown"))

    def test_the_history_pages_oldest_first_each_change_once(self, store, run):
        """Following ``next_cursor`` through ``list_changes``, at any page size, yields the
        conversation's changes exactly once, in the order ``conversation_changes`` reads
        them whole (by ``at``, then id), and none of another conversation's; the page that
        ends the history carries no cursor."""
        conversation = run(store.ingest_inbound("sms", inbound("hp1"))).conversation
        other = run(store.ingest_inbound("sms", inbound("hp2", sender="+15550002")))
        run(store.update_conversation(other.conversation.id, assignee="u_other", by=AGENT))
        run(store.update_conversation(conversation.id, assignee="u_agent", by=AGENT))
        for status in [ConversationStatus.PENDING, ConversationStatus.OPEN] * 3:
            run(store.update_conversation(conversation.id, status=status, by=AGENT))
        run(store.update_conversation(conversation.id, status=ConversationStatus.RESOLVED))
        run(store.ingest_inbound("sms", inbound("hp3")))  # the contact writes: reopened
        whole = run(store.conversation_changes(conversation.id))
        everything = [change.id for change in whole]
        assert len(everything) == 9
        assert [(c.at, c.id) for c in whole] == sorted((c.at, c.id) for c in whole)

        def fetch(cursor, limit):
            return store.list_changes(conversation.id, cursor, limit)

        for limit in (1, 2, 4, 8, 9, 10, 200):
            assert all_pages(run, fetch, limit) == everything, limit
        first = run(fetch(None, 4))
        assert first.items == list(whole[:4])  # each change whole, as the full read has it
        assert first.next_cursor is not None
        last = run(fetch(run(fetch(first.next_cursor, 4)).next_cursor, 4))
        assert last.items == [whole[8]]
        assert last.next_cursor is None
        assert run(fetch(None, 9)).next_cursor is None  # exactly full: no empty page after

    def test_a_conversation_without_changes_has_one_empty_page(self, store, run):
        conversation = run(store.ingest_inbound("sms", inbound("hp4"))).conversation
        page = run(store.list_changes(conversation.id, None, 10))
        assert (page.items, page.next_cursor) == ([], None)

    def test_the_history_page_of_an_unknown_conversation_is_not_found(self, store, run):
        """An unknown id, or one no record can have, is NotFound (with or without a
        cursor: a valid one names a position, not the conversation)."""
        plausible = encode_cursor(FORGED_AT, f"chg_{FORGED_ID_BODY}")
        for unknown in ("cv_unknown", *IMPOSSIBLE_IDS):
            for cursor in (None, plausible):
                with pytest.raises(NotFound):
                    run(store.list_changes(unknown, cursor, 10))

    def test_a_cursor_no_history_page_made_is_invalid_input(self, store, run):
        """A malformed cursor, a forged one (another timestamp format, another list's ids,
        ``["", ""]``...) and a real cursor of the conversation's messages raise InvalidInput
        naming the cursor; one of the right shape is a position like any."""
        conversation = run(store.ingest_inbound("sms", inbound("hp5"))).conversation
        run(store.create_outbound(conversation.id, "answer", (), {}, None))
        messages = run(store.list_messages(conversation.id, None, 1))
        assert messages.next_cursor is not None
        for cursor in [*INVALID_CURSORS, *forged_cursors("chg"), messages.next_cursor]:
            with pytest.raises(InvalidInput) as refused:
                run(store.list_changes(conversation.id, cursor, 10))
            assert refused.value.details == {"parameter": "cursor"}, cursor
        plausible = encode_cursor(FORGED_AT, f"chg_{FORGED_ID_BODY}")
        assert run(store.list_changes(conversation.id, plausible, 10)).items == []

    def test_scan_hands_over_every_conversation_whole_page_by_page(self, store, run):
        ids = set()
        for n in range(5):
            conversation = run(store.ingest_inbound("sms", inbound(f"s{n}", sender=f"+1555000{n}")))
            ids.add(conversation.conversation.id)
            run(
                store.create_outbound(
                    conversation.conversation.id, "answer", (), {}, None, author=AWAY
                )
            )
            run(
                store.update_conversation(
                    conversation.conversation.id, status=ConversationStatus.RESOLVED
                )
            )
        seen, cursor, pages = {}, None, 0
        while True:
            records, cursor = run(store.scan_history(cursor, 2))
            pages += 1
            for record in records:
                seen[record.conversation.id] = record
            if cursor is None:
                break
        assert set(seen) == ids
        assert pages == 3
        for record in seen.values():
            assert [m.direction for m in record.messages] == [
                Direction.INBOUND,
                Direction.OUTBOUND,
            ]
            assert record.messages[1].author == AWAY
            assert [c.status for c in record.changes] == [ConversationStatus.RESOLVED]
            assert record.changes[0].by is None
