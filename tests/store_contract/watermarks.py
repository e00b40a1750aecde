"""Receipts by time and the messaging window: ``apply_watermark`` moves every message a
watermark covers, forward only, in bounded batches, logging each move; ``last_inbound_at``
records when the customer last wrote."""

from __future__ import annotations

import time
from datetime import timedelta, timezone
from typing import Any

import pytest

from omnichannel_core.events.records import Event
from omnichannel_core.hooktypes import InboundMessage
from omnichannel_core.models import DeliveryStatus, Message, utcnow
from omnichannel_core.modules.inbox.events import InboxEvent
from omnichannel_core.modules.inbox.store import InboxStore
from omnichannel_core.store.protocols import EventLog
from tests.store_contract.fixtures import Run, StoreFixtures, inbound

ADDRESS = "+15550100"
"""The address of the conversation `StoreFixtures._conversation` opens."""
OUTBOUND_STATUSES = [status for status in DeliveryStatus if status is not DeliveryStatus.RECEIVED]


def events_since(log: EventLog, run: Run[Any], after: str | None) -> list[Event]:
    """Every event logged after the cursor ``after`` (None: from the start)."""
    events: list[Event] = []
    while page := run(log.after(after, 50)):
        events.extend(page)
        after = page[-1].cursor
    return events


class WatermarksContract(StoreFixtures):
    """What ``apply_watermark`` promises."""

    def _sent(
        self, store: InboxStore, run: Run[Any], conversation_id: str, count: int
    ) -> list[Message]:
        """``count`` outbound messages, sent, each stored after the one before."""
        messages = []
        for number in range(count):
            message, _ = run(store.create_outbound(conversation_id, f"m{number}", (), {}, None))
            applied = run(
                store.advance_message(
                    message.id, DeliveryStatus.SENT, f"pm-{conversation_id}-{number}"
                )
            )
            messages.append(applied.message)
            time.sleep(0.002)  # distinct stored times, so a watermark can fall between two
        return messages

    def test_messages_stored_up_to_the_watermark_move(self, store, run):
        """A delivered watermark at the second message's stored time moves the first two
        (at or before it, inclusive) to delivered and returns them, oldest first, as stored;
        the third, stored after it, stays sent. A zone other than UTC means the same time."""
        conversation = self._conversation(store, run)
        first, second, third = self._sent(store, run, conversation.id, 3)
        assert first.created_at < second.created_at < third.created_at
        up_to = second.created_at.astimezone(timezone(timedelta(hours=-5)))
        moved = run(store.apply_watermark("sms", ADDRESS, DeliveryStatus.DELIVERED, up_to))
        assert [message.id for message in moved] == [first.id, second.id]
        assert {message.status for message in moved} == {DeliveryStatus.DELIVERED}
        assert moved == [run(store.get_message(first.id)), run(store.get_message(second.id))]
        assert run(store.get_message(third.id)).status is DeliveryStatus.SENT

    @pytest.mark.parametrize("target", [DeliveryStatus.DELIVERED, DeliveryStatus.READ], ids=str)
    @pytest.mark.parametrize("start", OUTBOUND_STATUSES, ids=str)
    def test_watermarks_move_forward_only(self, store, run, start, target):
        """A watermark moves a message the provider accepted (sent, delivered) forward to its
        status; a queued or sending one (a send in flight or retrying was not sent before the
        watermark) and read, failed and undelivered ones stay as they are."""
        conversation = self._conversation(store, run)
        message, _ = run(store.create_outbound(conversation.id, "x", (), {}, None))
        if start is not DeliveryStatus.QUEUED:
            run(store.advance_message(message.id, start))
        moved = run(store.apply_watermark("sms", ADDRESS, target, utcnow()))
        accepted = start in (DeliveryStatus.SENT, DeliveryStatus.DELIVERED)
        expected = target if accepted and start.can_move_to(target) else start
        assert [m.id for m in moved] == ([message.id] if expected is not start else [])
        assert run(store.get_message(message.id)).status is expected

    def test_read_watermark_passes_delivered(self, store, run):
        """A read watermark moves sent and delivered messages alike to read; a delivered
        watermark after it changes nothing."""
        conversation = self._conversation(store, run)
        sent, delivered = self._sent(store, run, conversation.id, 2)
        run(store.advance_message(delivered.id, DeliveryStatus.DELIVERED))
        moved = run(store.apply_watermark("sms", ADDRESS, DeliveryStatus.READ, utcnow()))
        assert [(m.id, m.status) for m in moved] == [
            (sent.id, DeliveryStatus.READ),
            (delivered.id, DeliveryStatus.READ),
        ]
        assert run(store.apply_watermark("sms", ADDRESS, DeliveryStatus.DELIVERED, utcnow())) == []
        assert run(store.get_message(sent.id)).status is DeliveryStatus.READ

    def test_inbound_messages_are_left_alone(self, store, run):
        """A watermark for a conversation the customer wrote in moves only outbound
        messages: the customer's own stay received."""
        ingested = run(store.ingest_inbound("sms", inbound("p1", ADDRESS)))
        [sent] = self._sent(store, run, ingested.conversation_id, 1)
        moved = run(store.apply_watermark("sms", ADDRESS, DeliveryStatus.READ, utcnow()))
        assert [message.id for message in moved] == [sent.id]
        assert run(store.get_message(ingested.message_id)).status is DeliveryStatus.RECEIVED

    def test_unknown_recipient_moves_nothing(self, store, run):
        """A recipient no conversation of the channel answers to is no error: [] and
        nothing changes, here or in the conversation with that address on another
        channel, or with another address on this one."""
        conversation = self._conversation(store, run)
        [sent] = self._sent(store, run, conversation.id, 1)
        start = run(self.events.latest())
        for channel, recipient in (("sms", "+19990000"), ("email", ADDRESS)):
            assert (
                run(store.apply_watermark(channel, recipient, DeliveryStatus.READ, utcnow())) == []
            )
        assert run(store.get_message(sent.id)).status is DeliveryStatus.SENT
        assert events_since(self.events, run, start) == []

    def test_other_conversations_are_left_alone(self, store, run):
        """A watermark for one customer does not touch another customer's messages."""
        mine = self._conversation(store, run)
        other = run(store.resolve_recipient("sms", "+15550200"))[1]
        [sent_mine] = self._sent(store, run, mine.id, 1)
        [sent_other] = self._sent(store, run, other.id, 1)
        moved = run(store.apply_watermark("sms", ADDRESS, DeliveryStatus.DELIVERED, utcnow()))
        assert [message.id for message in moved] == [sent_mine.id]
        assert run(store.get_message(sent_other.id)).status is DeliveryStatus.SENT

    def test_each_move_is_logged_once(self, store, run):
        """Every message a watermark moves logs one message.status_changed with its
        conversation and the conversation's assignee; applying the same watermark again
        moves nothing and logs nothing."""
        conversation = self._conversation(store, run)
        run(store.update_conversation(conversation.id, assignee="usr_a"))
        sent = self._sent(store, run, conversation.id, 3)
        start = run(self.events.latest())
        up_to = utcnow()
        moved = run(store.apply_watermark("sms", ADDRESS, DeliveryStatus.DELIVERED, up_to))
        events = events_since(self.events, run, start)
        assert sorted(event.record_id for event in events) == sorted(m.id for m in sent)
        assert [m.id for m in moved] == [m.id for m in sent]
        for event in events:
            assert event.type == InboxEvent.MESSAGE_STATUS_CHANGED
            assert (event.conversation_id, event.assignees) == (conversation.id, ("usr_a",))
        again = run(self.events.latest())
        assert run(store.apply_watermark("sms", ADDRESS, DeliveryStatus.DELIVERED, up_to)) == []
        assert events_since(self.events, run, again) == []

    def test_long_conversations_move_in_batches(self, store, run):
        """With a batch of 2, a watermark over 5 messages still moves all 5 (and a 6th,
        stored after it, not), returns them oldest first, and logs 5 events."""
        store.watermark_batch = 2
        conversation = self._conversation(store, run)
        sent = self._sent(store, run, conversation.id, 6)
        start = run(self.events.latest())
        moved = run(store.apply_watermark("sms", ADDRESS, DeliveryStatus.READ, sent[4].created_at))
        assert [m.id for m in moved] == [m.id for m in sent[:5]]
        assert {m.status for m in moved} == {DeliveryStatus.READ}
        assert len(events_since(self.events, run, start)) == 5
        assert run(store.get_message(sent[5].id)).status is DeliveryStatus.SENT


