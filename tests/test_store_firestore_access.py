"""The access module's Firestore store on the official emulator: the access contract on a
database whose collections carry a prefix, writes that race through two databases on one
project (as two server processes would), and stores that share a project under different
prefixes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from omnichannel_core.audit import AuditEntry
from omnichannel_core.errors import Conflict
from omnichannel_core.hooktypes import InboundMessage
from omnichannel_core.modules.access.store import AccessStore
from omnichannel_core.policy import Role
from omnichannel_core.store.firestore.database import FirestoreDatabase
from omnichannel_core.testing.emulators import Emulator, use_firestore_emulator
from tests.store_contract import AccessContract, Run, StoreFixtures
from tests.support.stores import Stores, open_stores

T0 = datetime(2030, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
WINDOW = timedelta(minutes=10)


@pytest.fixture
def emulated(firestore_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The emulator's address in FIRESTORE_EMULATOR_HOST, and no real credentials around."""
    use_firestore_emulator(monkeypatch, firestore_emulator.host_port)
    return firestore_emulator


class TestFirestoreAccess(AccessContract):
    """The access contract (and the audit log's) on a fresh emulator project, every
    collection under a prefix, as a deployment sharing a project has them."""

    @pytest.fixture
    def database(self, emulated: Emulator, firestore_project: str) -> FirestoreDatabase:
        return FirestoreDatabase(firestore_project, prefix="tenant_a_")


class TestFirestoreAccessRaces(StoreFixtures):
    """Atomic writes raced through two databases, each with its own client, which share no
    lock in this process: only Firestore's transactions keep them apart."""

    @pytest.fixture
    def database(self, emulated: Emulator, firestore_project: str) -> FirestoreDatabase:
        return FirestoreDatabase(firestore_project)

    @pytest.fixture
    def both(
        self, stores: Stores, firestore_project: str, run: Run[Any]
    ) -> Iterator[tuple[AccessStore, AccessStore]]:
        """The test's access store and another on the same project, through a second
        database."""
        other = run(open_stores(FirestoreDatabase(firestore_project)))
        yield stores.access, other.access
        run(other.close())

    def test_reservations_never_pass_the_limit(self, both, run):
        """Reservations for one email made at once through both databases grant exactly
        ``limit``; the others answer when the oldest failure leaves the window."""

        async def together() -> list[Any]:
            return await asyncio.gather(
                *(
                    access.reserve_login_attempt("Race@Example.test", T0, WINDOW, 3)
                    for access in both
                    for _ in range(3)
                )
            )

        answers = run(together())
        assert answers.count(None) == 3
        assert [answer for answer in answers if answer is not None] == [T0 + WINDOW] * 3

    def test_demoting_the_last_two_admins_leaves_one(self, both, run):
        """The only two active admins demoted and deactivated at once, one through each
        database: exactly one change commits, the other is a Conflict, one admin is left."""
        first = run(both[0].create_user("first@example.test", "First", Role.ADMIN, "h1"))
        second = run(both[0].create_user("second@example.test", "Second", Role.ADMIN, "h2"))

        async def together() -> list[Any]:
            return await asyncio.gather(
                both[0].update_user(first.id, role=Role.AGENT),
                both[1].update_user(second.id, active=False),
                return_exceptions=True,
            )

        outcomes = run(together())
        assert [type(outcome) for outcome in outcomes].count(Conflict) == 1
        assert not [o for o in outcomes if isinstance(o, Exception) and type(o) is not Conflict]
        users = [run(both[1].get_user(user.id)) for user in (first, second)]
        assert [user.role is Role.ADMIN and user.active for user in users].count(True) == 1
        assert run(both[1].has_active_admin()) is True

    def test_creating_one_email_twice_stores_one_user(self, both, run):
        """Two users with one email (in different case) created at once, one through each
        database: one is stored, the other creation is a Conflict."""

        async def together() -> list[Any]:
            return await asyncio.gather(
                both[0].create_user("ann@example.test", "Ann", Role.AGENT, "h1"),
                both[1].create_user("ANN@example.test", "Ann too", Role.AGENT, "h2"),
                return_exceptions=True,
            )

        outcomes = run(together())
        assert [type(outcome) for outcome in outcomes].count(Conflict) == 1
        [created] = [outcome for outcome in outcomes if not isinstance(outcome, Exception)]
        assert run(both[1].list_users(None, 10)).items == [created]
        assert run(both[0].user_credentials("Ann@Example.Test")).user == created


def test_prefixes_keep_stores_apart(emulated, firestore_project, run):
    """Two databases on one project with different prefixes: the stores of one see none of
    the other's users, admins, keys, failed logins or audit entries, nor its messages,
    events or leases."""
    one = run(open_stores(FirestoreDatabase(firestore_project, prefix="one_")))
    two = run(open_stores(FirestoreDatabase(firestore_project, prefix="two_")))
    try:
        run(one.access.create_user("ann@example.test", "Ann", Role.ADMIN, "h1"))
        run(one.access.create_api_key("k", ("read",), "oc_1", "sha-1", None))
        run(one.access.reserve_login_attempt("bob@example.test", T0, WINDOW, 1))
        run(one.audit.append(AuditEntry("aud_1", "auth.login", "system", None, at=T0)))
        run(one.inbox.ingest_inbound("sms", InboundMessage("p1", "+15550001", "hi")))
        run(one.jobs.take_lease("prune", "runner-a", WINDOW, T0))
        assert run(two.access.has_active_admin()) is False
        assert run(two.access.list_users(None, 10)).items == []
        assert run(two.access.api_key_by_hash("sha-1")) is None
        assert run(two.access.reserve_login_attempt("bob@example.test", T0, WINDOW, 1)) is None
        assert run(two.audit.list(None, None, 10)).items == []
        assert run(two.inbox.list_contacts(None, None, 10)).items == []
        assert run(two.events.after(None, 10)) == []
        assert run(two.jobs.leases()) == []
        assert run(two.jobs.take_lease("prune", "runner-b", WINDOW, T0)) is not None
        created = run(two.access.create_user("ann@example.test", "Ann", Role.AGENT, "h2"))
        assert created.role is Role.AGENT
        assert len(run(one.events.after(None, 10))) == 1
    finally:
        run(one.close())
        run(two.close())


@pytest.fixture
def run() -> Iterator[Run[Any]]:
    """This test's own event loop, as the contract's tests have."""
    loop = asyncio.new_event_loop()
    try:
        yield loop.run_until_complete
    finally:
        loop.close()
