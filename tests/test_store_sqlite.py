"""The SQLite store: the shared contract, plus what only SQLite promises: atomic dedupe across
processes on one file, versioned schema migrations, WAL mode, and a writer that commits queued
writes in groups where each job stands or falls alone."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from omnichannel_core.errors import ConfigError
from omnichannel_core.hooktypes import InboundMessage, StatusUpdate
from omnichannel_core.models import DeliveryStatus
from omnichannel_core.store import open_store
from omnichannel_core.store.search import matches, search_tokens, search_words
from omnichannel_core.store.sqlite import SqliteStore
from omnichannel_core.store.sqlite_runner import SqliteRunner
from omnichannel_core.store.sqlite_schema import MIGRATIONS, apply_migration
from tests.store_contract import StoreContract

PROCESSES = 4
PROVIDER_IDS_PER_PROCESS = 60
TIMEOUT_SECONDS = 60


class TestSqliteStore(StoreContract):
    """The store contract on a fresh SQLite file."""

    @pytest.fixture
    def store(self, tmp_path: Path, run: Any) -> Iterator[SqliteStore]:
        store = SqliteStore(tmp_path / "data" / "store.db")
        run(store.open())
        yield store
        run(store.close())


def _open(path: Path) -> SqliteStore:
    store = SqliteStore(path)
    asyncio.run(store.open())
    return store


def _rows(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


# ------------------------------------------------------------- across processes


def _ingest_in_process(path: str, worker: int, start: Any, errors: Any) -> None:
    """Child process: open the store on ``path`` and ingest the shared provider ids."""

    async def ingest() -> None:
        store = SqliteStore(path)
        await store.open()
        try:
            messages = [
                InboundMessage(
                    provider_message_id=f"shared-{number}",
                    sender=f"+1555000{number % 5}",
                    text=f"from worker {worker}",
                )
                for number in range(PROVIDER_IDS_PER_PROCESS)
            ]
            await asyncio.gather(*(store.ingest_inbound("sms", m) for m in messages))
        finally:
            await store.close()

    try:
        start.wait(TIMEOUT_SECONDS)
        asyncio.run(ingest())
    except BaseException as error:
        errors.put(f"worker {worker}: {type(error).__name__}: {error}")
        raise


def test_processes_ingesting_the_same_ids_store_each_once(tmp_path):
    """Several OS processes opening one fresh file at once and ingesting the same provider ids
    concurrently store exactly one message per id, with no 'database is locked' error."""
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
    counts = _rows(
        path,
        "SELECT provider_message_id, count(*) FROM messages GROUP BY provider_message_id",
    )
    assert len(counts) == PROVIDER_IDS_PER_PROCESS
    assert {count for _, count in counts} == {1}
    assert _rows(path, "SELECT count(*) FROM contacts") == [(5,)]
    assert _rows(path, "SELECT count(*) FROM conversations") == [(5,)]
    unread = _rows(path, "SELECT sum(unread_count) FROM conversations")
    assert unread == [(PROVIDER_IDS_PER_PROCESS,)]


# --------------------------------------------------------------------- schema


def test_fresh_file_is_at_the_latest_schema_version(tmp_path):
    """A new file is created with every migration applied: user_version == len(MIGRATIONS)."""
    path = tmp_path / "new" / "fresh.db"
    store = _open(path)
    try:
        assert _rows(path, "PRAGMA user_version") == [(len(MIGRATIONS),)]
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
    store = _open(path)
    asyncio.run(store.ingest_inbound("sms", InboundMessage("p1", "+1", "kept")))
    asyncio.run(store.close())
    schema = _rows(path, "SELECT type, name, sql FROM sqlite_master ORDER BY name")
    store = _open(path)
    try:
        assert _rows(path, "PRAGMA user_version") == [(len(MIGRATIONS),)]
        assert _rows(path, "SELECT type, name, sql FROM sqlite_master ORDER BY name") == schema
        assert _rows(path, "SELECT text FROM messages") == [("kept",)]
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
    assert _rows(path, "PRAGMA user_version") == [(0,)]
    store = _open(path)
    try:
        assert _rows(path, "PRAGMA user_version") == [(len(MIGRATIONS),)]
        tables = {name for (name,) in _rows(path, "SELECT name FROM sqlite_master")}
        assert {"contacts", "identities", "conversations", "messages"} <= tables
        assert _rows(path, "SELECT x FROM unrelated") == [(42,)]
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
        store = _open(path)
        try:
            assert _rows(path, "PRAGMA user_version") == [(len(MIGRATIONS),)]
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


def test_wal_mode_is_on(tmp_path):
    """The file is in WAL mode, so readers never wait for the writer."""
    path = tmp_path / "wal.db"
    store = _open(path)
    try:
        assert _rows(path, "PRAGMA journal_mode") == [("wal",)]
    finally:
        asyncio.run(store.close())


def test_open_store_takes_a_sqlite_url_or_a_path(tmp_path):
    """OMNICHANNEL_STORE may be sqlite:////abs/path or a bare path; both name the file."""
    absolute = tmp_path / "by-url.db"
    from_url = open_store(f"sqlite:///{absolute}")
    from_path = open_store(str(tmp_path / "by-path.db"))
    assert isinstance(from_url, SqliteStore)
    assert from_url.path == absolute
    assert isinstance(from_path, SqliteStore)
    assert from_path.path == tmp_path / "by-path.db"
    with pytest.raises(ConfigError, match="OMNICHANNEL_STORE"):
        open_store("postgres://localhost/db")


