"""The campaigns' store on SQLite and on the Firestore emulator: one contract for both
backends (campaigns and their status changes, the runner's queries, recipients and what
became of them, the report's counts and timeline)."""

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
from omnichannel_core.modules.campaigns.records import (
    Audience,
    AudienceKind,
    Campaign,
    CampaignMessage,
    CampaignStatus,
    Counts,
    Minute,
    QuietHours,
    Recipient,
    RecipientState,
    Schedule,
    SkipReason,
    Template,
)
from omnichannel_core.modules.campaigns.store import (
    CAMPAIGN_UPDATED,
    CampaignStore,
    campaign_store_spec,
)
from omnichannel_core.paging import encode_cursor
from omnichannel_core.store import KERNEL_STORES
from omnichannel_core.testing.stores import run_store

STORE = campaign_store_spec()
START = datetime(2025, 5, 1, 9, 30, tzinfo=UTC)
CMP = "cmp_0001"
DRAFT, SCHEDULED, RUNNING = CampaignStatus.DRAFT, CampaignStatus.SCHEDULED, CampaignStatus.RUNNING
PENDING, SKIPPED, QUEUED = RecipientState.PENDING, RecipientState.SKIPPED, RecipientState.QUEUED


@pytest.fixture(params=["sqlite", "firestore"])
def database(request: pytest.FixtureRequest) -> Any:
    """A fresh database of each backend (the kit's fixtures)."""
    return request.getfixturevalue(f"{request.param}_database")


def at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


def campaign(n: int, status: CampaignStatus = DRAFT, **fields: Any) -> Campaign:
    return Campaign(
        id=f"cmp_{n:04d}",
        name=f"campaign {n}",
        channel="sms",
        sender="sms",
        audience=Audience(AudienceKind.CONTACTS, contact_ids=("ct_1", "ct_2")),
        message=fields.pop("message", CampaignMessage(text="Hello {{first_name}}")),
        status=status,
        created_at=fields.pop("created_at", at(n)),
        updated_at=fields.pop("updated_at", at(n)),
        **fields,
    )


def audit(n: int, campaign_id: str) -> AuditEntry:
    return AuditEntry(
        f"aud_{n:04d}",
        "campaign.launched",
        "user",
        "usr_1",
        "campaign",
        campaign_id,
        {"n": n},
        "203.0.113.9",
        at(n),
    )


def moment(**delta: float) -> datetime:
    return START + timedelta(**delta)


def kernel(database: Any, name: str) -> Any:
    """The kernel's store ``name`` (``events``, ``audit``) on ``database``: opened by
    ``run_store``, its writes are the campaigns store's too."""
    (spec,) = [spec for spec in KERNEL_STORES if spec.name == name]
    return spec.factory(database.backend)(database)


async def whole(list_page: Any, limit: int) -> list[Any]:
    """Every item of a list, read ``limit`` at a time."""
    items: list[Any] = []
    cursor = None
    while True:
        page = await list_page(cursor, limit)
        assert len(page.items) <= limit
        items += page.items
        cursor = page.next_cursor
        if cursor is None:
            return items


async def recipients_of(store: CampaignStore, campaign_id: str) -> dict[str, Recipient]:
    page = await store.recipients(campaign_id, None, None, 100)
    return {recipient.contact_id: recipient for recipient in page.items}


async def queue(
    store: CampaignStore, recipient: Recipient, message_id: str, queued_at: datetime
) -> Recipient:
    """Settle ``recipient`` as queued (its message ``message_id``); the recipient as it
    is then."""
    queued = attrs.evolve(
        recipient, state=QUEUED, message_id=message_id, status="queued", queued_at=queued_at
    )
    assert await store.settle(queued)
    await store.record_outcome(
        recipient.campaign_id, recipient.contact_id, "queued", False, None, queued_at
    )
    return queued


