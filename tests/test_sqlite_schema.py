"""The SQLite schema, store by store (``omnichannel_core.store.sqlite.migrations``): a fresh
file with every store at its latest version, a file left by a release from before the split
(any ``user_version`` 1 to 8) adopted and brought up to date keeping its data, and a file
newer than the code refused."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import attrs
import pytest

from omnichannel_core.errors import ConfigError
from omnichannel_core.hooktypes import InboundMessage, Thread
from omnichannel_core.policy import Role
from omnichannel_core.store.specs import StoreSpec
from omnichannel_core.store.sqlite.database import SqliteDatabase
from omnichannel_core.store.sqlite.migrations import SCHEME
from tests.support.sqlite_files import (
    LEGACY_VERSIONS,
    read_rows,
    stores_on_file,
    write_legacy_file,
)
from tests.support.stores import SPECS, open_stores

LATEST = {spec.name: len(spec.sqlite_migrations) for spec in SPECS}
"""Each built-in store's latest version."""
SCHEMA = "SELECT type, name, sql FROM sqlite_master ORDER BY name"


def _versions(path: Path) -> dict[str, int]:
    return dict(read_rows(path, "SELECT store, version FROM store_versions"))


def test_fresh_file_has_every_store_at_its_latest_version(tmp_path):
    """A new file gets every store's steps: store_versions holds each store at its latest
    version, user_version says versions are kept per store, and ping reports them, all
    current."""
    path = tmp_path / "new" / "fresh.db"
    with stores_on_file(path) as stores:
        assert read_rows(path, "PRAGMA user_version") == [(SCHEME,)]
        assert _versions(path) == LATEST
        assert set(LATEST) == {"events", "audit", "jobs", "inbox", "access"}
        assert all(version >= 1 for version in LATEST.values())
        assert asyncio.run(stores.database.ping()) == {
            "backend": "sqlite",
            "schema": LATEST,
            "schema_current": True,
        }


def test_migrate_answers_each_store_version(tmp_path):
    """migrate() answers the version of every store it was given, on a fresh file and again
    on an up-to-date one."""
    database = SqliteDatabase(tmp_path / "answer.db")
    assert asyncio.run(database.migrate(SPECS)) == LATEST
    assert asyncio.run(database.migrate(SPECS)) == LATEST


def test_opening_twice_changes_nothing(tmp_path):
    """Opening an up-to-date file again keeps its versions, schema and data."""
    path = tmp_path / "twice.db"
    with stores_on_file(path) as stores:
        asyncio.run(stores.inbox.ingest_inbound("sms", InboundMessage("p1", "+1", "kept")))
    schema = read_rows(path, SCHEMA)
    with stores_on_file(path):
        assert read_rows(path, "PRAGMA user_version") == [(SCHEME,)]
        assert _versions(path) == LATEST
        assert read_rows(path, SCHEMA) == schema
        assert read_rows(path, "SELECT text FROM messages") == [("kept",)]


def test_version_zero_database_is_migrated(tmp_path):
    """A database at user_version 0 without our tables (e.g. an empty file another tool
    created) gets every store at its latest version, keeps its own tables, and works."""
    path = tmp_path / "old.db"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE unrelated (x INTEGER)")
    connection.execute("INSERT INTO unrelated VALUES (42)")
    connection.commit()
    connection.close()
    assert read_rows(path, "PRAGMA user_version") == [(0,)]
    with stores_on_file(path) as stores:
        assert read_rows(path, "PRAGMA user_version") == [(SCHEME,)]
        assert _versions(path) == LATEST
        tables = {name for (name,) in read_rows(path, "SELECT name FROM sqlite_master")}
        assert {"contacts", "identities", "conversations", "messages", "events"} <= tables
        assert read_rows(path, "SELECT x FROM unrelated") == [(42,)]
        ingested = asyncio.run(stores.inbox.ingest_inbound("sms", InboundMessage("p1", "+1", "hi")))
        assert ingested.created is True


INBOX_ROWS = """
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
"""A message, its contact and conversation, as the inbox's first step stored them."""

ACCESS_ROWS = """
INSERT INTO users (id, email, display_name, role, active, password_hash, created_at,
    updated_at)
    VALUES ('usr_old', 'old@example.test', 'Old Admin', 'admin', 1, 'old-hash',
    '2024-01-01T00:00:00.000000Z', '2024-01-01T00:00:00.000000Z');
INSERT INTO audit_log (id, action, actor_type, actor_id, details, at)
    VALUES ('aud_old', 'user.created', 'system', NULL, '{"role": "admin"}',
    '2024-01-01T00:00:00.000000Z')
"""
"""A user and an audit entry, as schema 6 (access and audit log) stored them."""

