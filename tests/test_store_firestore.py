"""The Firestore backend on the official emulator: the shared contract of every store on one
``FirestoreDatabase``, unchanged; atomic dedupe, idempotency and forward-only status when
several clients write at once; the round trips of the ingest path; the event log's commit
order; bounded search reads; and the connection settings read from the environment."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.cloud.firestore_v1 import DELETE_FIELD

from omnichannel_core.errors import ConfigError, InvalidInput
from omnichannel_core.hooktypes import InboundMessage, StatusUpdate
from omnichannel_core.ids import new_id
from omnichannel_core.models import DeliveryStatus, utcnow
from omnichannel_core.paging import encode_cursor
from omnichannel_core.store import open_database
from omnichannel_core.store.firestore import events, paging
from omnichannel_core.store.firestore import transaction as transactions
from omnichannel_core.store.firestore.client import settings_from_environment
from omnichannel_core.store.firestore.database import FirestoreDatabase
from omnichannel_core.testing.emulators import Emulator, use_firestore_emulator
from omnichannel_core.timestamps import format_timestamp
from tests.store_contract import Run, StoreContract
from tests.store_contract.fixtures import StoreFixtures, inbound
from tests.store_contract.paging import FORGED_AT, FORGED_ID_BODY, all_pages, forged_cursors
from tests.support.google_keys import new_private_key_pem
from tests.support.stores import SPECS, Stores, open_stores

CLIENTS = 4
"""Databases writing at once, each with a client of its own, like server processes."""


@pytest.fixture
def emulated(firestore_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The emulator's address in FIRESTORE_EMULATOR_HOST, and no real credentials around."""
    use_firestore_emulator(monkeypatch, firestore_emulator.host_port)
    return firestore_emulator


class TestFirestoreStore(StoreContract):
    """The store contract on a fresh emulator project per test."""

    @pytest.fixture
    def database(self, emulated: Emulator, firestore_project: str) -> FirestoreDatabase:
        return FirestoreDatabase(firestore_project)


