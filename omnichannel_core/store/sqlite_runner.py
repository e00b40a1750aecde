"""Runs SQLite work off the event loop: one writer thread with group commit, a reader pool.

Writes queue up; the writer thread takes every job waiting, runs each in its own savepoint
inside one transaction, commits once (one fsync for the whole batch) and only then resolves
each job's future. So a caller that awaited a write knows it is on disk, and a busy server
pays one sync per batch, not per message. A job that raises rolls back alone.

Several processes (gunicorn workers) write to one file. SQLite's own busy handler makes a
waiting process poll with sleeps, unfairly: one worker could wait hundreds of milliseconds
while the other commits again and again. So each batch first takes an exclusive ``flock`` on
``<database>-writer.lock``; the kernel queues the waiters and wakes the next one at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

MAX_BATCH = 256
BUSY_TIMEOUT_MS = 10_000
CLOSE_TIMEOUT_SECONDS = 30


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.row_factory = sqlite3.Row
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    connection.execute("PRAGMA journal_mode = WAL")
    # FULL: a commit is synced before it returns, so an acknowledged webhook survives a crash.
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute("PRAGMA foreign_keys = ON")
    if readonly:
        connection.execute("PRAGMA query_only = ON")
    return connection


class _Job:
    __slots__ = ("function", "future", "loop")

    def __init__(
        self,
        function: Callable[[sqlite3.Connection], Any],
        future: asyncio.Future[Any],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.function = function
        self.future = future
        self.loop = loop


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


Outcome = tuple[_Job, Any, BaseException | None]


def _settle_all(outcomes: list[Outcome]) -> None:
    for job, result, error in outcomes:
        _settle(job.future, result, error)


def _resolve(outcomes: list[Outcome]) -> None:
    """Hand each job's outcome to its caller's event loop: one wake-up per loop for the whole
    batch, not one per job (each wake-up is a system call and a GIL hand-over). A loop that
    has closed meanwhile (its caller gave up) is nobody to tell, and must not stop the
    writer."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].loop, []).append(outcome)
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle_all, settled)


class _JobFailed(Exception):
    """A job raised during a batch run without savepoints: the batch is run again with them."""


class SqliteRunner:
    """Owns the connections of one process to one database file."""

    def __init__(self, path: Path, readers: int = 4) -> None:
        self.path = path
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._lock_fd: int | None = None  # the writer thread's cross-process lock file
        # Guards _closed and the queue's end: no job can be queued after close()'s sentinel.
        self._state_lock = threading.Lock()
        self._closed = False
        self._local = threading.local()
        self._reader_connections: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        self._reader_count = readers
        self._readers: ThreadPoolExecutor | None = None

    def start(self) -> None:
        with self._state_lock:
            self._start_locked()

    def _start_locked(self) -> None:
        self._closed = False
        if self._readers is None:
            self._readers = ThreadPoolExecutor(
                max_workers=self._reader_count, thread_name_prefix="sqlite-read"
            )
        if self._writer is None:
            self._writer = threading.Thread(
                target=self._write_loop, name="sqlite-write", daemon=True
            )
            self._writer.start()

    async def write(self, function: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``function`` in the next committed batch; returns once it is durable."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._state_lock:
            if self._closed:
                raise RuntimeError("the SQLite store is closed")
            self._start_locked()
            self._jobs.put(_Job(function, future, loop))
        return await future

    async def read(self, function: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        with self._state_lock:
            if self._closed:
                raise RuntimeError("the SQLite store is closed")
            self._start_locked()
            readers = self._readers
        assert readers is not None
        return await loop.run_in_executor(readers, self._read, function)

    def _read(self, function: Callable[[sqlite3.Connection], T]) -> T:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = connect(self.path, readonly=True)
            self._local.connection = connection
            with self._reader_lock:
                self._reader_connections.append(connection)
        return function(connection)

    def _write_loop(self) -> None:
        connection: sqlite3.Connection | None = None
        try:
            while True:
                batch, stop = self._next_batch()
                if batch:
                    if connection is None:
                        try:
                            connection = connect(self.path)
                        except Exception as error:
                            _resolve([(job, None, error) for job in batch])
                            batch = []
                    if batch:
                        with self._write_lock():
                            outcomes = self._run_batch(connection, batch)
                        _resolve(outcomes)  # after the lock: the other workers go on
                if stop:
                    return
        finally:
            if connection is not None:
                connection.close()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def _next_batch(self) -> tuple[list[_Job], bool]:
        """Wait for a job, then take every job already waiting (up to MAX_BATCH); True when
        close() asked the writer to stop after this batch."""
        job = self._jobs.get()
        if job is None:
            return [], True
        batch = [job]
        while len(batch) < MAX_BATCH:
            try:
                more = self._jobs.get_nowait()
            except queue.Empty:
                break
            if more is None:
                return batch, True
            batch.append(more)
        return batch, False

    @contextlib.contextmanager
    def _write_lock(self):
        """Hold the cross-process writer lock (a blocking flock, fair across processes)."""
        if self._lock_fd is None:
            self._lock_fd = os.open(
                f"{self.path}-writer.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
            )
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    @classmethod
    def _run_batch(cls, connection: sqlite3.Connection, batch: list[_Job]) -> list[Outcome]:
        """Run the batch in one transaction. First without savepoints (two statements fewer
        per job); if a job raises, roll back and run the batch again with a savepoint per job,
        so that job fails alone. Jobs only read and write the connection, so a rerun is safe."""
        try:
            outcomes = cls._run_in_transaction(connection, batch, savepoints=False)
        except _JobFailed:
            outcomes = cls._run_in_transaction(connection, batch, savepoints=True)
        except BaseException as error:
            outcomes = [(job, None, error) for job in batch]
        return outcomes

    @staticmethod
    def _run_in_transaction(
        connection: sqlite3.Connection, batch: list[_Job], *, savepoints: bool
    ) -> list[tuple[_Job, Any, BaseException | None]]:
        outcomes: list[tuple[_Job, Any, BaseException | None]] = []
        try:
            connection.execute("BEGIN IMMEDIATE")
            for job in batch:
                if not savepoints:
                    try:
                        outcomes.append((job, job.function(connection), None))
                    except Exception as error:
                        raise _JobFailed from error
                    continue
                connection.execute("SAVEPOINT job")
                try:
                    result = job.function(connection)
                except Exception as error:
                    connection.execute("ROLLBACK TO job")
                    connection.execute("RELEASE job")
                    outcomes.append((job, None, error))
                else:
                    connection.execute("RELEASE job")
                    outcomes.append((job, result, None))
            connection.execute("COMMIT")
        except _JobFailed:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
            raise
        except BaseException as error:
            # Nothing of the batch is committed (a failed COMMIT, a lost transaction, a job
            # raising something a savepoint cannot contain): every caller gets the error.
            if connection.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("ROLLBACK")
            return [(job, None, error) for job in batch]
        return outcomes

    def close(self) -> None:
        """Stop taking work, run every write already queued, then release the connections."""
        with self._state_lock:
            self._closed = True
            writer, self._writer = self._writer, None
            readers, self._readers = self._readers, None
            if writer is not None:
                self._jobs.put(None)
        if writer is not None:
            writer.join(timeout=CLOSE_TIMEOUT_SECONDS)
        if readers is not None:
            readers.shutdown(wait=True)
        with self._reader_lock:
            for connection in self._reader_connections:
                connection.close()
            self._reader_connections.clear()