EVENT_ROWS = """
INSERT INTO events (type, record_id, conversation_id, assignees, at)
    VALUES ('message.created', 'msg_old', 'cv_old', '[null]', '2024-01-01T00:00:00.000000Z')
"""
"""An event, as schema 7 (the event log, before events carried data) logged it."""


def _legacy_rows(version: int) -> list[str]:
    """The rows a file at ``version`` can hold: the message always, a user and an audit
    entry from schema 6, an event from schema 7."""
    rows = [INBOX_ROWS]
    if version >= 6:
        rows.append(ACCESS_ROWS)
    if version >= 7:
        rows.append(EVENT_ROWS)
    return rows


@pytest.mark.parametrize("version", LEGACY_VERSIONS)
def test_a_file_from_before_the_split_is_adopted_and_brought_up_to_date(tmp_path, version):
    """A file a release from before the split left at ``user_version`` 1 to 8, holding
    data, is adopted as it is (the steps it has are counted, not run again) and every store
    brought to its latest version; its message is still there and still dedupes its retry,
    its user, audit entry and event are kept (an event logged before events carried data
    reads with none), and every store then works."""
    path = tmp_path / f"v{version}.db"
    write_legacy_file(path, version, *_legacy_rows(version))
    with stores_on_file(path) as stores:
        assert read_rows(path, "PRAGMA user_version") == [(SCHEME,)]
        assert _versions(path) == LATEST
        inbox, access, events, audit = stores.inbox, stores.access, stores.events, stores.audit
        assert asyncio.run(inbox.get_message("msg_old")).text == "old"
        again = asyncio.run(inbox.ingest_inbound("sms", InboundMessage("p1", "+1", "new")))
        assert (again.created, again.message.id) == (False, "msg_old")
        assert again.contact.display_name == "Old"
        if version >= 6:
            assert asyncio.run(access.get_user("usr_old")).email == "old@example.test"
            assert asyncio.run(access.has_active_admin()) is True
            [entry] = asyncio.run(audit.list(None, None, 10)).items
            assert (entry.id, entry.details) == ("aud_old", {"role": "admin"})
        if version >= 7:
            [old_event] = asyncio.run(events.after(None, 10))
            assert (old_event.type, old_event.record_id, old_event.data) == (
                "message.created",
                "msg_old",
                {},
            )
        new = asyncio.run(inbox.ingest_inbound("sms", InboundMessage("p2", "+1", "later")))
        logged = asyncio.run(events.after(None, 10))
        assert logged[-1].record_id == new.message_id
        assert logged[-1].data["direction"] == "inbound"
        user = asyncio.run(access.create_user("new@example.test", "New", Role.AGENT, "h"))
        assert asyncio.run(access.get_user(user.id)) == user


def test_a_file_from_before_the_split_is_adopted_once(tmp_path):
    """Opening an adopted file again finds nothing to do: versions and schema stay."""
    path = tmp_path / "v8.db"
    write_legacy_file(path, max(LEGACY_VERSIONS), *_legacy_rows(8))
    with stores_on_file(path):
        pass
    schema = read_rows(path, SCHEMA)
    with stores_on_file(path):
        assert _versions(path) == LATEST
        assert read_rows(path, SCHEMA) == schema


def test_migration_recomputes_search_words_of_existing_contacts(tmp_path):
    """A contact stored before search words gained phone digits (schema 3, empty
    search_terms) is found by its name and its digits once the file is migrated."""
    path = tmp_path / "v3.db"
    write_legacy_file(path, 3, INBOX_ROWS, "UPDATE identities SET address = '+15550001'")
    with stores_on_file(path) as stores:
        for query in ("old", "+1555", "5550001"):
            found = asyncio.run(stores.inbox.list_contacts(query, None, 10)).items
            assert [contact.id for contact in found] == ["ct_old"], query


def _refused(path: Path) -> ConfigError:
    """The error opening every store on ``path`` raises (it must raise one)."""
    database = SqliteDatabase(path)
    try:
        with pytest.raises(ConfigError) as raised:
            asyncio.run(open_stores(database))
    finally:
        asyncio.run(database.close())
    return raised.value


