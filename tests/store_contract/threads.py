"""Conversations per thread (email): an inbound message's ``thread`` picks its conversation
by the provider ids it answers, when its sender belongs there; participants; a new
conversation on demand (``resolve_recipient(new_conversation=True)``); and a channel
without threads keeping its one conversation per contact."""

from __future__ import annotations

import asyncio
from typing import Any

from omnichannel_core.hooktypes import InboundMessage, Thread
from omnichannel_core.models import Conversation, DeliveryStatus
from omnichannel_core.modules.inbox.store import Ingested
from tests.store_contract.fixtures import Run, StoreFixtures, inbound

ANN = "ann@example.test"
BOB = "bob@example.test"
CAT = "cat@example.test"
DAN = "dan@example.test"


def mail(
    provider_message_id: str,
    sender: str = ANN,
    refs: tuple[str, ...] = (),
    participants: tuple[str, ...] = (),
    **fields: Any,
) -> InboundMessage:
    """An inbound email: a message with a thread, even an empty one (a first mail)."""
    return InboundMessage(
        provider_message_id=provider_message_id,
        sender=sender,
        text=f"mail {provider_message_id}",
        thread=Thread(refs=refs, participants=participants),
        **fields,
    )


class ThreadsContract(StoreFixtures):
    """What ``ingest_inbound`` promises with a ``thread``, and ``resolve_recipient`` with
    ``new_conversation``."""

    def _outbound(self, store: Any, run: Run[Any], conversation_id: str, provider_id: str) -> None:
        """An outbound message in the conversation, sent, known by ``provider_id``."""
        message, _ = run(store.create_outbound(conversation_id, "ours", (), {}, None))
        run(store.advance_message(message.id, DeliveryStatus.SENT, provider_message_id=provider_id))

    def _unchanged(self, store: Any, run: Run[Any], conversation: Conversation) -> None:
        """The conversation as stored is still ``conversation`` (nothing was counted in it)."""
        now = run(store.get_conversation(conversation.id))
        assert (now.unread_count, now.participants, now.last_activity_at) == (
            conversation.unread_count,
            conversation.participants,
            conversation.last_activity_at,
        )

    def test_a_reply_citing_an_inbound_mail_joins_its_conversation(self, store, run):
        """A customer's mail that answers their earlier mail (its provider id in refs) lands
        in that mail's conversation: same contact, one more unread message."""
        first = run(store.ingest_inbound("email", mail("m1")))
        reply = run(store.ingest_inbound("email", mail("m2", refs=("m1",))))
        assert reply.created is True
        assert reply.conversation.id == first.conversation.id
        assert reply.contact.id == first.contact.id
        assert reply.conversation.unread_count == 2
        assert "thread_refused" not in reply.message.metadata
        assert run(store.get_conversation(first.conversation.id)).unread_count == 2

    def test_a_reply_to_an_agent_started_mail_joins_its_conversation(self, store, run):
        """A customer's answer to a mail an agent started (our outbound message's provider
        id in refs) continues that conversation, not a new one (chatwoot#10791)."""
        contact, started = run(store.resolve_recipient("email", ANN, new_conversation=True))
        self._outbound(store, run, started.id, "out-1@ours.example")
        reply = run(store.ingest_inbound("email", mail("m1", refs=("out-1@ours.example",))))
        assert reply.conversation.id == started.id
        assert reply.contact.id == contact.id
        assert reply.conversation.unread_count == 1

    def test_a_reply_naming_an_answer_in_doubt_by_its_id_joins_its_conversation(self, store, run):
        """A customer's answer to one of our messages whose provider id was never recorded
        (its send's answer was lost: in doubt) finds the thread by the message id the
        channel read from the ref (``Thread.message_ids``)."""
        first = run(store.ingest_inbound("email", mail("m1")))
        ours, _ = run(store.create_outbound(first.conversation.id, "ours", (), {}, None))
        cited = f"{ours.id}@ours.example"
        reply = run(
            store.ingest_inbound(
                "email",
                InboundMessage(
                    provider_message_id="m2",
                    sender=ANN,
                    text="thanks",
                    thread=Thread(refs=(cited,), message_ids=(ours.id,)),
                ),
            )
        )
        assert reply.conversation.id == first.conversation.id
        assert "thread_refused" not in reply.message.metadata

    def test_a_message_id_of_an_inbound_message_names_no_thread(self, store, run):
        """``message_ids`` name our outbound messages only: an inbound message's id cited
        there is no thread (nobody steers a mail into a thread by a customer's message id)."""
        first = run(store.ingest_inbound("email", mail("m1", sender=ANN)))
        stranger = run(
            store.ingest_inbound(
                "email",
                InboundMessage(
                    provider_message_id="m2",
                    sender=BOB,
                    text="hi",
                    thread=Thread(message_ids=(first.message.id,)),
                ),
            )
        )
        assert stranger.conversation.id != first.conversation.id
        assert "thread_refused" not in stranger.message.metadata

    def test_a_reply_from_the_address_answers_go_to_joins_its_conversation(self, store, run):
        """A mail asked for answers at another address (``reply_to``: a web form's
        Reply-To); the customer's reply from that address, citing our answer, belongs to
        the thread: it is where the conversation answers to."""
        form = run(
            store.ingest_inbound("email", mail("m1", sender="no-reply@forms.example", reply_to=ANN))
        )
        assert form.conversation.address == ANN
        self._outbound(store, run, form.conversation.id, "out-1@ours.example")
        reply = run(store.ingest_inbound("email", mail("m2", refs=("out-1@ours.example",))))
        assert reply.conversation.id == form.conversation.id
        assert "thread_refused" not in reply.message.metadata

    def test_a_reply_joining_a_thread_never_moves_where_answers_go(self, store, run):
        """A mail that joins a thread with a new ``reply_to`` (a forged From of the
        customer with the attacker's Reply-To) leaves the conversation's address: answers
        keep going where they went; the new address is only a participant."""
        first = run(store.ingest_inbound("email", mail("m1", sender=ANN)))
        self._outbound(store, run, first.conversation.id, "out-1@ours.example")
        reply = run(
            store.ingest_inbound(
                "email", mail("m2", sender=ANN, refs=("out-1@ours.example",), reply_to=DAN)
            )
        )
        assert reply.conversation.id == first.conversation.id
        assert reply.conversation.address == ANN
        assert run(store.get_conversation(first.conversation.id)).address == ANN

    def test_the_first_known_ref_picks_the_conversation(self, store, run):
        """Refs are tried nearest first: unknown ones are passed over, and of two known
        refs in different conversations of the sender, the first one given wins."""
        one = run(store.ingest_inbound("email", mail("m1"))).conversation
        two = run(store.ingest_inbound("email", mail("m2"))).conversation
        assert one.id != two.id
        joined = run(store.ingest_inbound("email", mail("m3", refs=("nope", "m2", "m1"))))
        assert joined.conversation.id == two.id
        joined = run(store.ingest_inbound("email", mail("m4", refs=("m1", "m2"))))
        assert joined.conversation.id == one.id

    def test_our_outbound_id_wins_over_an_inbound_one_of_the_same_id(self, store, run):
        """When both directions hold a cited id (a sender forged our Message-ID as theirs),
        the ref names our own outbound message: its thread's contact joins it, the forger
        is refused there."""
        forged = run(store.ingest_inbound("email", mail("ours-1", sender=BOB))).conversation
        _, started = run(store.resolve_recipient("email", ANN))
        self._outbound(store, run, started.id, "ours-1")
        ann = run(store.ingest_inbound("email", mail("m1", refs=("ours-1",))))
        assert ann.conversation.id == started.id
        bob = run(store.ingest_inbound("email", mail("m2", sender=BOB, refs=("ours-1",))))
        assert bob.conversation.id not in (started.id, forged.id)
        assert bob.message.metadata["thread_refused"] is True

    def test_a_sender_from_elsewhere_citing_a_thread_gets_a_new_flagged_conversation(
        self, store, run
    ):
        """A mail citing another customer's thread, from someone who is neither its contact
        nor a participant, starts a new conversation of the sender's own contact, flagged
        ``thread_refused``; the cited conversation is left as it was."""
        ann = run(store.ingest_inbound("email", mail("m1", participants=(CAT,))))
        intruder = run(store.ingest_inbound("email", mail("m2", sender=BOB, refs=("m1",))))
        assert intruder.created is True
        assert intruder.conversation.id != ann.conversation.id
        assert intruder.conversation.contact_id == intruder.contact.id != ann.contact.id
        assert intruder.conversation.address == BOB
        assert intruder.message.conversation_id == intruder.conversation.id
        assert intruder.message.metadata["thread_refused"] is True
        stored = run(store.get_message(intruder.message.id))
        assert stored.metadata["thread_refused"] is True
        self._unchanged(store, run, ann.conversation)
        messages = run(store.list_messages(ann.conversation.id, None, 10)).items
        assert [message.id for message in messages] == [ann.message.id]

    def test_a_refused_sender_with_a_conversation_of_their_own_still_gets_a_new_one(
        self, store, run
    ):
        """A known sender citing a thread they do not belong to gets a new conversation,
        not their existing one: the citation said this is a thread of its own."""
        ann = run(store.ingest_inbound("email", mail("m1"))).conversation
        bob = run(store.ingest_inbound("email", mail("b1", sender=BOB))).conversation
        refused = run(store.ingest_inbound("email", mail("b2", sender=BOB, refs=("m1",))))
        assert refused.conversation.id not in (ann.id, bob.id)
        assert refused.contact.id == bob.contact_id
        assert refused.message.metadata["thread_refused"] is True

    def test_participants_are_kept_and_a_participant_joins_the_thread(self, store, run):
        """A thread's participants (less the conversation's own address) are kept on its
        conversation; a participant's mail citing the thread joins it, under a contact of
        its own, leaving the conversation's contact and address alone; the participants a
        later mail brings are added, each once."""
        first = run(store.ingest_inbound("email", mail("m1", participants=(CAT, ANN))))
        assert first.conversation.participants == (CAT,)
        assert run(store.get_conversation(first.conversation.id)).participants == (CAT,)
        cat = run(
            store.ingest_inbound("email", mail("c1", sender=CAT, refs=("m1",), participants=(ANN,)))
        )
        assert cat.conversation.id == first.conversation.id
        assert "thread_refused" not in cat.message.metadata
        assert cat.contact.id != first.contact.id
        assert cat.message.contact_id == cat.contact.id
        assert cat.conversation.contact_id == first.contact.id
        assert cat.conversation.address == ANN
        assert cat.conversation.unread_count == 2
        assert cat.conversation.participants == (CAT,)
        later = run(
            store.ingest_inbound(
                "email", mail("m2", refs=("c1",), participants=(DAN, CAT, ANN, DAN))
            )
        )
        assert later.conversation.id == first.conversation.id
        assert later.conversation.participants == (CAT, DAN)
        assert run(store.get_conversation(first.conversation.id)) == later.conversation

    def test_a_participant_later_writing_without_a_thread_gets_a_conversation_of_their_own(
        self, store, run
    ):
        """A contact first met as a participant of another's thread has no conversation of
        its own: its first mail with no known ref opens one, and an agent's send to it
        finds that one."""
        ann = run(store.ingest_inbound("email", mail("m1", participants=(CAT,)))).conversation
        cat = run(store.ingest_inbound("email", mail("c1", sender=CAT, refs=("m1",))))
        assert cat.conversation.id == ann.id
        own = run(store.ingest_inbound("email", mail("c2", sender=CAT)))
        assert own.conversation.id != ann.id
        assert own.conversation.contact_id == cat.contact.id
        assert own.contact.id == cat.contact.id
        assert run(store.resolve_recipient("email", CAT))[1].id == own.conversation.id

    def test_find_conversation_follows_new_conversations_and_skips_a_participants(self, store, run):
        """find_conversation answers the contact's most recently created conversation on
        the channel, as resolve_recipient would: a new one once opened
        (``new_conversation``); a contact met only as a participant of another's thread has
        none of its own (None), until it gets one."""
        _, first = run(store.resolve_recipient("email", ANN, "Ann"))
        assert run(store.find_conversation("email", ANN)) == first
        _, second = run(store.resolve_recipient("email", ANN, new_conversation=True))
        assert run(store.find_conversation("email", ANN)) == second
        run(store.ingest_inbound("email", mail("m1", participants=(CAT,))))
        run(store.ingest_inbound("email", mail("c1", sender=CAT, refs=("m1",))))
        assert run(store.find_conversation("email", CAT)) is None
        own = run(store.ingest_inbound("email", mail("c2", sender=CAT))).conversation
        assert run(store.find_conversation("email", CAT)) == own

    def test_a_send_to_a_participant_opens_a_conversation_of_their_own(self, store, run):
        """An agent's send to a contact met only as a participant of another's thread
        opens that contact's own conversation, never the thread it took part in."""
        ann = run(store.ingest_inbound("email", mail("m1", participants=(CAT,)))).conversation
        cat = run(store.ingest_inbound("email", mail("c1", sender=CAT, refs=("m1",)))).contact
        contact, conversation = run(store.resolve_recipient("email", CAT))
        assert contact.id == cat.id
        assert conversation.id != ann.id
        assert (conversation.contact_id, conversation.address) == (cat.id, CAT)
        assert run(store.resolve_recipient("email", CAT))[1].id == conversation.id

    def test_a_mail_citing_no_known_id_starts_a_new_conversation(self, store, run):
        """With no ref, or only unknown ones (or another channel's ids), a mail starts a new
        conversation for its sender, not flagged, even when the sender has others."""
        first = run(store.ingest_inbound("email", mail("m1")))
        run(store.ingest_inbound("other", inbound("x1", ANN)))
        fresh = run(store.ingest_inbound("email", mail("m2")))
        unknown = run(store.ingest_inbound("email", mail("m3", refs=("nowhere", "x1"))))
        ids = {first.conversation.id, fresh.conversation.id, unknown.conversation.id}
        assert len(ids) == 3
        assert {fresh.contact.id, unknown.contact.id} == {first.contact.id}
        for ingested in (fresh, unknown):
            assert ingested.conversation.unread_count == 1
            assert "thread_refused" not in ingested.message.metadata
        self._unchanged(store, run, first.conversation)

    def test_without_a_thread_the_most_recently_created_conversation_is_used(self, store, run):
        """A message with ``thread=None`` goes to the contact's conversation on the channel,
        the most recently created when it has several (whatever activity the others had);
        resolve_recipient finds the same one."""
        older = run(store.ingest_inbound("email", mail("m1"))).conversation
        newer = run(store.ingest_inbound("email", mail("m2"))).conversation
        run(store.ingest_inbound("email", mail("m3", refs=("m1",))))  # the older one is busier
        plain = run(store.ingest_inbound("email", inbound("m4", ANN)))
        assert plain.conversation.id == newer.id
        assert run(store.resolve_recipient("email", ANN))[1].id == newer.id
        assert run(store.get_conversation(older.id)).unread_count == 2

    def test_without_a_thread_a_contact_keeps_one_conversation(self, store, run):
        """A channel that gives no thread keeps today's rule: every message of a sender in
        one conversation, none flagged."""
        ingested = [run(store.ingest_inbound("sms", inbound(f"p{n}"))) for n in range(3)]
        assert len({item.conversation.id for item in ingested}) == 1
        assert ingested[-1].conversation.unread_count == 3
        assert ingested[-1].conversation.participants == ()
        assert all(item.message.metadata == {} for item in ingested)

    def test_a_duplicate_threaded_mail_changes_nothing(self, store, run):
        """The dedupe comes first: the same provider id again, whatever its thread, sender
        or participants, answers the stored message and touches no conversation."""
        first = run(store.ingest_inbound("email", mail("m1")))
        reply = run(store.ingest_inbound("email", mail("m2", refs=("m1",), participants=(CAT,))))
        again = run(store.ingest_inbound("email", mail("m2", refs=("m1",), participants=(DAN,))))
        assert again.created is False
        assert again.message == reply.message
        other = run(store.ingest_inbound("email", mail("m2", sender=BOB, refs=("m1",))))
        assert other.created is False
        assert other.message.id == reply.message.id
        self._unchanged(store, run, reply.conversation)
        assert run(store.get_conversation(first.conversation.id)).participants == (CAT,)
        contacts = run(store.list_contacts(None, None, 10)).items
        assert [contact.id for contact in contacts] == [first.contact.id]

    def test_concurrent_replies_to_one_thread_all_join_it(self, store, run):
        """Replies of the thread's contact and of a participant, stored at once, all land in
        the one conversation, each counted."""
        first = run(store.ingest_inbound("email", mail("m1", participants=(CAT,))))

        async def replies() -> list[Ingested]:
            return await asyncio.gather(
                *(
                    store.ingest_inbound("email", mail(f"r{n}", ANN if n % 2 else CAT, ("m1",)))
                    for n in range(8)
                )
            )

        results = run(replies())
        assert {result.conversation.id for result in results} == {first.conversation.id}
        assert run(store.get_conversation(first.conversation.id)).unread_count == 9

    def test_automated_is_kept_in_the_metadata(self, store, run):
        """An automated message (an auto-reply) is stored with ``automated: true`` beside
        the channel's own metadata; a person's message has no such key."""
        auto = mail("m1", automated=True, metadata={"email": {"subject": "Away"}})
        stored = run(store.ingest_inbound("email", auto)).message
        assert stored.metadata == {"email": {"subject": "Away"}, "automated": True}
        assert run(store.get_message(stored.id)).metadata == stored.metadata
        person = run(store.ingest_inbound("email", mail("m2"))).message
        assert "automated" not in person.metadata

    def test_resolve_recipient_opens_a_new_conversation_on_demand(self, store, run):
        """``new_conversation=True`` opens another conversation for a contact that has one
        (an agent starting a new email thread); from then on it is the contact's current
        conversation there, for sends and for messages without a thread."""
        contact, first = run(store.resolve_recipient("email", ANN, "Ann"))
        again, second = run(store.resolve_recipient("email", ANN, new_conversation=True))
        assert again.id == contact.id
        assert second.id != first.id
        assert (second.contact_id, second.channel, second.address) == (contact.id, "email", ANN)
        assert (second.unread_count, second.participants) == (0, ())
        assert run(store.resolve_recipient("email", ANN))[1].id == second.id
        assert run(store.ingest_inbound("email", inbound("p1", ANN))).conversation.id == second.id
        assert run(store.get_conversation(first.id)) == first

    def test_resolve_recipient_new_conversation_for_a_new_address_opens_one(self, store, run):
        """For an address never seen, ``new_conversation`` makes the contact and its one
        conversation, as without it."""
        contact, conversation = run(
            store.resolve_recipient("email", BOB, new_conversation=True, reply_to="b2@x.test")
        )
        assert conversation.contact_id == contact.id
        assert conversation.address == "b2@x.test"
        assert run(store.resolve_recipient("email", BOB, reply_to="b2@x.test"))[1] == conversation
