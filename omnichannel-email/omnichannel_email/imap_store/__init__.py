"""Where the IMAP poller keeps its place: for each mailbox it reads, how far it took mail
(UIDVALIDITY and UID), the mails it skipped and why, and how it is doing.

An IMAP server numbers the mails of a folder with UIDs that only grow, valid together with
the folder's UIDVALIDITY: when the server renumbers the folder (a restored or recreated
mailbox), UIDVALIDITY changes and every old UID means nothing. So the position is the pair,
moved forward only once a mail is stored (or skipped, with the reason kept), and replaced
when UIDVALIDITY changes. The poller's state is kept here too, because ``/health`` is
answered by the web server, which reads the store, not the runner's memory.

A mailbox is named ``user@host:port/folder``: another account or folder starts afresh.
:mod:`~omnichannel_email.imap_store.sqlite` and :mod:`~omnichannel_email.imap_store.firestore`
implement :class:`ImapStore`; the store contract tests hold both to it.
"""

from __future__ import annotations

from typing import Protocol

from omnichannel_core.module import StoreSpec, lazy
from omnichannel_email.imap_store.records import (
    PollerState,
    PollerStatus,
    Position,
    SkippedMail,
)
from omnichannel_email.imap_store.sqlite import MIGRATIONS

__all__ = [
    "STORE",
    "ImapStore",
    "PollerState",
    "PollerStatus",
    "Position",
    "SkippedMail",
]


class ImapStore(Protocol):
    async def position(self, mailbox: str) -> Position | None:
        """How far the poller took mail of ``mailbox``; None before its first mail."""

    async def advance(self, mailbox: str, position: Position) -> None:
        """Record ``position``: it replaces one of another UIDVALIDITY, and moves one of the
        same UIDVALIDITY forward only (a lower UID is ignored)."""

    async def skip(self, mailbox: str, skipped: SkippedMail) -> None:
        """Record that ``skipped`` was not stored, and advance past it, in one write;
        recording the same mail again changes nothing."""

    async def skipped(self, mailbox: str, limit: int) -> list[SkippedMail]:
        """The mails skipped in ``mailbox``, the latest first, at most ``limit``."""

    async def count_skipped(self, mailbox: str) -> int:
        """How many mails were skipped in ``mailbox``."""

    async def save_status(self, mailbox: str, status: PollerStatus) -> None:
        """Keep ``status`` in place of the last one."""

    async def status(self, mailbox: str) -> PollerStatus | None:
        """The status last saved; None before the poller first ran."""


STORE = StoreSpec(
    "email_imap",
    ImapStore,
    sqlite=lazy("omnichannel_email.imap_store.sqlite", "SqliteImapStore"),
    firestore=lazy("omnichannel_email.imap_store.firestore", "FirestoreImapStore"),
    sqlite_migrations=MIGRATIONS,
)