async def by_message(store: CampaignStore, message_id: str) -> Recipient | None:
    """The recipient of campaign CMP whose message this is, if any."""
    page = await store.recipients(CMP, None, None, 200)
    return next((each for each in page.items if each.message_id == message_id), None)


def test_campaigns_are_created_read_back_and_listed_newest_first(database):
    """A campaign reads back whole (schedule, quiet hours, template, defaults, rate...);
    an unknown id, or one no document can have, is NotFound; the list comes newest first
    (ties by id), in pages, with a status only those of it; a cursor this list did not
    make is InvalidInput."""

    async def scenario(store: CampaignStore) -> None:
        rich = campaign(
            1,
            SCHEDULED,
            schedule=Schedule(at(60), "Europe/Paris", QuietHours("21:00", "08:00")),
            message=CampaignMessage(
                text="Hi {{first_name}}",
                template=Template("HX123", {"1": "{{first_name}}"}),
                defaults={"first_name": "there"},
            ),
            rate=2.5,
            created_by="usr_1",
            launched_at=at(2),
        )
        assert await store.create(rich) == rich
        for n in (3, 2, 4):
            await store.create(campaign(n))
        await store.create(campaign(5, created_at=at(4)))
        assert await store.get(rich.id) == rich
        for unknown in ("cmp_none", "a/b"):
            with pytest.raises(NotFound):
                await store.get(unknown)

        listed = await whole(lambda c, n: store.list_campaigns(None, c, n), 2)
        assert [c.id for c in listed] == ["cmp_0005", "cmp_0004", "cmp_0003", "cmp_0002", rich.id]
        drafts = await whole(lambda c, n: store.list_campaigns(DRAFT, c, n), 3)
        assert [c.id for c in drafts] == ["cmp_0005", "cmp_0004", "cmp_0003", "cmp_0002"]
        assert (await store.list_campaigns(SCHEDULED, None, 10)).items == [rich]
        assert (await store.list_campaigns(RUNNING, None, 10)).items == []
        for bad in (
            "nonsense",
            encode_cursor("2025-05-01T09:30:00.000000Z", "seg_0001"),
            encode_cursor("yesterday", "cmp_0001"),
        ):
            with pytest.raises(InvalidInput):
                await store.list_campaigns(None, bad, 10)

    run_store(STORE, database, scenario)


def test_a_change_is_made_only_in_an_allowed_status_and_is_logged_and_audited(database):
    """``change`` sets the fields and ``updated_at`` while the status is one allowed,
    logging ``campaign.updated`` (the campaign's id, its new status) and appending the
    audit entry in the same write (creating logged the event too). In another status it is
    Conflict naming the status; with an audit entry whose id is taken, Conflict: either
    way nothing is written, no event, no entry. ``log_progress`` logs the event again and
    changes nothing. An unknown id is NotFound for both."""

    async def scenario(store: CampaignStore) -> None:
        events, audit_log = kernel(database, "events"), kernel(database, "audit")
        draft = await store.create(campaign(1))
        launched = audit(1, draft.id)
        changed = await store.change(
            draft.id,
            {"name": "spring sale", "status": SCHEDULED, "launched_at": at(5)},
            when={DRAFT},
            audit=launched,
        )
        assert changed == attrs.evolve(
            draft,
            name="spring sale",
            status=SCHEDULED,
            launched_at=at(5),
            updated_at=changed.updated_at,
        )
        assert changed.updated_at > draft.updated_at
        assert await store.get(draft.id) == changed
        logged = [(e.type, e.record_id, e.data) for e in await events.after(None, 50)]
        assert logged == [
            (CAMPAIGN_UPDATED, draft.id, {"status": "draft"}),
            (CAMPAIGN_UPDATED, draft.id, {"status": "scheduled"}),
        ]
        assert (await audit_log.list(None, None, 10)).items == [launched]

        with pytest.raises(Conflict) as refused:
            await store.change(draft.id, {"name": "x"}, when={DRAFT}, audit=audit(2, draft.id))
        assert refused.value.details == {"status": "scheduled"}
        with pytest.raises(Conflict):
            await store.change(draft.id, {"name": "x"}, when={SCHEDULED}, audit=launched)
        assert await store.get(draft.id) == changed
        assert len(await events.after(None, 50)) == 2
        assert (await audit_log.list(None, None, 10)).items == [launched]

        await store.log_progress(draft.id)
        last = (await events.after(None, 50))[-1]
        assert (last.type, last.record_id, last.data) == (
            CAMPAIGN_UPDATED,
            draft.id,
            {"status": "scheduled"},
        )
        assert await store.get(draft.id) == changed
        for unknown in ("cmp_none", "a/b"):
            with pytest.raises(NotFound):
                await store.change(unknown, {"name": "x"}, when=set(CampaignStatus))
            with pytest.raises(NotFound):
                await store.log_progress(unknown)

    run_store(STORE, database, scenario)


