"""What every part of the store contract shares: the ``run`` and ``store`` fixtures, and
builders for the records the tests feed in."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from omnichannel_core.hooktypes import InboundMessage
from omnichannel_core.models import Conversation
from omnichannel_core.modules.access.store import AccessStore
from omnichannel_core.modules.inbox.store import InboxStore
from omnichannel_core.store import Database
from omnichannel_core.store.protocols import AuditLog, EventLog, JobStore
from tests.support.stores import Stores, open_stores

T = TypeVar("T")
Run = Callable[[Awaitable[T]], T]

IMPOSSIBLE_IDS = ("a/b", "..", ".", "__x__", "", "x" * 1501)
"""Ids a request may carry that no record of any backend has, some of which no Firestore
document can have (a path, a reserved name, too long): each is just an unknown id."""


def inbound(
    provider_message_id: str,
    sender: str = "+15550001",
    text: str | None = "hello",
    sender_name: str | None = None,
) -> InboundMessage:
    return InboundMessage(
        provider_message_id=provider_message_id,
        sender=sender,
        text=text,
        sender_name=sender_name,
    )


class StoreFixtures:
    """The fixtures every contract part uses. A backend's test class provides ``database``
    (built, not opened); every store is then migrated, opened and built on it.

    ``store`` is the inbox's store, the subject of most parts; each test also finds the
    others on itself (``self.access``, ``self.events``, ``self.audit``, ``self.jobs``).
    """

    access: AccessStore
    events: EventLog
    audit: AuditLog
    jobs: JobStore

    @pytest.fixture
    def run(self) -> Iterator[Run[Any]]:
        """Runs a coroutine to completion on this test's own event loop."""
        loop = asyncio.new_event_loop()
        try:
            yield loop.run_until_complete
        finally:
            loop.close()

    @pytest.fixture
    def database(self, run: Run[Any]) -> Database:  # pragma: no cover - overridden by backends
        raise NotImplementedError("a backend's test class provides the database fixture")

    @pytest.fixture
    def stores(self, database: Database, run: Run[Any]) -> Iterator[Stores]:
        stores = run(open_stores(database))
        yield stores
        run(stores.close())

    @pytest.fixture(autouse=True)
    def _every_store(self, stores: Stores) -> None:
        self.access = stores.access
        self.events = stores.events
        self.audit = stores.audit
        self.jobs = stores.jobs

    @pytest.fixture
    def store(self, stores: Stores) -> InboxStore:
        return stores.inbox

    def _conversation(self, store: InboxStore, run: Run[Any], channel: str = "sms") -> Conversation:
        return run(store.resolve_recipient(channel, "+15550100"))[1]
