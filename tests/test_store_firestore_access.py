"""The access part of the Firestore store on the official emulator: the store contract's
access tests, writes that race through two clients on one database (as two server processes
would), and stores that share a database under different prefixes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import firebase_admin
import pytest
from firebase_admin import firestore_async
from google.auth.credentials import AnonymousCredentials
from google.cloud.firestore_v1 import AsyncClient

from omnichannel_core.access.records import AuditEntry, Role
from omnichannel_core.errors import Conflict
from omnichannel_core.store.firestore_access import FirestoreAccess
from omnichannel_core.store.firestore_client import disconnect
from tests.store_contract import AccessContract, Run, StoreFixtures
from tests.support import emulator_fixtures

# The emulator's fixtures, for as long as the root conftest does not load them as a plugin.
firestore_emulator = emulator_fixtures.firestore_emulator
firestore_project = emulator_fixtures.firestore_project
firestore_app = emulator_fixtures.firestore_app

T0 = datetime(2030, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
WINDOW = timedelta(minutes=10)


async def _client(app: firebase_admin.App) -> AsyncClient:
    """The app's async client, made on the running loop: its gRPC channel belongs to it."""
    return firestore_async.client(app)


class TestFirestoreAccess(AccessContract):
    """The access contract on a fresh emulator project."""

    @pytest.fixture
    def store(self, firestore_app: firebase_admin.App, run: Run[Any]) -> Iterator[Any]:
        client = run(_client(firestore_app))
        yield FirestoreAccess(client)
        run(disconnect(client))


class TestFirestoreAccessRaces(StoreFixtures):
    """Atomic writes raced through two clients, which share no lock in this process: only
    Firestore's transactions keep them apart."""

    @pytest.fixture
    def stores(
        self,
        firestore_app: firebase_admin.App,
        firestore_project: str,
        run: Run[Any],
    ) -> Iterator[tuple[FirestoreAccess, FirestoreAccess]]:
        other = firebase_admin.initialize_app(
            AnonymousCredentials(),
            options={"projectId": firestore_project},
            name=f"{firestore_project}-other",
        )
        clients = [run(_client(firestore_app)), run(_client(other))]
        yield FirestoreAccess(clients[0]), FirestoreAccess(clients[1])
        for client in clients:
            run(disconnect(client))
        firebase_admin.delete_app(other)

    def test_reservations_never_pass_the_limit(self, stores, run):
        """Reservations for one email made at once through both clients grant exactly
        ``limit``; the others answer when the oldest failure leaves the window."""

        async def together() -> list[Any]:
            return await asyncio.gather(
                *(
                    store.reserve_login_attempt("Race@Example.test", T0, WINDOW, 3)
                    for store in stores
                    for _ in range(3)
                )
            )

        answers = run(together())
        assert answers.count(None) == 3
        assert [answer for answer in answers if answer is not None] == [T0 + WINDOW] * 3

    def test_demoting_the_last_two_admins_leaves_one(self, stores, run):
        """The only two active admins demoted and deactivated at once, one through each
        client: exactly one change commits, the other is a Conflict, one admin is left."""
        first = run(stores[0].create_user("first@example.test", "First", Role.ADMIN, "h1"))
        second = run(stores[0].create_user("second@example.test", "Second", Role.ADMIN, "h2"))

        async def together() -> list[Any]:
            return await asyncio.gather(
                stores[0].update_user(first.id, role=Role.AGENT),
                stores[1].update_user(second.id, active=False),
                return_exceptions=True,
            )

        outcomes = run(together())
        assert [type(outcome) for outcome in outcomes].count(Conflict) == 1
        assert not [o for o in outcomes if isinstance(o, Exception) and type(o) is not Conflict]
        users = [run(stores[1].get_user(user.id)) for user in (first, second)]
        assert [user.role is Role.ADMIN and user.active for user in users].count(True) == 1
        assert run(stores[1].has_active_admin()) is True

    def test_creating_one_email_twice_stores_one_user(self, stores, run):
        """Two users with one email (in different case) created at once, one through each
        client: one is stored, the other creation is a Conflict."""

        async def together() -> list[Any]:
            return await asyncio.gather(
                stores[0].create_user("ann@example.test", "Ann", Role.AGENT, "h1"),
                stores[1].create_user("ANN@example.test", "Ann too", Role.AGENT, "h2"),
                return_exceptions=True,
            )

        outcomes = run(together())
        assert [type(outcome) for outcome in outcomes].count(Conflict) == 1
        [created] = [outcome for outcome in outcomes if not isinstance(outcome, Exception)]
        assert run(stores[1].list_users(None, 10)).items == [created]
        assert run(stores[0].user_credentials("Ann@Example.Test")).user == created


def test_prefixes_keep_stores_apart(firestore_app, run):
    """Two stores on one database with different prefixes see none of each other's users,
    admins, keys, failed logins or audit entries."""
    client = run(_client(firestore_app))
    try:
        one, two = FirestoreAccess(client, "one_"), FirestoreAccess(client, "two_")
        run(one.create_user("ann@example.test", "Ann", Role.ADMIN, "h1"))
        run(one.create_api_key("k", ("read",), "oc_1", "sha-1", None))
        run(one.reserve_login_attempt("bob@example.test", T0, WINDOW, 1))
        run(one.append_audit(AuditEntry("aud_1", "auth.login", "system", None, at=T0)))
        assert run(two.has_active_admin()) is False
        assert run(two.list_users(None, 10)).items == []
        assert run(two.api_key_by_hash("sha-1")) is None
        assert run(two.reserve_login_attempt("bob@example.test", T0, WINDOW, 1)) is None
        assert run(two.list_audit(None, None, 10)).items == []
        assert run(two.create_user("ann@example.test", "Ann", Role.AGENT, "h2")).role is Role.AGENT
    finally:
        run(disconnect(client))


@pytest.fixture
def run() -> Iterator[Run[Any]]:
    """This test's own event loop, as the contract's tests have."""
    loop = asyncio.new_event_loop()
    try:
        yield loop.run_until_complete
    finally:
        loop.close()