# ------------------------------------------------------------- the writer thread


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[SqliteRunner]:
    """A started writer on a file with a table ``t`` (unique ``name``) and a table ``child``
    whose deferred foreign key is only checked at COMMIT."""
    path = tmp_path / "runner.db"
    connection = sqlite3.connect(path)
    connection.executescript(
        """
        CREATE TABLE t (name TEXT PRIMARY KEY);
        CREATE TABLE child (
            id INTEGER PRIMARY KEY,
            parent TEXT REFERENCES t (name) DEFERRABLE INITIALLY DEFERRED
        );
        """
    )
    connection.close()
    runner = SqliteRunner(path)
    runner.start()
    yield runner
    runner.close()


def _insert(name: str):
    def job(connection: sqlite3.Connection) -> str:
        connection.execute("INSERT INTO t (name) VALUES (?)", (name,))
        return name

    return job


def _names(runner: SqliteRunner) -> set[str]:
    return {name for (name,) in _rows(runner.path, "SELECT name FROM t")}


async def _in_one_batch(runner: SqliteRunner, jobs: list[Any]) -> tuple[list[Any], list[str]]:
    """Run ``jobs`` while the writer is busy with a holding job, so they queue up and run as
    one batch; returns each job's outcome and the SQL the writer ran for that batch."""
    started, release = threading.Event(), threading.Event()
    statements: list[str] = []

    def hold(connection: sqlite3.Connection) -> None:
        connection.set_trace_callback(statements.append)
        started.set()
        assert release.wait(TIMEOUT_SECONDS)

    held = asyncio.ensure_future(runner.write(hold))
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, started.wait, TIMEOUT_SECONDS)
    tasks = [asyncio.ensure_future(runner.write(job)) for job in jobs]
    await asyncio.sleep(0)  # every write has queued its job while the writer is held
    release.set()
    await held
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    await runner.write(lambda connection: connection.set_trace_callback(None))
    begin = statements.index("BEGIN IMMEDIATE")  # the holding batch began before tracing
    end = statements.index("COMMIT", begin)
    return outcomes, statements[begin : end + 1]


def test_failing_job_rolls_back_alone_within_its_batch(runner):
    """In one group-committed batch, a job that fails (after writing) rolls back alone: the
    jobs around it commit, its caller gets its error, and the batch commits once."""

    def fail_after_writing(connection: sqlite3.Connection) -> None:
        connection.execute("INSERT INTO t (name) VALUES ('doomed')")
        raise RuntimeError("job failed")

    def duplicate(connection: sqlite3.Connection) -> None:
        connection.execute("INSERT INTO t (name) VALUES ('before')")

    jobs = [_insert("before"), fail_after_writing, _insert("between"), duplicate, _insert("after")]
    outcomes, statements = asyncio.run(_in_one_batch(runner, jobs))
    assert outcomes[0] == "before"
    assert isinstance(outcomes[1], RuntimeError)
    assert outcomes[2] == "between"
    assert isinstance(outcomes[3], sqlite3.IntegrityError)
    assert outcomes[4] == "after"
    assert _names(runner) == {"before", "between", "after"}
    assert sum(s.startswith("SAVEPOINT") for s in statements) == len(jobs), statements
    assert sum(s.startswith("ROLLBACK TO") for s in statements) == 2, statements


def test_commit_failure_fails_every_job_of_the_batch(runner):
    """When the batch's COMMIT fails (here a deferred foreign key), no job of the batch is
    stored and every caller gets the error; the writer keeps working afterwards."""

    def orphan(connection: sqlite3.Connection) -> None:
        connection.execute("INSERT INTO child (parent) VALUES ('nobody')")

    outcomes, _statements = asyncio.run(_in_one_batch(runner, [_insert("a"), orphan, _insert("b")]))
    assert all(isinstance(outcome, sqlite3.IntegrityError) for outcome in outcomes), outcomes
    assert _names(runner) == set()
    assert _rows(runner.path, "SELECT count(*) FROM child") == [(0,)]
    assert asyncio.run(runner.write(_insert("later"))) == "later"
    assert _names(runner) == {"later"}


