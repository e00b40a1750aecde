"""Body pieces many routes share: media a caller gives, a page of a list, an
Idempotency-Key. Modules build their own bodies from them; channels read media from a
provider's JSON with :func:`read_media`, by the same rules the API applies."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import attrs

from omnichannel_core.bodies.fields import field
from omnichannel_core.bodies.reading import read_body
from omnichannel_core.errors import InvalidInput
from omnichannel_core.models import Media
from omnichannel_core.timestamps import parse_timestamp, utcnow

MAX_URL = 2_048
MAX_MEDIA = 10
MAX_LIMIT = 200
DEFAULT_LIMIT = 50
HTTP_URL = "^https?://"
SERVER_KEY_PREFIX = "bulk:"
"""Idempotency keys the server gives its own sends (a campaign's, one per recipient): an
API caller may not use them, so that no request can take a campaign's message's place."""
IDEMPOTENCY_KEY = r"^(?!bulk:)[\x21-\x7e]{1,255}$"


MEDIA_ID = r"^med_[A-Za-z0-9_-]{1,120}$"


@attrs.frozen
class MediaInput:
    """An attachment a caller gives: where to fetch it (an http or https URL), or the id of
    media the server keeps (``POST /api/media`` answers one); and what it is."""

    url: str | None = field(
        default=None, pattern=HTTP_URL, max_length=MAX_URL, message="must be an http(s) URL"
    )
    media_id: str | None = field(
        default=None,
        pattern=MEDIA_ID,
        description="media the server keeps: what POST /api/media answered. Give it or url.",
        message="must be a media id (med_...), as POST /api/media answers",
    )
    content_type: str | None = field(
        default=None, max_length=255, description="with url; a kept item has its own"
    )
    filename: str | None = field(default=None, max_length=255)

    def __attrs_post_init__(self) -> None:
        if (self.url is None) == (self.media_id is None):
            raise InvalidInput("media: give each item a url or a media_id, not both", field="media")

    def media(self) -> Media:
        if self.media_id is not None:  # described by the media store before it is stored
            return Media(url="", id=self.media_id, filename=self.filename)
        assert self.url is not None
        return Media(url=self.url, content_type=self.content_type, filename=self.filename)


MediaItems = tuple[str | MediaInput, ...]
"""At most :data:`MAX_MEDIA` items, each a URL or a :class:`MediaInput` (a URL, or the id of
media the server keeps): declare a field of it with :func:`media_field`."""


def media_field(**options: Any) -> Any:
    """A body field of :data:`MediaItems` (or None): at most :data:`MAX_MEDIA` items, each an
    http(s) URL or a :class:`MediaInput` (``{"url": ...}`` or ``{"media_id": ...}``)."""
    url = {"pattern": HTTP_URL, "maxLength": MAX_URL, "x-invalid": "must be an http(s) URL"}
    return field(default=None, max_items=MAX_MEDIA, items=url, **options)


def media_of(items: MediaItems | None) -> tuple[Media, ...]:
    """The media a checked list of items names."""
    return tuple(
        Media(url=item) if isinstance(item, str) else item.media() for item in (items or ())
    )


SEND_AT = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$"
"""ISO 8601 with a UTC offset: a scheduled time is never guessed from the server's zone."""
LONGEST_SCHEDULE = timedelta(days=366)
EARLIEST_YEAR = 2000
"""A send_at before this is a mistake, not a wish to send at once (and years before 1000
would not keep the fixed-width form stored times sort by)."""


def send_at_field() -> Any:
    """A body's ``send_at``: when to send the message (ISO 8601 with an offset), or None
    for as soon as its pace allows. Read it with :func:`send_at_of`."""
    return field(
        default=None,
        pattern=SEND_AT,
        description="Send it at this time (ISO 8601 with an offset, e.g."
        " 2027-01-31T09:30:00+01:00, at most a year ahead), not before; cancel it until then"
        " with POST /api/messages/{id}/cancel. A time past is now.",
        message="must be ISO 8601 with an offset, e.g. 2027-01-31T09:30:00+01:00",
    )


def send_at_of(value: str | None) -> datetime | None:
    """The time a checked ``send_at`` names; InvalidInput for a day that does not exist or
    a time more than a year ahead. Call it in the body's ``__attrs_post_init__`` too, so
    that a bad time is a 400 before anything is stored."""
    if value is None:
        return None
    try:
        when = parse_timestamp(value)
    except (ValueError, OverflowError):  # no such day, or out of range once in UTC
        raise InvalidInput(f"send_at: {value!r} is not a time", field="send_at") from None
    if when.year < EARLIEST_YEAR:
        raise InvalidInput(f"send_at: {value!r} is long past", field="send_at")
    if when - utcnow() > LONGEST_SCHEDULE:
        raise InvalidInput("send_at: at most a year ahead", field="send_at")
    return when


@attrs.frozen
class _MediaList:
    media: MediaItems | None = media_field()


def read_media(value: Any) -> tuple[Media, ...]:
    """Media from a provider's JSON (None, or a list of URLs and ``{url, content_type?,
    filename?}``), or InvalidInput naming the item at fault (``media[2].url: must be an
    http(s) URL``). A provider names media by URL: ``media_id`` is the API's alone (the
    server's own media is for its agents to attach, not for a webhook to name)."""
    if value is None:  # most webhooks: the body reader's checks would cost a tenth of one
        return ()
    media = media_of(read_body({"media": value}, _MediaList).media)
    for index, item in enumerate(media):
        if item.id is not None:
            raise InvalidInput(
                f"media[{index}]: a provider names media by url", field=f"media[{index}]"
            )
    return media


@attrs.frozen
class PageQuery:
    """``?cursor=&limit=``: the page after ``cursor`` (a list's ``next_cursor``), of
    ``limit`` items."""

    cursor: str | None = field(
        default=None, max_length=512, description="`next_cursor` of the previous page"
    )
    limit: int = field(
        default=DEFAULT_LIMIT,
        minimum=1,
        maximum=MAX_LIMIT,
        description="page size",
        message=f"must be a whole number from 1 to {MAX_LIMIT}",
    )


@attrs.frozen
class IdempotencyHeaders:
    """``Idempotency-Key``: a retried request with the same key sends once and answers 200
    with the stored message; the same key with a different message answers 409."""

    idempotency_key: str | None = field(
        default=None,
        name="Idempotency-Key",
        pattern=IDEMPOTENCY_KEY,
        message="must be 1 to 255 visible ASCII characters, not starting with 'bulk:' (the"
        " server's own keys)",
        description="A retried request with the same key sends once and answers 200 with the"
        " stored message; the same key with a different message answers 409.",
    )
