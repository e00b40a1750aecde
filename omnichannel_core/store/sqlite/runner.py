"""Runs SQLite work for the event loop: writes in group-committed batches, reads on a pool.

Writes queue up per event loop; one flush task per loop takes every job waiting, runs each
inside one transaction, commits once (one fsync for the whole batch) and only then settles
each job's future. So a caller that awaited a write knows it is on disk, and a busy server
pays one sync per batch, not per message. A job that raises rolls back alone.

The statements run on the event loop's own thread; only the waits leave it (for the write
lock, and COMMIT with its fsync, on threads that hold no GIL while they wait). A dedicated
writer thread would give the GIL back at every statement (the sqlite3 module releases it
around each step) and then wait to get it back from the busy event loop, up to the
interpreter's switch interval, all while holding the write lock: measured on the Twilio
benchmark, 17-20 % fewer webhooks a second than this way (docs/benchmarks.md).

Several processes (gunicorn workers) write to one file. SQLite's own busy handler makes a
waiting process poll with sleeps, unfairly: one worker could wait hundreds of milliseconds
while the other commits again and again. So each batch first takes an exclusive ``flock`` on
``<database>-writer.lock``; the kernel queues the waiters and wakes the next one at once.
Within a process, a thread lock keeps one transaction at a time on the one connection, should
several event loops (threads) write.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import functools
import os
import sqlite3
import threading
import typing
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

MAX_BATCH = 256
BUSY_TIMEOUT_MS = 10_000
# Threads that wait for the write lock: one per event loop waiting at once.
LOCK_WAITERS = 32


class LoggingConnection(sqlite3.Connection):
    """A connection that remembers whether the statements run on it logged events
    (`omnichannel_core.store.sqlite.events.append_event` marks it), so that the runner can
    tell the event bus once they are committed."""

    events_logged = False


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    connection = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, factory=LoggingConnection
    )
    connection.row_factory = sqlite3.Row
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    connection.execute("PRAGMA journal_mode = WAL")
    # FULL: a commit is synced before it returns, so an acknowledged webhook survives a crash.
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute("PRAGMA foreign_keys = ON")
    # Deleted and overwritten content is zeroed, not left in free pages: an erased contact's
    # data (`omnichannel_core.modules.inbox.store.erasure`) leaves the file once the WAL is
    # checkpointed.
    connection.execute("PRAGMA secure_delete = ON")
    if readonly:
        connection.execute("PRAGMA query_only = ON")
    return connection


def open_writer_lock(path: Path) -> int:
    """A descriptor of ``<database>-writer.lock``, the file whose ``flock`` writers take."""
    return os.open(f"{path}-writer.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


@contextlib.contextmanager
def holding_writer_lock(path: Path) -> Iterator[None]:
    """Hold the writers' ``flock``, waiting for it: while opening and migrating the file.
    SQLite's busy handler does not cover every step there (a fresh file switching to WAL
    answers "database is locked" at once when another process is at the same step)."""
    descriptor = open_writer_lock(path)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # lets go of the lock


class _Job:
    __slots__ = ("function", "future")

    def __init__(
        self, function: Callable[[sqlite3.Connection], Any], future: asyncio.Future[Any]
    ) -> None:
        self.function = function
        self.future = future


Outcome = tuple[_Job, Any, BaseException | None]


def _settle(outcomes: list[Outcome]) -> None:
    for job, result, error in outcomes:
        if job.future.done():  # its caller gave up
            continue
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)


def _closed() -> RuntimeError:
    return RuntimeError("the SQLite store is closed")


class _JobFailed(Exception):
    """A job raised during a batch run without savepoints: the batch is run again with them."""


def _nobody_listens() -> None:
    pass


class SqliteRunner:
    """Owns the connections of one process to one database file.

    :param events_logged: called (on the event loop, quickly) after each committed batch in
        which a write logged events.
    """

    def __init__(
        self, path: Path, readers: int = 4, events_logged: Callable[[], None] = _nobody_listens
    ) -> None:
        self.path = path
        self.events_logged = events_logged
        self._pending: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
        self._flushers: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}
        self._connection: sqlite3.Connection | None = None  # the writing connection
        self._lock_fd: int | None = None  # the cross-process write lock file
        self._transaction = threading.Lock()  # one transaction at a time on _connection
        # Guards _closed and the pools: no write is queued after close() began.
        self._state_lock = threading.Lock()
        self._closed = False
        self._lock_waiters: ThreadPoolExecutor | None = None
        self._committer: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._reader_connections: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        self._reader_count = readers
        self._readers: ThreadPoolExecutor | None = None
        self._watcher: sqlite3.Connection | None = None
        """The connection :meth:`data_version` asks: the pragma counts what others committed
        since this very connection last asked."""
        self._watcher_lock = threading.Lock()

    def start(self) -> None:
        with self._state_lock:
            self._start_locked()

    def _start_locked(self) -> None:
        self._closed = False
        if self._readers is None:
            self._readers = ThreadPoolExecutor(
                max_workers=self._reader_count, thread_name_prefix="sqlite-read"
            )
        if self._committer is None:
            # One thread: there is one transaction at a time to commit. Lock waits have their
            # own threads, so a commit never queues behind a wait for the lock it releases.
            self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-commit")
            self._lock_waiters = ThreadPoolExecutor(
                max_workers=LOCK_WAITERS, thread_name_prefix="sqlite-lock"
            )

    async def write(self, function: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``function`` in the next committed batch; returns once it is durable.

        ``function`` runs on this event loop's thread, inside the batch's transaction: it
        should only run statements. A caller that stops waiting (cancelled, timed out) before
        its batch began may find its write never ran; once it ran, it commits or fails with
        its batch, as for everyone else.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._state_lock:
            if self._closed:
                raise _closed()
            self._start_locked()
        self._pending.setdefault(loop, []).append(_Job(function, future))
        flusher = self._flushers.get(loop)
        if flusher is None or flusher.done():
            self._flushers[loop] = loop.create_task(self._flush(loop))
        return await future

    async def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        """Commit batches of this loop's queued writes until none is left."""
        try:
            while pending := self._pending.get(loop):
                batch = pending[:MAX_BATCH]
                del pending[:MAX_BATCH]
                committer = self._committer
                if committer is None:  # close() has released everything meanwhile
                    _settle([(job, None, _closed()) for job in batch])
                    continue
                try:
                    await self._lock(loop)
                # The lock file cannot be opened or locked, or close() released it meanwhile.
                except (OSError, RuntimeError) as error:
                    _settle([(job, None, error) for job in batch])
                    continue
                try:
                    outcomes, logged = self._run_batch(batch)
                finally:
                    # COMMIT (or ROLLBACK) and unlock on the committer thread: the fsync holds
                    # no GIL, and the loop takes new requests meanwhile.
                    committed = loop.run_in_executor(committer, self._commit_and_unlock)
                commit_error = await committed
                if commit_error is not None:
                    outcomes = [(job, None, commit_error) for job in batch]
                _settle(outcomes)
                if logged and commit_error is None:
                    self.events_logged()
        finally:
            # Normally nothing is left; when cancelled (its loop is closing), nobody waits.
            self._flushers.pop(loop, None)
            for job in self._pending.pop(loop, []):
                job.future.cancel()

    async def _lock(self, loop: asyncio.AbstractEventLoop) -> None:
        """Take this process's transaction lock, then the cross-process ``flock``; with no
        thread hand-off when both are free. Should this wait be cancelled (its event loop
        closing), the waiting thread lets go of the locks as soon as it has them."""
        with self._state_lock:  # one descriptor for every loop: flock locks per descriptor
            if self._lock_fd is None:
                self._lock_fd = open_writer_lock(self.path)
        holding_transaction = self._transaction.acquire(blocking=False)
        if holding_transaction:
            try:
                fcntl.flock(self._writer_lock_fd(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            except BaseException:
                self._transaction.release()
                raise
        assert self._lock_waiters is not None
        waiting = self._lock_waiters.submit(self._lock_blocking, holding_transaction)
        try:
            await asyncio.wrap_future(waiting, loop=loop)
        except asyncio.CancelledError:
            waiting.add_done_callback(
                functools.partial(self._let_go, holding_transaction=holding_transaction)
            )
            raise

    def _lock_blocking(self, holding_transaction: bool) -> None:
        if not holding_transaction:
            self._transaction.acquire()
        try:
            fcntl.flock(self._writer_lock_fd(), fcntl.LOCK_EX)
        except BaseException:
            self._transaction.release()
            raise

    def _writer_lock_fd(self) -> int:
        """The lock file's descriptor, read with the transaction lock held; RuntimeError when
        close() released it while this waited for that lock."""
        if self._lock_fd is None:
            raise _closed()
        return self._lock_fd

    def _let_go(
        self, waiting: concurrent.futures.Future[None], *, holding_transaction: bool
    ) -> None:
        """After a cancelled lock wait: release what it took (both locks once it ran; the
        transaction lock taken before it, when it was cancelled before it ran)."""
        if waiting.cancelled():
            if holding_transaction:
                self._transaction.release()
        elif waiting.exception() is None:
            self._unlock()

    def _unlock(self) -> None:
        try:
            fcntl.flock(self._writer_lock_fd(), fcntl.LOCK_UN)
        finally:
            self._transaction.release()

    def _run_batch(self, batch: list[_Job]) -> tuple[list[Outcome], bool]:
        """BEGIN and run the batch's jobs, leaving the transaction open for the commit. First
        without savepoints (two statements fewer per job); if a job raises, roll back and run
        the batch again with a savepoint per job, so that job fails alone. Jobs only read and
        write the connection, so a rerun is safe. An error outside the jobs (the connection
        cannot be opened, BEGIN fails) fails every job. Also answers whether the batch logged
        events."""
        try:
            if self._connection is None:
                self._connection = connect(self.path)
            connection = typing.cast(LoggingConnection, self._connection)
            connection.events_logged = False
            try:
                outcomes = self._run_jobs(connection, batch, savepoints=False)
            except _JobFailed:
                outcomes = self._run_jobs(connection, batch, savepoints=True)
            return outcomes, connection.events_logged
        except BaseException as error:
            return [(job, None, error) for job in batch], False

    @staticmethod
    def _run_jobs(
        connection: sqlite3.Connection, batch: list[_Job], *, savepoints: bool
    ) -> list[Outcome]:
        outcomes: list[Outcome] = []
        connection.execute("BEGIN IMMEDIATE")
        for job in batch:
            if not savepoints:
                try:
                    outcomes.append((job, job.function(connection), None))
                except Exception as error:
                    connection.execute("ROLLBACK")
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
        return outcomes

    def _commit_and_unlock(self) -> BaseException | None:
        """COMMIT the open transaction, if any, and release the locks. None once committed;
        else the error, with nothing of the batch stored (a failed COMMIT, a lost
        transaction): every caller of the batch gets it."""
        connection = self._connection
        try:
            if connection is not None and connection.in_transaction:
                connection.execute("COMMIT")
            return None
        except BaseException as error:
            if connection is not None and connection.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("ROLLBACK")
            return error
        finally:
            self._unlock()

    async def read(self, function: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        with self._state_lock:
            if self._closed:
                raise _closed()
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

    async def data_version(self) -> int:
        """SQLite's ``PRAGMA data_version`` on a connection of its own: a number that changes
        whenever any connection commits to the file (this process's writer, or another
        process's), and only then."""
        return await self.read(lambda _: self._data_version())

    def _data_version(self) -> int:
        with self._watcher_lock:
            if self._watcher is None:
                self._watcher = connect(self.path, readonly=True)
                with self._reader_lock:
                    self._reader_connections.append(self._watcher)
            return int(self._watcher.execute("PRAGMA data_version").fetchone()[0])

    async def close(self) -> None:
        """Stop taking work, commit every write this loop queued before, then release the
        connections. Writes other event loops still have queued fail as closed."""
        with self._state_lock:
            self._closed = True
        flusher = self._flushers.get(asyncio.get_running_loop())
        if flusher is not None:
            await asyncio.shield(flusher)
        await asyncio.to_thread(self._release)

    def _release(self) -> None:
        with self._state_lock:
            readers, self._readers = self._readers, None
            committer, self._committer = self._committer, None
            lock_waiters, self._lock_waiters = self._lock_waiters, None
        with self._transaction:  # another loop's batch finishes first
            if self._connection is not None:
                self._connection.close()
                self._connection = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
        for pool in (committer, lock_waiters, readers):
            if pool is not None:
                pool.shutdown(wait=True)
        with self._watcher_lock, self._reader_lock:
            for connection in self._reader_connections:  # the watcher among them
                connection.close()
            self._reader_connections.clear()
            self._watcher = None
