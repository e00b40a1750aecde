"""The SQLite schema (``omnichannel_core.store.sqlite_schema``): a fresh file at the latest
version, every older version migrated forward keeping its data, a newer one refused."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from omnichannel_core.errors import ConfigError
from omnichannel_core.hooktypes import InboundMessage
from omnichannel_core.store.sqlite import SqliteStore
from omnichannel_core.store.sqlite_schema import MIGRATIONS, apply_migration
from tests.support.sqlite_files import open_store_file, read_rows


def test_fresh_file_is_at_the_latest_schema_version(tmp_path):
    """A new file is created with every migration applied: user_version == len(MIGRATIONS)."""
    path = tmp_path / "new" / "fresh.db"
    store = open_store_file(path)
    try:
        assert read_rows(path, "PRAGMA user_version") == [(len(MIGRATIONS),)]
        facts = asyncio.run(store.ping())
        assert facts == {
            "backend": "sqlite",
            "schema_version": len(MIGRATIONS),
            "latest": len(MIGRATIONS),
        }
    finally:
        asyncio.run(store.close())


def test_opening_twice_changes_nothing(tmp_path):
    """Opening an up-to-date file again keeps its version, schema and data."""
    path = tmp_path / "twice.db"
    store = open_store_file(path)
    asyncio.run(store.ingest_inbound("sms", InboundMessage("p1", "+1", "kept")))
    asyncio.run(store.close())
    schema = read_rows(path, "SELECT type, name, sql FROM sqlite_master ORDER BY name")
    store = open_store_file(path)
    try:
        assert read_rows(path, "PRAGMA user_version") == [(len(MIGRATIONS),)]
        assert read_rows(path, "SELECT type, name, sql FROM sqlite_master ORDER BY name") == schema
        assert read_rows(path, "SELECT text FROM messages") == [("kept",)]
    finally:
        asyncio.run(store.close())


def test_version_zero_database_is_migrated(tmp_path):
    """A database at user_version 0 without our tables (e.g. an empty file another tool
    created) is migrated to the latest version and then works."""
    path = tmp_path / "old.db"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE unrelated (x INTEGER)")
    connection.execute("INSERT INTO unrelated VALUES (42)")
    connection.commit()
    connection.close()
    assert read_rows(path, "PRAGMA user_version") == [(0,)]
    store = open_store_file(path)
    try:
        assert read_rows(path, "PRAGMA user_version") == [(len(MIGRATIONS),)]
        tables = {name for (name,) in read_rows(path, "SELECT name FROM sqlite_master")}
        assert {"contacts", "identities", "conversations", "messages"} <= tables
        assert read_rows(path, "SELECT x FROM unrelated") == [(42,)]
        ingested = asyncio.run(store.ingest_inbound("sms", InboundMessage("p1", "+1", "hi")))
        assert ingested.created is True
    finally:
        asyncio.run(store.close())


OLD_ROWS = """
INSERT INTO contacts (id, display_name, created_at, updated_at)
    VALUES ('ct_old', 'Old', '2024-01-01T00:00:00.000000Z', '2024-01-01T00:00:00.000000Z');
INSERT INTO identities (channel, address, contact_id) VALUES ('sms', '+1', 'ct_old');
INSERT INTO conversations (id, contact_id, channel, address, status, unread_count,
    last_activity_at, created_at, updated_at)
    VALUES ('cv_old', 'ct_old', 'sms', '+1', 'open', 1, '2024-01-01T00:00:00.000000Z',
    '2024-01-01T00:00:00.000000Z', '2024-01-01T00:00:00.000000Z');
INSERT INTO messages (id, conversation_id, contact_id, channel, direction, status, text,
    provider_message_id, created_at, updated_at)
    VALUES ('msg_old', 'cv_old', 'ct_old', 'sms', 'inbound', 'received', 'old', 'p1',
    '2024-01-01T00:00:00.000000Z', '2024-01-01T00:00:00.000000Z')
"""


def test_each_older_version_migrates_forward_keeping_data(tmp_path):
    """A file left at any earlier schema version, holding a message, is migrated to the
    latest version on open; the message is still there and still dedupes its retry."""
    for version in range(1, len(MIGRATIONS)):
        path = tmp_path / f"v{version}.db"
        connection = sqlite3.connect(path)
        for migration in [*MIGRATIONS[:version], OLD_ROWS]:
            apply_migration(connection, migration)
        connection.execute(f"PRAGMA user_version = {version}")
        connection.commit()
        connection.close()
        store = open_store_file(path)
        try:
            assert read_rows(path, "PRAGMA user_version") == [(len(MIGRATIONS),)]
            assert asyncio.run(store.get_message("msg_old")).text == "old"
            again = asyncio.run(store.ingest_inbound("sms", InboundMessage("p1", "+1", "new")))
            assert (again.created, again.message.id) == (False, "msg_old")
            assert again.contact.display_name == "Old"
        finally:
            asyncio.run(store.close())


def test_newer_schema_than_the_code_refuses_to_open(tmp_path):
    """A file migrated by a newer release (user_version above ours) is refused with a
    ConfigError rather than used with a schema this code does not know."""
    path = tmp_path / "future.db"
    connection = sqlite3.connect(path)
    connection.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    connection.close()
    store = SqliteStore(path)
    with pytest.raises(ConfigError, match="newer"):
        asyncio.run(store.open())
    asyncio.run(store.close())


def test_migration_recomputes_search_words_of_existing_contacts(tmp_path):
    """A contact stored before search words gained phone digits (schema 3, empty
    search_terms) is found by its name and its digits once the file is migrated."""
    path = tmp_path / "v3.db"
    connection = sqlite3.connect(path)
    for migration in MIGRATIONS[:3]:
        apply_migration(connection, migration)
    for statement in OLD_ROWS.split(";"):
        connection.execute(statement)
    connection.execute("UPDATE identities SET address = '+15550001'")
    connection.execute("PRAGMA user_version = 3")
    connection.commit()
    connection.close()
    store = open_store_file(path)
    try:
        for query in ("old", "+1555", "5550001"):
            found = asyncio.run(store.list_contacts(query, None, 10)).items
            assert [contact.id for contact in found] == ["ct_old"], query
    finally:
        asyncio.run(store.close())
