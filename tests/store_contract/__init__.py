"""The store contract: what every backend promises, written once for all of them.

A backend's test module subclasses :class:`StoreContract` and provides a ``database``
fixture: a fresh, empty database of that backend, built but not opened. Every built-in store
is then migrated, opened and built on it (`tests.support.stores.open_stores`), and closed
after the test::

    from tests.store_contract import StoreContract

    class TestSqliteStore(StoreContract):
        @pytest.fixture
        def database(self, tmp_path):
            return SqliteDatabase(tmp_path / "store.db")

Only the contracts are tested here, never a backend's internals, so the Firestore backend
runs this suite unchanged: the inbox's ``InboxStore`` (the ``store`` fixture), the access
module's ``AccessStore`` (``self.access``), and the kernel's ``EventLog``, ``AuditLog`` and
``JobStore`` (``self.events``, ``self.audit``, ``self.jobs``; see
``omnichannel_core.store.protocols``). The contract comes in parts, one module each; a
backend that is still being written may subclass only the parts it already meets
(``InboundContract``, ...). None of the classes here is named ``Test*``, so pytest collects
them only through a backend's subclass.
"""

from __future__ import annotations

import pytest

# The parts hold the assertions: pytest rewrites them, as it does test modules, so a failing
# contract test shows the values it compared. They must be registered before they are imported.
PARTS = (
    "fixtures",
    "inbound",
    "outbound",
    "outbox",
    "status",
    "threads",
    "contacts",
    "conversations",
    "paging",
    "basics",
    "access",
    "events",
    "jobs",
    "watermarks",
    "history",
)
pytest.register_assert_rewrite(*(f"{__name__}.{part}" for part in PARTS))

from tests.store_contract.access import AccessContract  # noqa: E402
from tests.store_contract.basics import BasicsContract  # noqa: E402
from tests.store_contract.contacts import ContactsContract  # noqa: E402
from tests.store_contract.conversations import ConversationsContract  # noqa: E402
from tests.store_contract.events import EventsContract  # noqa: E402
from tests.store_contract.fixtures import Run, StoreFixtures, inbound  # noqa: E402
from tests.store_contract.history import HistoryContract  # noqa: E402
from tests.store_contract.inbound import InboundContract  # noqa: E402
from tests.store_contract.jobs import JobsContract  # noqa: E402
from tests.store_contract.outbound import OutboundContract  # noqa: E402
from tests.store_contract.outbox import OutboxContract  # noqa: E402
from tests.store_contract.paging import PagingContract  # noqa: E402
from tests.store_contract.status import StatusContract  # noqa: E402
from tests.store_contract.threads import ThreadsContract  # noqa: E402
from tests.store_contract.watermarks import (  # noqa: E402
    MessagingWindowContract,
    WatermarksContract,
)

__all__ = [
    "AccessContract",
    "BasicsContract",
    "ContactsContract",
    "ConversationsContract",
    "EventsContract",
    "HistoryContract",
    "InboundContract",
    "JobsContract",
    "MessagingWindowContract",
    "OutboundContract",
    "OutboxContract",
    "PagingContract",
    "Run",
    "StatusContract",
    "StoreContract",
    "StoreFixtures",
    "ThreadsContract",
    "WatermarksContract",
    "inbound",
]


class StoreContract(
    InboundContract,
    OutboundContract,
    OutboxContract,
    StatusContract,
    ThreadsContract,
    ContactsContract,
    ConversationsContract,
    PagingContract,
    BasicsContract,
    AccessContract,
    EventsContract,
    JobsContract,
    WatermarksContract,
    MessagingWindowContract,
    HistoryContract,
):
    """The behaviour every store backend must show. Subclasses provide ``database``."""
