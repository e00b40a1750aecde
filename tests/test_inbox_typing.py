"""Typing indicators: ``conversation.typing``, logged for a contact by its channel's
``ChannelInbox.typing`` and for a user by ``POST /api/conversations/{id}/typing``, at most
once per party and conversation every few seconds (the inbox's one throttle), and shown
where the conversation's other events are: an agent's stream (only for conversations they
may see) and a channel's ``follow`` feed. First the throttle alone, then the real app
in-process, with two channels that keep the ``ChannelInbox`` their routes are given."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import attrs
import pytest
from falcon import testing

from omnichannel_core.app import assemble
from omnichannel_core.channel import (
    ChannelInbox,
    ChannelRoute,
    InboundMessage,
    NotFound,
    WebhookResult,
    hookimpl,
    parse_timestamp,
)
from omnichannel_core.config import Config
from omnichannel_core.events.records import Event
from omnichannel_core.modules.events import stream as stream_module
from omnichannel_core.modules.inbox.typing import SHOWN_SECONDS, TypingThrottle
from omnichannel_core.plugins.loading import load_plugins
from omnichannel_core.plugins.registry import Registry
from omnichannel_core.store import open_database
from omnichannel_core.testing.in_process import API_KEY, AUTH, NO_RATE_LIMITS
from tests.support.signing import unique
from tests.support.sse import SimulatedStream
from tests.support.users import PASSWORD

TYPING = "conversation.typing"


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_throttle_admits_each_key_once_per_window():
    """A key's first signal is admitted, the next ones not until the window has passed
    since the one admitted; keys are counted apart; a key forgotten (its write failed) is
    admitted again at once."""
    clock = Clock()
    throttle = TypingThrottle(seconds=3.0, clock=clock)
    contact, user = ("cv_1", "contact", None), ("cv_1", "user", "usr_a")
    assert throttle.admit(contact) is True
    assert throttle.admit(user) is True
    clock.now += 2.9
    assert throttle.admit(contact) is False
    clock.now += 0.1
    assert throttle.admit(contact) is True
    assert throttle.admit(contact) is False
    throttle.forget(contact)
    assert throttle.admit(contact) is True


def test_the_throttle_keeps_only_the_most_recently_logged_keys():
    """Beyond ``max_keys`` the key logged longest ago is forgotten (its next signal is
    logged: an extra event, never a lost one); memory stays bounded."""
    throttle = TypingThrottle(seconds=3.0, clock=Clock(), max_keys=2)
    for key in ("a", "b", "c"):
        assert throttle.admit(key) is True
    assert len(throttle) == 2
    assert throttle.admit("c") is False
    assert throttle.admit("a") is True  # forgotten: logged again
    assert len(throttle) == 2


class Probe:
    """A channel that keeps the ``ChannelInbox`` its routes are given."""

    def __init__(self) -> None:
        self.inbox: ChannelInbox | None = None

    @hookimpl
    def channel_routes(self, inbox: ChannelInbox) -> list[ChannelRoute]:
        self.inbox = inbox
        return []


@attrs.frozen
class App:
    """The app in-process: its client, its registry, and the inboxes of two channels."""

    conductor: testing.ASGIConductor
    registry: Registry
    probes: dict[str, Probe]

    def inbox(self, channel: str = "probe") -> ChannelInbox:
        inbox = self.probes[channel].inbox
        assert inbox is not None
        return inbox

    async def visitor_writes(self, channel: str = "probe") -> str:
        """A new visitor's message on ``channel``; its conversation's id."""
        message = InboundMessage(unique("in"), unique("vis_"), "hello")
        (received,) = await self.inbox(channel).receive(WebhookResult(messages=(message,)))
        return received.conversation_id

    async def agent(self) -> tuple[str, dict[str, str]]:
        """A new agent user: their id, and headers with their access token."""
        email = f"{unique('agent')}@example.com".lower()
        user = {"email": email, "display_name": "Ada", "role": "agent", "password": PASSWORD}
        created = await self.conductor.simulate_post("/api/users", json=user, headers=AUTH)
        assert created.status_code == 201, created.text
        credentials = {"email": email, "password": PASSWORD}
        session = await self.conductor.simulate_post("/api/auth/login", json=credentials)
        assert session.status_code == 200, session.text
        return created.json["id"], {"Authorization": f"Bearer {session.json['access_token']}"}

    async def assign(self, conversation_id: str, user_id: str) -> None:
        path = f"/api/conversations/{conversation_id}"
        changed = await self.conductor.simulate_patch(
            path, json={"assignee": user_id}, headers=AUTH
        )
        assert changed.status_code == 200, changed.text

    async def typing(self, conversation_id: str, headers: dict[str, str]) -> testing.Result:
        path = f"/api/conversations/{conversation_id}/typing"
        return await self.conductor.simulate_post(path, headers=headers)

    async def typing_events(self) -> list[Event]:
        """Every conversation.typing the log holds, oldest first."""
        return [e for e in await self.registry.event_log.after(None, 1000) if e.type == TYPING]


@contextlib.asynccontextmanager
async def running_app(data_dir: Any) -> AsyncIterator[App]:
    """The app with the channels ``probe`` and ``other``, started and stopped."""
    config = Config(
        data_dir=data_dir,
        store_url=f"sqlite:///{data_dir / 'store.db'}",
        api_keys=(API_KEY,),
        plugins_dir=data_dir / "no-plugins",
        event_poll_ms=50,
        **NO_RATE_LIMITS,
    )
    probes = {"probe": Probe(), "other": Probe()}
    plugins = load_plugins(None, extra=list(probes.items()))
    app, registry = assemble(config, plugins, open_database(config.store_url))
    async with testing.ASGIConductor(app) as conductor:
        yield App(conductor, registry, probes)


def run(scenario: Any, data_dir: Any) -> None:
    async def main() -> None:
        async with running_app(data_dir) as app:
            await scenario(app)

    asyncio.run(main())


def test_typing_is_logged_once_per_party_within_the_window(tmp_path):
    """Two signals of one party within 3 seconds write one event, each answered 204: an
    agent's (``by`` user, their ``user_id``), an API key's (``user_id`` null), the contact's
    through ``ChannelInbox.typing`` (``by`` contact): three parties, three events, each
    shown until 6 seconds after it was logged. Nothing else is written."""

    async def scenario(app: App) -> None:
        conversation_id = await app.visitor_writes()
        before = await app.conductor.simulate_get(
            f"/api/conversations/{conversation_id}", headers=AUTH
        )
        agent_id, agent = await app.agent()
        for headers in (agent, agent, AUTH, AUTH):
            answered = await app.typing(conversation_id, headers)
            assert (answered.status_code, answered.text) == (204, "")
        await app.inbox().typing(conversation_id)
        await app.inbox().typing(conversation_id)
        events = await app.typing_events()
        assert [(e.record_id, e.conversation_id) for e in events] == [
            (conversation_id, conversation_id)
        ] * 3
        assert [{**e.data, "until": None} for e in events] == [
            {"by": "user", "user_id": agent_id, "until": None},
            {"by": "user", "user_id": None, "until": None},
            {"by": "contact", "user_id": None, "until": None},
        ]
        for event in events:
            shown = parse_timestamp(event.data["until"]) - event.at
            assert abs(shown - timedelta(seconds=SHOWN_SECONDS)) < timedelta(seconds=1)
        after = await app.conductor.simulate_get(
            f"/api/conversations/{conversation_id}", headers=AUTH
        )
        assert after.json == before.json

    run(scenario, tmp_path)


def test_typing_is_refused_where_a_reply_would_be(tmp_path):
    """An unknown conversation answers 404; an agent gets 403 on a conversation assigned
    to someone else, as a reply would, and 204 on their own; a channel's ``typing`` on a
    conversation of another channel is NotFound. Only the allowed signal is logged."""

    async def scenario(app: App) -> None:
        agent_id, agent = await app.agent()
        someone_else, _ = await app.agent()
        theirs = await app.visitor_writes()
        await app.assign(theirs, someone_else)
        mine = await app.visitor_writes()
        await app.assign(mine, agent_id)
        unknown = await app.typing("cv_unknown", AUTH)
        assert (unknown.status_code, unknown.json["error"]) == (404, "not_found")
        refused = await app.typing(theirs, agent)
        assert (refused.status_code, refused.json["error"]) == (403, "forbidden")
        assert (await app.typing(mine, agent)).status_code == 204
        with pytest.raises(NotFound):
            await app.inbox("other").typing(theirs)
        events = await app.typing_events()
        assert [(e.conversation_id, e.data["user_id"]) for e in events] == [(mine, agent_id)]

    run(scenario, tmp_path)


def test_an_agents_stream_shows_a_contacts_typing_where_they_may_see_it(tmp_path, monkeypatch):
    """A contact's typing reaches an agent's stream as ``conversation.typing`` with the
    conversation and ``data`` (``by`` contact, ``until``) for an unassigned conversation,
    and not at all for one assigned to someone else."""
    # a stream closed by the test is noticed at its next keepalive: make that soon
    monkeypatch.setattr(stream_module, "KEEPALIVE_SECONDS", 0.2)

    async def scenario(app: App) -> None:
        _, agent = await app.agent()
        someone_else, _ = await app.agent()
        theirs = await app.visitor_writes()
        await app.assign(theirs, someone_else)
        nobodys = await app.visitor_writes()
        async with app.conductor.simulate_get_stream("/api/events", headers=agent) as result:
            stream = SimulatedStream(result)
            await stream.until("ready")
            await app.inbox().typing(theirs)
            await app.inbox().typing(nobodys)
            event = await stream.first(TYPING)
        assert event.data["conversation_id"] == nobodys
        assert event.data["conversation"]["id"] == nobodys
        assert {**event.data["data"], "until": None} == {
            "by": "contact",
            "user_id": None,
            "until": None,
        }
        assert stream.body.count(b"event: conversation.typing") == 1

    run(scenario, tmp_path)


def test_a_channels_feed_gets_an_agents_typing(tmp_path):
    """An agent typing in a visitor's conversation reaches the channel's ``follow`` feed of
    it (what a web chat shows the visitor), with ``by`` user and the agent's id."""

    async def scenario(app: App) -> None:
        agent_id, agent = await app.agent()
        conversation_id = await app.visitor_writes()
        async with app.inbox().follow([conversation_id]) as feed:
            assert (await app.typing(conversation_id, agent)).status_code == 204
            async with asyncio.timeout(10):
                event = await anext(feed)
        assert (event.type, event.conversation_id, event.record_name) == (
            TYPING,
            conversation_id,
            "conversation",
        )
        assert event.record["id"] == conversation_id
        assert (event.data["by"], event.data["user_id"]) == ("user", agent_id)

    run(scenario, tmp_path)