class TestFirestoreBehaviour(StoreFixtures):
    """What the Firestore backend does beyond the contract, or under more pressure."""

    @staticmethod
    async def _log_event(database: FirestoreDatabase, event_id: str, at: datetime) -> None:
        """Write an event document whose server time ``at`` is given, not stamped: what a
        commit that waited long after the server stamped it looks like to a reader."""
        await (
            database.collection(events.EVENTS)
            .document(event_id)
            .create(
                {
                    "type": "contact.updated",
                    "record_id": "ct_late",
                    "conversation_id": None,
                    "assignees": [],
                    "at": at,
                }
            )
        )

    @pytest.fixture
    def database(self, emulated: Emulator, firestore_project: str) -> FirestoreDatabase:
        return FirestoreDatabase(firestore_project)

    @pytest.fixture
    def clients(
        self, stores: Stores, firestore_project: str, run: Run[Any]
    ) -> Iterator[list[Stores]]:
        """Every store on one project through several databases, each with its own client:
        what several server processes are to Firestore (their writers do not take turns in
        one process). The first is the test's own ``stores``."""
        others = [
            run(open_stores(FirestoreDatabase(firestore_project))) for _ in range(CLIENTS - 1)
        ]
        yield [stores, *others]
        for other in others:
            run(other.close())

    def test_concurrent_ingests_of_one_provider_id_store_one_message(self, clients, run):
        """Twenty ingests of one provider id at once, spread over four clients, store one
        message, answer created=True once, log one event, and count one unread message."""

        async def ingest_all() -> list[Any]:
            return await asyncio.gather(
                *(
                    clients[n % CLIENTS].inbox.ingest_inbound(
                        "sms", inbound("same", text=f"try {n}")
                    )
                    for n in range(20)
                )
            )

        results = run(ingest_all())
        assert sum(result.created for result in results) == 1
        assert len({result.message_id for result in results}) == 1
        conversation = run(clients[0].inbox.get_conversation(results[0].conversation_id))
        assert conversation.unread_count == 1
        messages = run(clients[1].inbox.list_messages(conversation.id, None, 50)).items
        assert [message.id for message in messages] == [results[0].message_id]
        assert len(run(clients[2].inbox.list_contacts(None, None, 50)).items) == 1
        assert len(run(clients[3].events.after(None, 50))) == 1

    def test_first_messages_of_a_new_sender_make_one_contact(self, clients, run):
        """Different messages of one new sender, arriving at once on several clients, make
        one contact and one conversation holding all of them."""

        async def ingest_all() -> list[Any]:
            return await asyncio.gather(
                *(
                    clients[n % CLIENTS].inbox.ingest_inbound("sms", inbound(f"m{n}"))
                    for n in range(8)
                )
            )

        results = run(ingest_all())
        assert all(result.created for result in results)
        assert len({result.contact.id for result in results}) == 1
        assert len({result.conversation_id for result in results}) == 1
        conversation = run(clients[0].inbox.get_conversation(results[0].conversation_id))
        assert conversation.unread_count == 8

    def test_concurrent_status_updates_end_at_the_highest_status(self, clients, run):
        """Status callbacks for one message arriving at once, out of order, on several
        clients, leave it at the highest status: each status above the current one is
        reached at most once, none below it, and each move is logged once."""
        inbox = clients[0].inbox
        conversation = self._conversation(inbox, run)
        message, _ = run(inbox.create_outbound(conversation.id, "x", (), {}, None))
        run(inbox.advance_message(message.id, DeliveryStatus.SENT, provider_message_id="SM1"))
        start = run(clients[0].events.latest())
        order = [DeliveryStatus.READ, DeliveryStatus.SENT, DeliveryStatus.DELIVERED] * 4

        async def apply_all() -> list[Any]:
            return await asyncio.gather(
                *(
                    clients[n % CLIENTS].inbox.apply_status("sms", StatusUpdate("SM1", status))
                    for n, status in enumerate(order)
                )
            )

        applied = run(apply_all())
        assert run(clients[1].inbox.get_message(message.id)).status is DeliveryStatus.READ
        moves = [result.message.status for result in applied if result.changed]
        assert DeliveryStatus.READ in moves
        assert len(moves) == len(set(moves))
        assert set(moves) <= {DeliveryStatus.DELIVERED, DeliveryStatus.READ}
        assert len(run(clients[2].events.after(start, 50))) == len(moves)

    def test_attributes_added_at_once_on_several_clients_are_all_kept(self, clients, run):
        """Two forms adding attributes to one contact at once, each on a client of its own,
        beside an agent's change of its tags on a third, lose nothing: both attributes, the
        agent's tags, and one contact.updated per write. (Three writers only: the emulator
        makes each contended transaction wait about two seconds.)"""
        contact = run(clients[0].inbox.ingest_inbound("sms", inbound("p1"))).contact
        start = run(clients[0].events.latest())

        async def write_all() -> None:
            await asyncio.gather(
                clients[1].inbox.add_contact_attributes(contact.id, {"email": "a@example.test"}),
                clients[0].inbox.update_contact(contact.id, tags=("vip",)),
                clients[2].inbox.add_contact_attributes(contact.id, {"plan": "gold"}),
            )

        run(write_all())
        stored = run(clients[3].inbox.get_contact(contact.id))
        assert stored.attributes == {"email": "a@example.test", "plan": "gold"}
        assert stored.tags == ("vip",)
        assert len(run(clients[3].events.after(start, 50))) == 3

    def test_concurrent_idempotent_creates_on_several_clients_store_one(self, clients, run):
        """Creates with one idempotency key on several clients at once store one message."""
        conversation = self._conversation(clients[0].inbox, run)

        async def create_all() -> list[Any]:
            return await asyncio.gather(
                *(
                    clients[n % CLIENTS].inbox.create_outbound(conversation.id, "x", (), {}, "k")
                    for n in range(12)
                )
            )

        results = run(create_all())
        assert sum(created for _, created in results) == 1
        assert len({message.id for message, _ in results}) == 1

    def test_a_lease_raced_through_several_clients_goes_to_one(self, clients, run):
        """Runners on several clients asking at once for one free lease: Firestore's
        transactions give it to exactly one, and every client then reads that one holder."""
        now = utcnow()

        async def take_all() -> list[Any]:
            return await asyncio.gather(
                *(
                    clients[n % CLIENTS].jobs.take_lease(
                        "prune", f"runner-{n}", timedelta(minutes=1), now
                    )
                    for n in range(8)
                )
            )

        [winner] = [lease for lease in run(take_all()) if lease is not None]
        for client in clients:
            assert run(client.jobs.leases()) == [winner]

    def test_ingest_round_trips(self, store, run, monkeypatch):
        """The ingest hot path: a new sender costs one read round trip and the commit, a
        known sender two reads and the commit, a duplicate two reads and a commit that
        writes nothing."""
        calls: list[tuple[str, int]] = []
        read, commit = transactions.Transaction.get, transactions.Transaction.commit

        async def counted_get(self: Any, *references: Any) -> Any:
            calls.append(("read", len(references)))
            return await read(self, *references)

        async def counted_commit(self: Any) -> Any:
            calls.append(("commit", self.writes))
            return await commit(self)

        monkeypatch.setattr(transactions.Transaction, "get", counted_get)
        monkeypatch.setattr(transactions.Transaction, "commit", counted_commit)

        def ingest_counted(message: InboundMessage) -> list[tuple[str, int]]:
            calls.clear()
            run(store.ingest_inbound("sms", message))
            return list(calls)

        # identity, contact, conversation, message, key, event
        assert ingest_counted(inbound("p1")) == [("read", 2), ("commit", 6)]
        # key, message, conversation, event
        assert ingest_counted(inbound("p2")) == [("read", 2), ("read", 2), ("commit", 4)]
        assert ingest_counted(inbound("p2")) == [("read", 2), ("read", 3), ("commit", 0)]

    def test_events_follow_commit_order_not_their_server_time(self, store, database, run):
        """An event committed after one a reader already has, though its server time
        ``at`` is earlier (as when a commit lands after the time the server gave it), is
        still read next from the reader's cursor: the log is in commit order, so nothing
        committed later is skipped."""
        run(store.ingest_inbound("sms", inbound("p1")))
        [seen] = run(self.events.after(None, 10))
        run(self._log_event(database, new_id("ev"), seen.at - timedelta(seconds=1)))
        [late] = run(self.events.after(seen.cursor, 10))
        assert late.record_id == "ct_late"
        assert late.at > seen.at
        assert run(self.events.latest()) == late.cursor
        assert [event.record_id for event in run(self.events.after(None, 10))][1:] == ["ct_late"]

    def test_an_event_committed_outside_the_window_is_reported(self, database, run, monkeypatch):
        """An event whose server time is further from its commit than the database's window
        (which a stream may have missed) is reported as a warning naming it when read."""
        warnings: list[tuple[str, dict[str, Any]]] = []

        class Recorder:
            def warning(self, event: str, **values: Any) -> None:
                warnings.append((event, values))

        monkeypatch.setattr(events, "log", Recorder())
        late_id = new_id("ev")
        run(self._log_event(database, late_id, utcnow() - database.event_commit_window * 2))
        [event] = run(self.events.after(None, 10))
        assert event.record_id == "ct_late"
        assert [(name, values["event_id"]) for name, values in warnings] == [
            ("event_commit_outside_window", late_id)
        ]

    def test_search_reads_a_bounded_number_of_contacts_per_page(self, store, run):
        """With few matches among many candidates, a search page reads at most the scan
        limit and comes back short with a cursor; following the cursors still finds every
        match exactly once, newest first."""
        store.search_scan_limit = 4
        wanted = []
        for number in range(12):
            name = "Ann Smith" if number % 4 == 0 else "Ann Other"
            ingested = run(
                store.ingest_inbound("sms", inbound(f"s{number}", f"+1{number}", "x", name))
            )
            if number % 4 == 0:
                wanted.append(ingested.contact.id)
        first = run(store.list_contacts("ann smi", None, 5))
        assert len(first.items) < 3 and first.next_cursor is not None
        found = all_pages(run, lambda cursor, size: store.list_contacts("ann smi", cursor, size), 5)
        assert found == wanted[::-1]

    def test_long_tokens_are_matched_beyond_the_stored_prefixes(self, store, run):
        """A token longer than the stored prefixes still matches only the contacts whose
        word it is a prefix of."""
        long_address = "someone.with.a.long.address@example.test"
        other_address = "someone.with.a.long.addressee@example.test"
        wanted = run(store.ingest_inbound("email", inbound("e1", long_address))).contact.id
        run(store.ingest_inbound("email", inbound("e2", other_address)))
        found = run(store.list_contacts(long_address.upper(), None, 10)).items
        assert [contact.id for contact in found] == [wanted]
        assert len(run(store.list_contacts(long_address[:25], None, 10)).items) == 2

    def test_ping_names_the_backend_project_and_store_versions(
        self, database, run, firestore_project
    ):
        """ping reports the Firestore backend, its project, the emulator, and each store's
        version as migrate() recorded it, all current; opening and migrating again changes
        nothing."""
        latest = {spec.name: len(spec.firestore_migrations) for spec in SPECS}
        run(database.open())
        assert run(database.migrate(SPECS)) == latest
        facts = run(database.ping())
        assert facts["backend"] == "firestore"
        assert facts["project"] == firestore_project
        assert facts["schema"] == latest
        assert facts["schema_current"] is True
        assert facts["emulator"]

    def test_a_store_newer_than_the_code_refuses_to_migrate(self, database, run):
        """A project where a store's recorded version is above the steps this code has (a
        later release migrated it) is refused with a ConfigError naming OMNICHANNEL_STORE
        and the store."""
        versions = database.collection("meta").document("store_versions")
        inbox_steps = {spec.name: len(spec.firestore_migrations) for spec in SPECS}["inbox"]
        run(versions.set({"inbox": inbox_steps + 1}, merge=True))
        with pytest.raises(ConfigError, match="OMNICHANNEL_STORE") as raised:
            run(database.migrate(SPECS))
        assert "'inbox'" in raised.value.message
        assert raised.value.details["variable"] == "OMNICHANNEL_STORE"

    def test_an_outbox_entry_from_before_the_attempt_mark_counts_as_attempted(self, store, run):
        """An outbox document without ``attempted`` (claimed by an earlier version) reads
        as attempted: when its lease ends it is not queued again but goes in doubt, as it
        did before the mark."""
        conversation = self._conversation(store, run)
        message, _ = run(store.create_outbound(conversation.id, "hi", (), {}, None))
        past = utcnow() - timedelta(seconds=1)
        assert run(store.claim_outbound(message.id, "old", past, utcnow())) is not None
        reference = store.layout.outbox(message.id)
        run(reference.update({"attempted": DELETE_FIELD}))
        assert "attempted" not in run(reference.get()).to_dict()
        now = utcnow()
        [entry] = run(store.expired_leases(now, 10))
        assert entry.attempted is True
        assert not run(store.requeue_unattempted(message.id, now))
        doubted = run(store.doubt_outbound(message.id, None, now, None, "runner died", now))
        assert (doubted.status, doubted.in_doubt) == (DeliveryStatus.SENDING, True)


