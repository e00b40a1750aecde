"""Server-sent events in the core's tests: a real HTTP stream read line by line (the test
kit's, :mod:`omnichannel_core.testing.event_stream`, which channels' tests use too), and an
in-process one (``falcon.testing``)."""

from __future__ import annotations

import asyncio
import json

from falcon import testing

from omnichannel_core.testing.event_stream import EventStream, ServerEvent, open_stream

__all__ = ["EventStream", "ServerEvent", "SimulatedStream", "open_stream"]


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