def test_a_campaign_is_deleted_with_its_recipients_only_in_an_allowed_status(database, monkeypatch):
    """``delete`` takes the campaign and its recipients (on Firestore in batches, here of
    2) while its status is allowed; in another it is Conflict naming the status and
    nothing is deleted; an unknown id is NotFound. Another campaign's recipients stay."""
    if database.backend == "firestore":
        monkeypatch.setattr("omnichannel_core.modules.campaigns.firestore.BATCH", 2)

    async def scenario(store: CampaignStore) -> None:
        draft = await store.create(campaign(1))
        kept = await store.create(campaign(2, SCHEDULED))
        await store.add_recipients(draft.id, "sms", ["ct_1", "ct_2", "ct_3"], 0)
        await store.add_recipients(kept.id, "sms", ["ct_1"], 0)

        with pytest.raises(Conflict) as refused:
            await store.delete(kept.id, when={DRAFT})
        assert refused.value.details == {"status": "scheduled"}
        assert await store.get(kept.id) == kept

        await store.delete(draft.id, when={DRAFT})
        with pytest.raises(NotFound):
            await store.get(draft.id)
        assert (await store.recipients(draft.id, None, None, 10)).items == []
        assert await store.next_seq(draft.id) == 0
        assert list(await recipients_of(store, kept.id)) == ["ct_1"]
        for unknown in (draft.id, "a/b"):
            with pytest.raises(NotFound):
                await store.delete(unknown, when={DRAFT})

    run_store(STORE, database, scenario)


def test_due_campaigns_and_recently_finished_ones(database):
    """``due`` lists, oldest first, the running campaigns and the scheduled ones with no
    start or a start at or before ``now``: never a draft, a paused one, or one scheduled
    later. ``recently_finished`` lists the completed and cancelled ones finished at or
    after ``since`` (never one in another status, whatever its ``finished_at``)."""
    now = at(100)

    async def scenario(store: CampaignStore) -> None:
        made = [
            campaign(1, SCHEDULED),
            campaign(2, SCHEDULED, schedule=Schedule(at(99))),
            campaign(3, SCHEDULED, schedule=Schedule(now)),
            campaign(4, SCHEDULED, schedule=Schedule(at(101))),
            campaign(5, RUNNING, schedule=Schedule(at(200))),
            campaign(6, CampaignStatus.PAUSED),
            campaign(7),
            campaign(8, CampaignStatus.COMPLETED, finished_at=at(90)),
            campaign(9, CampaignStatus.CANCELLED, finished_at=at(80)),
            campaign(10, CampaignStatus.COMPLETED, finished_at=at(79)),
            campaign(11, CampaignStatus.PAUSED, finished_at=at(95)),
        ]
        for each in reversed(made):
            await store.create(each)

        assert await store.due(now) == [made[0], made[1], made[2], made[4]]
        finished = await store.recently_finished(at(80))
        assert sorted(finished, key=lambda c: c.id) == [made[7], made[8]]
        assert await store.recently_finished(at(91)) == []

    run_store(STORE, database, scenario)


