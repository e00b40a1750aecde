"""Outbound messages: recipients resolved, messages queued, idempotency keys."""

from __future__ import annotations

import asyncio

import pytest

from omnichannel_core.errors import NotFound
from omnichannel_core.models import (
    ConversationStatus,
    DeliveryStatus,
    Direction,
    Identity,
    Media,
    Message,
)
from tests.store_contract.fixtures import StoreFixtures, inbound


class OutboundContract(StoreFixtures):
    """What ``resolve_recipient``, ``create_outbound`` and ``find_by_idempotency_key``
    promise."""

    def test_resolve_recipient_creates_then_finds(self, store, run):
        """resolve_recipient creates a contact and an open conversation with nothing unread
        for a new address, and finds the same pair the next time."""
        contact, conversation = run(store.resolve_recipient("sms", "+15550002", "Bob"))
        assert contact.display_name == "Bob"
        assert contact.identities == (Identity("sms", "+15550002"),)
        assert conversation.contact_id == contact.id
        assert (conversation.channel, conversation.address) == ("sms", "+15550002")
        assert conversation.unread_count == 0
        assert conversation.status is ConversationStatus.OPEN
        again_contact, again_conversation = run(store.resolve_recipient("sms", "+15550002"))
        assert (again_contact.id, again_conversation.id) == (contact.id, conversation.id)
        assert again_contact.display_name == "Bob"

    def test_resolve_recipient_finds_the_contact_of_an_inbound_sender(self, store, run):
        """An address that wrote in resolves to that sender's contact and conversation."""
        ingested = run(store.ingest_inbound("sms", inbound("p1", "+15550003")))
        contact, conversation = run(store.resolve_recipient("sms", "+15550003"))
        assert contact.id == ingested.contact.id
        assert conversation.id == ingested.conversation.id

    def test_find_conversation_finds_what_resolve_recipient_would_and_writes_nothing(
        self, store, run
    ):
        """find_conversation answers the conversation resolve_recipient picks for an address
        (an inbound sender's, or one an agent wrote to), as stored, and writes nothing: no
        event, no change to the conversation."""
        ingested = run(store.ingest_inbound("sms", inbound("p1", "+15550003")))
        _, written_to = run(store.resolve_recipient("sms", "+15550004", "Bob"))
        start = run(self.events.latest())
        found = run(store.find_conversation("sms", "+15550003"))
        assert found == run(store.get_conversation(ingested.conversation_id))
        assert run(store.find_conversation("sms", "+15550004")) == written_to
        assert run(store.resolve_recipient("sms", "+15550004"))[1] == written_to
        assert run(self.events.latest()) == start

    def test_find_conversation_of_an_unknown_address_is_none_and_makes_no_contact(self, store, run):
        """An address no contact is reached at on the channel, even one known on another
        channel, answers None, and no contact or conversation is made for it."""
        run(store.ingest_inbound("email", inbound("p1", "ann@example.test")))
        assert run(store.find_conversation("sms", "+15550009")) is None
        assert run(store.find_conversation("sms", "ann@example.test")) is None
        assert len(run(store.list_contacts(None, None, 10)).items) == 1
        assert len(run(store.list_conversations(None, None, None, None, 10)).items) == 1

    def test_create_outbound_stores_a_queued_message(self, store, run):
        """An outbound message is stored queued, on the conversation's channel and contact,
        with its text, media and metadata; without a key every call makes a new message."""
        conversation = self._conversation(store, run)
        media = (Media("https://example.test/x.png", "image/png"),)
        message, created = run(
            store.create_outbound(conversation.id, "hello", media, {"agent": "a1"}, None)
        )
        assert created is True
        assert message.direction is Direction.OUTBOUND
        assert message.status is DeliveryStatus.QUEUED
        assert (message.conversation_id, message.contact_id) == (
            conversation.id,
            conversation.contact_id,
        )
        assert (message.channel, message.text, message.media) == ("sms", "hello", media)
        assert message.metadata == {"agent": "a1"}
        assert message.provider_message_id is None
        other, created_again = run(store.create_outbound(conversation.id, "hello", (), {}, None))
        assert created_again is True
        assert other.id != message.id
        assert run(store.get_message(message.id)) == message

    def test_create_outbound_with_idempotency_key_stores_once(self, store, run):
        """A repeated idempotency key returns the message stored the first time, with
        created=False, and stores nothing new."""
        conversation = self._conversation(store, run)
        first, created = run(store.create_outbound(conversation.id, "once", (), {}, "key-1"))
        again, created_again = run(store.create_outbound(conversation.id, "twice", (), {}, "key-1"))
        assert (created, created_again) == (True, False)
        assert again == first
        assert again.idempotency_key == "key-1"
        assert again.text == "once"
        page = run(store.list_messages(conversation.id, None, 50))
        assert [m.id for m in page.items] == [first.id]

    def test_find_by_idempotency_key(self, store, run):
        """An outbound message is found by its idempotency key; an unused key finds None."""
        conversation = self._conversation(store, run)
        stored, _ = run(store.create_outbound(conversation.id, "once", (), {}, "key-find"))
        assert run(store.find_by_idempotency_key("key-find")) == stored
        assert run(store.find_by_idempotency_key("key-unused")) is None

    def test_concurrent_idempotent_creates_store_one_message(self, store, run):
        """Concurrent creates with one idempotency key store one message; all return it."""
        conversation = self._conversation(store, run)

        async def create_all() -> list[tuple[Message, bool]]:
            return await asyncio.gather(
                *(store.create_outbound(conversation.id, "x", (), {}, "k") for _ in range(20))
            )

        results = run(create_all())
        assert sum(created for _, created in results) == 1
        assert len({message.id for message, _ in results}) == 1

    def test_create_outbound_for_unknown_conversation_is_not_found(self, store, run):
        """Replying into a conversation that does not exist raises NotFound."""
        with pytest.raises(NotFound):
            run(store.create_outbound("cv_missing", "hi", (), {}, None))

    def test_create_outbound_counts_as_activity(self, store, run):
        """Sending a message moves the conversation's last activity forward."""
        conversation = self._conversation(store, run)
        run(store.create_outbound(conversation.id, "hi", (), {}, None))
        after = run(store.get_conversation(conversation.id))
        assert after.last_activity_at >= conversation.last_activity_at

    def test_resolve_recipient_with_reply_to(self, store, run):
        """The contact is found by its address; the conversation answers to reply_to."""
        contact, conversation = run(
            store.resolve_recipient("twilio", "+15550011", reply_to="whatsapp:+15550011")
        )
        assert contact.identities[0].address == "+15550011"
        assert conversation.address == "whatsapp:+15550011"

    def test_find_by_provider_id(self, store, run):
        """A message is found by its channel, direction and provider id (an outbound one once
        recorded); another channel, the other direction or an unknown id find None."""
        conversation = self._conversation(store, run)
        message, _ = run(store.create_outbound(conversation.id, "x", (), {}, None))
        run(store.advance_message(message.id, DeliveryStatus.SENT, provider_message_id="SM1"))
        received = run(store.ingest_inbound("sms", inbound("SM2")))
        found = run(store.find_by_provider_id("sms", Direction.OUTBOUND, "SM1"))
        assert found is not None and found.id == message.id
        found = run(store.find_by_provider_id("sms", Direction.INBOUND, "SM2"))
        assert found is not None and found.id == received.message_id
        assert run(store.find_by_provider_id("other", Direction.OUTBOUND, "SM1")) is None
        assert run(store.find_by_provider_id("sms", Direction.OUTBOUND, "SM2")) is None
        assert run(store.find_by_provider_id("sms", Direction.INBOUND, "SM1")) is None
        assert run(store.find_by_provider_id("sms", Direction.OUTBOUND, "nope")) is None
