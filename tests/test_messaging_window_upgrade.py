"""Stores written before ``Conversation.last_inbound_at`` existed: a SQLite file a release
from before the split left at schema 7 is adopted and migrated, the window filled from the
messages it holds; a Firestore conversation document without the field reads as None until
the customer writes.
"""

from __future__ import annotations

import asyncio

import pytest
from google.cloud.firestore_v1 import DELETE_FIELD

from omnichannel_core.hooktypes import InboundMessage
from omnichannel_core.models import DeliveryStatus
from omnichannel_core.modules.inbox.store.sqlite.schema import INBOX_MIGRATIONS
from omnichannel_core.store.firestore.database import FirestoreDatabase
from omnichannel_core.store.sqlite.migrations import SCHEME
from omnichannel_core.testing.emulators import Emulator, use_firestore_emulator
from omnichannel_core.timestamps import parse_timestamp
from tests.support.sqlite_files import read_rows, stores_on_file, write_legacy_file
from tests.support.stores import open_stores

BEFORE_THE_WINDOW = 7
"""The last schema version (from before the split) without
``conversations.last_inbound_at``."""

ROWS = """
INSERT INTO contacts (id, display_name, created_at, updated_at)
    VALUES ('ct_1', 'Ann', '2024-01-01T00:00:00.000000Z', '2024-01-01T00:00:00.000000Z');
INSERT INTO identities (channel, address, contact_id) VALUES ('fb', 'psid-1', 'ct_1');
INSERT INTO conversations (id, contact_id, channel, address, status, unread_count,
    last_activity_at, created_at, updated_at)
    VALUES ('cv_wrote', 'ct_1', 'fb', 'psid-1', 'open', 2, '2024-01-03T00:00:00.000000Z',
    '2024-01-01T00:00:00.000000Z', '2024-01-03T00:00:00.000000Z');
INSERT INTO contacts (id, display_name, created_at, updated_at)
    VALUES ('ct_2', 'Bob', '2024-01-01T00:00:00.000000Z', '2024-01-01T00:00:00.000000Z');
INSERT INTO identities (channel, address, contact_id) VALUES ('fb', 'psid-2', 'ct_2');
INSERT INTO conversations (id, contact_id, channel, address, status, unread_count,
    last_activity_at, created_at, updated_at)
    VALUES ('cv_quiet', 'ct_2', 'fb', 'psid-2', 'open', 0, '2024-01-04T00:00:00.000000Z',
    '2024-01-01T00:00:00.000000Z', '2024-01-04T00:00:00.000000Z');
INSERT INTO messages (id, conversation_id, contact_id, channel, direction, status,
    provider_message_id, created_at, updated_at)
    VALUES ('msg_in_1', 'cv_wrote', 'ct_1', 'fb', 'inbound', 'received', 'm1',
    '2024-01-01T00:00:00.000000Z', '2024-01-01T00:00:00.000000Z'),
    ('msg_in_2', 'cv_wrote', 'ct_1', 'fb', 'inbound', 'received', 'm2',
    '2024-01-02T00:00:00.000000Z', '2024-01-02T00:00:00.000000Z'),
    ('msg_out_1', 'cv_wrote', 'ct_1', 'fb', 'outbound', 'sent', 'o1',
    '2024-01-03T00:00:00.000000Z', '2024-01-03T00:00:00.000000Z'),
    ('msg_out_2', 'cv_quiet', 'ct_2', 'fb', 'outbound', 'sent', 'o2',
    '2024-01-04T00:00:00.000000Z', '2024-01-04T00:00:00.000000Z')
"""


def test_a_file_from_before_the_window_is_migrated_and_filled(tmp_path):
    """A file at schema 7 opens with the inbox at its latest version; each conversation's
    last_inbound_at is its newest inbound message's stored time (None where the customer
    never wrote); watermarks then find its messages, and a new message moves the window."""
    path = tmp_path / "v7.db"
    write_legacy_file(path, BEFORE_THE_WINDOW, ROWS)
    with stores_on_file(path) as stores:
        store = stores.inbox
        assert read_rows(path, "PRAGMA user_version") == [(SCHEME,)]
        inbox_version = "SELECT version FROM store_versions WHERE store = 'inbox'"
        assert read_rows(path, inbox_version) == [(len(INBOX_MIGRATIONS),)]
        wrote = asyncio.run(store.get_conversation("cv_wrote"))
        assert wrote.last_inbound_at == parse_timestamp("2024-01-02T00:00:00.000000Z")
        assert asyncio.run(store.get_conversation("cv_quiet")).last_inbound_at is None
        up_to = parse_timestamp("2024-01-05T00:00:00.000000Z")
        moved = asyncio.run(store.apply_watermark("fb", "psid-1", DeliveryStatus.READ, up_to))
        assert [(m.id, m.status) for m in moved] == [("msg_out_1", DeliveryStatus.READ)]
        again = asyncio.run(store.ingest_inbound("fb", InboundMessage("m3", "psid-1", "hi")))
        assert again.conversation_id == "cv_wrote"
        assert again.conversation.last_inbound_at == again.message.created_at


@pytest.fixture
def emulated(firestore_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The emulator's address in FIRESTORE_EMULATOR_HOST, and no real credentials around."""
    use_firestore_emulator(monkeypatch, firestore_emulator.host_port)
    return firestore_emulator


def test_a_firestore_conversation_without_the_field_reads_none(emulated, firestore_project):
    """A conversation document written before last_inbound_at existed reads as None, in
    the list too; the customer's next message sets it."""

    async def scenario() -> None:
        stores = await open_stores(FirestoreDatabase(firestore_project))
        store = stores.inbox
        try:
            _, conversation = await store.resolve_recipient("fb", "psid-1")
            reference = store.layout.conversation(conversation.id)
            await reference.update({"last_inbound_at": DELETE_FIELD})
            assert "last_inbound_at" not in (await reference.get()).to_dict()
            assert (await store.get_conversation(conversation.id)).last_inbound_at is None
            [listed] = (await store.list_conversations(None, None, None, None, 10)).items
            assert listed.last_inbound_at is None
            ingested = await store.ingest_inbound("fb", InboundMessage("m1", "psid-1", "hi"))
            assert ingested.conversation_id == conversation.id
            stored = await store.get_conversation(conversation.id)
            assert stored.last_inbound_at == ingested.message.created_at
        finally:
            await stores.close()

    asyncio.run(scenario())