def test_recipients_are_added_once_numbered_in_order(database, monkeypatch):
    """``add_recipients`` adds pending recipients numbered from ``first_seq`` in their
    order and says how many; the same contacts again add nobody, and a batch partly added
    adds only the others (each numbered by its place in the batch). A batch of 500, a
    freeze's, is added whole (on Firestore, the longest a transaction takes; smaller
    batches are tried here in pieces of 2). ``next_seq`` is one after the highest."""

    async def scenario(store: CampaignStore) -> None:
        assert await store.next_seq(CMP) == 0
        assert await store.add_recipients(CMP, "sms", ["ct_a", "ct_b", "ct_c"], 0) == 3
        assert await store.add_recipients(CMP, "sms", ["ct_a", "ct_b", "ct_c"], 3) == 0
        assert await store.next_seq(CMP) == 3
        assert await store.add_recipients(CMP, "sms", ["ct_c", "ct_d"], 3) == 1
        assert await store.add_recipients(CMP, "sms", [], 5) == 0
        assert await store.next_seq(CMP) == 5
        assert await store.add_recipients("cmp_0002", "whatsapp", ["ct_a"], 0) == 1
        page = await store.recipients(CMP, None, None, 10)
        assert page.items == [
            Recipient(CMP, "ct_a", 0, "sms"),
            Recipient(CMP, "ct_b", 1, "sms"),
            Recipient(CMP, "ct_c", 2, "sms"),
            Recipient(CMP, "ct_d", 4, "sms"),
        ]
        assert page.next_cursor is None

        if database.backend == "firestore":
            monkeypatch.setattr("omnichannel_core.modules.campaigns.firestore.WRITES", 2)
        five = [f"ct_{n}" for n in range(5)]
        assert await store.add_recipients("cmp_0003", "sms", five, 10) == 5
        assert await store.add_recipients("cmp_0003", "sms", five, 15) == 0
        listed = (await store.recipients("cmp_0003", None, None, 10)).items
        assert [(r.contact_id, r.seq) for r in listed] == [(c, 10 + n) for n, c in enumerate(five)]
        monkeypatch.undo()

        freeze = [f"ct_{n:04d}" for n in range(500)]
        assert await store.add_recipients("cmp_0004", "sms", freeze, 0) == 500
        assert await store.add_recipients("cmp_0004", "sms", freeze, 500) == 0
        assert await store.next_seq("cmp_0004") == 500

    run_store(STORE, database, scenario)


def test_pending_recipients_come_in_seq_order_once_their_time_has_come(database):
    """``pending`` lists pending recipients in ``seq`` order, at most ``limit``, leaving
    out those whose ``not_before`` is after ``now``; ``settle`` writes a recipient only
    while the stored one is pending (False once another runner settled it, or for no such
    recipient); ``has_pending`` holds while any is pending, those waiting included."""

    async def scenario(store: CampaignStore) -> None:
        await store.add_recipients(CMP, "sms", [f"ct_{n}" for n in range(6)], 0)
        found = await recipients_of(store, CMP)
        waiting = attrs.evolve(found["ct_0"], not_before=at(30))
        woken = attrs.evolve(found["ct_1"], not_before=at(5))
        assert await store.settle(waiting)
        assert await store.settle(woken)
        queued = await queue(store, found["ct_2"], "msg_2", at(1))
        assert not await store.settle(attrs.evolve(queued, status="sent"))
        assert not await store.settle(Recipient(CMP, "ct_none", 9, "sms"))
        assert await recipients_of(store, CMP) == {
            **found,
            "ct_0": waiting,
            "ct_1": woken,
            "ct_2": queued,
        }

        assert await store.pending(CMP, at(10), 10) == [
            woken,
            found["ct_3"],
            found["ct_4"],
            found["ct_5"],
        ]
        assert [r.seq for r in await store.pending(CMP, at(10), 2)] == [1, 3]
        assert [r.seq for r in await store.pending(CMP, at(5), 10)] == [1, 3, 4, 5]
        assert [r.seq for r in await store.pending(CMP, at(4), 10)] == [3, 4, 5]
        assert [r.seq for r in await store.pending(CMP, at(30), 3)] == [0, 1, 3]
        assert await store.has_pending(CMP)

        for contact_id in ("ct_1", "ct_3", "ct_4", "ct_5"):
            skipped = attrs.evolve(found[contact_id], state=SKIPPED, skip_reason=SkipReason.REFUSED)
            assert await store.settle(skipped)
        assert await store.pending(CMP, at(10), 10) == []
        assert await store.has_pending(CMP)  # ct_0 waits for the end of quiet hours
        assert await store.settle(
            attrs.evolve(waiting, state=SKIPPED, skip_reason=SkipReason.OPTED_OUT)
        )
        assert not await store.has_pending(CMP)
        assert not await store.has_pending("cmp_none")
        assert await store.pending("cmp_none", at(10), 10) == []

    run_store(STORE, database, scenario)