# ------------------------------------------------------------------ connection settings


def test_a_service_account_key_with_literal_newlines_is_read():
    """FIREBASE_PRIVATE_KEY may hold its line breaks as literal \\n (a one-line variable);
    with the project id and client email it makes service-account credentials."""
    one_line = new_private_key_pem().replace("\n", "\\n")
    settings = settings_from_environment(
        None,
        {
            "FIREBASE_PROJECT_ID": "omni-prod-1",
            "FIREBASE_PRIVATE_KEY": one_line,
            "FIREBASE_CLIENT_EMAIL": "store@omni-prod-1.iam.gserviceaccount.com",
        },
    )
    assert settings.project == "omni-prod-1"
    assert settings.facts() == {"project": "omni-prod-1", "credentials": "service_account"}
    assert settings.credentials.service_account_email.startswith("store@")


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({}, "FIREBASE_PRIVATE_KEY"),
        ({"FIREBASE_PROJECT_ID": "omni-prod-1"}, "FIREBASE_PRIVATE_KEY"),
        (
            {"FIREBASE_PROJECT_ID": "omni-prod-1", "FIREBASE_PRIVATE_KEY": "-----BEGIN x"},
            "FIREBASE_CLIENT_EMAIL",
        ),
        (
            {
                "FIREBASE_PROJECT_ID": "omni-prod-1",
                "FIREBASE_PRIVATE_KEY": "secret-not-a-key",
                "FIREBASE_CLIENT_EMAIL": "a@b.test",
            },
            "FIREBASE_PRIVATE_KEY",
        ),
        (
            {
                "FIREBASE_PROJECT_ID": "omni-prod-1",
                "FIREBASE_PRIVATE_KEY": "-----BEGIN PRIVATE KEY-----\\nsecretsecret\\n",
                "FIREBASE_CLIENT_EMAIL": "a@b.test",
            },
            "FIREBASE_PRIVATE_KEY",
        ),
        (
            {
                "FIREBASE_PROJECT_ID": "Not A Project",
                "FIREBASE_PRIVATE_KEY": "-----BEGIN PRIVATE KEY-----",
                "FIREBASE_CLIENT_EMAIL": "a@b.test",
            },
            "FIREBASE_PROJECT_ID",
        ),
        (
            {"GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent/key.json"},
            "GOOGLE_APPLICATION_CREDENTIALS",
        ),
        ({"FIRESTORE_EMULATOR_HOST": "localhost"}, "FIRESTORE_EMULATOR_HOST"),
    ],
)
def test_missing_or_malformed_credentials_name_the_variable(environ, variable):
    """Each missing or malformed setting raises ConfigError naming the variable, and the
    message never repeats a secret."""
    with pytest.raises(ConfigError) as raised:
        settings_from_environment("omni-prod-1", environ)
    assert raised.value.details["variable"] == variable
    assert variable in raised.value.message
    assert "secret" not in raised.value.message


