"""Inbound messages: contacts, identities and conversations made or found, dedupe by
provider id, display names, reopening."""

from __future__ import annotations

import asyncio
from typing import Any

from omnichannel_core.hooktypes import InboundMessage
from omnichannel_core.models import (
    Contact,
    Conversation,
    ConversationStatus,
    DeliveryStatus,
    Direction,
    Identity,
    Media,
    Message,
)
from tests.store_contract.fixtures import StoreFixtures, inbound


class InboundContract(StoreFixtures):
    """What ``ingest_inbound`` promises."""

    def test_ingest_inbound_creates_contact_identity_conversation_and_message(self, store, run):
        """A first message from a sender creates its contact, identity, open conversation with
        one unread message, and the inbound message itself, all readable back by id."""
        ingested = run(store.ingest_inbound("sms", inbound("p1", "+15550001", "hi", "Ann")))
        assert ingested.created is True
        contact, conversation, message = ingested.contact, ingested.conversation, ingested.message
        assert isinstance(contact, Contact)
        assert contact.display_name == "Ann"
        assert contact.identities == (Identity("sms", "+15550001"),)
        assert isinstance(conversation, Conversation)
        assert conversation.contact_id == contact.id
        assert (conversation.channel, conversation.address) == ("sms", "+15550001")
        assert conversation.status is ConversationStatus.OPEN
        assert conversation.unread_count == 1
        assert isinstance(message, Message)
        assert message.direction is Direction.INBOUND
        assert message.status is DeliveryStatus.RECEIVED
        assert (message.channel, message.provider_message_id, message.text) == ("sms", "p1", "hi")
        assert (message.conversation_id, message.contact_id) == (conversation.id, contact.id)
        assert run(store.get_contact(contact.id)) == contact
        assert run(store.get_conversation(conversation.id)) == conversation
        assert run(store.get_message(message.id)) == message

    def test_ingest_inbound_keeps_media(self, store, run):
        """Media attached to an inbound message is stored and read back unchanged."""
        media = (Media("https://example.test/a.jpg", "image/jpeg", "a.jpg"), Media("https://x/b"))
        message = InboundMessage(provider_message_id="m1", sender="+1", media=media)
        stored = run(store.ingest_inbound("sms", message)).message
        assert stored.media == media
        assert run(store.get_message(stored.id)).media == media

    def test_second_message_from_same_sender_joins_the_conversation(self, store, run):
        """A second message from the same sender on the same channel lands in the same
        conversation of the same contact, and the unread count goes up by one."""
        first = run(store.ingest_inbound("sms", inbound("p1")))
        second = run(store.ingest_inbound("sms", inbound("p2")))
        assert second.created is True
        assert second.message.id != first.message.id
        assert second.contact.id == first.contact.id
        assert second.conversation.id == first.conversation.id
        assert second.conversation.unread_count == 2
        assert second.conversation.last_activity_at >= first.conversation.last_activity_at
        assert run(store.get_conversation(first.conversation.id)).unread_count == 2

    def test_same_sender_on_another_channel_is_another_contact_and_conversation(self, store, run):
        """An address is only an identity on its own channel: the same string on another
        channel threads into a separate conversation."""
        sms = run(store.ingest_inbound("sms", inbound("p1", "+15550001")))
        whatsapp = run(store.ingest_inbound("whatsapp", inbound("p1", "+15550001")))
        assert whatsapp.conversation.id != sms.conversation.id
        assert whatsapp.conversation.channel == "whatsapp"

    def test_duplicate_provider_message_id_is_stored_once(self, store, run):
        """A retried webhook (same channel, same provider id) answers created=False with the
        stored message and changes nothing: no second message, unread count unchanged."""
        first = run(store.ingest_inbound("sms", inbound("p1", text="first")))
        again = run(store.ingest_inbound("sms", inbound("p1", text="retried")))
        assert again.created is False
        assert again.message == first.message
        assert again.message.text == "first"
        assert run(store.get_conversation(first.conversation.id)).unread_count == 1
        page = run(store.list_messages(first.conversation.id, None, 50))
        assert [m.id for m in page.items] == [first.message.id]

    def test_duplicate_from_another_sender_creates_nothing(self, store, run):
        """A duplicate provider id changes nothing even when the retry names another sender
        and a display name: no new contact, no name filled in."""
        first = run(store.ingest_inbound("sms", inbound("p1", "+15550001")))
        again = run(store.ingest_inbound("sms", inbound("p1", "+15559999", sender_name="Eve")))
        assert again.created is False
        assert again.message.id == first.message.id
        contacts = run(store.list_contacts(None, None, 50)).items
        assert [c.id for c in contacts] == [first.contact.id]
        assert contacts[0].display_name is None

    def test_same_provider_id_on_another_channel_is_another_message(self, store, run):
        """Dedupe is per channel: one provider id on two channels is two messages."""
        sms = run(store.ingest_inbound("sms", inbound("p1")))
        email = run(store.ingest_inbound("email", inbound("p1")))
        assert email.created is True
        assert email.message.id != sms.message.id
        assert run(store.get_message(sms.message.id)).channel == "sms"
        assert run(store.get_message(email.message.id)).channel == "email"

    def test_concurrent_duplicates_store_one_message(self, store, run):
        """Many concurrent ingests of one provider id store exactly one message and report
        created=True exactly once: dedupe is atomic, not read-then-write."""

        async def ingest_all() -> list[Any]:
            return await asyncio.gather(
                *(store.ingest_inbound("sms", inbound("same", text=f"try {i}")) for i in range(40))
            )

        results = run(ingest_all())
        assert sum(result.created for result in results) == 1
        assert len({result.message.id for result in results}) == 1
        conversation_id = results[0].conversation.id
        assert len(run(store.list_messages(conversation_id, None, 100)).items) == 1
        assert run(store.get_conversation(conversation_id)).unread_count == 1

    def test_display_name_is_filled_when_first_missing(self, store, run):
        """A contact first seen without a name takes the name a later message brings."""
        first = run(store.ingest_inbound("sms", inbound("p1")))
        assert first.contact.display_name is None
        second = run(store.ingest_inbound("sms", inbound("p2", sender_name="Ann Smith")))
        assert second.contact.id == first.contact.id
        assert second.contact.display_name == "Ann Smith"
        assert run(store.get_contact(first.contact.id)).display_name == "Ann Smith"

    def test_display_name_is_not_overwritten_by_a_later_message(self, store, run):
        """Once a contact has a name, a provider-supplied name does not replace it."""
        run(store.ingest_inbound("sms", inbound("p1", sender_name="Ann")))
        later = run(store.ingest_inbound("sms", inbound("p2", sender_name="Someone Else")))
        assert later.contact.display_name == "Ann"

    def test_resolved_conversation_reopens_on_new_message(self, store, run):
        """A new inbound message reopens a resolved conversation."""
        first = run(store.ingest_inbound("sms", inbound("p1")))
        resolved = run(
            store.update_conversation(first.conversation.id, status=ConversationStatus.RESOLVED)
        )
        assert resolved.status is ConversationStatus.RESOLVED
        second = run(store.ingest_inbound("sms", inbound("p2")))
        assert second.conversation.id == first.conversation.id
        assert second.conversation.status is ConversationStatus.OPEN
        assert run(store.get_conversation(first.conversation.id)).status is (
            ConversationStatus.OPEN
        )

    def test_duplicate_does_not_reopen_a_resolved_conversation(self, store, run):
        """A retried webhook of an old message leaves a resolved conversation resolved."""
        first = run(store.ingest_inbound("sms", inbound("p1")))
        run(store.update_conversation(first.conversation.id, status=ConversationStatus.RESOLVED))
        run(store.ingest_inbound("sms", inbound("p1")))
        conversation = run(store.get_conversation(first.conversation.id))
        assert conversation.status is ConversationStatus.RESOLVED

    def test_reply_to_is_the_conversation_address_and_sender_the_identity(self, store, run):
        """A customer identified by one address who writes from another (SMS and WhatsApp of
        one phone) is one contact with one conversation, which answers to the address the
        customer last wrote from."""
        sms = InboundMessage("r1", "+15550009", text="by sms")
        whatsapp = InboundMessage("r2", "+15550009", text="by wa", reply_to="whatsapp:+15550009")
        first = run(store.ingest_inbound("twilio", sms))
        second = run(store.ingest_inbound("twilio", whatsapp))
        assert second.contact.id == first.contact.id
        assert second.contact.identities == (Identity("twilio", "+15550009"),)
        assert second.conversation.id == first.conversation.id
        assert first.conversation.address == "+15550009"
        assert second.conversation.address == "whatsapp:+15550009"

    def test_consent_opts_the_contact_out_and_back_in_on_that_channel(self, store, run):
        """An opt-out message adds the channel to the contact's opted_out, an opt-in removes
        it; other channels and messages without consent leave it alone."""
        stop = InboundMessage("c1", "+15550010", text="STOP", consent="opt_out")
        plain = InboundMessage("c2", "+15550010", text="hello")
        start = InboundMessage("c3", "+15550010", text="START", consent="opt_in")
        assert run(store.ingest_inbound("twilio", stop)).contact.opted_out == ("twilio",)
        assert run(store.ingest_inbound("twilio", plain)).contact.opted_out == ("twilio",)
        contact = run(store.ingest_inbound("twilio", start)).contact
        assert contact.opted_out == ()
        assert run(store.get_contact(contact.id)).opted_out == ()
