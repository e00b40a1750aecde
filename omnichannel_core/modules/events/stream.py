"""``GET /api/events``: the realtime stream of what changes in the inbox, as server-sent
events, filtered by what the caller may see (`views.event_view`).

Each event goes out as ``event: <type>``, ``id: <cursor>`` and ``data: {"type", "at",
"conversation_id", "<message|conversation|contact>": <the record as it is now>, "data":
<what the event carries besides, by type: docs/events.md>}``. A client that reconnects
sends the last id it got as ``Last-Event-ID`` (browsers' ``EventSource`` does) or
``?after=``, and gets everything it missed, in order; ``0`` (:data:`FROM_OLDEST`) replays
the log from the oldest event it still keeps; with neither, the stream starts with what
happens next. The first thing sent is ``event: ready`` (with ``retry``) and the cursor
the stream starts after (null: before the oldest event kept), so a client knows it is
listening.

When the stream has events (or a keepalive) to send and its credential was last checked
``RECHECK_SECONDS`` ago or more, it checks it again: after a logout, a deactivation, a
revoked key or an expired access token, it sends ``event: ended`` saying why and closes,
and a role change applies to what follows. Events within ``RECHECK_SECONDS`` of the last
check still go out. A comment is sent when nothing was sent for ``KEEPALIVE_SECONDS``
(nothing happened, or nothing this reader may see), so proxies keep the connection, a
client that left is noticed (Falcon learns it only when the stream sends something), and a
quiet stream notices a credential that stopped holding.

A user's stream makes them connected while it is open (`presence.tracking`): it records
itself before ``ready``, refreshes its record while open and removes it when it closes. It
refreshes only just after a send (Falcon resumes a stream after a send only while its client
is there), and sends its keepalive at least twice per refresh period.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

import attrs
import falcon
import falcon.asgi
from falcon.asgi import SSEvent

from omnichannel_core.module import (
    EventsExpired,
    InvalidInput,
    OmnichannelError,
    Operation,
    Parameter,
    Principal,
    Response,
    field,
    format_timestamp,
)
from omnichannel_core.modules.events.hub import Delivery, EventHub
from omnichannel_core.modules.events.presence.tracking import PresenceTracker, StreamPresence
from omnichannel_core.modules.events.views import EventView, event_view

STREAM_PERMISSION = "conversations:read"
"""What opening a stream needs (each event then needs its own type's permission)."""

KEEPALIVE_SECONDS = 15.0
RECHECK_SECONDS = 5.0
"""Before events (or a keepalive) go out, the credential is checked again if it was not for
this long: a burst of events costs one check, and a revoked key stops at its first event
after this long."""
MAX_CURSOR = 200
FROM_OLDEST = "0"
"""``?after=0`` or ``Last-Event-ID: 0``: replay from the oldest event the log still keeps.
No store makes it a cursor: SQLite's start at 1, Firestore's are base64."""

WITHDRAWN_FIELDS = ("id", "status", "assignee")
"""All an agent is told of a conversation given to someone else: enough to drop it."""


def event_body(delivery: Delivery, view: EventView = EventView.FULL) -> dict[str, Any]:
    """The event's ``data:``: its type, time, conversation and record, and what the event
    carries besides (its ``data``: ``conversation.typing``'s ``by``...), which a withdrawn
    view leaves out."""
    event = delivery.event
    record = delivery.record
    if view is EventView.WITHDRAWN and record is not None:
        record = {name: record.get(name) for name in WITHDRAWN_FIELDS}
    kind = delivery.kind
    body = {
        "type": event.type,
        "at": format_timestamp(event.at),
        "conversation_id": event.conversation_id,
        (kind.record if kind is not None else "record"): record,
    }
    if view is not EventView.WITHDRAWN:
        body["data"] = dict(event.data)
    return body


STREAM = (
    '`text/event-stream`. First `event: ready`, `retry: 2000` and `data: {"after":'
    " <cursor, or null: from the oldest event kept>}`, then one event per change:"
    " `event: <type>` (`message.created`, `message.status_changed`,"
    " `conversation.updated`, `conversation.typing`, `contact.updated`, and the types other"
    ' modules declare), `id: <cursor>`, `data: {"type", "at", "conversation_id",'
    ' "<message|conversation|contact>": <the record as it is now>, "data": <what the event'
    " carries besides, by type>}`. Comments keep an idle"
    " connection alive. The stream ends with `event: ended` when the credential stops being"
    " valid, or `event: expired` when it fell behind the kept history."
)


@attrs.frozen
class StreamQuery:
    after: str | None = field(
        default=None,
        max_length=MAX_CURSOR,
        description="the same as Last-Event-ID (0: from the oldest event still kept), for"
        " clients that cannot set headers",
        message="must be a cursor from this stream",
    )


class Events:
    """``GET /api/events``"""

    operations = {
        "GET": Operation(
            "Stream what changes in the inbox (server-sent events)",
            permission=STREAM_PERMISSION,
            query=StreamQuery,
            parameters=(
                Parameter(
                    "Last-Event-ID",
                    "header",
                    "resume after this event id: every event since comes first, in order; 0"
                    " replays from the oldest event still kept",
                    {"type": "string", "maxLength": MAX_CURSOR},
                ),
            ),
            responses={
                200: Response(
                    None, STREAM, schema={"type": "string"}, media_type="text/event-stream"
                )
            },
            errors=("EventsExpired",),
            notes="Each event also needs its type's permission (contact events:"
            " contacts:read). An agent is told only of the conversations assigned to them or"
            " to nobody (before or after the change).",
            operation_id="streamEvents",
            tags=("events",),
        )
    }

    def __init__(self, hub: EventHub, presence: PresenceTracker | None = None) -> None:
        self.hub = hub
        self.presence = presence

    def _tracked(
        self, principal: Principal
    ) -> contextlib.AbstractAsyncContextManager[StreamPresence | None]:
        """The stream's presence while it is open (None: a key's stream, or no tracker)."""
        if self.presence is None:
            return contextlib.nullcontext()
        return self.presence.track(principal)

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        header = req.get_header("Last-Event-ID")
        if header is not None and not 0 < len(header) <= MAX_CURSOR:
            raise InvalidInput("Last-Event-ID or after must be a cursor from this stream")
        given = header or req.context.query.after
        await self.hub.ensure_running()
        if given is None:
            start = await self.hub.head()
        elif given == FROM_OLDEST:
            start = None  # the store reads on from before its oldest event kept
        else:
            start = given
            await self.hub.log.after(given, 1)  # 400 or 410 now, not mid-stream
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
        this is open (:meth:`EventHub.subscribe`), and a user's stream keeps them connected
        (`presence.tracking`)."""
        async with (
            self._tracked(principal) as presence,
            contextlib.aclosing(
                self._events(principal, authenticate_again, cursor, presence)
            ) as events,
        ):
            async for event in events:
                yield event

    async def _events(
        self,
        principal: Principal,
        authenticate_again: Callable[[], Awaitable[Principal]],
        cursor: str | None,
        presence: StreamPresence | None,
    ) -> AsyncGenerator[SSEvent, None]:
        keepalive_seconds = KEEPALIVE_SECONDS
        if presence is not None:  # a send at least twice per refresh (see below)
            keepalive_seconds = min(KEEPALIVE_SECONDS, presence.refresh_seconds / 2)
        with self.hub.subscribe():
            yield SSEvent(event="ready", json={"after": cursor}, retry=2000)
            checked = sent = time.monotonic()
            while self.hub.running:
                sent_before = sent
                signal = self.hub.signal()
                batch = self.hub.buffered_after(cursor)
                if batch is None:
                    try:
                        batch = await self.hub.read_log(cursor)
                    except EventsExpired as error:
                        yield SSEvent(event="expired", json={"message": error.message})
                        return
                # Nothing sent for KEEPALIVE_SECONDS (nothing happened, or nothing this reader
                # may see): only a send tells Falcon that the client left.
                keepalive = time.monotonic() - sent >= keepalive_seconds
                if (batch or keepalive) and time.monotonic() - checked >= RECHECK_SECONDS:
                    checked = time.monotonic()
                    try:
                        principal = await authenticate_again()
                    except OmnichannelError as error:
                        yield SSEvent(event="ended", json={"message": error.message})
                        return
                    if STREAM_PERMISSION not in principal.permissions:
                        yield SSEvent(event="ended", json={"message": "permission withdrawn"})
                        return
                if keepalive:
                    yield SSEvent(comment="keepalive")
                    sent = time.monotonic()
                for delivery in batch:
                    cursor = delivery.event.cursor
                    view = event_view(
                        principal,
                        delivery.event,
                        delivery.kind,
                        delivery.assignee_now,
                        delivery.audience,
                    )
                    if view is not EventView.HIDDEN:
                        yield SSEvent(
                            event=delivery.event.type,
                            event_id=cursor,
                            json=event_body(delivery, view),
                        )
                        sent = time.monotonic()
                if presence is not None and sent != sent_before:
                    # Falcon resumes the stream after a send only while the client is
                    # there: a stream that lost its client refreshes nothing.
                    await presence.refresh()
                if not batch:  # wait for news, at most until a keepalive is due
                    due = sent + keepalive_seconds - time.monotonic()
                    await self.hub.wait(signal, max(0.0, due))