def test_a_demo_project_needs_the_emulator():
    """A demo- project exists only on the emulator: without FIRESTORE_EMULATOR_HOST it is a
    ConfigError naming OMNICHANNEL_STORE; with it, anonymous credentials are used."""
    with pytest.raises(ConfigError, match="FIRESTORE_EMULATOR_HOST"):
        settings_from_environment("demo-omni", {})
    settings = settings_from_environment("demo-omni", {"FIRESTORE_EMULATOR_HOST": "127.0.0.1:1"})
    assert settings.facts() == {
        "project": "demo-omni",
        "credentials": "emulator",
        "emulator": "127.0.0.1:1",
    }


def test_open_database_takes_a_firestore_url(emulated):
    """OMNICHANNEL_STORE=firestore://PROJECT builds the Firestore database for that project
    (not connected yet); anything after the project is refused, naming the variable."""
    database = open_database("firestore://demo-omni-url")
    assert isinstance(database, FirestoreDatabase)
    assert database.settings.project == "demo-omni-url"
    assert database.backend == "firestore"
    with pytest.raises(RuntimeError, match="open"):
        database.client  # noqa: B018 - not connected before open()
    for url in ("firestore://demo-omni/extra", "firestore://demo-omni?x=1"):
        with pytest.raises(ConfigError, match="OMNICHANNEL_STORE"):
            open_database(url)


