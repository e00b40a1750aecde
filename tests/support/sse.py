"""A small server-sent events client for tests: a real HTTP stream read line by line."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from typing import Any

import attrs
import httpx
from falcon import testing


@attrs.frozen
class ServerEvent:
    event: str
    id: str | None
    data: Any


class EventStream:
    """An open ``GET /api/events``; :meth:`next` returns the next event (not comments)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.iter_lines()

    def next(self) -> ServerEvent:
        """The next event; raises httpx.ReadTimeout when none comes in the client's read
        timeout, StopIteration when the server ends the stream."""
        fields: dict[str, str] = {}
        data: list[str] = []
        for line in self._lines:
            if line == "":
                if data or fields:
                    payload = "\n".join(data)
                    return ServerEvent(
                        event=fields.get("event", "message"),
                        id=fields.get("id"),
                        data=json.loads(payload) if payload else None,
                    )
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            else:
                fields[name] = value
        raise StopIteration("the server ended the stream")

    def next_of(self, *types: str) -> ServerEvent:
        """The next event of one of ``types``, skipping others."""
        while True:
            event = self.next()
            if event.event in types:
                return event

    def next_message(self, *texts: str) -> ServerEvent:
        """The next message.created event whose message has one of ``texts``, skipping
        others (a stream opened while another test's events are still being read may start
        a little before them)."""
        while True:
            event = self.next_of("message.created")
            if event.data["message"]["text"] in texts:
                return event


@contextlib.contextmanager
def open_stream(
    base_url: str,
    token: str,
    last_event_id: str | None = None,
    read_timeout: float = 10.0,
    after: str | None = None,
) -> Iterator[tuple[httpx.Response, EventStream]]:
    """The open response and its events (from ``Last-Event-ID: last_event_id`` or
    ``?after=after`` when given); the caller checks the status first."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    params = {"after": after} if after is not None else {}
    timeout = httpx.Timeout(10.0, read=read_timeout)
    with (
        httpx.Client(base_url=base_url, timeout=timeout) as client,
        client.stream("GET", "/api/events", headers=headers, params=params) as response,
    ):
        yield response, EventStream(response)


class SimulatedStream:
    """The event names an in-process stream (``falcon.testing``) has sent so far."""

    def __init__(self, result: testing.StreamedResult) -> None:
        self.result = result
        self.body = b""

    async def until(self, *names: str) -> list[str]:
        """Every event name sent, once one of ``names`` is among them."""
        async with asyncio.timeout(10):
            while True:
                self.body += await self.result.stream.read()
                sent = [
                    line.removeprefix(b"event: ").decode()
                    for line in self.body.splitlines()
                    if line.startswith(b"event: ")
                ]
                if any(name in sent for name in names):
                    return sent
                await asyncio.sleep(0.01)

    async def first(self, name: str) -> ServerEvent:
        """The first event named ``name`` the stream sent, parsed (waiting for it)."""
        async with asyncio.timeout(10):
            while True:
                *complete, _ = self.body.decode().split("\n\n")  # the last may be partial
                for block in complete:
                    lines = block.splitlines()
                    fields = dict(line.split(": ", 1) for line in lines if ": " in line)
                    if fields.get("event") == name:
                        return ServerEvent(name, fields.get("id"), json.loads(fields["data"]))
                self.body += await self.result.stream.read()
                await asyncio.sleep(0.01)
