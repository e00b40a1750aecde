"""The bytes in a Google Cloud Storage bucket (``OMNICHANNEL_MEDIA_STORE=gs://BUCKET/PREFIX``):
objects ``PREFIX/sha256/<digest>``.

The client is google-cloud-storage's, with the server's Application Default Credentials
(on Google Cloud, the service account of the machine; it needs ``storage.objects.create``,
``storage.objects.get`` and, to forget media, ``storage.objects.delete`` on the bucket).
With ``STORAGE_EMULATOR_HOST`` set it talks to an emulator without credentials (the tests'
gcp-storage-emulator). Its calls block, so they run on threads. An object is written once:
an upload that finds the name taken (``if_generation_match=0``) leaves it, since a name
holds the same bytes. A bucket that keeps noncurrent versions (Object Versioning) or a
soft-delete window keeps deleted bytes for that long: for erasure, turn versioning off.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from google.api_core import exceptions
from google.cloud.storage import Bucket, Client

from omnichannel_core.module import NotFound

TIMEOUT_SECONDS = 60


class GcsBlobs:
    def __init__(self, bucket: str, prefix: str = "") -> None:
        self.bucket_name = bucket
        self.prefix = prefix.strip("/")
        self._bucket: Bucket | None = None
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"gs://{self.bucket_name}/{self.prefix}".rstrip("/")

    def _name(self, digest: str) -> str:
        if len(digest) != 64 or not all(char in "0123456789abcdef" for char in digest):
            raise NotFound(f"no media bytes {digest!r}", sha256=digest)
        return "/".join(part for part in (self.prefix, "sha256", digest) if part)

    def bucket(self) -> Bucket:
        """The bucket, its client made on first use (from the environment then: the
        credentials, or the emulator)."""
        with self._lock:
            if self._bucket is None:
                self._bucket = Client().bucket(self.bucket_name)
            return self._bucket

    async def put(self, digest: str, content: bytes) -> None:
        name = self._name(digest)
        await asyncio.to_thread(self._put, name, content)

    def _put(self, name: str, content: bytes) -> None:
        blob = self.bucket().blob(name)
        with contextlib.suppress(exceptions.PreconditionFailed):  # kept already: same bytes
            blob.upload_from_string(
                content,
                content_type="application/octet-stream",
                if_generation_match=0,
                timeout=TIMEOUT_SECONDS,
            )

    async def get(self, digest: str) -> bytes:
        name = self._name(digest)
        try:
            return await asyncio.to_thread(self._get, name)
        except exceptions.NotFound:
            raise NotFound(f"no media bytes {digest!r}", sha256=digest) from None

    def _get(self, name: str) -> bytes:
        content: bytes = self.bucket().blob(name).download_as_bytes(timeout=TIMEOUT_SECONDS)
        return content

    async def exists(self, digest: str) -> bool:
        name = self._name(digest)
        return await asyncio.to_thread(self._exists, name)

    def _exists(self, name: str) -> bool:
        found: bool = self.bucket().blob(name).exists(timeout=TIMEOUT_SECONDS)
        return found

    async def delete(self, digest: str) -> None:
        name = self._name(digest)
        await asyncio.to_thread(self._delete, name)

    def _delete(self, name: str) -> None:
        with contextlib.suppress(exceptions.NotFound):  # deleted already: done
            self.bucket().blob(name).delete(timeout=TIMEOUT_SECONDS)