def test_sqlite_users_never_import_firebase(tmp_path: Path):
    """Opening every built-in store on a SQLite database, and writing to it, imports
    neither firebase-admin nor the Firestore client."""
    script = f"""
import asyncio, sys
from omnichannel_core.hooktypes import InboundMessage
from omnichannel_core.store import open_database
from tests.support.stores import open_stores

async def main():
    stores = await open_stores(open_database({str(tmp_path / "x.db")!r}))
    await stores.inbox.ingest_inbound("sms", InboundMessage("p1", "+1", "hi"))
    await stores.close()

asyncio.run(main())
print([m for m in sys.modules if m.startswith(("firebase_admin", "google.cloud"))])
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=Path(__file__).parents[1],
    )
    assert result.stdout.strip() == "[]"


def test_the_index_file_declares_the_store_composite_indexes():
    """firestore.indexes.json parses, and declares a composite index for each filtered,
    sorted list: contact search, a conversation's messages, and conversations under every
    combination of the status, channel and assignee filters (the emulator needs no index,
    so only this test notices one missing)."""
    declared = json.loads((Path(__file__).parents[1] / "firestore.indexes.json").read_text())
    indexes = {
        (
            index["collectionGroup"],
            tuple(
                (field["fieldPath"], field.get("order") or field["arrayConfig"])
                for field in index["fields"]
            ),
        )
        for index in declared["indexes"]
    }
    expected = {
        ("contacts", (("search_prefixes", "CONTAINS"), ("created_at", "DESCENDING"))),
        ("messages", (("conversation_id", "ASCENDING"), ("created_at", "ASCENDING"))),
        (
            "messages",
            (
                ("conversation_id", "ASCENDING"),
                ("status", "ASCENDING"),
                ("created_at", "ASCENDING"),
            ),
        ),
    }
    expected |= {  # the CRM's: a contact's notes and timeline, newest first
        ("crm_notes", (("contact_id", "ASCENDING"), ("created_at", "DESCENDING"))),
        ("crm_timeline", (("contact_id", "ASCENDING"), ("at", "DESCENDING"))),
    }
    filters = ("status", "channel", "assignee")
    for size in (1, 2, 3):
        for combination in itertools.combinations(filters, size):
            fields = tuple((name, "ASCENDING") for name in combination)
            expected.add(("conversations", (*fields, ("last_activity_at", "DESCENDING"))))
    assert expected <= indexes
    ttl = {(o["collectionGroup"], o["fieldPath"]) for o in declared["fieldOverrides"] if o["ttl"]}
    assert ("parked_statuses", "expire_at") in ttl


def test_the_history_pages_on_the_automatic_index_of_its_time():
    """A conversation's history (its ``changes`` subcollection, unfiltered, by ``at`` then
    id) is served by Firestore's automatic single-field index on ``at``, which orders ties
    by document name in the same direction: it needs no composite index, only that no
    field override of firestore.indexes.json turns that one off."""
    declared = json.loads((Path(__file__).parents[1] / "firestore.indexes.json").read_text())
    overrides = [
        override
        for override in declared["fieldOverrides"]
        if override["collectionGroup"] == "changes" and override["fieldPath"] in ("at", "*")
    ]
    assert all(
        any(index.get("order") == "ASCENDING" for index in override["indexes"])
        for override in overrides
    )


@pytest.mark.parametrize("prefix", ["ct", "cv", "msg", "chg", "usr", "key", "aud"])
def test_page_cursors_decode_only_to_positions_of_their_list(prefix):
    """The Firestore lists' cursor decoding (firestore_paging.decode_position) refuses a
    cursor of the right shape that a list of ``prefix`` ids never makes (``["", ""]``,
    another timestamp format, another list's id, a path) with InvalidInput naming the
    cursor, and reads one it could make as its time and document id."""
    for cursor in forged_cursors(prefix):
        with pytest.raises(InvalidInput) as refused:
            paging.decode_position(cursor, prefix)
        assert refused.value.details == {"parameter": "cursor"}
    record_id = f"{prefix}_{FORGED_ID_BODY}"
    at, document_id = paging.decode_position(encode_cursor(FORGED_AT, record_id), prefix)
    assert (format_timestamp(at), document_id) == (FORGED_AT, record_id)
    assert paging.decode_position(None, prefix) is None
