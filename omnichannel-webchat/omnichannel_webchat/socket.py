"""``socket``: a visitor's WebSocket (protocol: docs/channels/webchat.md).

The first frame is ``hello`` with the visitor's token (never in the URL, which logs and
proxies keep), and where the widget stands (``after``: an event cursor; ``since``: its last
message). Then two things run at once: the visitor's stream (:mod:`omnichannel_webchat.stream`)
is sent as it comes, and the visitor's frames are read and answered (``message`` → ``ack``,
``typing``, ``read``, ``ping`` → ``pong``). A refused frame gets an ``error`` frame and the
socket stays open; a bad token closes it with 4401, so the widget starts a new session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import falcon
import falcon.asgi

from omnichannel_core.channel import (
    Config,
    InvalidInput,
    NotFound,
    OmnichannelError,
    RateLimited,
    Unauthenticated,
    caller_address,
    close_reason,
    utcnow,
)
from omnichannel_webchat.stream import VisitorStream
from omnichannel_webchat.tokens import Visitor
from omnichannel_webchat.visitors import Visitors

HELLO_SECONDS = 10.0
"""How long a new socket may wait before saying ``hello``."""
MAX_FRAME_CHARS = 64 * 1024
"""The longest frame a visitor may send (a message's text is limited further)."""
MAX_CURSOR = 128

CLOSE_BAD_HELLO = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NO_HELLO = 4408
CLOSE_TOO_MANY = 4429
CLOSE_TOO_BIG = 1009
CLOSE_UNSUPPORTED = 1003
CLOSE_IDLE = 4408
IDLE_SECONDS = 75.0
"""A socket that sends nothing for this long is closed: the widget pings every 25 s, so
only a dead or abandoned client stays silent (protocol pings do not count)."""
CLOSE_RESTART = 1012
"""The server is stopping: the widget reconnects (to another worker or server)."""


class VisitorSocket:
    """The visitor's WebSocket; public, for the sites of ``WEBCHAT_ALLOWED_ORIGINS`` only
    (the core refuses a handshake from any other with 3403)."""

    def __init__(self, visitors: Visitors, config: Config) -> None:
        self.visitors = visitors
        self.config = config

    async def on_websocket(self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket) -> None:
        await ws.accept()
        try:
            async with asyncio.timeout(HELLO_SECONDS):  # not wait_for: it may lose a cancel
                hello = await read_frame(ws)
        except TimeoutError:
            await ws.close(CLOSE_NO_HELLO)
            return
        except (falcon.WebSocketDisconnected, _Closed):
            return
        try:
            visitor, after, since = self._hello(hello)
        except Unauthenticated as error:
            await ws.close(CLOSE_UNAUTHENTICATED, close_reason(error.message))
            return
        except InvalidInput as error:
            await ws.close(CLOSE_BAD_HELLO, close_reason(error.message))
            return
        try:
            with self.visitors.socket(visitor, caller_address(req, self.config)):
                stream = VisitorStream(self.visitors, visitor, after, since)
                await Session(ws, self.visitors, stream).run()
        except RateLimited as error:
            await ws.close(CLOSE_TOO_MANY, close_reason(error.message))

    def _hello(self, frame: Any) -> tuple[Visitor, str | None, str | None]:
        if not isinstance(frame, dict) or frame.get("type") != "hello":
            raise InvalidInput("the first frame must be hello")
        visitor = self.visitors.authenticate(frame.get("token"))
        after, since = frame.get("after"), frame.get("since")
        for name, value in (("after", after), ("since", since)):
            if value is not None and (not isinstance(value, str) or len(value) > MAX_CURSOR):
                raise InvalidInput(f"{name} must be a string of at most {MAX_CURSOR} characters")
        return visitor, after, since


class _Closed(Exception):
    """The socket was closed for a frame it sent (too big)."""


async def read_frame(ws: falcon.asgi.WebSocket) -> Any:
    """The next frame, parsed (None for one that is not JSON); a binary frame closes the
    socket (1003)."""
    try:
        text = await ws.receive_text()
    except falcon.PayloadTypeError:
        await ws.close(CLOSE_UNSUPPORTED, "frames are JSON text")
        raise _Closed from None
    if len(text) > MAX_FRAME_CHARS:
        await ws.close(CLOSE_TOO_BIG, "frame too big")
        raise _Closed
    try:
        return json.loads(text)
    except ValueError:
        return None


class Session:
    """One open socket of a visitor: their stream out, their frames in, at once; whichever
    ends first (the visitor left, the server stops, the stream failed) ends the other."""

    def __init__(
        self, ws: falcon.asgi.WebSocket, visitors: Visitors, stream: VisitorStream
    ) -> None:
        self.ws = ws
        self.visitors = visitors
        self.stream = stream
        self._sending = asyncio.Lock()

    @property
    def visitor(self) -> Visitor:
        """The visitor as the latest token sent says (a rotation moves the expiry on)."""
        return self.stream.visitor

    async def send(self, frame: dict[str, Any]) -> None:
        async with self._sending:
            await self.ws.send_media(frame)

    async def run(self) -> None:
        pump = asyncio.create_task(self._pump())
        reader = asyncio.create_task(self._read())
        try:
            done, _ = await asyncio.wait({pump, reader}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]  # the core closes with 1011
        finally:
            pump.cancel()
            reader.cancel()
            await asyncio.gather(pump, reader, return_exceptions=True)

    async def _pump(self) -> None:
        with contextlib.suppress(falcon.WebSocketDisconnected):
            async with contextlib.aclosing(self.stream.frames()) as frames:  # its feed freed
                async for frame in frames:  # when the socket ends, not when collected
                    await self.send(frame)
            await self.ws.close(CLOSE_RESTART, "the server is stopping")

    async def _read(self) -> None:
        """The visitor's frames, answered, until they leave, go silent for
        :data:`IDLE_SECONDS`, or their token expires; a token due for rotation is replaced
        on the way."""
        with contextlib.suppress(falcon.WebSocketDisconnected, _Closed):
            while True:
                rotated = self.visitors.rotated(self.visitor)
                if rotated is not None:
                    await self.send(self.stream.adopt(*rotated))
                left = (self.visitor.expires_at - utcnow()).total_seconds()
                try:
                    async with asyncio.timeout(min(IDLE_SECONDS, left)):
                        frame = await read_frame(self.ws)
                except TimeoutError:
                    if self.visitor.expires_at <= utcnow():
                        await self.ws.close(CLOSE_UNAUTHENTICATED, "the visitor token expired")
                    else:
                        await self.ws.close(CLOSE_IDLE, "idle: ping every 25 s")
                    return
                await self._answer(frame)

    async def _answer(self, frame: Any) -> None:
        kind = frame.get("type") if isinstance(frame, dict) else None
        client_id = frame.get("client_id") if kind == "message" else None
        try:
            if kind == "message":
                message, _ = await self.visitors.write(self.visitor, client_id, frame.get("text"))
                await self.send({"type": "ack", "client_id": client_id, "message": message})
            elif kind == "typing":
                await self.visitors.typing(self.visitor)
            elif kind == "read":
                await self.visitors.read(self.visitor, frame.get("up_to"))
            elif kind == "ping":
                self.visitors.check_signal(self.visitor)
                await self.send({"type": "pong"})
            else:
                self.visitors.check_signal(self.visitor)  # a flood of bad frames is limited too
                raise InvalidInput("frames are JSON objects of type message, typing, read or ping")
        except (InvalidInput, NotFound, RateLimited) as error:
            await self.send(_error(error, client_id))


def _error(error: OmnichannelError, client_id: Any) -> dict[str, Any]:
    code = {RateLimited: "too_many_requests", NotFound: "not_found"}.get(
        type(error), "invalid_input"
    )
    frame: dict[str, Any] = {"type": "error", "error": code, "message": error.message}
    if isinstance(client_id, str):
        frame["client_id"] = client_id
    return frame
