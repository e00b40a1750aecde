"""The visitor API, under ``/api/channels/webchat/``: what the widget calls from the pages
of ``WEBCHAT_ALLOWED_ORIGINS``. None of it takes an agent's credential, and the agents' API
takes none of its tokens: a visitor proves who they are with the visitor token ``POST
session`` gave them (`Authorization: Bearer`), and acts on their own conversation only.

Every route but ``widget.js`` answers CORS for those sites alone and refuses a browser on
any other (403; a WebSocket closed with 3403), and is rate limited per address by the core;
each visitor is limited too (:mod:`omnichannel_webchat.visitors`).
"""

from __future__ import annotations

import gzip
import hashlib
from importlib import resources
from typing import Any
from urllib.parse import unquote

import attrs
import falcon
import falcon.asgi

from omnichannel_core.channel import (
    SECURITY_HEADERS,
    Attachment,
    ChannelRoute,
    CorsPolicy,
    InvalidInput,
    NotFound,
    Operation,
    Response,
    RoutePolicy,
    Unauthenticated,
    caller_address,
    field,
    format_timestamp,
    presented_bearer,
    to_json,
)
from omnichannel_webchat.frames import conversation_state
from omnichannel_webchat.polling import collect
from omnichannel_webchat.settings import ALLOWED_ORIGINS, WebchatSettings
from omnichannel_webchat.socket import VisitorSocket
from omnichannel_webchat.stream import VisitorStream
from omnichannel_webchat.tokens import MAX_TOKEN_LENGTH, Visitor
from omnichannel_webchat.visitors import CLIENT_ID, Visitors, file_name

VISITOR_CORS = CorsPolicy(
    origins=ALLOWED_ORIGINS,
    methods="GET, POST",
    allow_headers="Authorization, Content-Type, X-Filename, X-Request-ID",
    expose_headers="X-Request-ID, Retry-After, Content-Disposition",
    refuse_others=True,
)
VISITOR_POLICY = RoutePolicy(cors=VISITOR_CORS)
"""The visitor routes: the widget's sites only."""
MEDIA_POLICY = RoutePolicy(
    headers={
        **SECURITY_HEADERS,
        "Content-Security-Policy": "default-src 'none'; sandbox; frame-ancestors 'none'",
    },
    cors=VISITOR_CORS,
)
"""A file the visitor downloads: a sandbox for anything a browser would render."""
WIDGET_POLICY = RoutePolicy(
    headers={**SECURITY_HEADERS, "Cross-Origin-Resource-Policy": "cross-origin"},
    cors=CorsPolicy(origins=lambda config: ()),
)
"""``widget.js``: a classic script any page may load (it needs no CORS; pages that ask
``Cross-Origin-Embedder-Policy: require-corp`` need its resource policy); the routes it
calls are what refuse the sites not allowed."""
POLL_WAIT_MAX = 25.0
WIDGET_CACHE = "public, max-age=300"


@attrs.frozen
class SessionBody:
    """Start or resume a visitor's session."""

    token: str | None = field(
        default=None, max_length=MAX_TOKEN_LENGTH, description="the visitor's token"
    )
    user_id: str | None = field(default=None, max_length=128, description="the site's user id")
    user_hash: str | None = field(
        default=None, max_length=128, description="hex HMAC-SHA256 of user_id (identity)"
    )
    name: str | None = field(default=None, max_length=100, description="pre-chat form")
    email: str | None = field(default=None, max_length=254, description="pre-chat form")


@attrs.frozen
class MessageBody:
    """A visitor's message."""

    client_id: str = field(
        pattern=CLIENT_ID.pattern, description="made by the widget, the same on every resend"
    )
    text: str = field(max_length=20_000, description="the text")


@attrs.frozen
class ReadBody:
    up_to: str = field(max_length=128, description="the last agent message the visitor saw")


@attrs.frozen
class PollBody:
    after: str | None = field(default=None, max_length=128, description="the last cursor")
    since: str | None = field(default=None, max_length=128, description="the last message id")
    wait: float = field(default=POLL_WAIT_MAX, minimum=0, maximum=POLL_WAIT_MAX)


FRAMES = {"type": "object", "description": "a frame, as the WebSocket sends it"}
ANSWERS = {
    "session": Response(
        None,
        "The visitor's token, who they are, and the widget's settings.",
        schema={"type": "object"},
    ),
    "message": Response(
        None,
        "The message as the visitor sees it, and whether it is new.",
        schema={"type": "object"},
    ),
    "poll": Response(
        None,
        "The frames since `after`, and the cursor to poll from next.",
        schema={"type": "object"},
    ),
}
VISITOR_ERRORS = ("BadRequest", "Unauthorized", "Forbidden", "TooManyRequests")