def twin(database: Any) -> Any:
    """Another handle on ``database``, as another server has (built, not opened)."""
    if database.backend == "sqlite":
        return type(database)(database.path)
    return type(database)(settings=database.settings, prefix=database.prefix)


def test_two_servers_at_once_cannot_both_win(database):
    """Two servers settling the same pending recipient at once (each its own database
    handle, so on Firestore nothing but the transactions keeps them apart): one writes it,
    the other is told it no longer is pending."""

    async def scenario(store: CampaignStore) -> None:
        other_database = twin(database)
        await other_database.open()
        other = type(store)(other_database)
        try:
            await store.add_recipients(CMP, "sms", ["ct_1"], 0)
            (recipient,) = (await recipients_of(store, CMP)).values()
            first = attrs.evolve(recipient, state=QUEUED, message_id="msg_1", queued_at=at(1))
            second = attrs.evolve(recipient, state=SKIPPED, skip_reason=SkipReason.REFUSED)
            settled = await asyncio.gather(store.settle(first), other.settle(second))
            assert sorted(settled) == [False, True]
            assert (await recipients_of(store, CMP))["ct_1"] == (first if settled[0] else second)
        finally:
            await other_database.close()

    run_store(STORE, database, scenario)


def test_skip_pending_skips_at_most_limit_pending_recipients(database, monkeypatch):
    """``skip_pending`` skips pending recipients, waiting ones too, at most ``limit``, for
    the reason (clearing ``not_before``), and says how many; queued and skipped ones stay
    as they were. On Firestore the work goes in transactions of 2 here."""
    if database.backend == "firestore":
        monkeypatch.setattr("omnichannel_core.modules.campaigns.firestore.WRITES", 2)

    async def scenario(store: CampaignStore) -> None:
        await store.add_recipients(CMP, "sms", [f"ct_{n}" for n in range(6)], 0)
        await store.add_recipients("cmp_0002", "sms", ["ct_0"], 0)
        found = await recipients_of(store, CMP)
        queued = await queue(store, found["ct_0"], "msg_0", at(1))
        assert await store.settle(attrs.evolve(found["ct_1"], not_before=at(30)))
        no_address = attrs.evolve(found["ct_2"], state=SKIPPED, skip_reason=SkipReason.NO_ADDRESS)
        assert await store.settle(no_address)

        assert await store.skip_pending(CMP, SkipReason.CANCELLED, 3) == 3
        assert await store.has_pending(CMP)
        assert await store.skip_pending(CMP, SkipReason.CANCELLED, 10) == 1
        assert await store.skip_pending(CMP, SkipReason.CANCELLED, 10) == 0
        assert not await store.has_pending(CMP)
        cancelled = {
            contact_id: attrs.evolve(
                found[contact_id], state=SKIPPED, skip_reason=SkipReason.CANCELLED
            )
            for contact_id in ("ct_1", "ct_3", "ct_4", "ct_5")
        }
        assert await recipients_of(store, CMP) == {
            "ct_0": queued,
            "ct_2": no_address,
            **cancelled,
        }
        assert await store.has_pending("cmp_0002")

    run_store(STORE, database, scenario)


