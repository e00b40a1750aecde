"""The media API: a message's media downloaded by whoever may see the message, an upload
to attach to a message, and an upload read back by its uploader (who may read what:
`omnichannel_core.modules.media.access`).

Every download is an attachment (``Content-Disposition: attachment`` with a safe name),
with the stored type, ``nosniff`` and a sandboxing ``Content-Security-Policy``: a browser
never runs what a customer sent, whatever it claims to be. An ``<img>`` still shows a
picture.
"""

from __future__ import annotations

import attrs
import falcon
import falcon.asgi

from omnichannel_core.module import (
    SECURITY_HEADERS,
    CorsPolicy,
    InvalidInput,
    NotFound,
    Operation,
    Principal,
    Response,
    Route,
    RoutePolicy,
    field,
    to_json,
)
from omnichannel_core.modules.media.access import owner_of, reads_by_id
from omnichannel_core.modules.media.content import content_disposition
from omnichannel_core.modules.media.keeper import Keeper, TooLarge
from omnichannel_core.modules.media.permissions import CONVERSATIONS_READ, MEDIA_UPLOAD
from omnichannel_core.modules.media.records import StoredMedia

MEDIA_POLICY = RoutePolicy(
    headers={
        **SECURITY_HEADERS,
        "Content-Security-Policy": "default-src 'none'; sandbox; frame-ancestors 'none'",
    },
    cors=CorsPolicy(
        expose_headers="X-Request-ID, Retry-After, Preference-Applied, Content-Disposition"
    ),
)
"""Downloads: the API's headers, and a sandbox for anything a browser would render."""

BINARY = Response(
    None,
    "The bytes, as a download (`Content-Disposition: attachment`), in the type the server"
    " checked them to be.",
    schema={"type": "string", "format": "binary"},
    media_type="*/*",
    headers={
        "Content-Disposition": {"type": "string"},
        "Content-Type": {"type": "string"},
    },
)
CACHE = "private, max-age=3600"
"""What a download may be kept for by the caller's browser: the bytes under an id never
change."""


def serve(
    resp: falcon.asgi.Response,
    content: bytes,
    content_type: str,
    filename: str | None,
    fallback: str,
) -> None:
    """Answer ``content`` as a download named ``filename`` (``fallback`` without one)."""
    resp.content_type = content_type
    resp.set_header("Content-Disposition", content_disposition(filename, fallback))
    resp.set_header("Cache-Control", CACHE)
    resp.data = content


class MessageMediaView:
    operations = {
        "GET": Operation(
            "Download a message's media item",
            permission=CONVERSATIONS_READ,
            responses={200: BINARY},
            errors=("NotFound",),
            operation_id="getMessageMedia",
            tags=("media",),
            notes="`index` is the item's place in the message's `media`, from 0. An agent may"
            " read the media of conversations assigned to them or to nobody. An item the"
            " provider still holds (no `id` yet) answers 404 with `fetch`: `pending`, or"
            " `failed` and `reason`.",
        )
    }

    def __init__(self, keeper: Keeper) -> None:
        self.keeper = keeper
        self.store = keeper.store

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, message_id: str, index: str
    ) -> None:
        principal: Principal = req.context.principal
        message = await self.keeper.access.visible_message(principal, message_id)
        position = int(index) if index.isascii() and index.isdigit() and len(index) < 5 else -1
        if not 0 <= position < len(message.media):
            raise NotFound(f"message {message_id!r} has no media {index!r}", id=message_id)
        item = message.media[position]
        if item.id is None:
            fetch = await self.store.get_fetch(message_id, position)
            details = {"fetch": "none"} if fetch is None else {"fetch": str(fetch.state)}
            if fetch is not None and fetch.error:
                details["reason"] = fetch.error
            raise NotFound(
                f"media {position} of message {message_id!r} is not kept by the server: it is"
                " the provider's",
                id=message_id,
                **details,
            )
        stored = await self.store.get_media(item.id)
        content = await self.keeper.read_stored(stored)
        fallback = f"{message_id}-{position}"
        serve(resp, content, stored.content_type, item.filename or stored.filename, fallback)


@attrs.frozen
class UploadQuery:
    filename: str | None = field(
        default=None, max_length=255, description="the file's name, shown to the customer"
    )


class Uploads:
    operations = {
        "POST": Operation(
            "Upload media to attach to a message",
            permission=MEDIA_UPLOAD,
            query=UploadQuery,
            raw_body="The file's bytes, with their Content-Type.",
            responses={201: Response(StoredMedia, "Kept: attach it by its `id` (`media_id`).")},
            errors=("PayloadTooLarge", "UnsupportedMediaType"),
            operation_id="uploadMedia",
            tags=("media",),
            notes="Send the raw bytes with their `Content-Type`; the server checks it against"
            " the bytes (docs/media.md) and OMNICHANNEL_MEDIA_TYPES (else 415), and takes at"
            " most OMNICHANNEL_MEDIA_MAX_BYTES (else 413). Send a message with it by naming"
            ' `{"media_id": id}` in its `media`. Until a message holds it, only its uploader'
            " and callers with `media:read_all` may read it (`GET /api/media/{media_id}`) and"
            " attach it; once one does, so may whoever may see that message. To anyone else"
            " its id answers as an unknown one does.",
        )
    }

    def __init__(self, keeper: Keeper) -> None:
        self.keeper = keeper

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        limit = self.keeper.config.media_max_bytes
        content = await read_limited(req, limit)
        if not content:
            raise InvalidInput("send the file's bytes as the body")
        query: UploadQuery = req.context.query
        try:
            stored = await self.keeper.keep_bytes(
                content, req.content_type, query.filename, owner_of(req.context.principal)
            )
        except TooLarge as too_large:
            raise falcon.HTTPContentTooLarge(description=too_large.message) from None
        resp.status = falcon.HTTP_201
        resp.media = to_json(stored)


async def read_limited(req: falcon.asgi.Request, limit: int) -> bytes:
    """The body, or 413 once it is (or announces to be) larger than ``limit``."""
    too_large = falcon.HTTPContentTooLarge(
        description=f"media larger than {limit} bytes (OMNICHANNEL_MEDIA_MAX_BYTES)"
    )
    if req.content_length is not None and req.content_length > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in req.stream:
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


class UploadView:
    operations = {
        "GET": Operation(
            "Download media by its id",
            permission=MEDIA_UPLOAD,
            responses={200: BINARY},
            errors=("NotFound",),
            operation_id="getMedia",
            tags=("media",),
            notes="Its uploader's, or any with `media:read_all` (admins); others answer 404."
            " A message's media is read through the message"
            " (`GET /api/messages/{message_id}/media/{index}`).",
        )
    }

    def __init__(self, keeper: Keeper) -> None:
        self.keeper = keeper
        self.store = keeper.store

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, media_id: str
    ) -> None:
        principal: Principal = req.context.principal
        stored = await self.store.get_media(media_id)
        if not reads_by_id(principal, stored):
            # the same answer as for no such media: an id is not confirmed to whoever guesses
            raise NotFound(f"media {media_id!r} not found", id=media_id)
        content = await self.keeper.read_stored(stored)
        serve(resp, content, stored.content_type, stored.filename, media_id)


def media_routes(keeper: Keeper) -> list[Route]:
    return [
        Route("/api/media", Uploads(keeper), MEDIA_POLICY),
        Route("/api/media/{media_id}", UploadView(keeper), MEDIA_POLICY),
        Route("/api/messages/{message_id}/media/{index}", MessageMediaView(keeper), MEDIA_POLICY),
    ]
