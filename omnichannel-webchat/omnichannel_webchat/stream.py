"""A visitor's conversation as it happens, resumed with no gap and no double.

The widget remembers the last event cursor it was given and the last message it shows, and
sends both on every (re)connect. The stream then:

- replays the events after that cursor, when the event log still holds them;
- otherwise (a first visit, a cursor too old or unknown) starts following from now and
  *then* reads the history after that message: whatever happened in between is in one or
  the other, and a message in both is sent once;
- follows the conversation live, through the process's one reader of the event log
  (``ChannelInbox.follow``), which any server's writes wake: the agent's reply needs no
  socket on the server that sent it.

A visitor with no conversation yet waits for their first message (stored by this process,
or found by a look every :data:`LOOK_SECONDS`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from datetime import datetime, timedelta

from omnichannel_core.channel import (
    ChannelInbox,
    Conversation,
    ConversationFeed,
    DeliveryStatus,
    EventsExpired,
    InvalidInput,
    NotFound,
    StatusUpdate,
    WebhookResult,
    format_timestamp,
    to_json,
)
from omnichannel_webchat.frames import Frame, conversation_state, frame_of, visitor_message
from omnichannel_webchat.tokens import Visitor
from omnichannel_webchat.visitors import Visitors

HISTORY_LIMIT = 200
"""The most messages a first visit (or a resync from too long ago) is sent."""
PAGE = 100
LOOK_SECONDS = 30.0
"""How often a visitor with no conversation yet looks for one their tab on another worker
or server started (one on this worker wakes it at once)."""
SINCE_MARGIN = timedelta(minutes=5)
"""How far before the widget's last message the history looks (:meth:`_since_time`)."""
MAX_BEHIND = timedelta(minutes=15)
"""The furthest back a replay goes: a widget back from a longer sleep reads its
conversation's messages instead (ChannelInbox.follow), not every event of the log since."""