def test_outcomes_are_mirrored_and_stamped_once(database):
    """``record_outcome`` mirrors the
    message's status, ``in_doubt`` and error code, and stamps each time the status has
    reached (``read``: sent, delivered and read) the first time only; for no such recipient
    it does nothing. ``stamp`` sets ``replied_at`` or ``opted_out_at`` once (False after,
    and for no such recipient), and refuses another name. ``of_contact`` lists a contact's
    queued recipients on a channel, most recently queued first."""

    async def scenario(store: CampaignStore) -> None:
        await store.add_recipients(CMP, "sms", ["ct_a", "ct_b", "ct_c", "ct_d"], 0)
        found = await recipients_of(store, CMP)
        a = await queue(store, found["ct_a"], "msg_a", at(1))
        for contact_id in ("ct_b", "ct_c", "ct_d"):
            await queue(store, found[contact_id], f"msg_{contact_id[-1]}", at(1))
        assert await by_message(store, "msg_a") == a
        assert await by_message(store, "msg_none") is None

        await store.record_outcome(CMP, "ct_a", "read", False, None, at(3))
        read = attrs.evolve(a, status="read", sent_at=at(3), delivered_at=at(3), read_at=at(3))
        assert await by_message(store, "msg_a") == read
        await store.record_outcome(CMP, "ct_a", "read", False, None, at(9))
        assert await by_message(store, "msg_a") == read

        await store.record_outcome(CMP, "ct_b", "sent", False, None, at(4))
        await store.record_outcome(CMP, "ct_b", "delivered", False, None, at(6))
        b = await by_message(store, "msg_b")
        assert b is not None
        assert (b.status, b.sent_at, b.delivered_at, b.read_at) == ("delivered", at(4), at(6), None)

        await store.record_outcome(CMP, "ct_c", "failed", False, "30007", at(5))
        c = await by_message(store, "msg_c")
        assert c is not None
        assert (c.status, c.error_code, c.failed_at, c.sent_at) == ("failed", "30007", at(5), None)

        await store.record_outcome(CMP, "ct_d", "sending", True, None, at(5))
        d = await by_message(store, "msg_d")
        assert d is not None
        assert (d.status, d.in_doubt, d.sent_at) == ("sending", True, None)
        await store.record_outcome(CMP, "ct_d", "sent", False, None, at(7))
        d = await by_message(store, "msg_d")
        assert d is not None
        assert (d.status, d.in_doubt, d.sent_at) == ("sent", False, at(7))

        await store.record_outcome(CMP, "ct_none", "sent", False, None, at(7))
        assert await store.recipients(CMP, None, None, 10) == await store.recipients(
            CMP, QUEUED, None, 10
        )
        assert len((await store.recipients(CMP, None, None, 10)).items) == 4

        assert await store.stamp(CMP, "ct_a", "replied_at", at(10))
        assert not await store.stamp(CMP, "ct_a", "replied_at", at(11))
        assert await store.stamp(CMP, "ct_a", "opted_out_at", at(12))
        assert await by_message(store, "msg_a") == attrs.evolve(
            read, replied_at=at(10), opted_out_at=at(12)
        )
        assert not await store.stamp(CMP, "ct_none", "replied_at", at(10))
        with pytest.raises(ValueError, match="not a stamp"):
            await store.stamp(CMP, "ct_b", "sent_at", at(10))

        await store.add_recipients("cmp_0002", "sms", ["ct_a"], 0)
        await store.add_recipients("cmp_0003", "sms", ["ct_a"], 0)
        await store.add_recipients("cmp_0004", "whatsapp", ["ct_a"], 0)
        later = await queue(store, Recipient("cmp_0002", "ct_a", 0, "sms"), "msg_a2", at(2))
        on_whatsapp = await queue(
            store, Recipient("cmp_0004", "ct_a", 0, "whatsapp"), "msg_a4", at(3)
        )
        assert [r.campaign_id for r in await store.of_contact("ct_a", "sms")] == [
            "cmp_0002",
            CMP,
        ]
        assert (await store.of_contact("ct_a", "sms"))[0] == later
        assert await store.of_contact("ct_a", "whatsapp") == [on_whatsapp]
        assert await store.of_contact("ct_none", "sms") == []

    run_store(STORE, database, scenario)