class Visiting:
    """A visitor route: the visitor whose token the request carries."""

    def __init__(self, visitors: Visitors) -> None:
        self.visitors = visitors

    def visitor(self, req: falcon.asgi.Request) -> Visitor:
        token = presented_bearer(req)
        if token is None:
            raise Unauthenticated("send the visitor token as Authorization: Bearer")
        return self.visitors.authenticate(token)


class WidgetScript:
    """``GET widget.js``: the widget, a classic script a page loads with one tag; gzipped
    for browsers that take it (all do), with an ``ETag`` so a page load after the cache
    time costs a 304."""

    operations = {
        "GET": Operation(
            "The chat widget's script",
            responses={
                200: Response(
                    None, "JavaScript", schema={"type": "string"}, media_type="text/javascript"
                ),
                304: Response(None, "Not modified: the browser's copy is current."),
            },
            operation_id="widgetScript",
        ),
        "HEAD": Operation(
            "The chat widget's script's headers (uptime checks, caches)",
            responses={
                200: Response(None, "The headers GET would answer, no body."),
                304: Response(None, "Not modified: the browser's copy is current."),
            },
            operation_id="widgetScriptHead",
        ),
    }

    def __init__(self) -> None:
        self.script = (
            resources.files("omnichannel_webchat").joinpath("static/widget.js").read_bytes()
        )
        self.gzipped = gzip.compress(self.script, 9, mtime=0)
        self.etag = '"' + hashlib.sha256(self.script).hexdigest()[:32] + '"'

    async def on_head(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """As GET, without the body (uptime checks, caches)."""
        await self.on_get(req, resp)
        resp.data = None

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.cache_control = [WIDGET_CACHE]
        resp.set_header("ETag", self.etag)
        resp.append_header("Vary", "Accept-Encoding")
        if self.etag in (req.get_header("If-None-Match") or ""):
            resp.status = falcon.HTTP_304
            return
        resp.content_type = "text/javascript; charset=utf-8"
        if "gzip" in (req.get_header("Accept-Encoding") or ""):
            resp.set_header("Content-Encoding", "gzip")
            resp.data = self.gzipped
        else:
            resp.data = self.script


class SessionResource:
    """``POST session``: a visitor's token, new or renewed, and the widget's settings."""

    operations = {
        "POST": Operation(
            "Start or resume a chat visitor's session",
            body=SessionBody,
            responses={200: ANSWERS["session"]},
            errors=VISITOR_ERRORS,
            operation_id="startSession",
        )
    }

    def __init__(self, visitors: Visitors, config: Any) -> None:
        self.visitors = visitors
        self.config = config

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body: SessionBody = req.context.body
        token, visitor = self.visitors.start(attrs.asdict(body), caller_address(req, self.config))
        conversation = await self.visitors.conversation(visitor)
        settings: WebchatSettings = self.visitors.settings()
        resp.media = {
            "token": token,
            "expires_at": format_timestamp(visitor.expires_at),
            "visitor": visitor.public(),
            "conversation": None
            if conversation is None
            else conversation_state(to_json(conversation)),
            "settings": settings.for_widget(),
        }


class MessagesResource(Visiting):
    """``POST message``: a visitor writes (the fallback of the socket's ``message``)."""

    operations = {
        "POST": Operation(
            "A chat visitor's message",
            body=MessageBody,
            responses={201: ANSWERS["message"], 200: ANSWERS["message"]},
            errors=VISITOR_ERRORS,
            operation_id="postMessage",
        )
    }

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        visitor = self.visitor(req)
        body: MessageBody = req.context.body
        message, created = await self.visitors.write(visitor, body.client_id, body.text)
        resp.status = falcon.HTTP_201 if created else falcon.HTTP_200
        resp.media = {"message": message, "created": created}


class FilesResource(Visiting):
    """``POST files?client_id=``: a visitor sends a file, the body its bytes, its name in
    ``X-Filename`` (percent-encoded: a header, not the URL, which proxies log)."""

    operations = {
        "POST": Operation(
            "A chat visitor's file",
            responses={201: ANSWERS["message"], 200: ANSWERS["message"]},
            errors=(*VISITOR_ERRORS, "UnsupportedMediaType", "PayloadTooLarge"),
            raw_body="the file's bytes, in its own Content-Type",
            operation_id="postFile",
        )
    }

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        visitor = self.visitor(req)
        limit = self.visitors.settings().upload_max_bytes
        if req.content_length is not None and req.content_length > limit:
            raise falcon.HTTPPayloadTooLarge(description=f"a file may be at most {limit} bytes")
        content = await req.stream.read(limit + 1)
        if len(content) > limit:
            raise falcon.HTTPPayloadTooLarge(description=f"a file may be at most {limit} bytes")
        if not content:
            raise InvalidInput("the file is empty", field="file")
        content_type = (
            (req.content_type or "application/octet-stream").split(";")[0].strip().lower()
        )
        attachment = Attachment(
            content=content,
            content_type=content_type,
            filename=file_name(unquote(req.get_header("X-Filename") or "")),
        )
        message, created = await self.visitors.write(
            visitor, req.get_param("client_id"), None, attachment
        )
        resp.status = falcon.HTTP_201 if created else falcon.HTTP_200
        resp.media = {"message": message, "created": created}


class TypingResource(Visiting):
    """``POST typing``: the visitor is typing."""

    operations = {
        "POST": Operation(
            "A chat visitor is typing",
            responses={204: Response(None, "Told.")},
            errors=VISITOR_ERRORS,
            operation_id="visitorTyping",
        )
    }

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        await self.visitors.typing(self.visitor(req))
        resp.status = falcon.HTTP_204


class ReadResource(Visiting):
    """``POST read``: the visitor saw the agents' messages up to one."""

    operations = {
        "POST": Operation(
            "A chat visitor read the agents' messages",
            body=ReadBody,
            responses={204: Response(None, "Marked read.")},
            errors=(*VISITOR_ERRORS, "NotFound"),
            operation_id="visitorRead",
        )
    }

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body: ReadBody = req.context.body
        await self.visitors.read(self.visitor(req), body.up_to)
        resp.status = falcon.HTTP_204


class PollResource(Visiting):
    """``POST poll``: the long-polling fallback: the frames after ``after``, waiting up to
    ``wait`` seconds for the first."""

    operations = {
        "POST": Operation(
            "A chat visitor's frames, by long polling",
            body=PollBody,
            responses={200: ANSWERS["poll"]},
            errors=VISITOR_ERRORS,
            operation_id="poll",
        )
    }

    def __init__(self, visitors: Visitors, config: Any) -> None:
        super().__init__(visitors)
        self.config = config

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        visitor = self.visitor(req)
        body: PollBody = req.context.body
        # a waiting poll holds a connection as a socket does: counted with the sockets
        with self.visitors.socket(visitor, caller_address(req, self.config)):
            stream = VisitorStream(self.visitors, visitor, body.after, body.since)
            frames = await collect(stream, body.wait)
        resp.media = {"frames": frames, "cursor": stream.cursor}


class MediaResource(Visiting):
    """``GET media/{message_id}/{index}``: a file of the visitor's own conversation."""

    operations = {
        "GET": Operation(
            "A file of the chat visitor's conversation",
            responses={
                200: Response(
                    None,
                    "The bytes",
                    schema={"type": "string", "format": "binary"},
                    media_type="*/*",
                )
            },
            errors=(*VISITOR_ERRORS, "NotFound"),
            operation_id="visitorMedia",
        )
    }

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, message_id: str, index: str
    ) -> None:
        visitor = self.visitor(req)
        message = await self.visitors.message(visitor, message_id)
        if not (index.isascii() and index.isdigit() and len(index) <= 4) or int(index) >= len(
            message.media
        ):
            raise NotFound(f"message {message_id!r} has no file {index[:8]!r}")
        media = message.media[int(index)]
        content = await self.visitors.inbox.read_media(media)
        resp.content_type = media.content_type or "application/octet-stream"
        resp.downloadable_as = media.filename or "file"
        resp.cache_control = ["private, max-age=3600"]
        resp.data = content


def visitor_routes(visitors: Visitors, config: Any) -> list[ChannelRoute]:
    def visiting(path: str, resource: object, policy: RoutePolicy = VISITOR_POLICY) -> ChannelRoute:
        return ChannelRoute(path, resource, public=True, policy=policy)

    return [
        ChannelRoute("widget.js", WidgetScript(), public=True, policy=WIDGET_POLICY),
        visiting("session", SessionResource(visitors, config)),
        visiting("message", MessagesResource(visitors)),
        visiting("files", FilesResource(visitors)),
        visiting("typing", TypingResource(visitors)),
        visiting("read", ReadResource(visitors)),
        visiting("poll", PollResource(visitors, config)),
        visiting("media/{message_id}/{index}", MediaResource(visitors), MEDIA_POLICY),
        visiting("socket", VisitorSocket(visitors, config)),
    ]
