"""The inbox's contacts as the CRM works them (`omnichannel_core.module.ContactBook`, over
the inbox's store), on SQLite and on Firestore: profile fields, contacts made and changed
through the API, identities added and removed (and which conversation a message through
each joins), merges with their rule and their tombstone, the lookups a whole pass or a
match needs, and a merge while messages for both contacts keep arriving."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from google.cloud.firestore_v1 import DELETE_FIELD

from omnichannel_core.errors import Conflict, InvalidInput, NotFound
from omnichannel_core.hooktypes import InboundMessage
from omnichannel_core.models import Consent, Contact, ConversationStatus, Identity, utcnow
from omnichannel_core.modules.inbox.contact_book import StoreContactBook
from omnichannel_core.modules.inbox.store import InboxStore
from omnichannel_core.modules.inbox.store.firestore_steps import fill_contact_reach
from omnichannel_core.modules.inbox.store.profiles import PROFILE_FIELDS
from omnichannel_core.modules.inbox.store.sqlite.contacts import fill_reach
from omnichannel_core.services import ContactActivity
from omnichannel_core.store import Database
from omnichannel_core.store.sqlite.database import SqliteDatabase
from tests.store_contract.fixtures import IMPOSSIBLE_IDS, Run, StoreFixtures, inbound

ANN, BEA, CAL = "+15550001", "+15550002", "+15550003"
CONCURRENT_INGESTS = 16


def sms(address: str) -> Identity:
    return Identity("sms", address)


class ContactBookContract(StoreFixtures):
    """What the ``ContactBook`` promises, whatever the backend."""

    @pytest.fixture
    def book(self, store: InboxStore) -> StoreContactBook:
        return StoreContactBook(store)

    def _sender(self, store: InboxStore, run: Run[Any], address: str, key: str) -> Contact:
        return run(store.ingest_inbound("sms", inbound(key, address))).contact

    def _logged(self, run: Run[Any], start: Any) -> list[tuple[str, str, dict[str, Any]]]:
        return [(e.type, e.record_id, e.data) for e in run(self.events.after(start, 100))]

    # Profiles: made, changed, found

    def test_create_contact_stores_identities_and_profile_and_logs_it(self, book, run):
        """create_contact stores the identities (listed by channel and address) and every
        profile field; get_contact reads the same; contact.created names the profile's
        fields. An identity another contact holds is a Conflict naming the holder, and
        nothing is stored."""
        start = run(self.events.latest())
        made = run(
            book.create_contact(
                [sms(BEA), Identity("email", "ann@example.test")],
                display_name="Ann",
                emails=("ann@example.test",),
                phones=(BEA,),
                company="Acme",
                locale="es",
                timezone="Europe/Madrid",
                avatar="med_1",
                tags=("vip",),
                attributes={"plan": "gold"},
            )
        )
        assert made.identities == (Identity("email", "ann@example.test"), sms(BEA))
        assert (made.emails, made.phones, made.company, made.locale) == (
            ("ann@example.test",),
            (BEA,),
            "Acme",
            "es",
        )
        assert (made.timezone, made.avatar, made.tags, made.attributes) == (
            "Europe/Madrid",
            "med_1",
            ("vip",),
            {"plan": "gold"},
        )
        assert run(book.get_contact(made.id)) == made
        fields = sorted(PROFILE_FIELDS)
        assert self._logged(run, start) == [("contact.created", made.id, {"fields": fields})]
        start = run(self.events.latest())
        with pytest.raises(Conflict) as clash:
            run(book.create_contact([sms(CAL), sms(BEA)], display_name="Other"))
        assert clash.value.details["contact_id"] == made.id
        assert [c.id for c in run(book.scan(None, 50)).items] == [made.id]
        assert self._logged(run, start) == []
        assert run(book.find(phones=[CAL])) == []

    def test_update_contact_logs_only_what_changed_and_writes_nothing_else(self, book, store, run):
        """update_contact changes the new profile fields too; contact.updated names only
        the fields whose value changed; a change to the values it has writes nothing (no
        event, the same updated_at). A name that is not a field is InvalidInput."""
        contact = self._sender(store, run, ANN, "p1")
        start = run(self.events.latest())
        changed = run(
            book.update_contact(
                contact.id, emails=("ann@example.test",), company="Acme", display_name=None
            )
        )
        assert (changed.emails, changed.company) == (("ann@example.test",), "Acme")
        assert run(book.get_contact(contact.id)) == changed
        assert self._logged(run, start) == [
            ("contact.updated", contact.id, {"fields": ["company", "emails"]})
        ]
        start = run(self.events.latest())
        again = run(book.update_contact(contact.id, company="Acme", emails=["ann@example.test"]))
        assert again == changed
        assert self._logged(run, start) == []
        with pytest.raises(InvalidInput):
            run(book.update_contact(contact.id, merged_into="ct_x"))
        with pytest.raises(NotFound):
            run(book.update_contact("ct_missing", company="x"))

    def test_search_and_find_reach_profile_emails_and_phones(self, book, store, run):
        """Profile emails and phones are search words (a phone by an ending of its digits,
        an email by its domain); find matches profile emails (any case given) and phones,
        an email channel's address and a phone-like address on any channel (after a
        ``whatsapp:``), oldest first, at most ``limit``."""
        ann = self._sender(store, run, ANN, "p1")
        run(book.update_contact(ann.id, emails=("ann@acme.test",), phones=("+34600111222",)))
        bea = run(store.ingest_inbound("whatsapp", inbound("w1", f"whatsapp:{BEA}"))).contact
        cal = run(store.ingest_inbound("email", inbound("e1", "cal@corp.test"))).contact
        assert {c.id for c in run(book.list_contacts("acme.test", None, 10)).items} == {ann.id}
        assert {c.id for c in run(book.list_contacts("600111222", None, 10)).items} == {ann.id}
        assert [c.id for c in run(book.find(emails=["ANN@acme.test"]))] == [ann.id]
        assert [c.id for c in run(book.find(phones=["+34600111222", BEA]))] == [ann.id, bea.id]
        assert [c.id for c in run(book.find(phones=[ANN]))] == [ann.id]
        assert [c.id for c in run(book.find(emails=["cal@corp.test"]))] == [cal.id]
        found = run(book.find(emails=["cal@corp.test"], phones=[ANN, BEA], limit=2))
        assert [c.id for c in found] == [ann.id, bea.id]
        assert run(book.find()) == []

    # Identities

    def test_add_identity_makes_the_address_reach_the_contact(self, book, store, run):
        """After add_identity, a message from that address is the contact's, in its
        conversation on the channel; contact.updated names ``identities``. Adding one it
        has changes nothing; one another contact holds is a Conflict naming the holder."""
        ann = self._sender(store, run, ANN, "p1")
        bea = self._sender(store, run, BEA, "p2")
        start = run(self.events.latest())
        added = run(book.add_identity(ann.id, sms(CAL)))
        assert added.identities == (sms(ANN), sms(CAL))
        assert self._logged(run, start) == [("contact.updated", ann.id, {"fields": ["identities"]})]
        assert run(book.add_identity(ann.id, sms(CAL))) == added
        with pytest.raises(Conflict) as clash:
            run(book.add_identity(ann.id, sms(BEA)))
        assert clash.value.details["contact_id"] == bea.id
        later = run(store.ingest_inbound("sms", inbound("p3", CAL)))
        first = run(store.find_conversation("sms", ANN))
        assert (later.contact.id, later.conversation_id) == (ann.id, first.id)
        assert [c.id for c in run(book.find(phones=[CAL]))] == [ann.id]
        with pytest.raises(NotFound):
            run(book.add_identity("ct_missing", sms("+15559999")))

    def test_remove_identity_lets_the_next_message_make_a_new_contact(self, book, store, run):
        """After remove_identity, the address no longer reaches the contact: a message from
        it makes a new contact; the conversation keeps its address. NotFound for an
        identity the contact does not have."""
        ann = self._sender(store, run, ANN, "p1")
        run(book.add_identity(ann.id, sms(BEA)))
        conversation = run(store.find_conversation("sms", ANN))
        kept = run(book.remove_identity(ann.id, sms(ANN)))
        assert kept.identities == (sms(BEA),)
        assert run(book.find(phones=[ANN])) == []
        assert run(store.get_conversation(conversation.id)).address == ANN
        newcomer = run(store.ingest_inbound("sms", inbound("p2", ANN))).contact
        assert newcomer.id != ann.id
        with pytest.raises(NotFound):
            run(book.remove_identity(ann.id, sms(ANN)))
        with pytest.raises(NotFound):
            run(book.remove_identity(ann.id, sms(CAL)))

    def test_every_identity_of_a_channel_leads_to_the_newest_conversation(self, book, store, run):
        """The rule both stores follow with two identities on one channel: a message
        through either joins the contact's most recently created conversation there. An
        identity added leads to it; a conversation made through one is where the other
        leads next; after a merge, each leads to the newest of either contact's."""
        ann = self._sender(store, run, ANN, "p1")
        first = run(store.find_conversation("sms", ANN))
        run(book.add_identity(ann.id, sms(BEA)))
        assert run(store.ingest_inbound("sms", inbound("p2", BEA))).conversation_id == first.id
        assert run(store.find_conversation("sms", BEA)).id == first.id
        _, second = run(store.resolve_recipient("sms", BEA, new_conversation=True))
        assert second.contact_id == ann.id
        assert run(store.ingest_inbound("sms", inbound("p3", ANN))).conversation_id == second.id
        assert run(store.find_conversation("sms", ANN)).id == second.id
        cal = self._sender(store, run, CAL, "p4")
        third = run(store.find_conversation("sms", CAL))
        run(book.merge(ann.id, cal.id))
        for key, address in (("p5", ANN), ("p6", BEA), ("p7", CAL)):
            ingested = run(store.ingest_inbound("sms", inbound(key, address)))
            assert (ingested.contact.id, ingested.conversation_id) == (ann.id, third.id)
            assert run(store.find_conversation("sms", address)).id == third.id
        _, asked = run(store.resolve_recipient("sms", CAL))
        assert asked.id == third.id

    # Merging

    def test_merge_follows_the_rule_for_conflicting_values(self, book, run):
        """The survivor's scalar fields win when set, else the merged one's; emails,
        phones, tags, opted-out channels and identities are the union, the survivor's
        first; attributes per key the survivor's, the merged one's others added; the
        earlier created_at. contact.merged is logged on the survivor."""
        merged = run(
            book.create_contact(
                [sms(BEA)],
                display_name="Annie",
                emails=("ann@example.test", "a2@example.test"),
                phones=(BEA,),
                tags=("new", "vip"),
                attributes={"plan": "silver", "source": "web"},
                company="Acme",
                timezone="Europe/Madrid",
            )
        )
        survivor = run(
            book.create_contact(
                [sms(ANN)],
                display_name="Ann",
                emails=("ann@example.test",),
                tags=("vip",),
                attributes={"plan": "gold", "n": 1},
                locale="es",
            )
        )
        start = run(self.events.latest())
        after = run(book.merge(survivor.id, merged.id))
        assert after.id == survivor.id
        assert (after.display_name, after.company, after.locale, after.timezone) == (
            "Ann",
            "Acme",
            "es",
            "Europe/Madrid",
        )
        assert after.avatar is None
        assert after.emails == ("ann@example.test", "a2@example.test")
        assert (after.phones, after.tags) == ((BEA,), ("vip", "new"))
        assert after.attributes == {"plan": "gold", "n": 1, "source": "web"}
        assert after.identities == (sms(ANN), sms(BEA))
        assert after.created_at == merged.created_at
        assert run(book.get_contact(survivor.id)) == after
        assert self._logged(run, start) == [
            ("contact.merged", survivor.id, {"merged_id": merged.id})
        ]

    def test_merge_moves_everything_and_leaves_a_pointer(self, book, store, run):
        """After a merge the merged contact's conversations and messages are the
        survivor's, its addresses reach the survivor, and its id reads as the survivor;
        lists, scans and lookups skip it. Merging it again is a Conflict naming the
        survivor, changing nothing; a contact into itself is InvalidInput; an unknown one
        NotFound."""
        ann = self._sender(store, run, ANN, "p1")
        bea = self._sender(store, run, BEA, "p2")
        run(store.ingest_inbound("sms", inbound("p3", BEA)))
        conversation = run(store.find_conversation("sms", BEA))
        run(book.merge(ann.id, bea.id))
        assert run(book.get_contact(bea.id)).id == ann.id
        assert run(store.get_conversation(conversation.id)).contact_id == ann.id
        messages = run(store.list_messages(conversation.id, None, 50)).items
        assert {message.contact_id for message in messages} == {ann.id}
        assert run(store.ingest_inbound("sms", inbound("p4", BEA))).contact.id == ann.id
        assert [c.id for c in run(book.list_contacts(None, None, 50)).items] == [ann.id]
        assert [c.id for c in run(book.list_contacts("155", None, 50)).items] == [ann.id]
        assert [c.id for c in run(book.scan(None, 50)).items] == [ann.id]
        assert [c.id for c in run(book.find(phones=[ANN, BEA]))] == [ann.id]
        start = run(self.events.latest())
        with pytest.raises(Conflict) as again:
            run(book.merge(ann.id, bea.id))
        assert again.value.details["contact_id"] == ann.id
        with pytest.raises(Conflict):
            run(book.merge(ann.id, bea.id))
        assert self._logged(run, start) == []
        with pytest.raises(InvalidInput):
            run(book.merge(ann.id, ann.id))
        with pytest.raises(InvalidInput):
            run(book.merge(bea.id, ann.id))  # the pointer is the survivor itself
        with pytest.raises(NotFound):
            run(book.merge(ann.id, "ct_missing"))
        with pytest.raises(NotFound):
            run(book.merge("ct_missing", ann.id))
        updated = run(book.update_contact(bea.id, company="Acme"))
        assert (updated.id, run(book.get_contact(ann.id)).company) == (ann.id, "Acme")

    def test_a_webhook_retried_after_a_merge_finds_its_message(self, book, store, run):
        """A message stored for the merged contact, delivered again after the merge, is a
        duplicate: the stored message answers, with the survivor as its contact."""
        ann = self._sender(store, run, ANN, "p1")
        first = run(store.ingest_inbound("sms", inbound("bea-1", BEA)))
        run(book.merge(ann.id, first.contact.id))
        again = run(store.ingest_inbound("sms", inbound("bea-1", BEA)))
        assert (again.created, again.message_id) == (False, first.message_id)
        assert again.contact.id == ann.id
        assert again.message.contact_id == ann.id

    def test_an_opt_out_survives_the_merge_at_the_outbox_claim(self, book, store, run):
        """A contact that opted out on a channel, merged into another, still reads as
        opted out there when a reply queued in its conversation is claimed."""
        ann = self._sender(store, run, ANN, "p1")
        stop = InboundMessage(
            provider_message_id="stop", sender=BEA, text="STOP", consent=Consent.OPT_OUT
        )
        bea = run(store.ingest_inbound("sms", stop))
        assert bea.contact.opted_out == ("sms",)
        message, _ = run(store.create_outbound(bea.conversation_id, "hi", (), {}, None))
        merged = run(book.merge(ann.id, bea.contact.id))
        assert merged.opted_out == ("sms",)
        now = utcnow()
        claimed = run(store.claim_outbound(message.id, "runner", now + timedelta(minutes=1), now))
        assert claimed is not None
        assert claimed.opted_out == ("sms",)
        assert claimed.message.contact_id == ann.id

    # Reads for the CRM

    def test_visible_to_and_the_agents_list(self, book, store, run):
        """A contact is visible to a user when one of its conversations is assigned to that
        user or to nobody; list_contacts with visible_to keeps only those. A contact with
        no conversation is visible to nobody; a merged id answers for its survivor."""
        ann = self._sender(store, run, ANN, "p1")
        bea = self._sender(store, run, BEA, "p2")
        lone = run(book.create_contact([sms(CAL)]))
        taken = run(store.find_conversation("sms", ANN))
        run(store.update_conversation(taken.id, assignee="usr_a"))
        assert run(book.visible_to(ann.id, "usr_a"))
        assert not run(book.visible_to(ann.id, "usr_b"))
        assert run(book.visible_to(bea.id, "usr_b"))
        assert not run(book.visible_to(lone.id, "usr_a"))
        mine = run(book.list_contacts(None, None, 50, visible_to="usr_a")).items
        theirs = run(book.list_contacts(None, None, 50, visible_to="usr_b")).items
        assert [c.id for c in mine] == [bea.id, ann.id]
        assert [c.id for c in theirs] == [bea.id]
        first = run(book.list_contacts(None, None, 1, visible_to="usr_a"))
        assert [c.id for c in first.items] == [bea.id]
        rest = run(book.list_contacts(None, first.next_cursor, 1, visible_to="usr_a"))
        assert [c.id for c in rest.items] == [ann.id]
        run(book.merge(lone.id, ann.id))
        assert run(book.visible_to(ann.id, "usr_a"))
        with pytest.raises(NotFound):
            run(book.visible_to("ct_missing", "usr_a"))

    def test_scan_reads_every_contact_once_by_id(self, book, store, run):
        """scan pages through every live contact once, by id; the last page has no cursor;
        a cursor no scan made is InvalidInput."""
        made = [self._sender(store, run, f"+1555000{n}", f"p{n}").id for n in range(7)]
        run(book.merge(made[0], made[3]))
        seen, cursor = [], None
        while True:
            page = run(book.scan(cursor, 2))
            assert len(page.items) <= 2
            seen += [contact.id for contact in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == sorted(set(made) - {made[3]})
        with pytest.raises(InvalidInput):
            run(book.scan("not-a-cursor", 2))

    def test_activity_sums_up_each_contacts_conversations(self, book, store, run):
        """activity answers, per id asked, the latest activity of its conversations, their
        statuses and channels (each once, sorted); an empty one for a contact without
        conversations or an unknown id."""
        ann = self._sender(store, run, ANN, "p1")
        run(store.ingest_inbound("email", inbound("e1", "ann@example.test")))
        email = run(store.find_conversation("email", "ann@example.test"))
        run(book.merge(ann.id, email.contact_id))
        run(store.update_conversation(email.id, status=ConversationStatus.RESOLVED))
        lone = run(book.create_contact([sms(CAL)]))
        found = run(book.activity([ann.id, lone.id, "ct_missing"]))
        latest = max(
            run(store.get_conversation(c)).last_activity_at
            for c in (email.id, run(store.find_conversation("sms", ANN)).id)
        )
        assert found[ann.id] == ContactActivity(
            latest, (ConversationStatus.OPEN, ConversationStatus.RESOLVED), ("email", "sms")
        )
        assert found[lone.id] == ContactActivity()
        assert found["ct_missing"] == ContactActivity()

    def test_an_id_no_contact_can_have_is_not_found(self, book, store, run):
        """Every call naming a contact answers NotFound for an id a request may carry that
        no record has (a path, a reserved name, too long), on either side of a merge."""
        ann = self._sender(store, run, ANN, "p1")
        for bad in IMPOSSIBLE_IDS:
            calls = [
                book.get_contact(bad),
                book.update_contact(bad, company="x"),
                book.add_identity(bad, sms(CAL)),
                book.remove_identity(bad, sms(ANN)),
                book.visible_to(bad, "usr_a"),
                book.merge(ann.id, bad),
                book.merge(bad, ann.id),
            ]
            for call in calls:
                with pytest.raises(NotFound):
                    run(call)
        assert run(book.activity(IMPOSSIBLE_IDS)) == dict.fromkeys(
            IMPOSSIBLE_IDS, ContactActivity()
        )

    # Under load

    def test_a_merge_while_messages_arrive_for_both_loses_none(self, book, store, run):
        """Many messages for both contacts' addresses, stored while the two are merged:
        every one is stored, on the survivor, and afterwards no conversation, message or
        identity names the merged contact."""
        ann = self._sender(store, run, ANN, "first-ann")
        bea = self._sender(store, run, BEA, "first-bea")

        async def scenario() -> list[Any]:
            ingests = [
                store.ingest_inbound("sms", inbound(f"c{n}", (ANN, BEA)[n % 2]))
                for n in range(CONCURRENT_INGESTS)
            ]
            half = CONCURRENT_INGESTS // 2
            async with asyncio.timeout(120):
                return await asyncio.gather(
                    *ingests[:half], book.merge(ann.id, bea.id), *ingests[half:]
                )

        results = run(scenario())
        ingested = [result for result in results if not isinstance(result, Contact)]
        assert all(result.created for result in ingested)
        conversations = run(store.list_conversations(None, None, None, None, 200)).items
        assert {conversation.contact_id for conversation in conversations} == {ann.id}
        messages = [
            message
            for conversation in conversations
            for message in run(store.list_messages(conversation.id, None, 200)).items
        ]
        assert len(messages) == CONCURRENT_INGESTS + 2
        assert {message.contact_id for message in messages} == {ann.id}
        for result in ingested:
            assert run(store.get_message(result.message_id)).contact_id == ann.id
        survivor = run(book.get_contact(bea.id))
        assert (survivor.id, survivor.identities) == (ann.id, (sms(ANN), sms(BEA)))
        for address in (ANN, BEA):
            assert run(store.find_conversation("sms", address)).contact_id == ann.id
        assert [c.id for c in run(book.scan(None, 50)).items] == [ann.id]


class TestSqliteContactBook(ContactBookContract):
    """The contract on a fresh SQLite file."""

    @pytest.fixture
    def database(self, sqlite_database: SqliteDatabase) -> Database:
        return sqlite_database

    def test_the_migration_fills_the_reach_of_contacts_stored_before(self, database, store, run):
        """Step 11 gives every contact stored before it the reach of its identities (a
        phone-like or email channel's address), so find finds them."""
        ann = self._sender(store, run, ANN, "p1")
        run(store.ingest_inbound("webchat", inbound("w1", "visitor-7")))
        run(database.write(lambda c: c.execute("DELETE FROM contact_reach")))
        assert run(store.find_contacts(phones=[ANN])) == []
        run(database.write(fill_reach))
        assert [c.id for c in run(store.find_contacts(phones=[ANN]))] == [ann.id]
        rows = run(database.read(lambda c: c.execute("SELECT * FROM contact_reach").fetchall()))
        assert [tuple(row) for row in rows] == [(ANN, ann.id)]


class TestFirestoreContactBook(ContactBookContract):
    """The contract on a fresh emulator project per test."""

    @pytest.fixture
    def database(self, firestore_database: Database) -> Database:
        return firestore_database

    def test_the_migration_fills_the_reach_of_contacts_stored_before(self, database, store, run):
        """Step 1 gives every contact stored before it the reach of its identities, so
        find finds them; tombstones stay as they are; running it again changes nothing."""
        ann = self._sender(store, run, ANN, "p1")
        bea = self._sender(store, run, BEA, "p2")
        run(StoreContactBook(store).merge(ann.id, bea.id))
        run(store.layout.contact(ann.id).update({"reach": DELETE_FIELD}))
        assert run(store.find_contacts(phones=[ANN])) == []
        run(fill_contact_reach(database))
        run(fill_contact_reach(database))
        assert [c.id for c in run(store.find_contacts(phones=[ANN, BEA]))] == [ann.id]
        tombstone = run(store.layout.contact(bea.id).get()).to_dict()
        assert set(tombstone) == {"merged_into", "updated_at"}