def test_counts_and_timeline_tell_what_became_of_the_recipients(database):
    """``counts`` sorts a campaign's recipients: pending, skipped by reason, queued, in
    doubt, sent (and beyond), delivered, read, undelivered, failed by code (``unknown``
    without one), cancelled, replied, opted out; another campaign's are not counted, and a
    campaign with none counts nothing. ``timeline`` counts sends and deliveries by UTC
    minute, oldest first, leaving out minutes with neither."""

    async def scenario(store: CampaignStore) -> None:
        contacts = ["p1", "p2", "s1", "s2", "s3", *(f"q{n}" for n in range(1, 11))]
        await store.add_recipients(CMP, "sms", contacts, 0)
        await store.add_recipients("cmp_0002", "sms", ["q1"], 0)
        found = await recipients_of(store, CMP)
        assert await store.settle(attrs.evolve(found["p2"], not_before=at(60)))
        for contact_id, reason in (
            ("s1", SkipReason.OPTED_OUT),
            ("s2", SkipReason.NO_ADDRESS),
            ("s3", SkipReason.NO_ADDRESS),
        ):
            assert await store.settle(
                attrs.evolve(found[contact_id], state=SKIPPED, skip_reason=reason)
            )
        for n in range(1, 11):
            await queue(store, found[f"q{n}"], f"msg_q{n}", at(0))
        other = await queue(store, Recipient("cmp_0002", "q1", 0, "sms"), "msg_other", at(0))

        def outcome(contact_id: str, status: str, when: datetime, **fields: Any) -> Any:
            return store.record_outcome(
                CMP,
                contact_id,
                status,
                fields.get("in_doubt", False),
                fields.get("error_code"),
                when,
            )

        await outcome("q2", "sending", at(0), in_doubt=True)
        await outcome("q3", "sent", moment(seconds=10))
        await outcome("q4", "sent", moment(seconds=20))
        await outcome("q4", "delivered", moment(seconds=65))
        await outcome("q5", "read", moment(seconds=90))
        await outcome("q6", "sent", moment(seconds=40))
        await outcome("q6", "undelivered", moment(minutes=2))
        await outcome("q7", "failed", at(1), error_code="30007")
        await outcome("q8", "failed", at(1))
        await outcome("q9", "cancelled", at(1))
        await outcome("q10", "sent", moment(minutes=4, seconds=59, microseconds=999999))
        assert await store.stamp(CMP, "q5", "replied_at", at(3))
        assert await store.stamp(CMP, "q10", "opted_out_at", at(6))
        await store.record_outcome("cmp_0002", "q1", "read", False, None, at(9))
        assert other.status == "queued"

        assert await store.counts(CMP) == Counts(
            targeted=15,
            pending=2,
            skipped={"opted_out": 1, "no_address": 2},
            queued=1,
            in_doubt=1,
            sent=5,
            delivered=2,
            undelivered=1,
            read=1,
            failed={"30007": 1, "unknown": 1},
            cancelled=1,
            replied=1,
            opted_out=1,
        )
        assert await store.timeline(CMP) == [
            Minute(at(0), sent=3, delivered=0),
            Minute(at(1), sent=1, delivered=2),
            Minute(at(4), sent=1, delivered=0),
        ]
        assert await store.counts("cmp_none") == Counts()
        assert await store.timeline("cmp_none") == []

    run_store(STORE, database, scenario)


