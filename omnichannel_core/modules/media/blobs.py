"""Where the bytes live: a folder (the default, under the data dir) or a Cloud Storage
bucket (`gcs`), chosen by ``OMNICHANNEL_MEDIA_STORE``.

Bytes are named by their SHA-256 (hex): the same bytes are kept once, however many
messages or retried webhooks bring them, and a name never changes what it holds, so a
write that is repeated, or races another, is harmless. Deleting bytes is not: other items
may name them, and an upload may be recording one that does. Only the keeper deletes, by
the order `omnichannel_core.modules.media.keeper` explains.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import tempfile
from pathlib import Path
from typing import Protocol

from omnichannel_core.module import Config, NotFound

GCS_SCHEME = "gs://"


class Blobs(Protocol):
    async def put(self, digest: str, content: bytes) -> None:
        """Keep ``content`` under ``digest`` (its SHA-256, hex); returns once durable."""

    async def get(self, digest: str) -> bytes:
        """The bytes kept under ``digest``; NotFound when there are none."""

    async def exists(self, digest: str) -> bool:
        """Whether bytes are kept under ``digest`` (durably, as ``put`` left them)."""

    async def delete(self, digest: str) -> None:
        """Delete the bytes kept under ``digest``, durably; none kept (deleted already, or
        never put) is no error."""

    def describe(self) -> str:
        """Where the bytes go, for logs and ``/health`` (no secret)."""


def blobs_for(config: Config) -> Blobs:
    """The blob store ``OMNICHANNEL_MEDIA_STORE`` names (``<data dir>/media`` unset)."""
    location = config.media_store
    if location.startswith(GCS_SCHEME):
        bucket, _, prefix = location.removeprefix(GCS_SCHEME).partition("/")
        # imported only here: it needs Google's client, which a server on files need not have
        gcs = importlib.import_module("omnichannel_core.modules.media.gcs")
        blobs: Blobs = gcs.GcsBlobs(bucket, prefix)
        return blobs
    return LocalBlobs(Path(location.removeprefix("file://")))


class LocalBlobs:
    """Files under ``root``: ``ab/cd/abcd...`` (two levels of 256 folders, so no folder
    grows huge). A file is written whole to a temporary name beside its place, flushed to
    disk (fsync), then renamed into place, and the folder flushed: a crash leaves the old
    state or the new, never half a file under a name."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, digest: str) -> Path:
        if len(digest) != 64 or not all(char in "0123456789abcdef" for char in digest):
            raise NotFound(f"no media bytes {digest!r}", sha256=digest)
        return self.root / digest[:2] / digest[2:4] / digest

    def describe(self) -> str:
        return str(self.root)

    async def put(self, digest: str, content: bytes) -> None:
        await asyncio.to_thread(self._put, self.path(digest), content)

    async def get(self, digest: str) -> bytes:
        path = self.path(digest)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise NotFound(f"no media bytes {digest!r}", sha256=digest) from None

    async def exists(self, digest: str) -> bool:
        return await asyncio.to_thread(self.path(digest).exists)

    async def delete(self, digest: str) -> None:
        await asyncio.to_thread(self._delete, self.path(digest))

    @staticmethod
    def _delete(path: Path) -> None:
        """Unlink the file and flush its folder. The empty folders stay: a ``put`` of other
        bytes may be about to write in them."""
        try:
            path.unlink()
        except FileNotFoundError:
            return
        _sync_folder(path.parent)

    @staticmethod
    def _put(path: Path, content: bytes) -> None:
        if path.exists():
            return  # the same name holds the same bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".part")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(content)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """Flush the folder's entries (the rename) to disk."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
