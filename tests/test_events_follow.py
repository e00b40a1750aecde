"""``ChannelInbox.follow``: the events of some conversations, read by the process's one
reader of the event log (the events module's hub, offered as ``LiveEvents``).

First across two servers: two apps on one SQLite file in one test process, each with its
own registry, bus and hub (as two gunicorn workers have), the job runner beside the first.
What an agent does through the first app's API reaches a feed followed on the second; then
the hub alone, on a real store and bus: a cancelled follower leaves nothing behind, a slow
one misses nothing, and the feeds end when the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import attrs
import pytest
from falcon import testing

from omnichannel_core.app import assemble
from omnichannel_core.bus.bus import PollingBus
from omnichannel_core.bus.news import News
from omnichannel_core.channel import (
    ChannelInbox,
    ChannelRoute,
    ConversationEvent,
    ConversationFeed,
    EventsExpired,
    InboundMessage,
    InvalidInput,
    NotFound,
    OutboundMessage,
    SendResult,
    WebhookResult,
    hookimpl,
    utcnow,
)
from omnichannel_core.config import Config
from omnichannel_core.module import ChannelInboxes, LiveEvents
from omnichannel_core.modules.events.follow import Feed, HubEvents
from omnichannel_core.modules.events.hub import EventHub
from omnichannel_core.modules.inbox.events import event_types
from omnichannel_core.modules.inbox.reader import StoreReader
from omnichannel_core.plugins.context import EventReader
from omnichannel_core.plugins.loading import load_plugins
from omnichannel_core.plugins.registry import Registry
from omnichannel_core.store import open_database
from omnichannel_core.store.sqlite.database import SqliteDatabase
from omnichannel_core.testing.in_process import API_KEY, AUTH, NO_RATE_LIMITS
from omnichannel_core.worker import runner_of
from tests.support.signing import unique
from tests.support.stores import open_stores

TIMEOUT = 10.0


class Probe:
    """A channel that keeps the ``ChannelInbox`` its routes are given, and sends at once."""

    def __init__(self) -> None:
        self.inbox: ChannelInbox | None = None

    @hookimpl
    def send(self, message: OutboundMessage) -> SendResult:
        return SendResult(provider_message_id=message.id)

    @hookimpl
    def channel_routes(self, inbox: ChannelInbox) -> list[ChannelRoute]:
        self.inbox = inbox
        return []


@attrs.frozen
class Server:
    """One of the two apps: its client, its registry and its probe's inbox."""

    conductor: testing.ASGIConductor
    registry: Registry
    probe: Probe

    @property
    def inbox(self) -> ChannelInbox:
        assert self.probe.inbox is not None
        return self.probe.inbox

    async def visitor_writes(self, visitor: str, text: str) -> str:
        """Store a visitor's message on ``probe``; its conversation's id."""
        message = InboundMessage(unique("in"), visitor, text)
        (received,) = await self.inbox.receive(WebhookResult(messages=(message,)))
        return received.conversation_id

    async def agent_replies(self, conversation_id: str, text: str) -> None:
        path = f"/api/conversations/{conversation_id}/messages"
        sent = await self.conductor.simulate_post(path, json={"text": text}, headers=AUTH)
        assert sent.status_code == 202, sent.text


@contextlib.asynccontextmanager
async def two_servers(data_dir: Any) -> AsyncIterator[tuple[Server, Server]]:
    """Two apps on one store (the job runner beside the first), started and stopped."""
    config = Config(
        data_dir=data_dir,
        store_url=f"sqlite:///{data_dir / 'store.db'}",
        api_keys=(API_KEY,),
        plugins_dir=data_dir / "no-plugins",
        event_poll_ms=50,
        **NO_RATE_LIMITS,
    )
    async with contextlib.AsyncExitStack() as stack:
        servers = []
        for _ in range(2):
            probe = Probe()
            plugins = load_plugins(None, extra=[("probe", probe)])
            app, registry = assemble(config, plugins, open_database(config.store_url))
            conductor = await stack.enter_async_context(testing.ASGIConductor(app))
            servers.append(Server(conductor, registry, probe))
        runner = runner_of(servers[0].registry, restart_seconds=0.2)
        running = asyncio.create_task(runner.run())
        try:
            yield servers[0], servers[1]
        finally:
            runner.stop()
            await running