def test_recipients_list_in_seq_order_in_pages(database):
    """A campaign's recipients come in ``seq`` order, in pages whose cursors go on where
    the last ended, all of them or those of one state; a cursor past the last gives an
    empty page, and one this list did not make (of another shape, not a number, too long)
    is InvalidInput."""

    async def scenario(store: CampaignStore) -> None:
        await store.add_recipients(CMP, "sms", ["ct_0", "ct_1", "ct_2", "ct_3"], 0)
        await store.add_recipients(CMP, "sms", ["ct_4", "ct_5", "ct_6"], 10)
        await store.add_recipients("cmp_0002", "sms", ["ct_0"], 0)
        found = await recipients_of(store, CMP)
        for contact_id in ("ct_1", "ct_3", "ct_5"):
            skipped = attrs.evolve(found[contact_id], state=SKIPPED, skip_reason=SkipReason.REFUSED)
            assert await store.settle(skipped)

        listed = await whole(lambda c, n: store.recipients(CMP, None, c, n), 3)
        assert [r.seq for r in listed] == [0, 1, 2, 3, 10, 11, 12]
        skipped = await whole(lambda c, n: store.recipients(CMP, SKIPPED, c, n), 2)
        assert [r.contact_id for r in skipped] == ["ct_1", "ct_3", "ct_5"]
        first = await store.recipients(CMP, PENDING, None, 2)
        assert [r.seq for r in first.items] == [0, 2]
        assert first.next_cursor is not None
        second = await store.recipients(CMP, PENDING, first.next_cursor, 2)
        assert [r.seq for r in second.items] == [10, 12]
        assert second.next_cursor is None
        assert (await store.recipients(CMP, None, encode_cursor("12"), 5)).items == []
        assert (await store.recipients(CMP, QUEUED, None, 5)).items == []
        for bad in (
            "nonsense",
            encode_cursor("x"),
            encode_cursor("-1"),
            encode_cursor("1", "2"),
            encode_cursor("\N{SUPERSCRIPT TWO}"),
            encode_cursor("1" * 13),
        ):
            with pytest.raises(InvalidInput):
                await store.recipients(CMP, None, bad, 5)

    run_store(STORE, database, scenario)


def test_the_index_file_declares_the_campaign_stores_composite_indexes():
    """firestore.indexes.json declares a composite index for each of the Firestore store's
    queries that needs one (the emulator needs none, so only this test notices one
    missing), and keeps a campaign's ``data_json`` out of the indexes."""
    declared = json.loads((Path(__file__).parents[1] / "firestore.indexes.json").read_text())
    indexes = {
        (
            index["collectionGroup"],
            tuple((field["fieldPath"], field["order"]) for field in index["fields"]),
        )
        for index in declared["indexes"]
        if index["collectionGroup"].startswith("campaign")
    }
    up, down = "ASCENDING", "DESCENDING"
    assert indexes == {
        ("campaigns", (("status", up), ("created_at", down))),
        ("campaigns", (("status", up), ("start_at", up))),
        ("campaign_recipients", (("campaign_id", up), ("seq", up))),
        ("campaign_recipients", (("campaign_id", up), ("seq", down))),
        ("campaign_recipients", (("campaign_id", up), ("state", up), ("seq", up))),
        (
            "campaign_recipients",
            (("campaign_id", up), ("state", up), ("not_before", up), ("seq", up)),
        ),
        (
            "campaign_recipients",
            (("contact_id", up), ("channel", up), ("state", up), ("queued_at", down)),
        ),
    }
    unindexed = {
        (override["collectionGroup"], override["fieldPath"])
        for override in declared["fieldOverrides"]
        if override["indexes"] == []
    }
    assert ("campaigns", "data_json") in unindexed
