"""What every backend answers whatever it stores: health facts, ids, NotFound."""

from __future__ import annotations

import pytest

from omnichannel_core.audit import AuditEntry
from omnichannel_core.errors import NotFound
from omnichannel_core.ids import new_id
from omnichannel_core.models import ConversationStatus, DeliveryStatus, Media, utcnow
from tests.store_contract.fixtures import IMPOSSIBLE_IDS, StoreFixtures, inbound


class BasicsContract(StoreFixtures):
    """What the database's ``ping`` and the inbox store's reads by id promise."""

    def test_unknown_ids_are_not_found(self, store, run):
        """Every read or update by an id that does not exist raises NotFound (ids no record
        can have: ``test_ids_no_record_can_have_are_not_found``)."""
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

    def test_ids_no_record_can_have_are_not_found(self, store, run):
        """An id that cannot name a stored record (``a/b``, ``..``, ``__x__``, empty, too
        long: what a request may carry) is NotFound like any unknown id, for every read or
        change by id, and nothing is written or logged."""
        run(store.ingest_inbound("sms", inbound("p1")))
        start = run(self.events.latest())
        kept = Media("https://example.test/a.png", "image/png", id="med_1")
        for bad in IMPOSSIBLE_IDS:
            audit = AuditEntry(new_id("aud"), "message.retried", "user", "usr_1", "message", bad)
            calls = [
                store.get_message(bad),
                store.get_contact(bad),
                store.get_conversation(bad),
                store.update_contact(bad, display_name="x"),
                store.add_contact_attributes(bad, {"email": "a@example.test"}),
                store.update_conversation(bad, status=ConversationStatus.PENDING),
                store.list_messages(bad, None, 10),
                store.create_outbound(bad, "hi", (), {}, None),
                store.log_typing(bad, "contact", None, utcnow()),
                store.advance_message(bad, DeliveryStatus.SENT, provider_message_id="SM1"),
                store.replace_media(bad, 0, "https://example.test/a.png", kept),
                store.retry_failed(bad, audit, utcnow()),
                store.cancel_outbound(bad, audit),
            ]
            for call in calls:
                with pytest.raises(NotFound):
                    run(call)
        assert run(self.events.after(start, 10)) == []
        assert run(self.audit.list(None, None, 10)).items == []

    def test_ping_reports_the_backend(self, database, run):
        """The database's ping answers with facts for the health report, naming the backend
        (the one whose factories built the stores), each store's schema version, and that
        every store is at the version this code has."""
        facts = run(database.ping())
        assert isinstance(facts, dict)
        assert facts.get("backend") == database.backend
        assert isinstance(facts["backend"], str)
        assert facts["backend"]
        assert isinstance(facts.get("schema"), dict)
        assert facts.get("schema_current") is True

    def test_ids_are_distinct_across_kinds(self, store, run):
        """Contact, conversation and message ids are all distinct strings."""
        ingested = run(store.ingest_inbound("sms", inbound("p1")))
        ids = [ingested.contact.id, ingested.conversation.id, ingested.message.id]
        assert all(isinstance(i, str) and i for i in ids)
        assert len(set(ids)) == 3