async def next_event(feed: ConversationFeed) -> ConversationEvent:
    async with asyncio.timeout(TIMEOUT):
        return await anext(feed)


async def next_of(
    feed: ConversationFeed, wanted: Callable[[ConversationEvent], bool], seen: list[Any]
) -> ConversationEvent:
    """The next event that is ``wanted``, noting each on the way in ``seen``."""
    while True:
        event = await next_event(feed)
        seen.append(event)
        if wanted(event):
            return event


def test_an_agents_reply_on_one_server_reaches_a_feed_on_the_other(tmp_path):
    """A feed on the second server following a visitor's conversation gets the agent's reply
    made through the first server's API (message.created with the message as it is, then
    its status sent), then the conversation resolved (conversation.updated), and nothing of
    another visitor's conversation answered just before."""

    async def scenario() -> None:
        async with two_servers(tmp_path) as (first, second):
            mine = await first.visitor_writes(unique("vis_"), "hello")
            theirs = await first.visitor_writes(unique("vis_"), "hello too")
            seen: list[ConversationEvent] = []
            async with second.inbox.follow([mine]) as feed:
                await first.agent_replies(theirs, "not for you")
                await first.agent_replies(mine, "for you")
                created = await next_event(feed)
                assert (created.type, created.conversation_id) == ("message.created", mine)
                assert created.record_name == "message"
                assert (created.record["text"], created.data["direction"]) == (
                    "for you",
                    "outbound",
                )
                assert created.body() == {
                    "type": "message.created",
                    "at": created.body()["at"],
                    "conversation_id": mine,
                    "message": created.record,
                }
                sent = await next_of(feed, lambda e: e.data.get("status") == "sent", seen)
                assert sent.type == "message.status_changed"
                assert sent.record["id"] == created.record["id"]
                resolved = await first.conductor.simulate_patch(
                    f"/api/conversations/{mine}", json={"status": "resolved"}, headers=AUTH
                )
                assert resolved.status_code == 200, resolved.text
                updated = await next_of(feed, lambda e: e.type == "conversation.updated", seen)
                assert updated.record_name == "conversation"
                assert updated.record["status"] == "resolved"
                assert updated.data["changes"]["status"] == ["open", "resolved"]
                assert feed.cursor == updated.cursor
            assert {event.conversation_id for event in seen} == {mine}
            assert "not for you" not in repr(seen)

    asyncio.run(scenario())


def test_a_visitor_writing_into_a_resolved_conversation_reopens_it_for_the_feed(tmp_path):
    """A feed following a resolved conversation learns that the visitor's new message
    reopened it: message.created, then conversation.updated with the conversation open
    and ``changes`` ``{"status": ["resolved", "open"]}``; the next message, into an open
    conversation, brings its message.created alone."""

    async def scenario() -> None:
        async with two_servers(tmp_path) as (first, second):
            visitor = unique("vis_")
            mine = await first.visitor_writes(visitor, "hello")
            resolved = await first.conductor.simulate_patch(
                f"/api/conversations/{mine}", json={"status": "resolved"}, headers=AUTH
            )
            assert resolved.status_code == 200, resolved.text
            async with second.inbox.follow([mine]) as feed:
                assert await first.visitor_writes(visitor, "back again") == mine
                created = await next_event(feed)
                assert (created.type, created.record["text"]) == ("message.created", "back again")
                updated = await next_event(feed)
                assert (updated.type, updated.conversation_id) == ("conversation.updated", mine)
                assert updated.record["status"] == "open"
                assert updated.data["changes"] == {"status": ["resolved", "open"]}
                assert (updated.data["status"], updated.data["assignee"]) == ("open", None)
                assert updated.data["change_id"].startswith("chg_")
                await first.visitor_writes(visitor, "still here")
                again = await next_event(feed)
                assert (again.type, again.record["text"]) == ("message.created", "still here")
                await first.agent_replies(mine, "welcome back")
                reply = await next_event(feed)
                assert (reply.type, reply.record["text"]) == ("message.created", "welcome back")

    asyncio.run(scenario())


