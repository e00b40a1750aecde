"""The media module's store, and the inbox's ``replace_media``, on SQLite and on the
Firestore emulator: one contract for both backends."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import attrs
import pytest

from omnichannel_core.config import Config
from omnichannel_core.errors import NotFound
from omnichannel_core.hooktypes import InboundMessage
from omnichannel_core.ids import new_id
from omnichannel_core.models import Media, media_url
from omnichannel_core.modules.inbox.events import InboxEvent
from omnichannel_core.modules.inbox.plugin import STORE as INBOX_STORE
from omnichannel_core.modules.inbox.store import InboxStore
from omnichannel_core.modules.media.access import MediaAccess
from omnichannel_core.modules.media.blobs import blobs_for
from omnichannel_core.modules.media.keeper import Keeper
from omnichannel_core.modules.media.plugin import STORE as MEDIA_STORE
from omnichannel_core.modules.media.records import FetchState, PendingFetch, StoredMedia
from omnichannel_core.modules.media.store import MediaStore
from omnichannel_core.store.protocols import EventLog
from omnichannel_core.testing.stores import run_store
from omnichannel_core.timestamps import utcnow


@pytest.fixture(params=["sqlite", "firestore"])
def database(request: pytest.FixtureRequest) -> Any:
    """A fresh database of each backend (the kit's fixtures)."""
    return request.getfixturevalue(f"{request.param}_database")


def stored(media_id: str, uploaded_by: str | None = None) -> StoredMedia:
    return StoredMedia(
        id=media_id,
        content_type="image/png",
        size=42,
        filename="a.png",
        sha256="ab" * 32,
        created_at=utcnow(),
        uploaded_by=uploaded_by,
    )


def pending(message_id: str, index: int, due_in: float = 0.0) -> PendingFetch:
    now = utcnow()
    return PendingFetch(
        message_id,
        index,
        "twilio",
        Media(url=f"https://api.twilio.com/m/{message_id}/{index}", content_type="image/jpeg"),
        due_at=now + timedelta(seconds=due_in),
        updated_at=now,
    )


def test_media_ids_name_what_was_kept(database):
    """A record is read back as written; an unknown id (or one no document can have) is
    NotFound."""

    async def scenario(store: MediaStore) -> None:
        upload = stored("med_1", uploaded_by="user:usr_1")
        await store.add_media(upload)
        await store.add_media(stored("med_2"))
        assert await store.get_media("med_1") == upload
        assert (await store.get_media("med_2")).uploaded_by is None
        for unknown in ("med_none", "a/b", ".."):
            with pytest.raises(NotFound):
                await store.get_media(unknown)

    run_store(MEDIA_STORE, database, scenario)


def test_the_messages_holding_an_item_are_listed_newest_first(database):
    """The messages recorded as holding an item come back newest id first, each once
    however often recorded, at most ``limit``; an item none holds (or an id no document can
    have) has none."""

    async def scenario(store: MediaStore) -> None:
        await store.add_media(stored("med_1"))
        await store.add_holders("msg_01b", ["med_1", "med_2"])
        await store.add_holders("msg_01a", ["med_1"])
        await store.add_holders("msg_01c", ["med_1"])
        await store.add_holders("msg_01a", ["med_1"])
        await store.add_holders("msg_01d", [])
        assert await store.holders("med_1", 10) == ["msg_01c", "msg_01b", "msg_01a"]
        assert await store.holders("med_1", 2) == ["msg_01c", "msg_01b"]
        assert await store.holders("med_2", 10) == ["msg_01b"]
        for none in ("med_none", "a/b"):
            assert await store.holders(none, 10) == []

    run_store(MEDIA_STORE, database, scenario)


def no_inbox() -> Any:
    raise LookupError("no inbox here")


def test_media_ids_are_not_drawn_from_the_predictable_generator(sqlite_database, tmp_path):
    """Items kept after :mod:`random` is seeded alike get unrelated ids, where other ids
    repeat their random part: a media id cannot be predicted from ids seen before it."""
    config = Config(data_dir=tmp_path)
    png = b"\x89PNG\r\n\x1a\n" + bytes(64)

    async def scenario(store: MediaStore) -> None:
        keeper = Keeper(store, blobs_for(config), config, MediaAccess(store, no_inbox))
        kept, made = [], []
        for _ in range(2):
            random.seed(14)
            kept.append((await keeper.keep_bytes(png, "image/png", None)).id)
            random.seed(14)
            made.append(new_id("msg"))
        assert kept[0][-16:] != kept[1][-16:]  # the last 80 bits: 16 characters
        assert made[0][-16:] == made[1][-16:]

    run_store(MEDIA_STORE, sqlite_database, scenario)


def test_fetches_are_recorded_once_and_taken_when_due(database):
    """A fetch is recorded once per (message, index), whatever its state later; due ones
    come earliest first, future ones when due; a done or failed one is never due again and
    no longer pending."""

    async def scenario(store: MediaStore) -> None:
        first, second, later = (
            pending("msg_a", 0),
            pending("msg_a", 1, 0.001),
            pending("msg_b", 0, 60),
        )
        for fetch in (later, second, first):
            assert await store.expect_fetch(fetch) is True
        assert await store.expect_fetch(attrs.evolve(first, channel="other")) is False
        assert await store.get_fetch("msg_a", 0) == first
        assert await store.get_fetch("msg_a", 5) is None
        now = utcnow() + timedelta(seconds=1)
        due = await store.due_fetches(now, 10)
        assert [(f.message_id, f.index) for f in due] == [("msg_a", 0), ("msg_a", 1)]
        assert [f.index for f in await store.due_fetches(now, 1)] == [0]
        assert await store.count_pending() == 3
        assert await store.next_due_at() == first.due_at

        done = attrs.evolve(first, state=FetchState.DONE, due_at=None, media_id="med_9", attempts=1)
        await store.save_fetch(done)
        failed = attrs.evolve(
            second, state=FetchState.FAILED, due_at=None, error="host not allowed", attempts=1
        )
        await store.save_fetch(failed)
        assert await store.get_fetch("msg_a", 0) == done
        assert await store.get_fetch("msg_a", 1) == failed
        assert await store.due_fetches(now, 10) == []
        assert await store.count_pending() == 1
        assert await store.next_due_at() == later.due_at
        assert await store.expect_fetch(first) is False  # a done one is not asked again

    run_store(MEDIA_STORE, database, scenario)


def test_replace_media_names_the_kept_item_once(database):
    """The inbox puts a kept item in place of the provider's, only while that item is still
    the provider's URL: a second replace (the job ran twice), another URL or a place the
    message does not have change nothing. It logs message.updated for the message's
    conversation, and the item's url is then the route that serves it."""

    async def scenario(store: InboxStore) -> None:
        provider = Media(url="https://api.twilio.com/m/1", content_type="image/jpeg")
        other = Media(url="https://api.twilio.com/m/2")
        ingested = await store.ingest_inbound(
            "twilio",
            InboundMessage(provider_message_id="SM1", sender="+15550001", media=(provider, other)),
        )
        message_id = ingested.message_id
        kept = Media(url="", id="med_1", content_type="image/png", size=42, filename="a.png")
        replaced = await store.replace_media(message_id, 0, provider.url, kept)
        assert replaced is not None
        assert replaced.media[0] == attrs.evolve(kept, url=media_url(message_id, 0))
        assert replaced.media[1] == other
        assert (await store.get_message(message_id)).media == replaced.media
        assert await store.replace_media(message_id, 0, provider.url, kept) is None
        assert await store.replace_media(message_id, 1, "https://elsewhere/x", kept) is None
        assert await store.replace_media(message_id, 7, provider.url, kept) is None
        with pytest.raises(NotFound):
            await store.replace_media("msg_none", 0, provider.url, kept)

        events = store.database  # the event log shares the database
        log = _event_log(events)
        updated = [e for e in await log.after(None, 100) if e.type == InboxEvent.MESSAGE_UPDATED]
        assert [(e.record_id, e.conversation_id, e.data) for e in updated] == [
            (message_id, ingested.conversation_id, {"channel": "twilio", "fields": ["media"]})
        ]

    run_store(INBOX_STORE, database, scenario)


def _event_log(database: Any) -> EventLog:
    """The kernel's event log on ``database`` (migrated and open already)."""
    from omnichannel_core.store import KERNEL_STORES

    (spec,) = [spec for spec in KERNEL_STORES if spec.interface is EventLog]
    factory = spec.factory(database.backend)
    assert factory is not None
    log: EventLog = factory(database)
    return log
