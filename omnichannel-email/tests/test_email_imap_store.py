"""The IMAP poller's store contract, on SQLite and on the Firestore emulator: the position
moves forward only within one UIDVALIDITY and is replaced by another; a skipped mail is
recorded once and moves the position past it; the poller's status is kept per mailbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from omnichannel_email.imap_store import (
    STORE,
    ImapStore,
    PollerState,
    PollerStatus,
    Position,
    SkippedMail,
)

from omnichannel_core.testing import run_store

MAILBOX = "support@example.test@127.0.0.1:1143/INBOX"
OTHER = "support@example.test@127.0.0.1:1143/Support"
AT = datetime(2025, 6, 1, 8, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "firestore"])
def database(request: pytest.FixtureRequest) -> Any:
    """A fresh database of each backend (the kit's fixtures)."""
    return request.getfixturevalue(f"{request.param}_database")


def test_the_position_moves_forward_within_one_uidvalidity(database):
    """Before the first mail there is no position; within one UIDVALIDITY a lower UID does
    not move it back; a new UIDVALIDITY replaces it, even with a lower UID; each mailbox
    has its own."""

    async def scenario(store: ImapStore) -> None:
        assert await store.position(MAILBOX) is None
        await store.advance(MAILBOX, Position(7, 3))
        await store.advance(MAILBOX, Position(7, 5))
        await store.advance(MAILBOX, Position(7, 4))
        assert await store.position(MAILBOX) == Position(7, 5)
        await store.advance(MAILBOX, Position(9, 1))
        assert await store.position(MAILBOX) == Position(9, 1)
        assert await store.position(OTHER) is None

    run_store(STORE, database, scenario)


def test_a_skipped_mail_is_recorded_once_and_passed(database):
    """Skipping a mail records it and advances the position past it in one write; the
    same mail skipped again is not recorded twice; skipped mails are listed latest first
    and counted per mailbox."""

    async def scenario(store: ImapStore) -> None:
        first = SkippedMail(7, 4, "too large: 30000000 bytes", 30_000_000, AT)
        await store.skip(MAILBOX, first)
        assert await store.position(MAILBOX) == Position(7, 4)
        await store.skip(MAILBOX, first)
        later = SkippedMail(7, 6, "not a mail: no header", None, AT + timedelta(seconds=1))
        await store.skip(MAILBOX, later)
        assert await store.position(MAILBOX) == Position(7, 6)
        assert await store.skipped(MAILBOX, 10) == [later, first]
        assert await store.skipped(MAILBOX, 1) == [later]
        assert await store.count_skipped(MAILBOX) == 2
        assert await store.count_skipped(OTHER) == 0

    run_store(STORE, database, scenario)


def test_the_status_is_kept_and_replaced(database):
    """There is no status before the poller first saves one; each saved status replaces the
    last, times kept to the microsecond."""

    async def scenario(store: ImapStore) -> None:
        assert await store.status(MAILBOX) is None
        failed = PollerStatus(PollerState.ERROR, AT, "login refused", AT)
        await store.save_status(MAILBOX, failed)
        assert await store.status(MAILBOX) == failed
        idle = PollerStatus(PollerState.IDLE, AT + timedelta(seconds=2), "login refused", AT)
        await store.save_status(MAILBOX, idle)
        assert await store.status(MAILBOX) == idle
        assert await store.status(OTHER) is None

    run_store(STORE, database, scenario)