def test_a_follow_after_a_cursor_replays_what_followed_it(tmp_path):
    """Following again after an event's cursor replays, in order, the events of the
    conversation that followed it, with the same cursors, then goes on live; following
    after ``feed.cursor`` misses nothing and repeats nothing."""

    async def scenario() -> None:
        async with two_servers(tmp_path) as (first, second):
            visitor = unique("vis_")
            mine = await first.visitor_writes(visitor, "one")
            async with second.inbox.follow([mine]) as feed:
                for text in ("two", "three", "four"):
                    await first.visitor_writes(visitor, text)
                    await first.visitor_writes(unique("vis_"), "someone else")
                live = [await next_event(feed) for _ in range(3)]
                left_at = feed.cursor
            assert [event.record["text"] for event in live] == ["two", "three", "four"]
            async with second.inbox.follow([mine], after=live[0].cursor) as feed:
                replayed = [await next_event(feed) for _ in range(2)]
            assert [event.cursor for event in replayed] == [event.cursor for event in live[1:]]
            assert [event.record["text"] for event in replayed] == ["three", "four"]
            await first.visitor_writes(visitor, "five")
            async with second.inbox.follow([mine], after=left_at) as feed:
                (resumed,) = [await next_event(feed)]
            assert resumed.record["text"] == "five"

    asyncio.run(scenario())


def test_a_cursor_further_behind_than_max_behind_is_refused_on_entry(tmp_path):
    """With ``max_behind``, a cursor whose next event is older than that raises
    EventsExpired (the caller reads its conversation's history instead of the feed reading
    the whole log since); a recent one replays as usual."""

    async def scenario() -> None:
        async with two_servers(tmp_path) as (first, second):
            visitor = unique("vis_")
            mine = await first.visitor_writes(visitor, "one")
            async with second.inbox.follow([mine]) as feed:
                await first.visitor_writes(visitor, "two")
                await first.visitor_writes(visitor, "three")
                early = (await next_event(feed)).cursor
            await asyncio.sleep(0.3)
            with pytest.raises(EventsExpired):
                async with second.inbox.follow(
                    [mine], after=early, max_behind=timedelta(seconds=0.2)
                ):
                    pytest.fail("the block ran")
            async with second.inbox.follow(
                [mine], after=early, max_behind=timedelta(minutes=5)
            ) as feed:
                assert (await next_event(feed)).record["text"] == "three"

    asyncio.run(scenario())


def test_a_cursor_older_than_the_log_keeps_is_refused_on_entry(tmp_path):
    """After the log was pruned past a cursor, following after it raises EventsExpired
    before the block runs (the caller reads the history, then follows from now); a cursor
    the log never gave is InvalidInput; a conversation of another channel is NotFound."""

    async def scenario() -> None:
        async with two_servers(tmp_path) as (first, second):
            visitor = unique("vis_")
            mine = await first.visitor_writes(visitor, "one")
            async with second.inbox.follow([mine]) as feed:
                await first.visitor_writes(visitor, "two")
                await first.visitor_writes(visitor, "three")
                early = (await next_event(feed)).cursor
            await first.registry.event_log.prune(utcnow() + timedelta(seconds=1))
            with pytest.raises(EventsExpired):
                async with second.inbox.follow([mine], after=early):
                    pytest.fail("the block ran")
            with pytest.raises(InvalidInput):
                async with second.inbox.follow([mine], after="not-a-cursor"):
                    pytest.fail("the block ran")
            elsewhere = second.registry.service(ChannelInboxes).of("elsewhere")
            with pytest.raises(NotFound):
                async with elsewhere.follow([mine]):
                    pytest.fail("the block ran")
            with pytest.raises(TypeError):
                async with second.inbox.follow(mine):
                    pytest.fail("the block ran")
            async with second.inbox.follow([mine]) as feed:  # from now: still works
                await first.visitor_writes(visitor, "after the prune")
                assert (await next_event(feed)).record["text"] == "after the prune"

    asyncio.run(scenario())


@contextlib.asynccontextmanager
async def hub_on_a_store(data_dir: Any, buffer_size: int = 1024) -> AsyncIterator[Any]:
    """A hub on a real store and polling bus, and what follows through it."""
    stores = await open_stores(SqliteDatabase(data_dir / "store.db"))
    bus = PollingBus(interval=0.01)
    await bus.start()
    news = News(bus)
    types = {kind.name: kind for kind in event_types(stores.inbox)}
    hub = EventHub(EventReader(stores.events), news, types, StoreReader(stores.inbox), buffer_size)
    live: LiveEvents = HubEvents(lambda: hub)
    try:
        yield hub, live, stores.inbox
    finally:
        await hub.close()
        await news.close()
        await bus.close()
        await stores.close()


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not condition():
            await asyncio.sleep(0.01)


