"""The SQLite runner (``omnichannel_core.store.sqlite.runner``): WAL mode, and group commits of
queued writes where each job stands or falls alone, behind a write lock shared across
processes."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from omnichannel_core.store.sqlite.runner import SqliteRunner
from tests.support.sqlite_files import read_rows, stores_on_file

TIMEOUT_SECONDS = 60


def test_wal_mode_is_on(tmp_path):
    """The database's file is in WAL mode, so readers never wait for the writer."""
    path = tmp_path / "wal.db"
    with stores_on_file(path):
        assert read_rows(path, "PRAGMA journal_mode") == [("wal",)]


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
    asyncio.run(runner.close())


def _insert(name: str):
    def job(connection: sqlite3.Connection) -> str:
        connection.execute("INSERT INTO t (name) VALUES (?)", (name,))
        return name

    return job


def _names(runner: SqliteRunner) -> set[str]:
    return {name for (name,) in read_rows(runner.path, "SELECT name FROM t")}


@contextlib.contextmanager
def _write_lock_held(runner: SqliteRunner) -> Iterator[None]:
    """Hold the runner's cross-process write lock, as another gunicorn worker would."""
    descriptor = os.open(f"{runner.path}-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


async def _in_one_batch(runner: SqliteRunner, jobs: list[Any]) -> tuple[list[Any], list[str]]:
    """Run ``jobs`` while another process holds the write lock, so they queue up and run as
    one batch once it lets go; returns each job's outcome and the SQL of that batch."""
    statements: list[str] = []
    await runner.write(lambda connection: connection.set_trace_callback(statements.append))
    statements.clear()  # that write's own COMMIT
    with _write_lock_held(runner):
        tasks = [asyncio.ensure_future(runner.write(job)) for job in jobs]
        await asyncio.sleep(0.2)  # every write has queued; the batch waits for the lock
        assert not any(task.done() for task in tasks)
        assert statements == []
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    await runner.write(lambda connection: connection.set_trace_callback(None))
    end = statements.index("COMMIT")
    return outcomes, statements[: end + 1]


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
    assert read_rows(runner.path, "SELECT count(*) FROM child") == [(0,)]
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
    """close() runs and commits every write queued before it, then releases the file."""
    path = tmp_path / "drain.db"
    sqlite3.connect(path).execute("CREATE TABLE t (name TEXT PRIMARY KEY)").connection.close()
    runner = SqliteRunner(path)

    async def queue_then_close() -> list[str]:
        tasks = [asyncio.ensure_future(runner.write(_insert(f"n{n}"))) for n in range(300)]
        await asyncio.sleep(0)  # every job is queued
        await runner.close()
        with pytest.raises(RuntimeError, match="closed"):
            await runner.write(_insert("too late"))
        return await asyncio.gather(*tasks)

    results = asyncio.run(queue_then_close())
    assert len(results) == 300
    assert len(read_rows(path, "SELECT name FROM t")) == 300


def test_a_caller_whose_event_loop_closes_while_waiting_leaves_no_lock_behind(runner):
    """A caller that gives up, and closes its event loop, while its write waits for the lock
    held by another process: its write is not run (nobody was told it was stored), and the
    lock is not left taken; later writes from another loop complete."""

    async def give_up() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(runner.write(_insert("abandoned")), 0.1)

    with _write_lock_held(runner):
        asyncio.run(give_up())  # the loop is closed once this returns

    async def later() -> str:
        return await asyncio.wait_for(runner.write(_insert("later")), TIMEOUT_SECONDS)

    assert asyncio.run(later()) == "later"
    assert _names(runner) == {"later"}


def test_writes_wait_for_the_write_lock_of_another_process(runner):
    """While another process holds the write lock, a write neither runs nor returns; it
    commits once the lock is free."""

    async def scenario() -> None:
        with _write_lock_held(runner):
            task = asyncio.ensure_future(runner.write(_insert("waited")))
            await asyncio.sleep(0.2)
            assert not task.done()
            assert _names(runner) == set()
        assert await asyncio.wait_for(task, TIMEOUT_SECONDS) == "waited"

    asyncio.run(scenario())
    assert _names(runner) == {"waited"}


def test_a_lock_wait_that_outlasts_close_fails_as_closed(runner):
    """A batch of another event loop that waited for the transaction lock while close()
    released the lock file gets "closed" once it has that lock, and lets go of it: its callers
    are answered instead of waiting forever, and nothing is left locked."""
    asyncio.run(runner.close())
    with pytest.raises(RuntimeError, match="closed"):
        runner._lock_blocking(holding_transaction=False)
    assert not runner._transaction.locked()