def test_a_scheme_newer_than_the_code_refuses_to_open(tmp_path):
    """A file whose user_version is above the one this code writes (a later scheme) is
    refused with a ConfigError naming OMNICHANNEL_STORE, and left as it was."""
    path = tmp_path / "future.db"
    connection = sqlite3.connect(path)
    connection.execute(f"PRAGMA user_version = {SCHEME + 1}")
    connection.close()
    error = _refused(path)
    assert error.message.startswith("OMNICHANNEL_STORE: ")
    assert "newer" in error.message
    assert error.details["variable"] == "OMNICHANNEL_STORE"
    assert read_rows(path, "PRAGMA user_version") == [(SCHEME + 1,)]
    assert read_rows(path, SCHEMA) == []


def test_a_store_newer_than_the_code_refuses_to_open(tmp_path):
    """A file where one store is at a version above the steps this code has for it (a
    later release of its module migrated it) is refused with a ConfigError naming
    OMNICHANNEL_STORE and the store; nothing is changed, not even the other stores'
    missing steps."""
    path = tmp_path / "newer-inbox.db"
    with stores_on_file(path):
        pass
    connection = sqlite3.connect(path)
    connection.execute("UPDATE store_versions SET version = version + 1 WHERE store = 'inbox'")
    connection.execute("DELETE FROM store_versions WHERE store = 'jobs'")
    connection.execute("DROP TABLE job_leases")
    connection.execute("DROP TABLE subscriber_cursors")
    connection.commit()
    connection.close()
    schema, versions = read_rows(path, SCHEMA), _versions(path)
    error = _refused(path)
    assert error.message.startswith("OMNICHANNEL_STORE: ")
    assert "newer" in error.message and "'inbox'" in error.message
    assert error.details["variable"] == "OMNICHANNEL_STORE"
    assert (read_rows(path, SCHEMA), _versions(path)) == (schema, versions)


def test_a_store_the_code_does_not_know_is_left_alone(tmp_path):
    """A store the file knows but no installed module declares (a module uninstalled) is
    neither an error nor touched: its version and tables stay."""
    path = tmp_path / "uninstalled.db"
    with stores_on_file(path):
        pass
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE greeter_greetings (id TEXT PRIMARY KEY)")
    connection.execute("INSERT INTO greeter_greetings VALUES ('hello')")
    connection.execute("INSERT INTO store_versions (store, version) VALUES ('greeter', 3)")
    connection.commit()
    connection.close()
    with stores_on_file(path):
        assert _versions(path) == {**LATEST, "greeter": 3}
        assert read_rows(path, "SELECT id FROM greeter_greetings") == [("hello",)]


def test_a_failing_step_names_its_store_and_changes_nothing(tmp_path):
    """A module's step that SQLite refuses stops the migration with a ConfigError naming
    OMNICHANNEL_STORE, the file, the module's store and the step; nothing of the migration
    is kept, the other stores' steps included."""
    path = tmp_path / "broken-module.db"
    broken = StoreSpec(
        "broken",
        object,
        sqlite_migrations=("CREATE TABLE broken_ok (id TEXT)", "CREATE TABLE broken_bad ("),
    )
    with pytest.raises(ConfigError) as refused:
        asyncio.run(SqliteDatabase(path).migrate([*SPECS, broken]))
    message = refused.value.message
    assert message.startswith(f"OMNICHANNEL_STORE: cannot use {path}: store 'broken', step 2: ")
    assert read_rows(path, "SELECT name FROM sqlite_master WHERE type = 'table'") == []


CONVERSATIONS_REBUILT = 9
"""The inbox's step that made conversations many per contact and channel."""

CONVERSATION_ROWS = """
INSERT INTO contacts (id, display_name, created_at, updated_at)
    VALUES ('ct_old', 'Old', '2024-01-01T00:00:00.000000Z', '2024-01-01T00:00:00.000000Z');
INSERT INTO identities (channel, address, contact_id) VALUES ('email', 'old@x.test', 'ct_old');
INSERT INTO identities (channel, address, contact_id) VALUES ('sms', '+1', 'ct_old');
INSERT INTO conversations (id, contact_id, channel, address, status, assignee, unread_count,
    last_activity_at, created_at, updated_at, last_inbound_at)
    VALUES ('cv_mail', 'ct_old', 'email', 'old@x.test', 'pending', 'usr_a', 3,
    '2024-01-03T00:00:00.000000Z', '2024-01-01T00:00:00.000000Z',
    '2024-01-03T00:00:00.000000Z', '2024-01-02T00:00:00.000000Z');
INSERT INTO conversations (id, contact_id, channel, address, status, unread_count,
    last_activity_at, created_at, updated_at)
    VALUES ('cv_sms', 'ct_old', 'sms', '+1', 'resolved', 0, '2024-01-01T00:00:00.000000Z',
    '2024-01-01T00:00:00.000000Z', '2024-01-01T00:00:00.000000Z');
INSERT INTO messages (id, conversation_id, contact_id, channel, direction, status, text,
    provider_message_id, created_at, updated_at)
    VALUES ('msg_old', 'cv_mail', 'ct_old', 'email', 'inbound', 'received', 'old', 'm1',
    '2024-01-02T00:00:00.000000Z', '2024-01-02T00:00:00.000000Z')
"""
"""A contact with a conversation on each of two channels, as the inbox stored them while a
conversation was unique per contact and channel."""