def test_a_cancelled_follower_leaves_no_task_and_the_hub_stops_reading(tmp_path):
    """The task holding a feed is cancelled while it waits (its socket closed): no task is
    left behind (a feed starts none), and with no follower left the hub stops reading."""

    async def scenario() -> None:
        async with hub_on_a_store(tmp_path) as (hub, live, store):
            stored = await store.ingest_inbound("sms", InboundMessage(unique("in"), "+1", "a"))
            conversation = stored.conversation_id
            async with live.follow([conversation]):
                pass  # the hub's reader and the bus's waiter start once per process
            before = asyncio.all_tasks()
            got: list[ConversationEvent] = []

            async def socket() -> None:
                async with live.follow([conversation]) as feed:
                    async for event in feed:
                        got.append(event)

            holder = asyncio.create_task(socket())
            await until(lambda: hub.reading)
            await store.ingest_inbound("sms", InboundMessage(unique("in"), "+1", "b"))
            await until(lambda: len(got) == 1)
            holder.cancel()
            with pytest.raises(asyncio.CancelledError):
                await holder
            assert asyncio.all_tasks() == before
            await until(lambda: not hub.reading)

    asyncio.run(scenario())


def test_a_slow_follower_misses_nothing_once_the_buffer_moved_on(tmp_path):
    """A feed not read while many more events are logged than the hub buffers (four here)
    gets every event of its conversation afterwards, in order (it reads the log itself from
    its own cursor), and none of the other conversation's."""

    async def scenario() -> None:
        async with hub_on_a_store(tmp_path, buffer_size=4) as (hub, live, store):

            async def write(sender: str, text: str) -> str:
                inbound = InboundMessage(unique("in"), sender, text)
                return (await store.ingest_inbound("sms", inbound)).conversation_id

            mine = await write("+1", "0")
            async with live.follow([mine]) as feed:
                await until(lambda: hub.reading)
                for number in range(1, 13):
                    await write("+1", str(number))
                    await write("+2", "other")
                await until(lambda: hub.buffered_after(feed.cursor) is None)
                texts = [(await next_event(feed)).record["text"] for _ in range(12)]
            assert texts == [str(number) for number in range(1, 13)]

    asyncio.run(scenario())


def test_feeds_end_when_the_server_stops(tmp_path):
    """``on_stopping`` ends every feed at its next step: the iteration stops (the channel
    closes its socket; the client reconnects elsewhere and resumes from its cursor)."""

    async def scenario() -> None:
        async with hub_on_a_store(tmp_path) as (hub, live, store):
            stored = await store.ingest_inbound("sms", InboundMessage(unique("in"), "+1", "a"))
            async with live.follow([stored.conversation_id]) as feed:
                asyncio.get_running_loop().call_later(0.1, hub.stop_streams)
                async with asyncio.timeout(TIMEOUT):
                    assert [event async for event in feed] == []

    asyncio.run(scenario())


def test_many_feeds_are_served_from_the_hubs_buffer_never_reading_the_log(tmp_path):
    """Feeds opened while the hub is idle, or while it reads, start where the hub is (or
    where it caught up): the next event reaches each of them from the buffer, with the log
    read once for all, whatever their number (a thousand sockets on one worker)."""

    async def scenario() -> None:
        async with hub_on_a_store(tmp_path) as (hub, live, store):
            stored = await store.ingest_inbound("sms", InboundMessage(unique("in"), "+1", "a"))
            conversation = stored.conversation_id
            feeds = []
            async with contextlib.AsyncExitStack() as stack:
                for _ in range(50):
                    feeds.append(await stack.enter_async_context(live.follow([conversation])))
                await until(lambda: hub.reading)
                reads = 0
                read_log = hub.read_log

                async def counted(*args: Any, **kwargs: Any) -> Any:
                    nonlocal reads
                    reads += 1
                    return await read_log(*args, **kwargs)

                hub.read_log = counted  # type: ignore[method-assign]
                await store.ingest_inbound("sms", InboundMessage(unique("in"), "+1", "b"))
                got = [await next_event(feed) for feed in feeds]
                assert {event.record["text"] for event in got} == {"b"}
                assert reads <= 2  # the hub's own read (and its empty follow-up), no feed's

    asyncio.run(scenario())