class MessagingWindowContract(StoreFixtures):
    """What ``Conversation.last_inbound_at`` holds: when the customer last wrote."""

    def test_a_conversation_nobody_wrote_in_has_none(self, store, run):
        """A conversation opened to send (resolve_recipient) has no last_inbound_at, and
        sending in it does not set one."""
        conversation = self._conversation(store, run)
        assert conversation.last_inbound_at is None
        run(store.create_outbound(conversation.id, "hello", (), {}, None))
        assert run(store.get_conversation(conversation.id)).last_inbound_at is None

    def test_each_inbound_message_moves_it(self, store, run):
        """The first inbound message sets it to the message's stored time (the provider
        gave no sent_at); a later one moves it to that one's; both are readable back."""
        first = run(store.ingest_inbound("sms", inbound("p1", ADDRESS)))
        assert first.conversation.last_inbound_at == first.message.created_at
        assert run(store.get_conversation(first.conversation_id)).last_inbound_at == (
            first.message.created_at
        )
        time.sleep(0.002)
        second = run(store.ingest_inbound("sms", inbound("p2", ADDRESS)))
        assert second.conversation.last_inbound_at == second.message.created_at
        assert second.message.created_at > first.message.created_at
        assert run(store.get_conversation(first.conversation_id)).last_inbound_at == (
            second.message.created_at
        )

    def test_a_conversation_opened_to_send_gets_it_when_the_customer_answers(self, store, run):
        """A customer answering in a conversation opened to send sets it."""
        conversation = self._conversation(store, run)
        answer = run(store.ingest_inbound("sms", inbound("p1", ADDRESS)))
        assert answer.conversation_id == conversation.id
        assert run(store.get_conversation(conversation.id)).last_inbound_at == (
            answer.message.created_at
        )

    def test_it_is_the_providers_time_never_later_than_stored_never_back(self, store, run):
        """A message's sent_at is when the customer wrote (a webhook retried late still
        counts from then); a sent_at ahead of the store's clock counts as the stored time;
        an older message arriving late does not move it back; a duplicate changes nothing."""
        earlier = utcnow() - timedelta(hours=3)
        first = run(store.ingest_inbound("sms", InboundMessage("p1", ADDRESS, sent_at=earlier)))
        conversation_id = first.conversation_id
        assert run(store.get_conversation(conversation_id)).last_inbound_at == earlier
        ahead = utcnow() + timedelta(hours=1)
        second = run(store.ingest_inbound("sms", InboundMessage("p2", ADDRESS, sent_at=ahead)))
        assert second.conversation.last_inbound_at == second.message.created_at
        late = earlier - timedelta(hours=1)
        run(store.ingest_inbound("sms", InboundMessage("p3", ADDRESS, sent_at=late)))
        run(store.ingest_inbound("sms", InboundMessage("p1", ADDRESS, sent_at=utcnow())))
        assert run(store.get_conversation(conversation_id)).last_inbound_at == (
            second.message.created_at
        )
