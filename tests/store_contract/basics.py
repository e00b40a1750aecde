"""What every backend answers whatever it stores: health facts, ids, NotFound."""

from __future__ import annotations

import pytest

from omnichannel_core.errors import NotFound
from omnichannel_core.models import ConversationStatus
from tests.store_contract.fixtures import StoreFixtures, inbound


class BasicsContract(StoreFixtures):
    """What the database's ``ping`` and the inbox store's reads by id promise."""

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
