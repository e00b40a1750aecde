"""The IMAP poller's store on Firestore (imported only when the server runs on Firestore: it
needs Google's client).

``email_imap_positions/{key}``
    ``mailbox``, ``uidvalidity``, ``last_uid``. ``key`` is :func:`document_key` of the
    mailbox's name (which holds ``/``). Moved in a transaction that reads it first: forward
    only within one UIDVALIDITY. The poller writes it at most about once a second.
``email_imap_positions/{key}/email_imap_skipped/{uidvalidity}-{uid}``
    ``uidvalidity``, ``uid``, ``reason``, ``size``, ``skipped_at``: one per mail, under its
    mailbox, so it is recorded once and listed by ``skipped_at`` alone (an index Firestore
    makes by itself).
``email_imap_status/{key}``
    ``mailbox``, ``state``, ``since``, ``error``, ``error_at``: written when the state
    changes.

No document changed its layout yet, so there is no migration.
"""

from __future__ import annotations

from google.cloud.firestore_v1 import AsyncCollectionReference, AsyncDocumentReference

from omnichannel_core.module.firestore import (
    FirestoreDatabase,
    Transaction,
    document_key,
    exact_time,
    optional_time,
)
from omnichannel_email.imap_store.records import PollerStatus, Position, SkippedMail

POSITIONS = "email_imap_positions"
SKIPPED = "email_imap_skipped"
STATUS = "email_imap_status"


class FirestoreImapStore:
    def __init__(self, database: FirestoreDatabase) -> None:
        self.database = database

    def _position(self, mailbox: str) -> AsyncDocumentReference:
        return self.database.collection(POSITIONS).document(document_key(mailbox))

    def _skipped(self, mailbox: str) -> AsyncCollectionReference:
        return self._position(mailbox).collection(SKIPPED)

    def _status(self, mailbox: str) -> AsyncDocumentReference:
        return self.database.collection(STATUS).document(document_key(mailbox))

    async def position(self, mailbox: str) -> Position | None:
        snapshot = await self._position(mailbox).get()
        if not snapshot.exists:
            return None
        return Position(snapshot.get("uidvalidity"), snapshot.get("last_uid"))

    async def _advance(self, transaction: Transaction, mailbox: str, position: Position) -> None:
        reference = self._position(mailbox)
        (snapshot,) = await transaction.get(reference)
        if (
            snapshot.exists
            and snapshot.get("uidvalidity") == position.uidvalidity
            and snapshot.get("last_uid") >= position.last_uid
        ):
            return
        fields = {
            "mailbox": mailbox,
            "uidvalidity": position.uidvalidity,
            "last_uid": position.last_uid,
        }
        transaction.set(reference, fields)

    async def advance(self, mailbox: str, position: Position) -> None:
        async def body(transaction: Transaction) -> None:
            await self._advance(transaction, mailbox, position)

        await self.database.transact((POSITIONS, mailbox), body)

    async def skip(self, mailbox: str, skipped: SkippedMail) -> None:
        record = self._skipped(mailbox).document(f"{skipped.uidvalidity}-{skipped.uid}")
        fields = {
            "uidvalidity": skipped.uidvalidity,
            "uid": skipped.uid,
            "reason": skipped.reason,
            "size": skipped.size,
            "skipped_at": skipped.skipped_at,
        }

        async def body(transaction: Transaction) -> None:
            (existing,) = await transaction.get(record)  # every read before the writes
            await self._advance(transaction, mailbox, Position(skipped.uidvalidity, skipped.uid))
            if not existing.exists:
                transaction.create(record, fields)

        await self.database.transact((POSITIONS, mailbox), body)

    async def skipped(self, mailbox: str, limit: int) -> list[SkippedMail]:
        query = self._skipped(mailbox).order_by("skipped_at", direction="DESCENDING")
        snapshots = await query.limit(limit).get()
        return [
            SkippedMail(
                uidvalidity=snapshot.get("uidvalidity"),
                uid=snapshot.get("uid"),
                reason=snapshot.get("reason"),
                size=snapshot.get("size"),
                skipped_at=exact_time(snapshot.get("skipped_at")),
            )
            for snapshot in snapshots
        ]

    async def count_skipped(self, mailbox: str) -> int:
        (counted,) = await self._skipped(mailbox).count().get()
        return int(counted[0].value)

    async def save_status(self, mailbox: str, status: PollerStatus) -> None:
        await self._status(mailbox).set(
            {
                "mailbox": mailbox,
                "state": status.state.value,
                "since": status.since,
                "error": status.error,
                "error_at": status.error_at,
            }
        )

    async def status(self, mailbox: str) -> PollerStatus | None:
        snapshot = await self._status(mailbox).get()
        if not snapshot.exists:
            return None
        return PollerStatus(
            state=snapshot.get("state"),
            since=exact_time(snapshot.get("since")),
            error=snapshot.get("error"),
            error_at=optional_time(snapshot.get("error_at")),
        )
