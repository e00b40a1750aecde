"""The media module's records: what an id names, and a provider's media still to fetch."""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

from omnichannel_core.module import Media, field


@attrs.frozen
class StoredMedia:
    """What the media store keeps under an id: bytes (``size`` of them, ``sha256`` their hex
    digest), what they are (``content_type``, as checked against the bytes:
    docs/media.md), their ``filename``, and who uploaded them."""

    id: str
    content_type: str
    size: int
    filename: str | None
    sha256: str
    created_at: datetime
    uploaded_by: str | None = field(
        default=None,
        description="``user:<id>`` or ``api_key:<id>`` for an upload (POST /api/media);"
        " null for media that came with a message.",
    )

    def media(self) -> Media:
        """The item a message names these bytes by (its ``url`` is set by the message)."""
        return Media(
            url="",
            id=self.id,
            content_type=self.content_type,
            size=self.size,
            filename=self.filename,
        )


class FetchState(enum.StrEnum):
    PENDING = "pending"
    """Not fetched yet: due at ``due_at`` (again, after a failure worth retrying)."""
    DONE = "done"
    """Kept: the message names the bytes (``media_id``)."""
    FAILED = "failed"
    """Given up (``error`` says why): the message keeps naming the provider's URL."""


@attrs.frozen
class PendingFetch:
    """A provider's media the ``media.fetch`` job fetches into the store: item ``index`` of
    message ``message_id``, as the channel's ``receive`` named it (``media``)."""

    message_id: str
    index: int
    channel: str
    media: Media
    state: FetchState = FetchState.PENDING
    attempts: int = 0
    due_at: datetime | None = None
    """When it is next tried; None once done or failed."""
    failing_since: datetime | None = None
    """When its first failed attempt was: retries stop OMNICHANNEL_MEDIA_FETCH_RETRY_SECONDS
    after it."""
    error: str | None = None
    """Why the last attempt failed (why it was given up, once failed)."""
    media_id: str | None = None
    updated_at: datetime | None = None


@attrs.frozen
class FetchBacklog:
    """What the ``media.fetch`` job has to do, for ``/health``."""

    pending: int
    next_due_at: datetime | None


@attrs.frozen
class ForgottenItems:
    """What :meth:`~omnichannel_core.modules.media.store.MediaStore.forget_media` deleted."""

    items: int
    """How many of the ids named an item (each deleted, with its holders and fetches)."""
    digests: tuple[str, ...]
    """The SHA-256 of the bytes they named, each once: each is claimed for erasure."""
