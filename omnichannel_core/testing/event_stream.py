"""The agents' event stream (``GET /api/events``) read as an agent's client reads it: a real
HTTP stream of server-sent events, parsed line by line.

A channel's test against the real server watches what its routes made the inbox log::

    with open_stream(server.base_url, API_KEY) as (response, events):
        assert response.status_code == 200
        events.next_of("ready")
        ...  # what the channel's visitor or provider does
        event = events.next_message("Hello")
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import attrs
import httpx


@attrs.frozen
class ServerEvent:
    """One event of the stream: its ``event`` name, ``id`` (the cursor to resume from, None
    for the stream's own events) and ``data``, parsed from JSON."""

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
    ``?after=after`` when given), for a caller sending ``token`` (an API key or an access
    token); the caller checks the status first."""
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