class VisitorStream:
    """The frames one connection of ``visitor`` is sent, from ``after`` (an event cursor)
    or ``since`` (a message id), as an async iterator.

    :attr:`cursor` is where a new connection resumes: it only ever names a point before
    which the visitor was sent everything (a history read is done before it moves), so a
    connection cut anywhere, or a poll answered early, leaves no gap. :attr:`visitor` is
    the visitor as the latest token sent says (a rotation gives a later expiry);
    :attr:`settled` is set once what was missed has been sent (the history, or the replay
    has begun) and live events are next.
    """

    def __init__(
        self, visitors: Visitors, visitor: Visitor, after: str | None, since: str | None
    ) -> None:
        self.visitors = visitors
        self.inbox: ChannelInbox = visitors.inbox
        self.visitor = visitor
        self.cursor = after
        self.since = since
        self.settled = asyncio.Event()
        self._sent: dict[str, str | None] = {}  # message id -> status last sent

    async def frames(self) -> AsyncGenerator[Frame, None]:
        rotated = self.visitors.rotated(self.visitor)
        if rotated is not None:
            yield self.adopt(*rotated)
        with self.visitors.waiting(self.visitor) as started:  # before looking: no wake lost
            conversation = await self.visitors.conversation(self.visitor)
            yield {
                "type": "ready",
                "visitor": self.visitor.public(),
                "conversation": None if conversation is None else _state(conversation),
                "cursor": self.cursor,
            }
            if conversation is None:
                self.settled.set()  # nothing was missed
                conversation = await self._first_conversation(started)
                self.cursor = None  # what was before it is not theirs: read its history
        async with contextlib.AsyncExitStack() as stack:
            feed, replayed = await self._follow(stack, conversation)
            if not replayed:
                *missed, state = await self._history(conversation)
                for frame in missed:
                    yield frame
                self.cursor = feed.cursor  # only now: everything before it was sent
                yield state | {"cursor": feed.cursor}  # the widget resumes from here
                await self._delivered(*missed)
            self.settled.set()
            async for event in feed:
                self.cursor = event.cursor  # set before the frame is handed on, never after
                told = frame_of(event)
                if told is None or not self._fresh(told):
                    continue
                yield told | {"cursor": event.cursor}
                await self._delivered(told)
            self.cursor = feed.cursor

    def adopt(self, token: str, fresh: Visitor) -> Frame:
        """The ``token`` frame of a rotation; the stream speaks for ``fresh`` from now."""
        self.visitor = fresh
        return {"type": "token", "token": token, "expires_at": _at(fresh)}

    async def _follow(
        self, stack: contextlib.AsyncExitStack, conversation: Conversation
    ) -> tuple[ConversationFeed, bool]:
        """The feed of the conversation, held open by ``stack``: after :attr:`cursor`
        (replayed: True) when the log still holds it and it is recent, else from now (the
        caller reads the history first; :attr:`cursor` is left where it was)."""
        if self.cursor is not None:
            try:
                feed = await stack.enter_async_context(
                    self.inbox.follow([conversation.id], after=self.cursor, max_behind=MAX_BEHIND)
                )
                return feed, True
            except (EventsExpired, InvalidInput):
                pass  # too old, or another server's log: read the history instead
        return await stack.enter_async_context(self.inbox.follow([conversation.id])), False

    async def _history(self, conversation: Conversation) -> list[Frame]:
        """What the widget missed, read once the feed is open: the messages created or
        changed since :attr:`since` was (an agent's reply scheduled before it and sent
        after it included), or the last :data:`HISTORY_LIMIT` when ``since`` is not one of
        this conversation's; then the conversation's state as it is now."""
        changed_after = await self._since_time(conversation)
        messages: list[Frame] = []
        page_cursor: str | None = None
        while True:
            page = await self.inbox.list_messages(conversation.id, page_cursor, PAGE)
            for message in page.items:
                if changed_after is not None and message.updated_at <= changed_after:
                    continue
                shown = visitor_message(to_json(message))
                if shown is not None and shown["id"] != self.since:
                    messages.append(shown)
            page_cursor = page.next_cursor
            if page_cursor is None:
                break
        frames = [
            frame
            for frame in (
                {"type": "message", "message": shown} for shown in messages[-HISTORY_LIMIT:]
            )
            if self._fresh(frame)
        ]
        current = await self.inbox.get_conversation(conversation.id)  # after the feed opened
        frames.append({"type": "conversation", "conversation": _state(current)})
        return frames

    async def _since_time(self, conversation: Conversation) -> datetime | None:
        """A while before the widget's last message was made, if it is one of this
        conversation's: what was made or changed after that is what the widget may lack.
        The margin (:data:`SINCE_MARGIN`) covers a reply sent just before that message
        whose frame had not reached the widget yet, and clocks of servers apart; what the
        widget has already it drops by id."""
        if self.since is None:
            return None
        try:
            message = await self.inbox.get_message(self.since)
        except (NotFound, InvalidInput):
            return None
        if message.conversation_id != conversation.id:
            return None
        return message.created_at - SINCE_MARGIN

    def _fresh(self, frame: Frame) -> bool:
        """Whether a message frame tells the widget something new (a message it was not
        sent, or a new status of one); other frames always do."""
        if frame["type"] != "message":
            return True
        message = frame["message"]
        if self._sent.get(message["id"], "") == message["status"]:
            return False
        self._sent[message["id"]] = message["status"]
        return True

    async def _delivered(self, *frames: Frame) -> None:
        """The agents' messages these frames sent to the visitor's widget are ``delivered``
        (one write for all)."""
        updates = tuple(
            StatusUpdate(provider_message_id=message["id"], status=DeliveryStatus.DELIVERED)
            for message in (frame.get("message") for frame in frames)
            if message is not None and message["from"] == "agent" and message["status"] == "sent"
        )
        if updates:
            await self.inbox.receive(WebhookResult(statuses=updates))

    async def _first_conversation(self, started: asyncio.Event) -> Conversation:
        """The visitor's conversation once they have one: when this process stores their
        message (``started`` is set), or when a look every :data:`LOOK_SECONDS` finds one
        another worker, server or tab started."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LOOK_SECONDS):  # not wait_for, which may lose
                    await started.wait()  # a cancellation on Python 3.11
            started.clear()  # before looking: a message stored meanwhile sets it again
            conversation = await self.visitors.conversation(self.visitor)
            if conversation is not None:
                return conversation


def _state(conversation: Conversation) -> Frame:
    return conversation_state(to_json(conversation))


def _at(visitor: Visitor) -> str:
    return format_timestamp(visitor.expires_at)
