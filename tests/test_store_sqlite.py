"""The SQLite backend: the shared contract of every store on one ``SqliteDatabase``, atomic
dedupe across processes on one file, the store URL that names the file, and an audit log
the database itself keeps append-only."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

import attrs
import pytest

from omnichannel_core.audit import AuditEntry
from omnichannel_core.errors import ConfigError
from omnichannel_core.hooktypes import InboundMessage
from omnichannel_core.models import ConversationStatus, DeliveryStatus
from omnichannel_core.store import open_database
from omnichannel_core.store.sqlite.database import SqliteDatabase
from omnichannel_core.timestamps import utcnow
from tests.store_contract import StoreContract
from tests.store_contract.fixtures import inbound
from tests.support.sqlite_files import read_rows, stores_on_file
from tests.support.stores import SPECS, open_stores

PROCESSES = 4
PROVIDER_IDS_PER_PROCESS = 60
TIMEOUT_SECONDS = 60


class TestSqliteStore(StoreContract):
    """The store contract on a fresh SQLite file (in a folder the database creates)."""

    @pytest.fixture
    def database(self, tmp_path: Path) -> SqliteDatabase:
        return SqliteDatabase(tmp_path / "data" / "store.db")


def test_open_database_takes_a_sqlite_url_or_a_path(tmp_path):
    """OMNICHANNEL_STORE may be sqlite:////abs/path or a bare path; both name the file,
    which is not created until the database is migrated. Any other scheme, or no path,
    is a ConfigError naming the variable."""
    absolute = tmp_path / "by-url.db"
    from_url = open_database(f"sqlite:///{absolute}")
    from_path = open_database(str(tmp_path / "by-path.db"))
    assert isinstance(from_url, SqliteDatabase)
    assert from_url.path == absolute
    assert isinstance(from_path, SqliteDatabase)
    assert from_path.path == tmp_path / "by-path.db"
    assert not absolute.exists()
    for url in ("postgres://localhost/db", "sqlite://", ""):
        with pytest.raises(ConfigError, match="OMNICHANNEL_STORE"):
            open_database(url)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET action = 'auth.logout'",
        "UPDATE audit_log SET details = '{}' WHERE id = 'aud_kept'",
        "DELETE FROM audit_log",
        "DELETE FROM audit_log WHERE id = 'aud_kept'",
        "INSERT OR REPLACE INTO audit_log (id, action, actor_type, details, at)"
        " VALUES ('aud_kept', 'forged', 'system', '{}', '2030-01-01T00:00:00.000000Z')",
        "INSERT INTO audit_log (id, action, actor_type, details, at)"
        " VALUES ('aud_kept', 'forged', 'system', '{}', '2030-01-01T00:00:00.000000Z')"
        " ON CONFLICT (id) DO UPDATE SET action = excluded.action",
    ],
)
def test_audit_log_is_append_only_in_the_file(tmp_path, statement):
    """Whoever opens the file with plain sqlite3, the database refuses to change, delete or
    replace an audit entry; the entry stays as it was."""
    path = tmp_path / "audit.db"
    entry = AuditEntry("aud_kept", "auth.login", "user", "usr_1", details={"ok": True})
    with stores_on_file(path) as stores:
        asyncio.run(stores.audit.append(entry))
    before = read_rows(path, "SELECT * FROM audit_log")
    connection = sqlite3.connect(path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            connection.execute(statement)
        connection.commit()
    finally:
        connection.close()
    assert read_rows(path, "SELECT * FROM audit_log") == before
    assert len(before) == 1


def test_a_reopening_message_costs_two_inserts_and_logs_its_change_last(tmp_path):
    """An inbound message from a known sender takes its four statements (the sender's read,
    which also brings its conversation's status, the message, the conversation, the event);
    one that reopens a resolved conversation adds only the inserts of its history entry and
    its conversation.updated, logged after the message's message.created."""

    async def scenario() -> tuple[list[str], list[str], list[str]]:
        stores = await open_stores(SqliteDatabase(tmp_path / "store.db"))
        try:
            first = await stores.inbox.ingest_inbound("sms", inbound("p1"))
            statements: list[str] = []
            await stores.database.write(lambda c: c.set_trace_callback(statements.append))
            statements.clear()
            await stores.inbox.ingest_inbound("sms", inbound("p2"))
            ordinary = list(statements)
            await stores.inbox.update_conversation(
                first.conversation_id, status=ConversationStatus.RESOLVED
            )
            start = await stores.events.latest()
            statements.clear()
            await stores.inbox.ingest_inbound("sms", inbound("p3"))
            reopening = list(statements)
            await stores.database.write(lambda c: c.set_trace_callback(None))
            logged = [event.type for event in await stores.events.after(start, 10)]
            return ordinary, reopening, logged
        finally:
            await stores.close()

    ordinary, reopening, logged = asyncio.run(scenario())

    def work(statements: list[str]) -> list[str]:
        return [s.split()[0] for s in statements if s.split()[0] not in ("BEGIN", "COMMIT")]

    assert work(ordinary) == ["SELECT", "INSERT", "UPDATE", "INSERT"]
    assert work(reopening) == [*work(ordinary), "INSERT", "INSERT"]  # its history, its event
    assert logged == ["message.created", "conversation.updated"]


# ------------------------------------------------------------- across processes


def _ingest_in_process(path: str, worker: int, start: Any, errors: Any) -> None:
    """Child process: open the stores on ``path`` and ingest the shared provider ids."""

    async def ingest() -> None:
        stores = await open_stores(SqliteDatabase(path))
        try:
            messages = [
                InboundMessage(
                    provider_message_id=f"shared-{number}",
                    sender=f"+1555000{number % 5}",
                    text=f"from worker {worker}",
                )
                for number in range(PROVIDER_IDS_PER_PROCESS)
            ]
            await asyncio.gather(*(stores.inbox.ingest_inbound("sms", m) for m in messages))
        finally:
            await stores.close()

    try:
        start.wait(TIMEOUT_SECONDS)
        asyncio.run(ingest())
    except BaseException as error:
        errors.put(f"worker {worker}: {type(error).__name__}: {error}")
        raise


def test_processes_ingesting_the_same_ids_store_each_once(tmp_path):
    """Several OS processes opening (and migrating) one fresh file at once and ingesting the
    same provider ids concurrently store exactly one message per id, with no 'database is
    locked' error; each logs an event for the messages it stored, so one per message."""
    path = tmp_path / "shared.db"
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    errors = context.Queue()
    workers = [
        context.Process(target=_ingest_in_process, args=(str(path), worker, start, errors))
        for worker in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(TIMEOUT_SECONDS)
    reported = []
    while not errors.empty():
        reported.append(errors.get())
    for worker in workers:
        if worker.is_alive():
            worker.kill()
    assert reported == []
    assert [worker.exitcode for worker in workers] == [0] * PROCESSES
    counts = read_rows(
        path,
        "SELECT provider_message_id, count(*) FROM messages GROUP BY provider_message_id",
    )
    assert len(counts) == PROVIDER_IDS_PER_PROCESS
    assert {count for _, count in counts} == {1}
    assert read_rows(path, "SELECT count(*) FROM contacts") == [(5,)]
    assert read_rows(path, "SELECT count(*) FROM conversations") == [(5,)]
    unread = read_rows(path, "SELECT sum(unread_count) FROM conversations")
    assert unread == [(PROVIDER_IDS_PER_PROCESS,)]
    assert read_rows(path, "SELECT count(*) FROM events") == [(PROVIDER_IDS_PER_PROCESS,)]


ATTRIBUTES_PER_PROCESS = 30


def _add_attributes_in_process(path: str, contact_id: str, worker: int, start: Any) -> None:
    """Child process: add attributes of its own, and one every worker gives, to one
    contact, all at once."""

    async def add() -> None:
        stores = await open_stores(SqliteDatabase(path))
        try:
            await asyncio.gather(
                *(
                    stores.inbox.add_contact_attributes(
                        contact_id, {f"w{worker}-{n}": n, "email": f"{worker}@example.test"}
                    )
                    for n in range(ATTRIBUTES_PER_PROCESS)
                )
            )
        finally:
            await stores.close()

    start.wait(TIMEOUT_SECONDS)
    asyncio.run(add())


def test_processes_adding_attributes_to_one_contact_lose_none(tmp_path):
    """Two OS processes adding attributes to one contact at once, on one file, leave every
    attribute each added; a name both give is set once, by one of them; each write that
    set something logged one contact.updated."""
    path = tmp_path / "shared.db"
    with stores_on_file(path) as stores:
        contact_id = asyncio.run(stores.inbox.ingest_inbound("sms", inbound("p1"))).contact.id
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    workers = [
        context.Process(
            target=_add_attributes_in_process, args=(str(path), contact_id, worker, start)
        )
        for worker in range(2)
    ]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(TIMEOUT_SECONDS)
    for worker in workers:
        if worker.is_alive():
            worker.kill()
    assert [worker.exitcode for worker in workers] == [0, 0]
    with stores_on_file(path) as stores:
        attributes = asyncio.run(stores.inbox.get_contact(contact_id)).attributes
    assert attributes.pop("email") in {"0@example.test", "1@example.test"}
    assert attributes == {
        f"w{worker}-{n}": n for worker in range(2) for n in range(ATTRIBUTES_PER_PROCESS)
    }
    logged = read_rows(path, "SELECT count(*) FROM events WHERE type = 'contact.updated'")
    assert logged == [(2 * ATTRIBUTES_PER_PROCESS,)]


BEFORE_THE_ATTEMPT_MARK = 12
"""The inbox's last SQLite step without ``outbox.attempted``."""
T0, LAPSED = "2024-01-01T00:00:00.000000Z", "2024-01-01T00:01:00.000000Z"
CLAIMED_BEFORE_THE_MARK = f"""
INSERT INTO contacts (id, created_at, updated_at) VALUES ('ct_1', '{T0}', '{T0}');
INSERT INTO conversations (id, contact_id, channel, address, status, last_activity_at,
    created_at, updated_at) VALUES ('cv_1', 'ct_1', 'sms', '+15550100', 'open', '{T0}',
    '{T0}', '{T0}');
INSERT INTO messages (id, conversation_id, contact_id, channel, direction, status, text,
    attempts, created_at, updated_at) VALUES ('msg_1', 'cv_1', 'ct_1', 'sms', 'outbound',
    'queued', 'hi', 1, '{T0}', '{T0}');
INSERT INTO outbox (message_id, channel, address, state, priority, due_at, first_due_at,
    attempts, lease_holder, lease_until) VALUES ('msg_1', 'sms', '+15550100', 'sending', 0,
    '{T0}', '{T0}', 1, 'old-runner', '{LAPSED}');
"""


def test_an_outbox_entry_claimed_before_the_attempt_mark_goes_in_doubt(tmp_path):
    """The step that adds ``outbox.attempted`` counts the entries it finds as attempted: one
    an earlier version was sending when its runner died is not queued again when its lease
    ends but goes in doubt, as it did before (its send may have reached the provider)."""
    path = tmp_path / "before-the-mark.db"
    specs = [
        attrs.evolve(spec, sqlite_migrations=spec.sqlite_migrations[:BEFORE_THE_ATTEMPT_MARK])
        if spec.name == "inbox"
        else spec
        for spec in SPECS
    ]
    asyncio.run(SqliteDatabase(path).migrate(specs))
    connection = sqlite3.connect(path)
    try:
        connection.executescript(CLAIMED_BEFORE_THE_MARK)
    finally:
        connection.close()
    with stores_on_file(path) as stores:
        assert read_rows(path, "SELECT attempted FROM outbox") == [(1,)]
        store, now = stores.inbox, utcnow()
        [entry] = asyncio.run(store.expired_leases(now, 10))
        assert (entry.message_id, entry.attempted) == ("msg_1", True)
        assert not asyncio.run(store.requeue_unattempted("msg_1", now))
        doubted = asyncio.run(store.doubt_outbound("msg_1", None, now, None, "died", now))
        assert (doubted.status, doubted.in_doubt, doubted.attempts) == (
            DeliveryStatus.SENDING,
            True,
            1,
        )
