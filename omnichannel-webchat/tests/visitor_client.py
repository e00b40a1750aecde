"""A scripted visitor: what the widget does, over real HTTP and a real WebSocket."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import websockets

PREFIX = "/api/channels/webchat"


class VisitorClient:
    """A visitor of the site ``origin`` on the server ``base_url``."""

    def __init__(self, base_url: str, origin: str, token: str | None = None) -> None:
        self.base_url = base_url
        self.origin = origin
        self.token = token
        self.http = httpx.AsyncClient(base_url=base_url, headers={"Origin": origin}, timeout=10)
        self.visitor: dict[str, Any] | None = None
        self.conversation: dict[str, Any] | None = None

    async def __aenter__(self) -> VisitorClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def start(self, **body: Any) -> dict[str, Any]:
        """``POST session``; keeps the token."""
        if self.token is not None:
            body.setdefault("token", self.token)
        answer = await self.http.post(f"{PREFIX}/session", json=body)
        answer.raise_for_status()
        data = answer.json()
        self.token, self.visitor, self.conversation = (
            data["token"],
            data["visitor"],
            data["conversation"],
        )
        return data

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers(), **kwargs.pop("headers", {})}
        return await self.http.post(f"{PREFIX}/{path}", headers=headers, **kwargs)

    async def write(self, text: str, client_id: str | None = None) -> httpx.Response:
        return await self.post(
            "message", json={"client_id": client_id or new_client_id(), "text": text}
        )

    def socket(self, after: str | None = None, since: str | None = None) -> Socket:
        return Socket(self, after, since)


def new_client_id() -> str:
    return uuid.uuid4().hex


class Socket:
    """``async with visitor.socket() as socket:`` an open, greeted visitor socket."""

    def __init__(self, visitor: VisitorClient, after: str | None, since: str | None) -> None:
        self.visitor = visitor
        self.after = after
        self.since = since
        self.ready: dict[str, Any] | None = None
        self.cursor: str | None = after
        self._socket: Any = None

    @property
    def url(self) -> str:
        return "ws" + self.visitor.base_url.removeprefix("http") + f"{PREFIX}/socket"

    async def __aenter__(self) -> Socket:
        self._socket = await websockets.connect(
            self.url, additional_headers={"Origin": self.visitor.origin}, max_size=2**20
        )
        await self.send(
            {"type": "hello", "token": self.visitor.token, "after": self.after, "since": self.since}
        )
        while True:
            frame = await self.receive()
            if frame["type"] == "ready":
                self.ready = frame
                return self

    async def __aexit__(self, *exc: object) -> None:
        await self._socket.close()

    async def send(self, frame: dict[str, Any]) -> None:
        await self._socket.send(json.dumps(frame))

    async def receive(self, timeout: float = 10) -> dict[str, Any]:
        frame = json.loads(await asyncio.wait_for(self._socket.recv(), timeout))
        if frame.get("cursor"):
            self.cursor = frame["cursor"]
        if frame["type"] == "token":  # a rotation: keep the fresh one, as the widget does
            self.visitor.token = frame["token"]
        return frame

    async def until(self, kind: str, timeout: float = 10, **matching: Any) -> dict[str, Any]:
        """The next frame of ``kind`` whose fields (or message's fields) match."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            frame = await self.receive(max(0.01, deadline - loop.time()))
            if frame["type"] != kind:
                continue
            subject = frame.get("message", frame)
            if all(subject.get(name) == value for name, value in matching.items()):
                return frame

    async def messages(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        """The next ``count`` message frames' messages."""
        found = []
        while len(found) < count:
            found.append((await self.until("message", timeout))["message"])
        return found