def test_many_concurrent_writers_all_wake_up(runner):
    """Writes from several threads, each with its own event loop, all complete and commit:
    no caller waits forever for a result the writer already produced."""
    names_per_thread = 200
    failures: list[BaseException] = []

    def writer_thread(prefix: str) -> None:
        async def write_all() -> None:
            await asyncio.gather(
                *(runner.write(_insert(f"{prefix}-{n}")) for n in range(names_per_thread))
            )

        try:
            asyncio.run(write_all())
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=writer_thread, args=(f"w{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT_SECONDS)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    assert len(_names(runner)) == 6 * names_per_thread


def test_close_drains_queued_writes(tmp_path):
    """close() runs and commits every write queued before it, then stops the writer."""
    path = tmp_path / "drain.db"
    sqlite3.connect(path).execute("CREATE TABLE t (name TEXT PRIMARY KEY)").connection.close()
    runner = SqliteRunner(path)

    async def queue_then_close() -> list[str]:
        tasks = [asyncio.ensure_future(runner.write(_insert(f"n{n}"))) for n in range(300)]
        await asyncio.sleep(0)  # every job is queued
        runner.close()
        return await asyncio.gather(*tasks)

    results = asyncio.run(queue_then_close())
    assert len(results) == 300
    assert len(_rows(path, "SELECT name FROM t")) == 300


def test_writer_survives_a_caller_whose_event_loop_has_closed(runner):
    """A caller that gave up and closed its event loop before its write finished does not
    kill the writer: the write still commits and later writes still complete."""
    release = threading.Event()

    def slow(connection: sqlite3.Connection) -> str:
        assert release.wait(TIMEOUT_SECONDS)
        connection.execute("INSERT INTO t (name) VALUES ('slow')")
        return "slow"

    async def give_up() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(runner.write(slow), 0.05)

    asyncio.run(give_up())  # the loop is closed once this returns
    release.set()

    async def later() -> str:
        return await asyncio.wait_for(runner.write(_insert("later")), TIMEOUT_SECONDS)

    assert asyncio.run(later()) == "later"
    assert _names(runner) == {"slow", "later"}


# ------------------------------------------------------------- parked status updates


def test_parked_updates_are_kept_once_and_removed_when_applied(tmp_path):
    """A repeated callback is parked once per (channel, provider id, status); recording the
    provider id applies and deletes every row parked for it, leaving other ids' rows."""
    path = tmp_path / "parked.db"
    store = _open(path)
    try:
        for status in ("delivered", "delivered", "read"):
            update = StatusUpdate("pm-1", DeliveryStatus(status))
            assert asyncio.run(store.apply_status("sms", update)).parked is True
        asyncio.run(store.apply_status("sms", StatusUpdate("pm-other", DeliveryStatus.READ)))
        parked = "SELECT provider_message_id, status FROM parked_statuses ORDER BY 1, 2"
        assert _rows(path, parked) == [
            ("pm-1", "delivered"),
            ("pm-1", "read"),
            ("pm-other", "read"),
        ]
        _, conversation = asyncio.run(store.resolve_recipient("sms", "+1"))
        message, _ = asyncio.run(store.create_outbound(conversation.id, "x", (), {}, None))
        applied = asyncio.run(
            store.advance_message(message.id, DeliveryStatus.SENT, provider_message_id="pm-1")
        )
        assert applied.message.status is DeliveryStatus.READ
        assert _rows(path, parked) == [("pm-other", "read")]
    finally:
        asyncio.run(store.close())


def test_expired_parked_updates_are_deleted_on_the_next_park(tmp_path):
    """Parking an update deletes every parked update older than parked_status_ttl."""
    path = tmp_path / "expiry.db"
    store = _open(path)
    store.parked_status_ttl = timedelta(0)
    try:
        asyncio.run(store.apply_status("sms", StatusUpdate("pm-old", DeliveryStatus.READ)))
        time.sleep(0.01)  # the clock moves past the first update's time
        asyncio.run(store.apply_status("sms", StatusUpdate("pm-new", DeliveryStatus.READ)))
        ids = _rows(path, "SELECT provider_message_id FROM parked_statuses")
        assert ids == [("pm-new",)]
    finally:
        asyncio.run(store.close())


# -------------------------------------------------------------------- search


SEARCH_PEOPLE = [
    ("+15550001", "Ann Smith"),
    ("whatsapp:+44 20 7946 0000", "Ann-Marie O'Neil"),
    ("ann@example.com", None),
    ("bob_1%@mail.example.org", "Bob  Jones"),
    ("1234567890123456", "Page User"),
    ("+1 (415) 666-0199", "Élodie Durand"),
]
SEARCH_QUERIES = [
    "ann", "ann smi", "smi ann", "ann jon", "an", "+1", "1", "15", "1555", "5550001",
    "4420", "whatsapp:", "example", "example.com", "mail.", "bob_", "bob_1%", "_", "%",
    "ann-m", "o'n", "élo", "ÉLODIE dur", "7946", "20", "4567890", "page user", "zzz",
]  # fmt: skip


def test_sqlite_search_is_the_definition(tmp_path):
    """For a range of contacts and queries, SQLite's search finds exactly the contacts the
    definition in omnichannel_core.store.search (every token a prefix of a search word)
    selects: the LIKE encoding neither adds nor loses a match."""
    store = _open(tmp_path / "search.db")
    try:
        contacts = []
        for number, (address, name) in enumerate(SEARCH_PEOPLE):
            message = InboundMessage(f"s{number}", address, "x", sender_name=name)
            contacts.append(asyncio.run(store.ingest_inbound("sms", message)).contact)
        for query in SEARCH_QUERIES:
            expected = {
                contact.id
                for contact in contacts
                if matches(
                    search_words(contact.display_name, [i.address for i in contact.identities]),
                    search_tokens(query),
                )
            }
            page = asyncio.run(store.list_contacts(query, None, 100))
            assert {contact.id for contact in page.items} == expected, query
    finally:
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
    store = _open(path)
    try:
        for query in ("old", "+1555", "5550001"):
            found = asyncio.run(store.list_contacts(query, None, 10)).items
            assert [contact.id for contact in found] == ["ct_old"], query
    finally:
        asyncio.run(store.close())


# ---------------------------------------------------------------- files on disk


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_data_files_are_private_whatever_the_umask(tmp_path):
    """Even with umask 0, the folders the store creates are 0700 and the database, its -wal
    and -shm files and the writer lock are 0600: nobody else can read the messages. A folder
    that already existed keeps its mode."""
    tmp_path.chmod(0o755)
    path = tmp_path / "data" / "inner" / "store.db"
    previous = os.umask(0)
    try:
        store = _open(path)
        try:
            asyncio.run(store.ingest_inbound("sms", InboundMessage("p1", "+1", "secret")))
            asyncio.run(store.list_contacts(None, None, 10))  # a reader opens the -shm too
            files = [path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-writer.lock")]
            assert {str(f): _mode(f) for f in files} == {str(f): 0o600 for f in files}
            assert _mode(tmp_path / "data") == 0o700
            assert _mode(tmp_path / "data" / "inner") == 0o700
            assert _mode(tmp_path) == 0o755
        finally:
            asyncio.run(store.close())
    finally:
        os.umask(previous)


def test_an_existing_database_file_keeps_its_mode(tmp_path):
    """The store creates the file 0600 only when it is absent; an existing file it opens
    keeps the mode its owner chose."""
    path = tmp_path / "shared.db"
    sqlite3.connect(path).close()
    path.chmod(0o640)
    store = _open(path)
    asyncio.run(store.close())
    assert _mode(path) == 0o640


def _unusable_paths(tmp_path: Path) -> dict[str, Path]:
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("x")
    not_sqlite = tmp_path / "notes.db"
    not_sqlite.write_bytes(b"these are notes, not a database\n" * 200)
    folder = tmp_path / "a-folder.db"
    folder.mkdir()
    return {
        "folder cannot be created": Path("/proc/nope/x.db"),
        "parent is a file": not_a_folder / "x.db",
        "not a SQLite file": not_sqlite,
        "path is a folder": folder,
    }


@pytest.mark.parametrize(
    "case",
    ["folder cannot be created", "parent is a file", "not a SQLite file", "path is a folder"],
)
def test_unusable_store_path_is_one_config_error_line(tmp_path, case):
    """A store path that cannot be used stops open() with a ConfigError: one line naming
    OMNICHANNEL_STORE, the path and the reason, and no other exception type."""
    path = _unusable_paths(tmp_path)[case]
    store = SqliteStore(path)
    with pytest.raises(ConfigError) as raised:
        asyncio.run(store.open())
    asyncio.run(store.close())
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"OMNICHANNEL_STORE: cannot use {path}: ")
    assert len(message) > len(f"OMNICHANNEL_STORE: cannot use {path}: ")
    assert raised.value.details["variable"] == "OMNICHANNEL_STORE"
