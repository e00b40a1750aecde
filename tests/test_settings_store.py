"""The settings' store on SQLite and on the Firestore emulator: one contract for both backends
(the settings record and its version, a change with its event and audit entry, the canned
responses with their unique shortcuts and their pages, the away messages' ledger)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from omnichannel_core.audit import AuditEntry
from omnichannel_core.errors import Conflict, InvalidInput, NotFound
from omnichannel_core.modules.settings.records import (
    AwayMessage,
    CannedResponse,
    Holiday,
    Settings,
    StoredValue,
    TimeRange,
    WeekHours,
)
from omnichannel_core.modules.settings.store import (
    SETTINGS_UPDATED,
    AwayClaim,
    AwayVerdict,
    SettingsStore,
    settings_store_spec,
)
from omnichannel_core.store import KERNEL_STORES
from omnichannel_core.testing.stores import run_store

STORE = settings_store_spec()
START = datetime(2025, 5, 1, 9, 30, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "firestore"])
def database(request: pytest.FixtureRequest) -> Any:
    """A fresh database of each backend (the kit's fixtures)."""
    return request.getfixturevalue(f"{request.param}_database")


def kernel(database: Any, name: str) -> Any:
    """The kernel's store ``name`` (``events``, ``audit``) on ``database``: opened by
    ``run_store``, its writes are the settings store's too."""
    (spec,) = [spec for spec in KERNEL_STORES if spec.name == name]
    return spec.factory(database.backend)(database)


def audit(n: int, action: str = "settings.updated") -> AuditEntry:
    return AuditEntry(
        f"aud_{n:04d}", action, "user", "usr_1", "settings", "settings", {"n": n}, None, START
    )


def canned(n: int, shortcut: str | None = None) -> CannedResponse:
    return CannedResponse(
        id=f"cr_{n:04d}",
        shortcut=shortcut or f"/reply{n}",
        title=f"Reply {n}",
        text=f"Thanks for writing ({n}).",
        created_at=START + timedelta(minutes=n),
        updated_at=START + timedelta(minutes=n),
        created_by="usr_1",
        updated_by="usr_1",
    )


FULL = Settings(
    name="Acme",
    timezone="Europe/Paris",
    hours=WeekHours(
        monday=(TimeRange("09:00", "12:00"), TimeRange("13:00", "18:00")),
        saturday=(),
        sunday=(TimeRange("22:00", "24:00"),),
    ),
    holidays=(Holiday("2025-12-25", "Christmas"), Holiday("2026-01-01")),
    first_response_minutes=30,
    away_messages=(AwayMessage("sms", True, "We are closed, back at 9."),),
    channel_values={
        "TWILIO_AUTH_TOKEN": StoredValue("ocs2.abcdefgh.c2VhbGVk", sealed=True),
        "TWILIO_PHONE_NUMBER": StoredValue("+15550001111"),
    },
)


def test_settings_start_as_the_defaults_at_version_zero(database):
    """Before any change the settings are the defaults (open all day every day, UTC, a
    15-minute target, nothing stored) at version 0."""

    async def scenario(store: SettingsStore) -> None:
        assert await store.version() == 0
        settings = await store.get()
        assert settings == Settings()
        assert settings.business().is_open(START)
        assert settings.first_response_minutes == 15

    run_store(STORE, database, scenario)


def test_a_change_is_kept_whole_with_the_next_version_and_its_audit(database):
    """A change stores every field as given, with the next version, when and by whom; the
    version alone reads the same; a change that returns the settings unchanged writes
    nothing (no new version)."""

    async def scenario(store: SettingsStore) -> Settings:
        first = await store.change(lambda stored: (FULL, audit(1)), "usr_1")
        assert first.version == 1
        assert first.updated_by == "usr_1"
        assert first.updated_at is not None
        assert attrs.evolve(first, updated_at=None, updated_by=None, version=0) == FULL
        assert await store.get() == first
        assert await store.version() == 1

        same = await store.change(lambda stored: (stored, None), "usr_2")
        assert same == first
        assert await store.version() == 1

        renamed = await store.change(
            lambda stored: (attrs.evolve(stored, name="Acme Ltd"), audit(2)), "usr_2"
        )
        assert (renamed.version, renamed.name, renamed.updated_by) == (2, "Acme Ltd", "usr_2")
        assert renamed.channel_values == FULL.channel_values
        assert (await store.get()).hours == FULL.hours
        return renamed

    run_store(STORE, database, scenario)


def test_a_change_reads_the_stored_settings_in_its_transaction(database):
    """Changes made at once each see the one before: ten increments of the target, run
    together, end ten higher, at version ten."""

    async def scenario(store: SettingsStore) -> None:
        def bump(stored: Settings) -> tuple[Settings, AuditEntry | None]:
            return attrs.evolve(
                stored, first_response_minutes=stored.first_response_minutes + 1
            ), None

        await asyncio.gather(*(store.change(bump, None) for _ in range(10)))
        settings = await store.get()
        assert (settings.version, settings.first_response_minutes) == (10, 25)

    run_store(STORE, database, scenario)


def test_a_change_that_raises_keeps_nothing(database):
    """A change that raises (a check made in the transaction) leaves the settings and their
    version as they were."""

    async def scenario(store: SettingsStore) -> None:
        await store.change(lambda stored: (FULL, None), None)

        def refuse(stored: Settings) -> tuple[Settings, AuditEntry | None]:
            raise InvalidInput("no", field="business.name")

        with pytest.raises(InvalidInput):
            await store.change(refuse, None)
        assert await store.version() == 1

    run_store(STORE, database, scenario)


def test_canned_responses_are_listed_by_shortcut_a_page_at_a_time(database):
    """Canned responses come by shortcut, in pages whose cursors go on where the last
    stopped; a cursor no page gave is refused."""

    async def scenario(store: SettingsStore) -> None:
        for n, shortcut in enumerate(["/thanks", "/hello", "/bye", "/hours", "/address"]):
            await store.create_canned_response(canned(n, shortcut), audit(n))
        assert await store.count_canned_responses() == 5
        first = await store.canned_responses(None, 2)
        assert [r.shortcut for r in first.items] == ["/address", "/bye"]
        second = await store.canned_responses(first.next_cursor, 2)
        assert [r.shortcut for r in second.items] == ["/hello", "/hours"]
        last = await store.canned_responses(second.next_cursor, 2)
        assert [r.shortcut for r in last.items] == ["/thanks"]
        assert last.next_cursor is None
        assert (await store.canned_responses(None, 10)).next_cursor is None
        with pytest.raises(InvalidInput):
            await store.canned_responses("bm90LWEtY3Vyc29y", 2)

    run_store(STORE, database, scenario)


def test_a_canned_response_is_created_read_changed_and_deleted(database):
    """A canned response reads as created; a change keeps what it does not touch and says
    when and by whom; deleting it makes it unknown. Each write bumps the settings'
    version."""

    async def scenario(store: SettingsStore) -> None:
        created = await store.create_canned_response(canned(1), audit(1))
        assert await store.canned_response(created.id) == created
        assert await store.version() == 1

        def retitle(stored: CannedResponse) -> tuple[CannedResponse, AuditEntry | None]:
            return attrs.evolve(stored, title="Greeting"), audit(2)

        changed = await store.change_canned_response(created.id, retitle, "usr_2")
        assert (changed.title, changed.text, changed.updated_by) == (
            "Greeting",
            created.text,
            "usr_2",
        )
        assert changed.updated_at > created.updated_at
        assert await store.canned_response(created.id) == changed
        assert await store.version() == 2

        unchanged = await store.change_canned_response(created.id, lambda r: (r, None), "usr_3")
        assert unchanged == changed
        assert await store.version() == 2

        await store.delete_canned_response(created.id, lambda deleted: audit(3))
        with pytest.raises(NotFound):
            await store.canned_response(created.id)
        assert await store.version() == 3
        with pytest.raises(NotFound):
            await store.delete_canned_response(created.id, lambda deleted: None)
        with pytest.raises(NotFound):
            await store.change_canned_response(created.id, retitle, None)
        with pytest.raises(NotFound):
            await store.canned_response("cr/../x")

    run_store(STORE, database, scenario)


def test_a_shortcut_belongs_to_one_canned_response(database):
    """A second response with a taken shortcut is refused (Conflict naming the field), as
    is moving one onto another's; a shortcut freed by a move or a delete can be taken
    again; two creating one shortcut at once: one wins."""

    async def scenario(store: SettingsStore) -> None:
        hello = await store.create_canned_response(canned(1, "/hello"), audit(1))
        with pytest.raises(Conflict) as taken:
            await store.create_canned_response(canned(2, "/hello"), audit(2))
        assert taken.value.details["field"] == "shortcut"
        bye = await store.create_canned_response(canned(3, "/bye"), audit(3))

        def onto_hello(stored: CannedResponse) -> tuple[CannedResponse, AuditEntry | None]:
            return attrs.evolve(stored, shortcut="/hello"), None

        with pytest.raises(Conflict):
            await store.change_canned_response(bye.id, onto_hello, None)
        assert (await store.canned_response(bye.id)).shortcut == "/bye"

        def to_hi(stored: CannedResponse) -> tuple[CannedResponse, AuditEntry | None]:
            return attrs.evolve(stored, shortcut="/hi"), None

        await store.change_canned_response(hello.id, to_hi, None)
        await store.change_canned_response(bye.id, onto_hello, None)  # freed by the move
        await store.delete_canned_response(bye.id, lambda deleted: None)
        await store.create_canned_response(canned(4, "/hello"), None)  # freed by the delete

        racers = [canned(10 + n, "/race") for n in range(4)]
        results = await asyncio.gather(
            *(store.create_canned_response(r, None) for r in racers), return_exceptions=True
        )
        assert sum(not isinstance(result, Exception) for result in results) == 1
        assert all(isinstance(r, Conflict) for r in results if isinstance(r, Exception))
        shortcuts = [r.shortcut for r in (await store.canned_responses(None, 50)).items]
        assert shortcuts == ["/hello", "/hi", "/race"]

    run_store(STORE, database, scenario)


def test_every_change_logs_settings_updated_and_appends_its_audit(database):
    """Each write logs ``settings.updated`` naming the new version, and appends the audit
    entry it was given, in the same transaction; one that changes nothing logs nothing."""

    async def scenario(store: SettingsStore) -> tuple[list[Any], list[Any]]:
        events, audit_log = kernel(database, "events"), kernel(database, "audit")
        await store.change(lambda stored: (FULL, audit(1)), "usr_1")
        await store.change(lambda stored: (stored, audit(9)), "usr_1")  # no change
        created = await store.create_canned_response(canned(1), audit(2, "canned.created"))
        await store.delete_canned_response(created.id, lambda d: audit(3, "canned.deleted"))
        return await events.after(None, 50), (await audit_log.list(None, None, 10)).items

    events, entries = run_store(STORE, database, scenario)
    assert [(event.type, event.record_id, dict(event.data)) for event in events] == [
        (SETTINGS_UPDATED, "settings", {"version": 1}),
        (SETTINGS_UPDATED, "settings", {"version": 2}),
        (SETTINGS_UPDATED, "settings", {"version": 3}),
    ]
    assert sorted(entry.id for entry in entries) == ["aud_0001", "aud_0002", "aud_0003"]


def test_the_index_file_keeps_the_settings_json_out_of_the_indexes():
    """firestore.indexes.json exempts the settings' and canned responses' ``data_json`` from
    indexing (the store queries only the shortcut, a single-field index)."""
    declared = json.loads((Path(__file__).parents[1] / "firestore.indexes.json").read_text())
    unindexed = {
        (override["collectionGroup"], override["fieldPath"])
        for override in declared["fieldOverrides"]
        if override["indexes"] == []
    }
    assert {("settings", "data_json"), ("settings_canned_responses", "data_json")} <= unindexed
    assert not [i for i in declared["indexes"] if i["collectionGroup"].startswith("settings")]


CLOSED = datetime(2025, 5, 9, 18, 0, tzinfo=UTC)
"""Friday's closing: the closed period the claims below are made in."""
NIGHT = CLOSED + timedelta(hours=2)


def claim(
    contact: str,
    message: str,
    at: datetime = NIGHT,
    closed_since: datetime | None = CLOSED,
    channel: str = "sms",
    limit: int = 60,
) -> AwayClaim:
    return AwayClaim(channel, contact, message, closed_since, at, limit)


def test_the_away_ledger_answers_a_customer_once_per_closed_period(database):
    """A customer is granted one away message per channel and closed period, whatever
    conversation they write in; the very message that was granted is granted again (a
    redelivered event); after the business closed again, another; with no closing at all
    (never open), one ever. Another customer, or another channel, is counted apart."""

    async def scenario(store: SettingsStore) -> list[AwayVerdict]:
        next_night = CLOSED + timedelta(days=3)
        return [
            await store.claim_away(claim("ct_1", "msg_1")),
            await store.claim_away(claim("ct_1", "msg_1", at=NIGHT + timedelta(minutes=5))),
            await store.claim_away(claim("ct_1", "msg_2", at=NIGHT + timedelta(hours=1))),
            await store.claim_away(claim("ct_2", "msg_3")),
            await store.claim_away(claim("ct_1", "msg_4", channel="email")),
            await store.claim_away(claim("ct_1", "msg_5", next_night, next_night)),
            await store.claim_away(claim("ct_3", "msg_6", closed_since=None)),
            await store.claim_away(claim("ct_3", "msg_7", next_night, closed_since=None)),
            await store.version(),  # type: ignore[list-item]
        ]

    verdicts = run_store(STORE, database, scenario)
    assert verdicts == [
        AwayVerdict.SEND,
        AwayVerdict.AGAIN,
        AwayVerdict.ANSWERED,
        AwayVerdict.SEND,
        AwayVerdict.SEND,
        AwayVerdict.SEND,
        AwayVerdict.SEND,
        AwayVerdict.ANSWERED,
        0,  # the ledger is no change of the settings
    ]


def test_the_away_ledger_keeps_each_channel_to_its_hourly_limit(database):
    """A channel is granted its hourly limit of away messages in one clock hour, counted
    exactly by claims made at once, and refused more (CAPPED, which counts nothing); a
    refused customer is granted one once the next hour begins; another channel has its
    own count."""

    async def scenario(store: SettingsStore) -> dict[str, Any]:
        racing = await asyncio.gather(
            *(store.claim_away(claim(f"ct_{n}", f"msg_{n}", limit=4)) for n in range(10))
        )
        later = NIGHT + timedelta(minutes=50)
        return {
            "racing": sorted(racing),
            "capped": await store.claim_away(claim("ct_20", "msg_20", later, limit=4)),
            "other channel": await store.claim_away(claim("ct_20", "msg_21", channel="email")),
            "next hour": await store.claim_away(
                claim("ct_20", "msg_22", NIGHT + timedelta(hours=1), limit=4)
            ),
        }

    verdicts = run_store(STORE, database, scenario)
    assert verdicts["racing"] == sorted([AwayVerdict.SEND] * 4 + [AwayVerdict.CAPPED] * 6)
    assert verdicts["capped"] == AwayVerdict.CAPPED
    assert verdicts["other channel"] == AwayVerdict.SEND
    assert verdicts["next hour"] == AwayVerdict.SEND