def _file_before_the_rebuild(path: Path) -> None:
    """A file with every store at its latest version but the inbox, one step short of the
    rebuild, holding :data:`CONVERSATION_ROWS`."""
    specs = [
        attrs.evolve(spec, sqlite_migrations=spec.sqlite_migrations[: CONVERSATIONS_REBUILT - 1])
        if spec.name == "inbox"
        else spec
        for spec in SPECS
    ]
    asyncio.run(SqliteDatabase(path).migrate(specs))
    connection = sqlite3.connect(path)
    try:
        connection.executescript(CONVERSATION_ROWS)
    finally:
        connection.close()


def test_the_conversations_rebuild_keeps_every_row_and_index(tmp_path):
    """The step that lifts UNIQUE (contact_id, channel) makes the conversations table
    again: every row and column is kept (participants none), the indexes are made again,
    the unique one gone, and the lookup of a contact's conversations has its index."""
    path = tmp_path / "before-threads.db"
    _file_before_the_rebuild(path)
    columns = "id, contact_id, channel, address, status, assignee, unread_count,"
    columns += " last_activity_at, created_at, updated_at, last_inbound_at"
    before = read_rows(path, f"SELECT {columns} FROM conversations ORDER BY id")
    assert len(before) == 2
    table = "SELECT sql FROM sqlite_master WHERE name = 'conversations'"
    indexes = "SELECT name FROM sqlite_master WHERE tbl_name = 'conversations' AND type = 'index'"
    assert "UNIQUE (contact_id, channel)" in read_rows(path, table)[0][0]
    with stores_on_file(path):
        assert _versions(path)["inbox"] == LATEST["inbox"] >= CONVERSATIONS_REBUILT
    assert read_rows(path, f"SELECT {columns} FROM conversations ORDER BY id") == before
    assert read_rows(path, "SELECT DISTINCT participants FROM conversations") == [("[]",)]
    assert "UNIQUE" not in read_rows(path, table)[0][0]
    assert {name for (name,) in read_rows(path, indexes)} == {
        "sqlite_autoindex_conversations_1",  # the primary key's
        "conversations_by_activity",
        "conversations_by_address",
        "conversations_by_contact",
    }
    assert read_rows(path, "PRAGMA integrity_check") == [("ok",)]


def test_after_the_rebuild_a_contact_may_have_several_conversations(tmp_path):
    """On a migrated file, the old conversations work as before (a reply, a retried
    webhook, the one conversation found), and a contact may now have several on a channel:
    an agent's new one becomes the current one."""
    path = tmp_path / "threads.db"
    _file_before_the_rebuild(path)
    with stores_on_file(path) as stores:
        inbox = stores.inbox
        again = asyncio.run(inbox.ingest_inbound("email", InboundMessage("m1", "old@x.test")))
        assert (again.created, again.message.id) == (False, "msg_old")
        old = asyncio.run(inbox.get_conversation("cv_mail"))
        assert (old.status, old.assignee, old.unread_count, old.participants) == (
            "pending",
            "usr_a",
            3,
            (),
        )
        reply = asyncio.run(
            inbox.ingest_inbound(
                "email", InboundMessage("m2", "old@x.test", thread=Thread(refs=("m1",)))
            )
        )
        assert reply.conversation.id == "cv_mail"
        assert reply.conversation.unread_count == 4
        _, found = asyncio.run(inbox.resolve_recipient("sms", "+1"))
        assert found.id == "cv_sms"
        _, new = asyncio.run(inbox.resolve_recipient("email", "old@x.test", new_conversation=True))
        assert new.id != "cv_mail" and new.contact_id == "ct_old"
        plain = asyncio.run(inbox.ingest_inbound("email", InboundMessage("m3", "old@x.test")))
        assert plain.conversation.id == new.id
