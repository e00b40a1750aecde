"""Where the media store keeps bytes: files under the data dir (written whole or not at
all), or a Cloud Storage bucket (against gcp-storage-emulator); both named by SHA-256."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from falcon import testing

from omnichannel_core.config import Config
from omnichannel_core.errors import NotFound
from omnichannel_core.modules.media.blobs import Blobs, LocalBlobs, blobs_for
from omnichannel_core.testing.emulators import Emulator
from omnichannel_core.testing.in_process import AUTH, run_app
from tests.support.storage_emulator import BUCKET, start_storage_emulator


def digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


@pytest.fixture(scope="module")
def storage_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """gcp-storage-emulator on a free loopback port, stopped by its process group after
    the module."""
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
    prefix = f"test-{os.urandom(4).hex()}"
    return blobs_for(Config(media_store=f"gs://{BUCKET}/{prefix}"))


def test_bytes_are_kept_under_their_digest(blobs):
    """What is put under a digest is read back exactly; putting it again (a retried
    webhook) changes nothing; an unknown digest, or one that is not a digest, is NotFound."""
    content = os.urandom(100_000)

    async def scenario() -> None:
        await blobs.put(digest(content), content)
        await blobs.put(digest(content), content)
        assert await blobs.get(digest(content)) == content
        with pytest.raises(NotFound):
            await blobs.get(digest(b"never kept"))
        with pytest.raises(NotFound):
            await blobs.get("../../etc/passwd")

    asyncio.run(scenario())


def test_the_media_store_setting_chooses_the_backend(tmp_path):
    """Unset: a folder under the data dir; a path or file:/// URL: that folder; gs://: the
    bucket and prefix, described without secrets."""
    assert blobs_for(Config(data_dir=tmp_path)).describe() == str(tmp_path / "media")
    other = tmp_path / "elsewhere"
    assert blobs_for(Config(media_store=str(other))).describe() == str(other)
    assert blobs_for(Config(media_store=f"file://{other}")).describe() == str(other)
    assert blobs_for(Config(media_store="gs://bucket/some/prefix")).describe() == (
        "gs://bucket/some/prefix"
    )


def test_files_are_written_whole_under_fanned_out_folders(tmp_path):
    """A file lands under two levels of folders named by its digest, with no temporary file
    left beside it; a write that fails leaves no file under the name (nothing half
    written)."""
    blobs = LocalBlobs(tmp_path)
    content = b"hello media"
    name = digest(content)
    asyncio.run(blobs.put(name, content))
    path = tmp_path / name[:2] / name[2:4] / name
    assert path.read_bytes() == content
    assert sorted(p.name for p in path.parent.iterdir()) == [name]

    broken = digest(b"broken")
    with pytest.raises(TypeError):  # not bytes: the write fails after the file was opened
        asyncio.run(blobs.put(broken, object()))  # type: ignore[arg-type]
    assert not (tmp_path / broken[:2] / broken[2:4] / broken).exists()
    assert not [p for p in tmp_path.rglob("*.part")]


def test_the_server_keeps_uploads_in_the_bucket(tmp_path, storage_emulator, monkeypatch):
    """With OMNICHANNEL_MEDIA_STORE=gs://..., an upload lands in the bucket (under the
    prefix, by its digest) and downloads from it; nothing is written under the data dir."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", storage_emulator.base_url)
    content = b"%PDF-1.7\n" + os.urandom(5000)
    prefix = f"app-{os.urandom(4).hex()}"

    async def scenario(conductor: testing.ASGIConductor) -> None:
        uploaded = await conductor.simulate_post(
            "/api/media", body=content, headers={**AUTH, "Content-Type": "application/pdf"}
        )
        assert uploaded.status_code == 201, uploaded.text
        assert uploaded.json["sha256"] == digest(content)
        download = await conductor.simulate_get(f"/api/media/{uploaded.json['id']}", headers=AUTH)
        assert download.content == content

    run_app(tmp_path, {}, scenario, media_store=f"gs://{BUCKET}/{prefix}")
    listed = httpx.get(f"{storage_emulator.base_url}/storage/v1/b/{BUCKET}/o", timeout=10)
    names = [item["name"] for item in listed.json().get("items", [])]
    assert f"{prefix}/sha256/{digest(content)}" in names
    assert not (tmp_path / "media").exists()
