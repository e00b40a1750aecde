"""Forgetting media (erasing a contact): items, their holders and fetches go, and their
bytes with the last item naming them, on SQLite and on the Firestore emulator; blob
deletion on files and Cloud Storage; and an upload of the same bytes racing a forget never
leaves an item naming deleted bytes (keeper.py says why)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from falcon import testing

from omnichannel_core import hookimpl
from omnichannel_core.config import Config
from omnichannel_core.errors import NotFound
from omnichannel_core.hooktypes import MediaFetch
from omnichannel_core.models import Media
from omnichannel_core.module import MediaKeeper, ModuleContext
from omnichannel_core.modules.media.access import MediaAccess
from omnichannel_core.modules.media.blobs import Blobs, LocalBlobs, blobs_for
from omnichannel_core.modules.media.fetch import fetch_client
from omnichannel_core.modules.media.fetching import Fetching
from omnichannel_core.modules.media.keeper import CLAIM_ABANDONED_AFTER, Keeper
from omnichannel_core.modules.media.plugin import STORE as MEDIA_STORE
from omnichannel_core.modules.media.records import (
    FetchState,
    ForgottenItems,
    PendingFetch,
    StoredMedia,
)
from omnichannel_core.modules.media.store import MediaStore
from omnichannel_core.testing.emulators import Emulator
from omnichannel_core.testing.fake_provider import FakeProvider, ScriptedResponse
from omnichannel_core.testing.in_process import AUTH, run_app
from omnichannel_core.testing.stores import run_store
from omnichannel_core.timestamps import utcnow
from tests.support.storage_emulator import BUCKET, start_storage_emulator

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
OTHER_PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(255, -1, -1)) * 4
EML = b"From: Ada <ada@example.com>\r\nSubject: hi\r\n\r\nhello\r\n"


def digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


@pytest.fixture(params=["sqlite", "firestore"])
def database(request: pytest.FixtureRequest) -> Any:
    """A fresh database of each backend (the kit's fixtures)."""
    return request.getfixturevalue(f"{request.param}_database")


def no_inbox() -> Any:
    raise LookupError("no inbox here")


class PausingBlobs:
    """Files, with a pause that a test opens: in ``pause_in`` (``put`` or ``delete``),
    after the call is made (``entered`` is set then) and before it returns."""

    def __init__(self, root: Path, pause_in: str) -> None:
        self.files = LocalBlobs(root)
        self.pause_in = pause_in
        self.entered = asyncio.Event()
        self.go_on = asyncio.Event()
        self.paused = False

    async def _pause(self, name: str) -> None:
        if name == self.pause_in and not self.paused:
            self.paused = True
            self.entered.set()
            await self.go_on.wait()

    async def put(self, name: str, content: bytes) -> None:
        await self.files.put(name, content)
        await self._pause("put")

    async def get(self, name: str) -> bytes:
        return await self.files.get(name)

    async def exists(self, name: str) -> bool:
        return await self.files.exists(name)

    async def delete(self, name: str) -> None:
        await self.files.delete(name)
        await self._pause("delete")

    def describe(self) -> str:
        return self.files.describe()


def run_keeper(
    database: Any,
    tmp_path: Path,
    scenario: Callable[[Keeper], Awaitable[None]],
    blobs: Blobs | None = None,
) -> None:
    """``scenario`` with a keeper on ``database``'s media store and files in ``tmp_path``."""
    config = Config(data_dir=tmp_path)

    async def with_keeper(store: MediaStore) -> None:
        keeper = Keeper(store, blobs or blobs_for(config), config, MediaAccess(store, no_inbox))
        await scenario(keeper)

    run_store(MEDIA_STORE, database, with_keeper)


def fetch_of(message_id: str, index: int, media_id: str | None = None) -> PendingFetch:
    now = utcnow()
    return PendingFetch(
        message_id,
        index,
        "twilio",
        Media(url=f"https://api.twilio.com/m/{message_id}/{index}", filename="ada.jpg"),
        state=FetchState.PENDING if media_id is None else FetchState.DONE,
        due_at=now if media_id is None else None,
        media_id=media_id,
        updated_at=now,
    )


def test_forget_removes_the_item_its_holders_fetches_and_bytes(database, tmp_path):
    """A forgotten item is unknown to the store, no message holds it, the fetch that kept it
    and every fetch of the forgotten messages are gone, and so are its bytes; an item of
    other bytes stays whole. It answers how many items it forgot."""

    async def scenario(keeper: Keeper) -> None:
        store = keeper.store
        source = await keeper.keep_bytes(EML, "message/rfc822", "original.eml")
        fetched = await keeper.keep_bytes(PNG, "image/png", "ada.png")
        other = await keeper.keep_bytes(OTHER_PNG, "image/png", "bob.png")
        await store.add_holders("msg_ada", [source.id, fetched.id])
        await store.add_holders("msg_bob", [other.id])
        await store.expect_fetch(fetch_of("msg_ada", 1, media_id=fetched.id))
        await store.expect_fetch(fetch_of("msg_ada", 2))  # still pending
        await store.expect_fetch(fetch_of("msg_bob", 0))

        assert await keeper.forget([source.id, fetched.id], message_ids=["msg_ada"]) == 2

        for gone in (source, fetched):
            with pytest.raises(NotFound):
                await store.get_media(gone.id)
            with pytest.raises(NotFound):
                await keeper.read(gone.id)
            assert await store.holders(gone.id, 10) == []
            assert not await keeper.blobs.exists(gone.sha256)
            assert not await store.sha256_in_use(gone.sha256)
        assert await store.get_fetch("msg_ada", 1) is None
        assert await store.get_fetch("msg_ada", 2) is None
        assert await store.count_pending() == 1
        assert await keeper.read(other.id) == OTHER_PNG
        assert await store.holders(other.id, 10) == ["msg_bob"]
        assert await store.get_fetch("msg_bob", 0) is not None

    run_keeper(database, tmp_path, scenario)


def test_shared_bytes_stay_until_the_last_item_naming_them_goes(database, tmp_path):
    """Two items of the same bytes (one file sent twice) share them: forgetting one leaves
    the other readable; forgetting the last deletes the bytes."""

    async def scenario(keeper: Keeper) -> None:
        first = await keeper.keep_bytes(PNG, "image/png", "a.png")
        second = await keeper.keep_bytes(PNG, "image/png", "b.png")
        assert first.sha256 == second.sha256

        assert await keeper.forget([first.id]) == 1
        assert await keeper.read(second.id) == PNG
        assert await keeper.store.sha256_in_use(first.sha256)

        assert await keeper.forget([second.id]) == 1
        assert not await keeper.blobs.exists(first.sha256)

    run_keeper(database, tmp_path, scenario)


def test_forgetting_again_or_an_unknown_id_is_a_no_op(database, tmp_path):
    """Forgetting an item twice, an id never kept, one no record can have, or nothing at
    all forgets nothing and raises nothing; a fetch saved after it was forgotten (the job
    was under way) is not written back."""

    async def scenario(keeper: Keeper) -> None:
        kept = await keeper.keep_bytes(PNG, "image/png", None)
        await keeper.store.expect_fetch(fetch_of("msg_a", 0))
        assert await keeper.forget([kept.id, kept.id], ["msg_a"]) == 1
        assert await keeper.forget([kept.id], ["msg_a"]) == 0
        assert await keeper.forget(["med_never", "a/b", "..", ""], ["msg_none", "a/b"]) == 0
        assert await keeper.forget([]) == 0

        late = attrs.evolve(fetch_of("msg_a", 0), state=FetchState.FAILED, due_at=None)
        await keeper.store.save_fetch(late)
        assert await keeper.store.get_fetch("msg_a", 0) is None

        again = await keeper.keep_bytes(PNG, "image/png", None)  # the bytes may come again
        assert await keeper.read(again.id) == PNG

    run_keeper(database, tmp_path, scenario)


def test_an_upload_whose_put_came_before_the_deletion_puts_the_bytes_back(database, tmp_path):
    """An upload of bytes about to be forgotten finds them kept (its put does nothing),
    then the forget deletes them, then the upload records its item: it puts the bytes back,
    so its item is readable."""
    blobs = PausingBlobs(tmp_path / "media", pause_in="put")

    async def scenario(keeper: Keeper) -> None:
        blobs.paused = True  # not the first keep
        old = await keeper.keep_bytes(PNG, "image/png", None)
        blobs.paused = False
        upload = asyncio.create_task(keeper.keep_bytes(PNG, "image/png", None))
        await blobs.entered.wait()  # its put is done: the bytes were there
        assert await keeper.forget([old.id]) == 1
        assert not await blobs.exists(old.sha256)  # nothing named them: deleted
        blobs.go_on.set()
        new = await upload
        assert await keeper.read(new.id) == PNG

    run_keeper(database, tmp_path, scenario, blobs)


def test_an_upload_waits_while_a_forget_deletes_its_bytes(database, tmp_path):
    """An upload of the same bytes that comes while a forget is deleting them records
    nothing until the forget is done, then keeps them again: its item is readable."""
    blobs = PausingBlobs(tmp_path / "media", pause_in="delete")

    async def scenario(keeper: Keeper) -> None:
        old = await keeper.keep_bytes(PNG, "image/png", None)
        forget = asyncio.create_task(keeper.forget([old.id]))
        await blobs.entered.wait()  # the forget holds its claim and deleted the bytes
        upload = asyncio.create_task(keeper.keep_bytes(PNG, "image/png", None))
        await asyncio.sleep(0.3)
        assert not upload.done()
        assert not await keeper.store.sha256_in_use(old.sha256)
        blobs.go_on.set()
        assert await forget == 1
        new = await upload
        assert await keeper.read(new.id) == PNG

    run_keeper(database, tmp_path, scenario, blobs)


def test_uploads_racing_a_forget_of_the_same_bytes_stay_readable(database, tmp_path):
    """Uploads of the same bytes run alongside a forget of the items naming them: however
    they interleave, every item kept is readable afterwards."""

    async def scenario(keeper: Keeper) -> None:
        items = [await keeper.keep_bytes(PNG, "image/png", None) for _ in range(3)]
        forget = asyncio.create_task(keeper.forget([item.id for item in items]))
        uploads = await asyncio.gather(
            *(keeper.keep_bytes(PNG, "image/png", None) for _ in range(4))
        )
        assert await forget == 3
        for new in uploads:
            assert await keeper.read(new.id) == PNG

    run_keeper(database, tmp_path, scenario)


def test_an_abandoned_erasure_is_finished_by_the_next_forget_or_upload(database, tmp_path):
    """A forget that died after claiming the bytes (its items gone, the bytes not): an
    upload of the same bytes, once the claim is old, finishes it and keeps the bytes again;
    another died claim is finished by the next forget, whatever it forgets."""

    async def scenario(keeper: Keeper) -> None:
        store = keeper.store
        long_ago = utcnow() - CLAIM_ABANDONED_AFTER - timedelta(seconds=1)

        first = await keeper.keep_bytes(PNG, "image/png", None)
        died = await store.forget_media([first.id], "era_died", long_ago)
        assert died.digests == (first.sha256,)
        assert await store.add_media(attrs.evolve(first, id="med_blocked")) == long_ago
        again = await keeper.keep_bytes(PNG, "image/png", None)
        assert await keeper.read(again.id) == PNG

        other = await keeper.keep_bytes(OTHER_PNG, "image/png", None)
        await store.forget_media([other.id], "era_died_too", long_ago)
        assert await keeper.blobs.exists(other.sha256)
        assert await keeper.forget([]) == 0
        assert not await keeper.blobs.exists(other.sha256)
        assert await store.add_media(attrs.evolve(other, id="med_after")) is None

    run_keeper(database, tmp_path, scenario)


def test_claims_of_two_forgets_on_the_same_bytes_are_released_one_by_one(database):
    """Two forgets hold claims on the same bytes: an item naming them is recorded only once
    both are released (it is told when the newest was made); releasing one twice, or one
    never made, changes nothing; only bytes whose newest claim is old are taken over."""

    async def scenario(store: MediaStore) -> None:
        now = utcnow()
        hour_ago = now - timedelta(hours=1)
        sha = digest(PNG)
        for media_id in ("med_a", "med_b"):
            assert await store.add_media(stored(media_id, sha)) is None
        assert await store.forget_media(["med_a"], "era_a", hour_ago) == ForgottenItems(1, (sha,))
        assert await store.forget_media(["med_b"], "era_b", now) == ForgottenItems(1, (sha,))
        assert not await store.sha256_in_use(sha)

        new = stored("med_new", sha)
        assert await store.add_media(new) == now
        for claim in ("era_b", "era_b", "era_never"):
            await store.release_erasure(sha, claim)
        assert await store.add_media(new) == hour_ago
        soon = now - timedelta(minutes=5)
        assert await store.take_over_erasures(soon, "era_c", now) == [sha]
        assert await store.take_over_erasures(soon, "era_d", now) == []  # era_c is new
        assert await store.add_media(new) == now
        await store.release_erasure(sha, "era_c")
        assert await store.add_media(new) is None
        assert await store.sha256_in_use(sha)
        with pytest.raises(NotFound):
            await store.get_media("med_a")

    run_store(MEDIA_STORE, database, scenario)


def stored(media_id: str, sha: str) -> StoredMedia:
    return StoredMedia(
        id=media_id,
        content_type="image/png",
        size=len(PNG),
        filename=None,
        sha256=sha,
        created_at=utcnow(),
    )


class KeeperProbe:
    """A module that hands the test its context (to reach the MediaKeeper service)."""

    context: ModuleContext | None = None

    @hookimpl
    def register_services(self, context: ModuleContext) -> dict[type, Any]:
        self.context = context
        return {}


def test_a_forgotten_upload_is_not_found_through_the_api(tmp_path):
    """GET /api/media/{id} serves an upload, and answers 404 once it is forgotten."""
    probe = KeeperProbe()

    async def scenario(conductor: testing.ASGIConductor) -> None:
        uploaded = await conductor.simulate_post(
            "/api/media", body=PNG, headers={**AUTH, "Content-Type": "image/png"}
        )
        assert uploaded.status_code == 201, uploaded.text
        media_id = uploaded.json["id"]
        assert (await conductor.simulate_get(f"/api/media/{media_id}", headers=AUTH)).content == PNG
        assert probe.context is not None
        assert await probe.context.service(MediaKeeper).forget([media_id]) == 1
        gone = await conductor.simulate_get(f"/api/media/{media_id}", headers=AUTH)
        assert gone.status_code == 404

    run_app(tmp_path, {}, scenario, modules={"probe": probe})
    assert not list((tmp_path / "media").rglob(digest(PNG)))


@pytest.fixture(scope="module")
def storage_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """gcp-storage-emulator on a free loopback port, stopped after the module."""
    emulator = start_storage_emulator(tmp_path_factory.mktemp("storage-emulator"))
    yield emulator
    emulator.stop()


@pytest.fixture(params=["files", "gcs"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Blobs:
    """A fresh blob store of each kind, as OMNICHANNEL_MEDIA_STORE chooses it."""
    if request.param == "files":
        return blobs_for(Config(data_dir=tmp_path))
    emulator: Emulator = request.getfixturevalue("storage_emulator")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator.base_url)
    return blobs_for(Config(media_store=f"gs://{BUCKET}/test-{os.urandom(4).hex()}"))


def test_deleted_bytes_are_gone_and_deleting_again_is_no_error(blobs):
    """Deleted bytes no longer exist nor read; other bytes stay; deleting bytes never kept
    (or deleted already) is no error; a name that is not a digest is NotFound."""
    kept, other = os.urandom(5000), os.urandom(5000)

    async def scenario() -> None:
        await blobs.put(digest(kept), kept)
        await blobs.put(digest(other), other)
        assert await blobs.exists(digest(kept))
        await blobs.delete(digest(kept))
        assert not await blobs.exists(digest(kept))
        with pytest.raises(NotFound):
            await blobs.get(digest(kept))
        assert await blobs.get(digest(other)) == other
        await blobs.delete(digest(kept))
        await blobs.delete(digest(b"never kept"))
        with pytest.raises(NotFound):
            await blobs.delete("../../etc/passwd")
        await blobs.put(digest(kept), kept)  # kept again after a deletion
        assert await blobs.get(digest(kept)) == kept

    asyncio.run(scenario())


class FixedChannels:
    """Channels with one answer to ``media_fetch``: fetch from ``url``, on loopback."""

    def __init__(self, url: str) -> None:
        self.url = url

    def loaded(self, channel: str) -> bool:
        return True

    async def call(self, channel: str, hook: str, **arguments: Any) -> MediaFetch:
        return MediaFetch(self.url, hosts=("127.0.0.1",))


class ErasedInbox:
    """An inbox whose message no longer names the provider's media (its contact was
    erased while the fetch was under way)."""

    async def replace_media(self, *arguments: Any) -> None:
        return None


def test_a_fetch_under_way_when_its_message_is_forgotten_keeps_nothing(sqlite_database, tmp_path):
    """The fetch job fetched a message's media as its contact was erased: the item it kept
    for it is forgotten (bytes and all), and the fetch record is not written back."""
    photo = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8
    config = Config(data_dir=tmp_path, media_fetch_private=True)

    async def scenario(store: MediaStore) -> None:
        keeper = Keeper(store, blobs_for(config), config, MediaAccess(store, no_inbox))
        with FakeProvider(default=ScriptedResponse(200, photo, "image/jpeg")) as cdn:
            channels: Any = FixedChannels(f"{cdn.url}/m/1")
            news: Any = None
            inbox: Any = ErasedInbox
            fetching = Fetching(store, keeper, channels, config, news, inbox)
            under_way = fetch_of("msg_erased", 0)
            await store.expect_fetch(under_way)
            assert await keeper.forget([], ["msg_erased"]) == 0
            async with fetch_client() as client:
                await fetching.attempt(under_way, client)
        assert await store.get_fetch("msg_erased", 0) is None
        assert not await store.sha256_in_use(digest(photo))
        assert not await keeper.blobs.exists(digest(photo))

    run_store(MEDIA_STORE, sqlite_database, scenario)
