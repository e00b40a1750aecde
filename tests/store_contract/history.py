"""Who sent each outbound message, and each conversation's history of status and assignee:
kept in the store for good, and read back whole for a rebuild."""

from __future__ import annotations

import pytest

from omnichannel_core.errors import NotFound
from omnichannel_core.models import Author, AuthorKind, ConversationStatus, Direction
from tests.store_contract.events import logged
from tests.store_contract.fixtures import StoreFixtures, inbound

AGENT = Author(AuthorKind.USER, "u_agent", "Ana")
AWAY = Author(AuthorKind.AUTOMATION, "away_message", "away message")


class HistoryContract(StoreFixtures):
    """What ``create_outbound(author=...)``, ``update_conversation(by=...)``,
    ``conversation_changes`` and ``scan_history`` promise."""

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
