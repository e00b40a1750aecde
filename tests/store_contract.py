"""The store contract: what every backend promises, written once for all of them.

A backend's test module subclasses :class:`StoreContract` and provides a ``store`` fixture
that opens a fresh, empty store (using the ``run`` fixture to await ``open`` and ``close``)::

    class TestSqliteStore(StoreContract):
        @pytest.fixture
        def store(self, tmp_path, run):
            store = SqliteStore(tmp_path / "store.db")
            run(store.open())
            yield store
            run(store.close())

Only the contract is tested here (the ``Store`` protocol in ``omnichannel_core.store``), never
a backend's internals, so the Firestore backend runs this suite unchanged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any, TypeVar

import pytest

from omnichannel_core.errors import InvalidInput, NotFound
from omnichannel_core.hooktypes import InboundMessage, StatusUpdate
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
from omnichannel_core.store import Store

T = TypeVar("T")
Run = Callable[[Awaitable[T]], T]

OUTBOUND_STATUSES = [status for status in DeliveryStatus if status is not DeliveryStatus.RECEIVED]
INVALID_CURSORS = ["not a cursor!", "bm9wZQ", "W10", "WzEsMl0", "WyJhIiwiYiIsImMiXQ"]


def inbound(
    provider_message_id: str,
    sender: str = "+15550001",
    text: str | None = "hello",
    sender_name: str | None = None,
) -> InboundMessage:
    return InboundMessage(
        provider_message_id=provider_message_id,
        sender=sender,
        text=text,
        sender_name=sender_name,
    )


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


class StoreContract:
    """The behaviour every store backend must show. Subclasses provide ``store``."""

    @pytest.fixture
    def run(self) -> Iterator[Run[Any]]:
        """Runs a coroutine to completion on this test's own event loop."""
        loop = asyncio.new_event_loop()
        try:
            yield loop.run_until_complete
        finally:
            loop.close()

    @pytest.fixture
    def store(self, run: Run[Any]) -> Store:  # pragma: no cover - overridden by backends
        raise NotImplementedError("a backend's test class provides the store fixture")

    # ----------------------------------------------------------------- inbound

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

    # --------------------------------------------------------------- recipients

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

    # ----------------------------------------------------------------- outbound

    def _conversation(self, store: Store, run: Run[Any], channel: str = "sms") -> Conversation:
        return run(store.resolve_recipient(channel, "+15550100"))[1]

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

    # ----------------------------------------------------------- delivery status

    @pytest.mark.parametrize("start", OUTBOUND_STATUSES, ids=str)
    def test_advance_message_moves_forward_only(self, store, run, start):
        """From every status, an update to every other status applies exactly when
        DeliveryStatus.can_move_to says it moves forward; otherwise nothing changes."""
        conversation = self._conversation(store, run)
        for target in DeliveryStatus:
            message, _ = run(store.create_outbound(conversation.id, "x", (), {}, None))
            if start is not DeliveryStatus.QUEUED:
                assert run(store.advance_message(message.id, start)).changed is True
            applied = run(store.advance_message(message.id, target))
            expected = target if start.can_move_to(target) else start
            assert applied.changed is (expected is target and target is not start), target
            assert applied.message.status is expected, (start, target)
            assert run(store.get_message(message.id)).status is expected, (start, target)

    def test_advance_message_records_provider_id_once(self, store, run):
        """The first provider id sticks: a later update naming another id does not replace
        it, and a provider id is recorded even when the status does not move."""
        conversation = self._conversation(store, run)
        message, _ = run(store.create_outbound(conversation.id, "x", (), {}, None))
        run(store.advance_message(message.id, DeliveryStatus.QUEUED, provider_message_id="pm-1"))
        assert run(store.get_message(message.id)).provider_message_id == "pm-1"
        applied = run(
            store.advance_message(message.id, DeliveryStatus.SENT, provider_message_id="pm-2")
        )
        assert applied.changed is True
        assert applied.message.status is DeliveryStatus.SENT
        assert applied.message.provider_message_id == "pm-1"

    def test_advance_message_records_error_on_failure(self, store, run):
        """A move to failed keeps the provider's error code and message."""
        conversation = self._conversation(store, run)
        message, _ = run(store.create_outbound(conversation.id, "x", (), {}, None))
        applied = run(
            store.advance_message(
                message.id, DeliveryStatus.FAILED, error_code="30003", error_message="unreachable"
            )
        )
        assert applied.message.status is DeliveryStatus.FAILED
        assert (applied.message.error_code, applied.message.error_message) == (
            "30003",
            "unreachable",
        )

    def test_advance_message_leaves_inbound_messages_alone(self, store, run):
        """An inbound message is received; delivery updates never change it."""
        message = run(store.ingest_inbound("sms", inbound("p1"))).message
        for status in DeliveryStatus:
            applied = run(store.advance_message(message.id, status))
            assert applied.changed is False
            assert applied.message.status is DeliveryStatus.RECEIVED

    def test_advance_unknown_message_is_not_found(self, store, run):
        """Advancing a message id that does not exist raises NotFound."""
        with pytest.raises(NotFound):
            run(store.advance_message("msg_missing", DeliveryStatus.SENT))

    def test_apply_status_finds_the_message_by_provider_id(self, store, run):
        """A provider status update finds the outbound message by (channel, provider id) and
        moves it forward; a late, older update does not move it back."""
        conversation = self._conversation(store, run)
        message, _ = run(store.create_outbound(conversation.id, "x", (), {}, None))
        run(store.advance_message(message.id, DeliveryStatus.SENT, provider_message_id="pm-9"))
        applied = run(store.apply_status("sms", StatusUpdate("pm-9", DeliveryStatus.DELIVERED)))
        assert applied.changed is True
        assert applied.message.id == message.id
        assert applied.message.status is DeliveryStatus.DELIVERED
        late = run(store.apply_status("sms", StatusUpdate("pm-9", DeliveryStatus.SENT)))
        assert late.changed is False
        assert late.message.status is DeliveryStatus.DELIVERED
        assert run(store.get_message(message.id)).status is DeliveryStatus.DELIVERED

    def test_apply_status_records_provider_error(self, store, run):
        """A failed status update keeps the provider's error code and message."""
        conversation = self._conversation(store, run)
        message, _ = run(store.create_outbound(conversation.id, "x", (), {}, None))
        run(store.advance_message(message.id, DeliveryStatus.SENT, provider_message_id="pm-7"))
        update = StatusUpdate("pm-7", DeliveryStatus.UNDELIVERED, "30005", "unknown handset")
        applied = run(store.apply_status("sms", update))
        assert applied.message.status is DeliveryStatus.UNDELIVERED
        assert applied.message.error_code == "30005"
        assert applied.message.error_message == "unknown handset"

    def test_apply_status_for_unknown_provider_id_is_parked(self, store, run):
        """An update for a provider id nobody stored (or stored on another channel) touches
        no message and answers message=None, changed=False, parked=True."""
        conversation = self._conversation(store, run)
        message, _ = run(store.create_outbound(conversation.id, "x", (), {}, None))
        run(store.advance_message(message.id, DeliveryStatus.SENT, provider_message_id="pm-1"))
        unknown = run(store.apply_status("sms", StatusUpdate("nope", DeliveryStatus.READ)))
        assert (unknown.message, unknown.changed, unknown.parked) == (None, False, True)
        elsewhere = run(store.apply_status("email", StatusUpdate("pm-1", DeliveryStatus.READ)))
        assert (elsewhere.message, elsewhere.changed, elsewhere.parked) == (None, False, True)
        assert run(store.get_message(message.id)).status is DeliveryStatus.SENT

    def test_apply_status_for_a_known_message_is_not_parked(self, store, run):
        """An update that finds its message answers parked=False, moved or not."""
        conversation = self._conversation(store, run)
        message, _ = run(store.create_outbound(conversation.id, "x", (), {}, None))
        run(store.advance_message(message.id, DeliveryStatus.SENT, provider_message_id="pm-k"))
        moved = run(store.apply_status("sms", StatusUpdate("pm-k", DeliveryStatus.DELIVERED)))
        late = run(store.apply_status("sms", StatusUpdate("pm-k", DeliveryStatus.SENT)))
        assert (moved.changed, moved.parked) == (True, False)
        assert (late.changed, late.parked) == (False, False)

    def test_parked_update_is_applied_when_the_provider_id_is_recorded(self, store, run):
        """A callback that beat send's answer is parked; recording the provider id applies
        it in the same call: the message comes back delivered, and changed=True."""
        conversation = self._conversation(store, run)
        message, _ = run(store.create_outbound(conversation.id, "x", (), {}, None))
        run(store.apply_status("sms", StatusUpdate("pm-early", DeliveryStatus.DELIVERED)))
        assert run(store.get_message(message.id)).status is DeliveryStatus.QUEUED
        applied = run(
            store.advance_message(message.id, DeliveryStatus.SENT, provider_message_id="pm-early")
        )
        assert (applied.changed, applied.parked) == (True, False)
        assert applied.message.status is DeliveryStatus.DELIVERED
        assert applied.message.provider_message_id == "pm-early"
        assert run(store.get_message(message.id)) == applied.message

    def test_parked_updates_apply_forward_only_highest_wins(self, store, run):
        """Parked 'read' and 'sent', then the id recorded with 'sent': the message is read,
        whatever order the updates came in."""
        conversation = self._conversation(store, run)
        message, _ = run(store.create_outbound(conversation.id, "x", (), {}, None))
        run(store.apply_status("sms", StatusUpdate("pm-rs", DeliveryStatus.READ)))
        run(store.apply_status("sms", StatusUpdate("pm-rs", DeliveryStatus.SENT)))
        applied = run(
            store.advance_message(message.id, DeliveryStatus.SENT, provider_message_id="pm-rs")
        )
        assert applied.message.status is DeliveryStatus.READ
        assert run(store.get_message(message.id)).status is DeliveryStatus.READ

    def test_parked_update_applies_even_when_send_status_does_not_move(self, store, run):
        """Recording the id with a status that does not move the message (queued) still
        applies what was parked, and changed says the status moved."""
        conversation = self._conversation(store, run)
        message, _ = run(store.create_outbound(conversation.id, "x", (), {}, None))
        run(store.apply_status("sms", StatusUpdate("pm-q", DeliveryStatus.SENT)))
        applied = run(
            store.advance_message(message.id, DeliveryStatus.QUEUED, provider_message_id="pm-q")
        )
        assert applied.changed is True
        assert applied.message.status is DeliveryStatus.SENT

    def test_parked_failure_keeps_its_error(self, store, run):
        """A parked failed update with an error code, applied on record, is terminal and
        keeps the code and message; a parked 'read' beside it cannot move it back."""
        conversation = self._conversation(store, run)
        message, _ = run(store.create_outbound(conversation.id, "x", (), {}, None))
        failure = StatusUpdate("pm-f", DeliveryStatus.FAILED, "30008", "unknown error")
        run(store.apply_status("sms", failure))
        run(store.apply_status("sms", StatusUpdate("pm-f", DeliveryStatus.READ)))
        applied = run(
            store.advance_message(message.id, DeliveryStatus.SENT, provider_message_id="pm-f")
        )
        assert applied.message.status is DeliveryStatus.FAILED
        assert (applied.message.error_code, applied.message.error_message) == (
            "30008",
            "unknown error",
        )

    def test_expired_parked_update_is_not_applied(self, store, run):
        """A parked update older than the store's parked_status_ttl is never applied."""
        store.parked_status_ttl = timedelta(0)
        conversation = self._conversation(store, run)
        message, _ = run(store.create_outbound(conversation.id, "x", (), {}, None))
        run(store.apply_status("sms", StatusUpdate("pm-old", DeliveryStatus.READ)))
        time.sleep(0.01)  # the clock moves past the parked update's time, so it has expired
        applied = run(
            store.advance_message(message.id, DeliveryStatus.SENT, provider_message_id="pm-old")
        )
        assert applied.message.status is DeliveryStatus.SENT
        assert run(store.get_message(message.id)).status is DeliveryStatus.SENT

    def test_parked_update_for_another_channel_is_not_applied(self, store, run):
        """An update parked on another channel waits for that channel's message: recording
        the same provider id on sms does not apply it, and the email message still gets it."""
        sms = self._conversation(store, run, "sms")
        email = self._conversation(store, run, "email")
        on_sms, _ = run(store.create_outbound(sms.id, "x", (), {}, None))
        on_email, _ = run(store.create_outbound(email.id, "x", (), {}, None))
        run(store.apply_status("email", StatusUpdate("pm-both", DeliveryStatus.READ)))
        applied = run(
            store.advance_message(on_sms.id, DeliveryStatus.SENT, provider_message_id="pm-both")
        )
        assert applied.message.status is DeliveryStatus.SENT
        mailed = run(
            store.advance_message(on_email.id, DeliveryStatus.SENT, provider_message_id="pm-both")
        )
        assert mailed.message.status is DeliveryStatus.READ

    def test_provider_id_held_by_another_message_is_a_conflict(self, store, run):
        """Recording a provider id another outbound message of the channel already holds
        still moves the status, leaves this message without a provider id, and answers
        provider_id_conflict=True; the holder keeps the id and its status updates."""
        conversation = self._conversation(store, run)
        holder, _ = run(store.create_outbound(conversation.id, "a", (), {}, None))
        second, _ = run(store.create_outbound(conversation.id, "b", (), {}, None))
        first = run(
            store.advance_message(holder.id, DeliveryStatus.SENT, provider_message_id="pm-dup")
        )
        assert first.provider_id_conflict is False
        clash = run(
            store.advance_message(second.id, DeliveryStatus.SENT, provider_message_id="pm-dup")
        )
        assert (clash.changed, clash.provider_id_conflict) == (True, True)
        assert clash.message.status is DeliveryStatus.SENT
        assert clash.message.provider_message_id is None
        assert run(store.get_message(second.id)) == clash.message
        update = run(store.apply_status("sms", StatusUpdate("pm-dup", DeliveryStatus.READ)))
        assert update.message.id == holder.id
        assert run(store.get_message(second.id)).status is DeliveryStatus.SENT

    def test_same_provider_id_on_another_channel_is_no_conflict(self, store, run):
        """Provider ids are per channel: the same id on two channels' messages is recorded
        on both, without a conflict."""
        sms, _ = run(store.create_outbound(self._conversation(store, run).id, "x", (), {}, None))
        email_conversation = self._conversation(store, run, "email")
        email, _ = run(store.create_outbound(email_conversation.id, "x", (), {}, None))
        run(store.advance_message(sms.id, DeliveryStatus.SENT, provider_message_id="pm-x"))
        applied = run(
            store.advance_message(email.id, DeliveryStatus.SENT, provider_message_id="pm-x")
        )
        assert applied.provider_id_conflict is False
        assert applied.message.provider_message_id == "pm-x"

    def test_inbound_and_outbound_may_share_a_provider_id(self, store, run):
        """A provider (or custom system) with one id space for both directions may give an
        outbound message the id of an inbound one: both are kept, status updates reach the
        outbound message, and the inbound dedupe still finds the inbound one."""
        received = run(store.ingest_inbound("sms", inbound("shared-1"))).message
        conversation = run(store.get_conversation(received.conversation_id))
        sent, _ = run(store.create_outbound(conversation.id, "x", (), {}, None))
        applied = run(
            store.advance_message(sent.id, DeliveryStatus.SENT, provider_message_id="shared-1")
        )
        assert applied.message.provider_message_id == "shared-1"
        update = run(store.apply_status("sms", StatusUpdate("shared-1", DeliveryStatus.READ)))
        assert update.message.id == sent.id
        assert update.message.status is DeliveryStatus.READ
        again = run(store.ingest_inbound("sms", inbound("shared-1")))
        assert (again.created, again.message.id) == (False, received.id)
        assert run(store.get_message(received.id)).status is DeliveryStatus.RECEIVED

    # --------------------------------------------------------------- not found

    def test_unknown_ids_are_not_found(self, store, run):
        """Every read or update by an id that does not exist raises NotFound."""
        calls = [
            store.get_message("msg_missing"),
            store.get_contact("ct_missing"),
            store.get_conversation("cv_missing"),
            store.update_contact("ct_missing", display_name="x"),
            store.update_conversation("cv_missing", status=ConversationStatus.PENDING),
            store.list_messages("cv_missing", None, 10),
        ]
        for call in calls:
            with pytest.raises(NotFound):
                run(call)

    # ----------------------------------------------------------------- updates

    def test_update_contact_changes_only_given_fields(self, store, run):
        """update_contact changes the fields given and keeps the rest; None clears the name."""
        contact = run(store.ingest_inbound("sms", inbound("p1", sender_name="Ann"))).contact
        tagged = run(store.update_contact(contact.id, tags=("vip", "b2b")))
        assert tagged.tags == ("vip", "b2b")
        assert tagged.display_name == "Ann"
        with_attributes = run(store.update_contact(contact.id, attributes={"plan": "gold"}))
        assert with_attributes.attributes == {"plan": "gold"}
        assert with_attributes.tags == ("vip", "b2b")
        renamed = run(store.update_contact(contact.id, display_name="Ann Smith"))
        assert (renamed.display_name, renamed.tags, renamed.attributes) == (
            "Ann Smith",
            ("vip", "b2b"),
            {"plan": "gold"},
        )
        cleared = run(store.update_contact(contact.id, display_name=None))
        assert cleared.display_name is None
        assert cleared.identities == contact.identities
        assert run(store.get_contact(contact.id)) == cleared

    def test_update_contact_name_changes_what_search_finds(self, store, run):
        """After a rename, search finds the contact by the new name, not the old one."""
        contact = run(store.ingest_inbound("sms", inbound("p1", sender_name="Ann"))).contact
        run(store.update_contact(contact.id, display_name="Zoe"))
        assert [c.id for c in run(store.list_contacts("zoe", None, 10)).items] == [contact.id]
        assert run(store.list_contacts("ann", None, 10)).items == []

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

    # -------------------------------------------------------------------- lists

    def _contacts(self, store: Store, run: Run[Any], *people: tuple[str, str | None]) -> list[str]:
        ids = []
        for number, (address, name) in enumerate(people):
            ingested = run(store.ingest_inbound("sms", inbound(f"s{number}", address, "x", name)))
            ids.append(ingested.contact.id)
        return ids

    def _search(self, store: Store, run: Run[Any], query: str) -> set[str]:
        return {contact.id for contact in run(store.list_contacts(query, None, 100)).items}

    def test_list_contacts_newest_first(self, store, run):
        """Contacts are listed newest first."""
        ids = self._contacts(store, run, ("+1001", "A"), ("+1002", "B"), ("+1003", "C"))
        assert [c.id for c in run(store.list_contacts(None, None, 10)).items] == ids[::-1]

    def test_list_contacts_search_matches_word_prefixes(self, store, run):
        """Search matches a case-insensitive prefix of any word of the name, or a prefix of
        an address (or of its digits); never the middle of a name word."""
        ann, bob, annabel, nameless = self._contacts(
            store,
            run,
            ("+15550001", "Ann Smith"),
            ("+15550002", "Bob Annand"),
            ("+44207000", "Annabel Lee"),
            ("carol@example.test", None),
        )
        assert self._search(store, run, "ann") == {ann, bob, annabel}
        assert self._search(store, run, "ANN") == {ann, bob, annabel}
        assert self._search(store, run, "smi") == {ann}
        assert self._search(store, run, "Lee") == {annabel}
        assert self._search(store, run, "nn") == set()
        assert self._search(store, run, "+1555") == {ann, bob}
        assert self._search(store, run, "+44") == {annabel}
        assert self._search(store, run, "5550001") == {ann}
        assert self._search(store, run, "carol@") == {nameless}
        assert self._search(store, run, "Carol@Example") == {nameless}
        assert self._search(store, run, "zzz") == set()

    def test_list_contacts_search_takes_wildcards_literally(self, store, run):
        """% and _ in a search are plain characters, not LIKE wildcards."""
        percent, underscore, plain = self._contacts(
            store, run, ("+1001", "100% Real"), ("+1002", "a_b"), ("+1003", "axb 1000")
        )
        assert self._search(store, run, "100%") == {percent}
        assert self._search(store, run, "10%") == set()
        assert self._search(store, run, "%") == set()
        assert self._search(store, run, "a_b") == {underscore}
        assert self._search(store, run, "a_") == {underscore}
        assert self._search(store, run, "_") == set()
        assert self._search(store, run, "a\\") == set()
        assert self._search(store, run, "axb") == {plain}

    def test_list_contacts_search_needs_every_token(self, store, run):
        """A query of several tokens matches a contact only when every token is a prefix of
        one of its words: 'ann smi' finds Ann Smith, 'ann jon' does not."""
        ann, jones = self._contacts(
            store, run, ("+15550001", "Ann Smith"), ("+15550002", "Bob Jones")
        )
        assert self._search(store, run, "ann smi") == {ann}
        assert self._search(store, run, "smi ann") == {ann}
        assert self._search(store, run, "  Ann\tSMITH  ") == {ann}
        assert self._search(store, run, "ann jon") == set()
        assert self._search(store, run, "jon +1555") == {jones}
        assert self._search(store, run, "ann an") == {ann}

    def test_list_contacts_whitespace_query_matches_everyone(self, store, run):
        """A query of only whitespace is no filter: every contact, as with no query."""
        ids = self._contacts(store, run, ("+1001", "A"), ("a@example.test", None))
        everyone = [c.id for c in run(store.list_contacts(None, None, 10)).items]
        assert set(everyone) == set(ids)
        for blank in ("", " ", " \t\n "):
            assert [c.id for c in run(store.list_contacts(blank, None, 10)).items] == everyone

    def test_list_contacts_search_finds_phone_numbers_by_digits(self, store, run):
        """A phone-like address (up to 15 digits) is found by its digits alone (from the
        start) and by each ending of seven or more digits, whatever punctuation or prefix it
        carries; a few trailing digits or the middle of the number find nothing."""
        plain, formatted, whatsapp, handle, long_id = self._contacts(
            store,
            run,
            ("+15550001", None),
            ("+1 (415) 666-0199", None),
            ("whatsapp:+4420794600", None),
            ("user73", None),
            ("9876543210987654", None),
        )
        assert self._search(store, run, "1555") == {plain}
        assert self._search(store, run, "5550001") == {plain}
        assert self._search(store, run, "+1555") == {plain}
        assert self._search(store, run, "14156660199") == {formatted}
        assert self._search(store, run, "4156660199") == {formatted}
        assert self._search(store, run, "6660199") == {formatted}
        assert self._search(store, run, "+1") == {plain, formatted}
        assert self._search(store, run, "442079") == {whatsapp}
        assert self._search(store, run, "whatsapp:+44") == {whatsapp}
        assert self._search(store, run, "0001") == set()
        assert self._search(store, run, "550001") == set()
        assert self._search(store, run, "73") == set()
        assert self._search(store, run, "user7") == {handle}
        assert self._search(store, run, "98765") == {long_id}  # 16 digits: an id, no endings
        assert self._search(store, run, "3210987654") == set()

    def test_list_contacts_search_finds_email_by_domain(self, store, run):
        """An email address is found by its start and by the part after '@'."""
        ann, bob = self._contacts(
            store, run, ("ann@example.com", None), ("bob@mail.example.org", "Bob")
        )
        assert self._search(store, run, "example.com") == {ann}
        assert self._search(store, run, "EXAMPLE") == {ann}
        assert self._search(store, run, "mail.example") == {bob}
        assert self._search(store, run, "ann@ex") == {ann}
        assert self._search(store, run, "@example.com") == set()
        assert self._search(store, run, "com") == set()
        assert self._search(store, run, "bob mail") == {bob}

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

    def test_list_messages_oldest_first(self, store, run):
        """A conversation's messages, in and out, are listed oldest first, and only its own."""
        first = run(store.ingest_inbound("sms", inbound("p1", "+1001"))).message
        run(store.ingest_inbound("sms", inbound("other", "+1999")))
        reply, _ = run(store.create_outbound(first.conversation_id, "reply", (), {}, None))
        last = run(store.ingest_inbound("sms", inbound("p2", "+1001"))).message
        page = run(store.list_messages(first.conversation_id, None, 10))
        assert [m.id for m in page.items] == [first.id, reply.id, last.id]
        assert page.next_cursor is None

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

    # --------------------------------------------------------------------- misc

    def test_ping_reports_the_backend(self, store, run):
        """ping answers with facts for the health report, naming the backend."""
        facts = run(store.ping())
        assert isinstance(facts, dict)
        assert isinstance(facts.get("backend"), str)
        assert facts["backend"]

    def test_ids_are_distinct_across_kinds(self, store, run):
        """Contact, conversation and message ids are all distinct strings."""
        ingested = run(store.ingest_inbound("sms", inbound("p1")))
        ids = [ingested.contact.id, ingested.conversation.id, ingested.message.id]
        assert all(isinstance(i, str) and i for i in ids)
        assert len(set(ids)) == 3
