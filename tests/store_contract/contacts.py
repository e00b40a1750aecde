"""Contacts: updates, newest-first listing, and search as defined in
``omnichannel_core.modules.inbox.store.search``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from omnichannel_core.errors import NotFound
from omnichannel_core.modules.inbox.events import InboxEvent
from omnichannel_core.modules.inbox.store import InboxStore
from tests.store_contract.fixtures import Run, StoreFixtures, inbound


class ContactsContract(StoreFixtures):
    """What ``update_contact``, ``add_contact_attributes`` and ``list_contacts`` promise."""

    def _contacts(
        self, store: InboxStore, run: Run[Any], *people: tuple[str, str | None]
    ) -> list[str]:
        ids = []
        for number, (address, name) in enumerate(people):
            ingested = run(store.ingest_inbound("sms", inbound(f"s{number}", address, "x", name)))
            ids.append(ingested.contact.id)
        return ids

    def _search(self, store: InboxStore, run: Run[Any], query: str) -> set[str]:
        return {contact.id for contact in run(store.list_contacts(query, None, 100)).items}

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

    def test_add_contact_attributes_sets_only_missing_ones(self, store, run):
        """add_contact_attributes sets the attributes the contact lacks and never changes one
        it has (by name, whatever the value); the rest of the contact is kept, and it answers
        the contact as stored."""
        contact = run(store.ingest_inbound("sms", inbound("p1", sender_name="Ann"))).contact
        run(store.update_contact(contact.id, tags=("vip",), attributes={"email": "agent@x"}))
        added = run(
            store.add_contact_attributes(contact.id, {"email": "form@x", "plan": "gold", "n": 1})
        )
        assert added.attributes == {"email": "agent@x", "plan": "gold", "n": 1}
        assert (added.display_name, added.tags, added.identities) == (
            "Ann",
            ("vip",),
            contact.identities,
        )
        assert added.updated_at >= contact.updated_at
        assert run(store.get_contact(contact.id)) == added
        again = run(store.add_contact_attributes(contact.id, {"plan": "silver", "email": ""}))
        assert again == added

    def test_add_contact_attributes_logs_only_a_change(self, store, run):
        """A contact.updated (``fields``: ``["attributes"]``, no conversation or assignee)
        when an attribute was set; nothing logged, nor written, when it had them all or
        none was given."""
        contact = run(store.ingest_inbound("sms", inbound("p1"))).contact
        start = run(self.events.latest())
        run(store.add_contact_attributes(contact.id, {"email": "ann@example.test"}))
        [event] = run(self.events.after(start, 10))
        assert (event.type, event.record_id, event.conversation_id, event.assignees) == (
            InboxEvent.CONTACT_UPDATED,
            contact.id,
            None,
            (),
        )
        assert event.data == {"fields": ["attributes"]}
        stored = run(store.get_contact(contact.id))
        for nothing_new in ({"email": "other@example.test"}, {}):
            assert run(store.add_contact_attributes(contact.id, nothing_new)) == stored
        assert run(self.events.after(event.cursor, 10)) == []
        assert run(store.get_contact(contact.id)) == stored

    def test_add_contact_attributes_of_an_unknown_contact_is_not_found(self, store, run):
        """NotFound for a contact that does not exist, and nothing logged."""
        start = run(self.events.latest())
        with pytest.raises(NotFound):
            run(store.add_contact_attributes("ct_missing", {"email": "a@x"}))
        assert run(self.events.after(start, 10)) == []

    def test_add_contact_attributes_at_once_lose_nothing(self, store, run):
        """Ten writers adding attributes to one contact at once: each one's own attribute is
        there afterwards, a name they all give is set once (by one of them), and each logged
        one contact.updated."""
        contact = run(store.ingest_inbound("sms", inbound("p1"))).contact
        start = run(self.events.latest())

        async def race() -> None:
            await asyncio.gather(
                *(
                    store.add_contact_attributes(contact.id, {f"form{n}": n, "email": f"{n}@x"})
                    for n in range(10)
                )
            )

        run(race())
        attributes = run(store.get_contact(contact.id)).attributes
        assert {name: attributes[name] for name in attributes if name != "email"} == {
            f"form{n}": n for n in range(10)
        }
        assert attributes["email"] in {f"{n}@x" for n in range(10)}
        updates = [event.type for event in run(self.events.after(start, 50))]
        assert updates == [InboxEvent.CONTACT_UPDATED] * 10

    def test_update_contact_name_changes_what_search_finds(self, store, run):
        """After a rename, search finds the contact by the new name, not the old one."""
        contact = run(store.ingest_inbound("sms", inbound("p1", sender_name="Ann"))).contact
        run(store.update_contact(contact.id, display_name="Zoe"))
        assert [c.id for c in run(store.list_contacts("zoe", None, 10)).items] == [contact.id]
        assert run(store.list_contacts("ann", None, 10)).items == []

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
