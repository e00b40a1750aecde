"""Conversations and their messages: updates, filters and order."""

from __future__ import annotations

import pytest

from omnichannel_core.audit import AuditEntry
from omnichannel_core.errors import Conflict, NotFound
from omnichannel_core.ids import new_id
from omnichannel_core.models import ConversationStatus, utcnow
from tests.store_contract.fixtures import StoreFixtures, inbound
from tests.store_contract.paging import all_pages


class ConversationsContract(StoreFixtures):
    """What ``update_conversation``, ``list_conversations`` and ``list_messages`` promise."""

    def test_update_conversation_changes_only_given_fields(self, store, run):
        """update_conversation changes the fields given; assignee None unassigns."""
        conversation = run(store.ingest_inbound("sms", inbound("p1"))).conversation
        assigned = run(store.update_conversation(conversation.id, assignee="agent-1"))
        assert assigned.assignee == "agent-1"
        assert assigned.status is ConversationStatus.OPEN
        pending = run(store.update_conversation(conversation.id, status=ConversationStatus.PENDING))
        assert (pending.status, pending.assignee) == (ConversationStatus.PENDING, "agent-1")
        read = run(store.update_conversation(conversation.id, unread_count=0))
        assert (read.unread_count, read.status, read.assignee) == (
            0,
            ConversationStatus.PENDING,
            "agent-1",
        )
        unassigned = run(store.update_conversation(conversation.id, assignee=None))
        assert unassigned.assignee is None
        assert unassigned.status is ConversationStatus.PENDING
        assert run(store.get_conversation(conversation.id)) == unassigned

    def test_update_conversation_with_an_expected_assignee_changes_only_if_it_holds(
        self, store, run
    ):
        """With ``expected_assignee``, the change is made only when the assignee is that one
        (None: unassigned); otherwise Conflict, and nothing changes: two agents taking one
        conversation at once cannot both win."""
        conversation = run(store.ingest_inbound("sms", inbound("p1"))).conversation
        taken = run(
            store.update_conversation(conversation.id, assignee="a", expected_assignee=None)
        )
        assert taken.assignee == "a"
        with pytest.raises(Conflict):
            run(store.update_conversation(conversation.id, assignee="b", expected_assignee=None))
        with pytest.raises(Conflict):
            run(
                store.update_conversation(
                    conversation.id, status=ConversationStatus.RESOLVED, expected_assignee="b"
                )
            )
        assert run(store.get_conversation(conversation.id)) == taken

    def test_update_conversation_keeps_its_audit_entry_with_the_change(self, store, run):
        """The audit entry given is in the log after the change; when the change is refused
        (Conflict, NotFound) the entry is not kept either."""
        conversation = run(store.ingest_inbound("sms", inbound("p1"))).conversation

        def entry(target: str) -> AuditEntry:
            return AuditEntry(
                id=new_id("aud"),
                action="conversation.assigned",
                actor_type="user",
                actor_id="a",
                target_type="conversation",
                target_id=target,
                details={"from": None, "to": "a"},
                client_address="192.0.2.1",
                at=utcnow(),
            )

        kept = entry(conversation.id)
        run(store.update_conversation(conversation.id, assignee="a", audit=kept))
        refused = entry(conversation.id)
        with pytest.raises(Conflict):
            run(
                store.update_conversation(
                    conversation.id, assignee="b", expected_assignee=None, audit=refused
                )
            )
        with pytest.raises(NotFound):
            run(store.update_conversation("cv_missing", assignee="b", audit=entry("cv_missing")))
        logged = run(self.audit.list("conversation.assigned", None, 100)).items
        assert [e.id for e in logged] == [kept.id]

    def test_list_conversations_most_recent_activity_first(self, store, run):
        """Conversations are listed by last activity, most recent first: a new message
        moves its conversation to the top."""
        a = run(store.ingest_inbound("sms", inbound("p1", "+1001"))).conversation
        b = run(store.ingest_inbound("sms", inbound("p2", "+1002"))).conversation
        c = run(store.ingest_inbound("sms", inbound("p3", "+1003"))).conversation
        listed = run(store.list_conversations(None, None, None, None, 10)).items
        assert [x.id for x in listed] == [c.id, b.id, a.id]
        run(store.ingest_inbound("sms", inbound("p4", "+1001")))
        listed = run(store.list_conversations(None, None, None, None, 10)).items
        assert [x.id for x in listed] == [a.id, c.id, b.id]

    def test_list_conversations_filters(self, store, run):
        """Conversations filter by status, channel and assignee, alone or together."""
        sms_open = run(store.ingest_inbound("sms", inbound("p1", "+1001"))).conversation
        sms_resolved = run(store.ingest_inbound("sms", inbound("p2", "+1002"))).conversation
        mail = run(store.ingest_inbound("email", inbound("p3", "a@example.test"))).conversation
        run(store.update_conversation(sms_resolved.id, status=ConversationStatus.RESOLVED))
        run(store.update_conversation(mail.id, assignee="agent-1"))
        run(store.update_conversation(sms_resolved.id, assignee="agent-1"))

        def listed(status=None, channel=None, assignee=None) -> set[str]:
            page = run(store.list_conversations(status, channel, assignee, None, 50))
            return {conversation.id for conversation in page.items}

        everyone = {sms_open.id, sms_resolved.id, mail.id}
        assert listed() == everyone
        assert listed(status=ConversationStatus.OPEN) == {sms_open.id, mail.id}
        assert listed(status=ConversationStatus.RESOLVED) == {sms_resolved.id}
        assert listed(status=ConversationStatus.PENDING) == set()
        assert listed(channel="sms") == {sms_open.id, sms_resolved.id}
        assert listed(channel="email") == {mail.id}
        assert listed(assignee="agent-1") == {sms_resolved.id, mail.id}
        assert listed(assignee="agent-2") == set()
        assert listed(status=ConversationStatus.OPEN, assignee="agent-1") == {mail.id}
        assert listed(ConversationStatus.RESOLVED, "sms", "agent-1") == {sms_resolved.id}
        assert listed(ConversationStatus.RESOLVED, "email", "agent-1") == set()

    def test_list_conversations_assigned_to_an_agent_or_to_nobody(self, store, run):
        """assigned_to_or_unassigned keeps the conversations assigned to that agent or to
        nobody, never another agent's; it combines with the other filters and pages."""
        mine = run(store.ingest_inbound("sms", inbound("p1", "+1001"))).conversation
        unassigned = run(store.ingest_inbound("sms", inbound("p2", "+1002"))).conversation
        theirs = run(store.ingest_inbound("sms", inbound("p3", "+1003"))).conversation
        mine_resolved = run(store.ingest_inbound("email", inbound("p4", "a@x.test"))).conversation
        run(store.update_conversation(mine.id, assignee="usr_agent"))
        run(store.update_conversation(theirs.id, assignee="usr_other"))
        run(store.update_conversation(mine_resolved.id, assignee="usr_agent"))
        run(store.update_conversation(mine_resolved.id, status=ConversationStatus.RESOLVED))

        def listed(agent, status=None, channel=None, assignee=None) -> list[str]:
            page = run(store.list_conversations(status, channel, assignee, None, 50, agent))
            return [conversation.id for conversation in page.items]

        visible = listed("usr_agent")
        assert visible == [mine_resolved.id, unassigned.id, mine.id]  # most recent first
        assert listed("usr_other") == [theirs.id, unassigned.id]
        assert listed("usr_nobody") == [unassigned.id]
        assert listed(None) == [mine_resolved.id, theirs.id, unassigned.id, mine.id]
        assert listed("usr_agent", status=ConversationStatus.OPEN) == [unassigned.id, mine.id]
        assert listed("usr_agent", channel="email") == [mine_resolved.id]
        assert listed("usr_agent", assignee="usr_agent") == [mine_resolved.id, mine.id]
        assert listed("usr_agent", assignee="usr_other") == []
        for limit in (1, 2, 3, 4):
            pages = all_pages(
                run,
                lambda cursor, size: store.list_conversations(
                    None, None, None, cursor, size, assigned_to_or_unassigned="usr_agent"
                ),
                limit,
            )
            assert pages == visible

    def test_list_messages_oldest_first(self, store, run):
        """A conversation's messages, in and out, are listed oldest first, and only its own."""
        first = run(store.ingest_inbound("sms", inbound("p1", "+1001"))).message
        run(store.ingest_inbound("sms", inbound("other", "+1999")))
        reply, _ = run(store.create_outbound(first.conversation_id, "reply", (), {}, None))
        last = run(store.ingest_inbound("sms", inbound("p2", "+1001"))).message
        page = run(store.list_messages(first.conversation_id, None, 10))
        assert [m.id for m in page.items] == [first.id, reply.id, last.id]
        assert page.next_cursor is None

    def test_create_outbound_with_an_expected_assignee_stores_only_if_it_holds(self, store, run):
        """create_outbound with ``expected_assignee`` stores the message when the
        conversation's assignee is that one, and otherwise raises Conflict and stores
        nothing: a reply cannot land in a conversation given to someone else meanwhile."""
        conversation = run(store.ingest_inbound("sms", inbound("p1"))).conversation
        mine, created = run(
            store.create_outbound(conversation.id, "a", (), {}, None, expected_assignee=None)
        )
        assert created and mine.text == "a"
        run(store.update_conversation(conversation.id, assignee="b"))
        with pytest.raises(Conflict):
            run(store.create_outbound(conversation.id, "x", (), {}, None, expected_assignee=None))
        theirs, _ = run(
            store.create_outbound(conversation.id, "c", (), {}, None, expected_assignee="b")
        )
        texts = [m.text for m in run(store.list_messages(conversation.id, None, 10)).items]
        assert texts == ["hello", "a", "c"]
        assert theirs.text == "c"