def test_a_feed_from_now_is_told_nothing_logged_before_it_opened(tmp_path):
    """A feed opened with no cursor while the hub lags the log (an event logged, not yet
    read by the hub) is served from the hub's buffer, yet is not told that event: only what
    follows the log's head as it opened, so a history read then is not repeated."""

    async def scenario() -> None:
        async with hub_on_a_store(tmp_path) as (hub, live, store):
            stored = await store.ingest_inbound("sms", InboundMessage(unique("in"), "+1", "a"))
            conversation = stored.conversation_id
            async with live.follow([conversation]) as warm:
                await until(lambda: hub.reading)
                await store.ingest_inbound("sms", InboundMessage(unique("in"), "+1", "before"))
                async with live.follow([conversation]) as feed:
                    assert (await next_event(warm)).record["text"] == "before"
                    await store.ingest_inbound("sms", InboundMessage(unique("in"), "+1", "after"))
                    assert (await next_event(feed)).record["text"] == "after"

    asyncio.run(scenario())


def test_a_feed_from_now_starts_at_the_head_when_the_log_was_pruned_past_the_hub(tmp_path):
    """A feed opened with no cursor starts where the hub had read to; when the log is
    pruned past that point before the feed reads, the feed starts from the log's head as
    it opened (all it lost is what it would have skipped) instead of failing (a race CI
    met: the hub still live at an old cursor when a prune ran)."""

    async def scenario() -> None:
        async with hub_on_a_store(tmp_path) as (hub, live, store):
            first = await store.ingest_inbound("sms", InboundMessage(unique("in"), "+1", "a"))
            conversation = first.conversation_id
            stale = await hub.log.latest()
            await store.ingest_inbound("sms", InboundMessage(unique("in"), "+1", "b"))
            head = await hub.log.latest()
            async with live.follow([conversation]):
                await until(lambda: hub.reading)
                pruner = await open_stores(SqliteDatabase(tmp_path / "store.db"))
                try:  # as the job runner of another server does
                    await pruner.events.prune(utcnow() + timedelta(seconds=1))
                finally:
                    await pruner.close()
                with pytest.raises(EventsExpired):
                    await hub.read_log(stale)
                assert await hub.log.latest() == head  # the head survives the prune
                feed = Feed(hub, frozenset([conversation]), stale, head, from_now=True)
                # a log empty when the feed opened (Firestore's head after a whole prune)
                empty = Feed(hub, frozenset([conversation]), stale, None, from_now=True)
                await store.ingest_inbound("sms", InboundMessage(unique("in"), "+1", "after"))
                assert (await next_event(feed)).record["text"] == "after"
                assert (await next_event(empty)).record["text"] == "after"

    asyncio.run(scenario())


def test_buffered_contact_events_follow_the_contacts_conversations(tmp_path):
    """A contact event in the hub's buffer is told to whom the contact's conversations say
    now, as one read from the log would be: assigning its conversation to someone else
    changes its audience; erasing the contact drops the buffered records naming it."""

    async def scenario() -> None:
        async with hub_on_a_store(tmp_path) as (hub, live, store):
            stored = await store.ingest_inbound("sms", InboundMessage(unique("in"), "+1", "a"))
            async with live.follow([stored.conversation_id]):
                await until(lambda: hub.reading)
                start = hub.cursor

                def buffered() -> list[Any]:
                    return hub.buffered_after(start) or []

                contact_id = stored.message.contact_id
                await store.update_contact(contact_id, tags=("vip",))
                await until(lambda: len(hub.buffered_after(start) or []) == 1)
                (told,) = hub.buffered_after(start) or []
                assert told.audience == frozenset({None})
                await store.update_conversation(stored.conversation_id, assignee="usr_other")
                await until(lambda: len(hub.buffered_after(start) or []) == 2)
                told, _ = hub.buffered_after(start) or []
                assert told.audience == frozenset({"usr_other"})
                await store.erase_contact(contact_id, None)
                await until(lambda: any(d.event.type == "contact.erased" for d in buffered()))
                named = [d for d in buffered() if contact_id in json.dumps(d.record)]
                assert [d.event.type for d in named] == []  # the message, the contact...

    asyncio.run(scenario())
