"""Read-write transactions in as few round trips as Firestore allows.

The library's transactions spend a round trip on ``BeginTransaction`` before the first read,
and retry only when the commit is aborted. Here the first read begins the transaction itself
(``new_transaction`` on ``BatchGetDocuments``), so a transaction costs its reads and its
commit, nothing more; and an ABORTED answer to a read or to the commit retries the whole
body, after a short random pause, naming the aborted transaction (``retry_transaction``) so
that Firestore keeps its place in the lock queue. The aborted one is rolled back first: the
emulator keeps its locks until then, and every retry would wait for them.

A body reads first (:meth:`Transaction.get`, several documents per round trip), then queues
writes; it must not depend on anything but what it read, since it may run more than once. A
body that raises (NotFound, Conflict) rolls the transaction back and the error goes on.

This module talks to the Firestore RPC API through the async client's own channel
(``AsyncClient._firestore_api``, ``_database_string``, ``_rpc_metadata``) and builds writes
with a ``WriteBatch`` (``_write_pbs``): with ``firestore_client.disconnect``, those private
names are the only ones the Firestore backend uses, so an upgrade of google-cloud-firestore
has two places to check.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from google.api_core.exceptions import Aborted, GoogleAPICallError
from google.cloud.firestore_v1 import AsyncClient, AsyncDocumentReference, DocumentSnapshot
from google.cloud.firestore_v1 import _helpers as firestore_helpers
from google.cloud.firestore_v1.types import common

T = TypeVar("T")

MAX_ATTEMPTS = 25
"""Tries before the last ABORTED is raised; many writers on one document (a burst of
webhook retries) queue up, each try keeping its place."""
FIRST_PAUSE = 0.01
LONGEST_PAUSE = 1.0


class Transaction:
    """One attempt: reads in the transaction, then writes, committed by :func:`transact`."""

    def __init__(self, client: AsyncClient, retry_id: bytes | None) -> None:
        self._client = client
        self._api = client._firestore_api
        self._database = client._database_string
        self._metadata = client._rpc_metadata
        self._retry_id = retry_id
        self._batch = client.batch()
        self.id: bytes | None = None
        self.logged_events = False
        """Set by `omnichannel_core.store.firestore.events.log_event`: the commit logs events."""
        self.commit_time: datetime | None = None
        self.server_time: datetime | None = None
        """What a server timestamp written by the commit was set to (the time the server
        took the request, not the commit time), if it wrote one."""

    def _path(self, reference: AsyncDocumentReference) -> str:
        return f"{self._database}/documents/{reference.path}"

    async def get(self, *references: AsyncDocumentReference) -> list[DocumentSnapshot]:
        """The documents, in the order asked (a missing one has ``exists`` False), read in
        one round trip; the first read begins the transaction."""
        if self._batch._write_pbs:
            raise RuntimeError("a transaction reads everything before it writes")
        request: dict[str, Any] = {
            "database": self._database,
            "documents": list(dict.fromkeys(self._path(ref) for ref in references)),
        }
        if self.id is None:
            options = common.TransactionOptions.ReadWrite(retry_transaction=self._retry_id or b"")
            request["new_transaction"] = common.TransactionOptions(read_write=options)
        else:
            request["transaction"] = self.id
        stream = await self._api.batch_get_documents(request=request, metadata=self._metadata)
        found: dict[str, DocumentSnapshot] = {}
        by_path = {self._path(ref): ref for ref in references}
        async for response in stream:
            if response.transaction:
                self.id = response.transaction
            result = response._pb.WhichOneof("result")
            if result == "found":
                document = response.found
                found[document.name] = DocumentSnapshot(
                    by_path[document.name],
                    firestore_helpers.decode_dict(document.fields, self._client),
                    exists=True,
                    read_time=response.read_time,
                    create_time=document.create_time,
                    update_time=document.update_time,
                )
            elif result == "missing":
                found[response.missing] = DocumentSnapshot(
                    by_path[response.missing],
                    None,
                    exists=False,
                    read_time=response.read_time,
                    create_time=None,
                    update_time=None,
                )
        return [found[self._path(ref)] for ref in references]

    def create(self, reference: AsyncDocumentReference, data: dict[str, Any]) -> None:
        """Write a new document; the commit fails if it exists."""
        self._batch.create(reference, data)

    def set(self, reference: AsyncDocumentReference, data: dict[str, Any]) -> None:
        self._batch.set(reference, data)

    def update(self, reference: AsyncDocumentReference, fields: dict[str, Any]) -> None:
        """Change the given fields of an existing document."""
        self._batch.update(reference, fields)

    def delete(self, reference: AsyncDocumentReference) -> None:
        self._batch.delete(reference)

    @property
    def writes(self) -> int:
        return len(self._batch._write_pbs)

    async def commit(self) -> None:
        """Commit the queued writes (with no read, as one atomic batch)."""
        request: dict[str, Any] = {"database": self._database, "writes": self._batch._write_pbs}
        if self.id is not None:
            request["transaction"] = self.id
        response = await self._api.commit(request=request, metadata=self._metadata)
        self.id = None
        self.commit_time = response.commit_time
        for result in response.write_results:
            if result.transform_results:
                self.server_time = result.transform_results[0].timestamp_value
                break

    async def rollback(self) -> None:
        """Release the transaction's locks; a failure to do so is not the caller's error (the
        transaction expires on its own)."""
        if self.id is None:
            return
        transaction, self.id = self.id, None
        with contextlib.suppress(GoogleAPICallError):
            await self._api.rollback(
                request={"database": self._database, "transaction": transaction},
                metadata=self._metadata,
            )


class TakingTurns:
    """Transactions of this process on one key (a sender, a conversation) run one at a
    time.

    Two transactions that read the same document and then write it conflict: Firestore
    aborts one (the emulator only after a lock timeout of a second or more), and it runs
    again. Writers in one process that would collide are queued here instead, so a burst of
    retried webhooks for one sender costs one transaction after another, not a storm of
    aborts. Across processes Firestore still decides; the result is the same, only slower.
    """

    def __init__(self) -> None:
        self._locks: dict[tuple[str, ...], asyncio.Lock] = {}
        self._users: dict[tuple[str, ...], int] = {}

    @contextlib.asynccontextmanager
    async def turn(self, *key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key], self._locks[key]


async def transact(
    client: AsyncClient,
    body: Callable[[Transaction], Awaitable[T]],
    attempts: int = MAX_ATTEMPTS,
    committed: Callable[[Transaction], None] | None = None,
) -> T:
    """Run ``body`` in a transaction and commit it, again while Firestore aborts it;
    ``committed`` is shown the transaction that committed."""
    retry_id: bytes | None = None
    for attempt in range(attempts):
        transaction = Transaction(client, retry_id)
        try:
            result = await body(transaction)
            await transaction.commit()
            if committed is not None:
                committed(transaction)
            return result
        except Aborted:
            retry_id = transaction.id or retry_id
            await transaction.rollback()
            if attempt + 1 == attempts:
                raise
        except BaseException:
            await transaction.rollback()
            raise
        pause = min(LONGEST_PAUSE, FIRST_PAUSE * 2**attempt)
        await asyncio.sleep(random.uniform(0, pause))  # noqa: S311 - jitter, not a secret
    raise AssertionError("unreachable")
