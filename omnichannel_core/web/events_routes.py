"""``GET /api/events``: the realtime stream of what changes in the inbox, as server-sent
events, filtered by what the caller may see (`omnichannel_core.access.policy.event_view`).

Each event goes out as ``id: <cursor>``, ``event: <type>`` and ``data: {"type", "at",
"conversation_id", "<message|conversation|contact>": <the record as it is now>}``. A client
that reconnects sends the last id it got as ``Last-Event-ID`` (browsers' ``EventSource``
does) or ``?after=``, and gets everything it missed, in order; with neither, the stream
starts with what happens next. The first thing sent is ``event: ready`` with the cursor the
stream starts after, so a client knows it is listening.

The stream checks its credential again before it sends events when its last check is
``RECHECK_SECONDS`` old, and before each keepalive: logging out, being deactivated or a
revoked key ends it before the next event, and a role change applies to what follows. A
comment is sent when nothing happened for ``KEEPALIVE_SECONDS``, so proxies keep the
connection and a client that left is noticed (Falcon learns it only when the stream sends
something).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import falcon
import falcon.asgi
from falcon.asgi import SSEvent

from omnichannel_core.access.policy import EventView, Permission, Principal, event_view
from omnichannel_core.errors import EventsExpired, InvalidInput, OmnichannelError
from omnichannel_core.events.hub import Delivery, EventHub
from omnichannel_core.events.records import RECORD_OF_EVENT
from omnichannel_core.serialization import format_timestamp

KEEPALIVE_SECONDS = 15.0
RECHECK_SECONDS = 5.0
"""Before events (or a keepalive) go out, the credential is checked again if it was not for
this long: a burst of events costs one check, and a revoked key stops at its first event
after this long."""
MAX_CURSOR = 200

WITHDRAWN_FIELDS = ("id", "status", "assignee")
"""All an agent is told of a conversation given to someone else: enough to drop it."""


def event_body(delivery: Delivery, view: EventView = EventView.FULL) -> dict[str, Any]:
    event = delivery.event
    record = delivery.record
    if view is EventView.WITHDRAWN and record is not None:
        record = {field: record.get(field) for field in WITHDRAWN_FIELDS}
    return {
        "type": event.type.value,
        "at": format_timestamp(event.at),
        "conversation_id": event.conversation_id,
        RECORD_OF_EVENT[event.type]: record,
    }


class Events:
    """``GET /api/events``"""

    permissions = {"GET": Permission.CONVERSATIONS_READ}

    def __init__(self, hub: EventHub) -> None:
        self.hub = hub

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        given = req.get_header("Last-Event-ID") or req.get_param("after")
        if given is not None and not 0 < len(given) <= MAX_CURSOR:
            raise InvalidInput("Last-Event-ID or after must be a cursor from this stream")
        await self.hub.ensure_running()
        if given is None:
            start = await self.hub.head()
        else:
            start = given
            await self.hub.store.events_after(given, 1)  # 400 or 410 now, not mid-stream
        resp.content_type = "text/event-stream"
        resp.set_header("X-Accel-Buffering", "no")  # nginx: do not hold the stream back
        resp.sse = self.stream(req.context.principal, req.context.authenticate_again, start)

    async def stream(
        self,
        principal: Principal,
        authenticate_again: Callable[[], Awaitable[Principal]],
        cursor: str | None,
    ) -> AsyncIterator[SSEvent]:
        """The events after ``cursor`` that ``principal`` may see, then those that follow,
        until the credential no longer holds or the server stops. The hub reads the log while
        this is open (:meth:`EventHub.subscribe`)."""
        with self.hub.subscribe():
            yield SSEvent(event="ready", json={"after": cursor}, retry=2000)
            checked = time.monotonic()
            idle = False  # nothing happened for KEEPALIVE_SECONDS: a keepalive is due
            while self.hub.running:
                signal = self.hub.signal()
                batch = self.hub.buffered_after(cursor)
                if batch is None:
                    try:
                        batch = await self.hub.read_log(cursor)
                    except EventsExpired as error:
                        yield SSEvent(event="expired", json={"message": error.message})
                        return
                if (batch or idle) and time.monotonic() - checked >= RECHECK_SECONDS:
                    checked = time.monotonic()
                    try:
                        principal = await authenticate_again()
                    except OmnichannelError as error:
                        yield SSEvent(event="ended", json={"message": error.message})
                        return
                    if Permission.CONVERSATIONS_READ not in principal.permissions:
                        yield SSEvent(event="ended", json={"message": "permission withdrawn"})
                        return
                if idle:
                    yield SSEvent(comment="keepalive")
                for delivery in batch:
                    cursor = delivery.event.cursor
                    view = event_view(principal, delivery.event, delivery.assignee_now)
                    if view is not EventView.HIDDEN:
                        yield SSEvent(
                            event=delivery.event.type.value,
                            event_id=cursor,
                            json=event_body(delivery, view),
                        )
                idle = not batch and not await self.hub.wait(signal, KEEPALIVE_SECONDS)


def mount_events(app: falcon.asgi.App, hub: EventHub) -> None:
    app.add_route("/api/events", Events(hub))
