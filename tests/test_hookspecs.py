"""One test per hook in ``omnichannel_core.hookspecs``, named ``test_hook_<name>``.

Each drives the real app (``create_app`` with a real SQLite store) through
``falcon.testing.ASGIConductor`` with a small channel registered in-process.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import falcon.asgi
import pytest
from falcon import testing

from omnichannel_core import hookimpl
from omnichannel_core.channel import ChannelInbox as Inbox
from omnichannel_core.config import Config
from omnichannel_core.errors import ChannelFailed, InvalidInput, SendFailed, WebhookRejected
from omnichannel_core.hooktypes import (
    ChannelHealth,
    ChannelRoute,
    InboundMessage,
    OutboundMessage,
    SendPolicy,
    SendResult,
    Setting,
    StatusUpdate,
    WebhookRequest,
    WebhookResponse,
    WebhookResult,
)
from omnichannel_core.hooktypes import Sender as ProviderSender
from omnichannel_core.models import DeliveryStatus
from omnichannel_core.plugins.channels import Channels
from omnichannel_core.plugins.dispatch import ChannelDispatcher
from omnichannel_core.plugins.loading import load_plugins
from omnichannel_core.setting_values import StoredSettings
from omnichannel_core.testing.in_process import AUTH, Scenario, run_app


def _run(tmp_path: Path, channel: object, scenario: Scenario, **settings: Any) -> None:
    """Run ``scenario`` against the app with ``channel`` registered as ``probe``, and the
    job runner beside it (the outbox sends through it)."""
    run_app(
        tmp_path,
        {"probe": channel},
        scenario,
        environ={"PROBE_TOKEN": "t0ken"},
        jobs=True,
        **settings,
    )


WAIT = {**AUTH, "Prefer": "wait=10"}
"""Authenticated, and answered once the first attempt to send is over."""


class Receiver:
    @hookimpl
    async def receive(self, request: WebhookRequest, config: Config) -> WebhookResult:
        if request.header("X-Probe-Token") != config.environ["PROBE_TOKEN"]:
            raise WebhookRejected("wrong token")
        items = json.loads(request.body)
        messages = tuple(InboundMessage(i["id"], i["from"], text=i["text"]) for i in items)
        return WebhookResult(messages=messages, response=WebhookResponse(202, b"thanks"))


def test_hook_receive(tmp_path):
    """``receive`` turns a webhook into stored messages before the provider gets the response
    the channel chose; a retried webhook stores once; WebhookRejected answers 403 and stores
    nothing."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        body = [
            {"id": "p1", "from": "+100", "text": "one"},
            {"id": "p2", "from": "+100", "text": "2"},
        ]
        for _ in range(2):
            result = await conductor.simulate_post(
                "/api/channels/probe/webhook", json=body, headers={"X-Probe-Token": "t0ken"}
            )
            assert (result.status_code, result.text) == (202, "thanks")
        rejected = await conductor.simulate_post(
            "/api/channels/probe/webhook",
            json=[{"id": "p3", "from": "+200", "text": "x"}],
            headers={"X-Probe-Token": "nope"},
        )
        assert rejected.status_code == 403
        conversations = (await conductor.simulate_get("/api/conversations", headers=AUTH)).json
        assert [c["address"] for c in conversations["items"]] == ["+100"]
        conversation_id = conversations["items"][0]["id"]
        messages = await conductor.simulate_get(
            f"/api/conversations/{conversation_id}/messages", headers=AUTH
        )
        assert [m["provider_message_id"] for m in messages.json["items"]] == ["p1", "p2"]

    _run(tmp_path, Receiver(), scenario)


class StatusChannel:
    @hookimpl
    def send(self, message: OutboundMessage) -> SendResult:
        return SendResult(provider_message_id=f"prov-{message.id}")

    @hookimpl
    def status(self, request: WebhookRequest) -> WebhookResult:
        data = json.loads(request.body)
        return WebhookResult(statuses=(StatusUpdate(data["id"], DeliveryStatus(data["status"])),))


def test_hook_status(tmp_path):
    """``status`` updates move a message's delivery status forward only: a late ``sent``
    after ``delivered`` changes nothing, and an unknown provider id is acknowledged."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        sent = await conductor.simulate_post(
            "/api/channels/probe/messages", json={"to": "+300", "text": "hi"}, headers=WAIT
        )
        assert sent.status_code == 201
        message_id, provider_id = sent.json["id"], sent.json["provider_message_id"]
        for update in ("delivered", "sent"):
            answered = await conductor.simulate_post(
                "/api/channels/probe/status", json={"id": provider_id, "status": update}
            )
            assert answered.status_code == 200
        stored = await conductor.simulate_get(f"/api/messages/{message_id}", headers=AUTH)
        assert stored.json["status"] == "delivered"
        unknown = await conductor.simulate_post(
            "/api/channels/probe/status", json={"id": "never-sent", "status": "read"}
        )
        assert unknown.status_code == 200

    _run(tmp_path, StatusChannel(), scenario)


class Sender:
    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []

    @hookimpl
    def send(self, message: OutboundMessage) -> SendResult:
        self.sent.append(message)
        if message.text == "refuse me":
            raise SendFailed("number is blocked", code="21610")
        return SendResult(provider_message_id="prov-1", status=DeliveryStatus.SENT)


def test_hook_send(tmp_path):
    """``send`` gets the stored message addressed to the conversation's contact, from the
    outbox; its provider id and status are recorded; SendFailed answers (a caller who
    waited) 422 and leaves the message failed with the provider's code."""
    sender = Sender()

    async def scenario(conductor: testing.ASGIConductor) -> None:
        ok = await conductor.simulate_post(
            "/api/channels/probe/messages", json={"to": "+400", "text": "hello"}, headers=WAIT
        )
        assert ok.status_code == 201
        assert (ok.json["status"], ok.json["provider_message_id"]) == ("sent", "prov-1")
        (outbound,) = sender.sent
        assert (outbound.id, outbound.to, outbound.text) == (ok.json["id"], "+400", "hello")
        assert outbound.conversation_id == ok.json["conversation_id"]

        refused = await conductor.simulate_post(
            f"/api/conversations/{outbound.conversation_id}/messages",
            json={"text": "refuse me"},
            headers=WAIT,
        )
        assert refused.status_code == 422
        stored = await conductor.simulate_get(
            f"/api/messages/{refused.json['message_id']}", headers=AUTH
        )
        assert (stored.json["status"], stored.json["error_code"]) == ("failed", "21610")

    _run(tmp_path, sender, scenario)


class Paced:
    """A provider that takes 4 messages per second per number, and throttles once."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {"+500": [], "+600": []}

    @hookimpl
    def send_policy(self, config: Config) -> SendPolicy:
        return SendPolicy(
            rate=100.0,
            sender=lambda address: ProviderSender("slow", rate=4.0) if address == "+500" else None,
            confirm_within=1.0,
        )

    @hookimpl
    def send(self, message: OutboundMessage) -> SendResult:
        self.times[message.to].append(time.monotonic())
        return SendResult(provider_message_id=f"prov-{message.id}")


@pytest.mark.alone  # it times a pace of 1/4 s
def test_hook_send_policy(tmp_path):
    """``send_policy`` paces each sender apart: 6 messages to the slow sender's address
    (4 per second) take more than a second; 6 to another address (the channel's 100 per
    second) go at once."""
    paced = Paced()

    async def scenario(conductor: testing.ASGIConductor) -> None:
        ids = []
        for address in ("+500", "+600"):
            for number in range(6):
                queued = await conductor.simulate_post(
                    "/api/channels/probe/messages",
                    json={"to": address, "text": f"{number}"},
                    headers=AUTH,
                )
                assert queued.status_code == 202
                ids.append(queued.json["id"])
        deadline = time.monotonic() + 10
        while sum(map(len, paced.times.values())) < 12 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert [len(times) for times in paced.times.values()] == [6, 6]
        for message_id in ids:
            stored = await conductor.simulate_get(f"/api/messages/{message_id}", headers=AUTH)
            assert stored.json["status"] == "sent"

    _run(tmp_path, paced, scenario, send_rates={})
    slow, fast = sorted(paced.times["+500"]), sorted(paced.times["+600"])
    assert slow[-1] - slow[0] >= 5 / 4 - 0.1  # 4 per second: 5 slots a quarter second apart
    assert fast[-1] - fast[0] < 1 / 4  # 100 per second: no wait worth the name


class Lowercase(Sender):
    """A channel whose addresses are case-blind, and which cannot send to ``nobody``."""

    @hookimpl
    def normalize_address(self, address: str) -> str:
        if address == "nobody":
            raise InvalidInput("must be somebody", field="to")
        return address.lower()


def test_hook_normalize_address(tmp_path):
    """``normalize_address`` gives the form a send's address is kept in: two sends to one
    address written in two cases reach one contact and conversation, in lower case; an
    address the channel refuses answers 400 and stores nothing."""
    channel = Lowercase()

    async def scenario(conductor: testing.ASGIConductor) -> None:
        first, second = [
            await conductor.simulate_post(
                "/api/channels/probe/messages", json={"to": to, "text": "hi"}, headers=AUTH
            )
            for to in ("Ann@Example.COM", "ann@example.com")
        ]
        assert (first.status_code, second.status_code) == (202, 202)
        assert first.json["conversation_id"] == second.json["conversation_id"]
        conversation = await conductor.simulate_get(
            f"/api/conversations/{first.json['conversation_id']}", headers=AUTH
        )
        assert conversation.json["address"] == "ann@example.com"

        refused = await conductor.simulate_post(
            "/api/channels/probe/messages", json={"to": "nobody", "text": "hi"}, headers=AUTH
        )
        assert refused.status_code == 400, refused.text
        contacts = await conductor.simulate_get("/api/contacts", headers=AUTH)
        assert [contact["identities"] for contact in contacts.json["items"]] == [
            [{"channel": "probe", "address": "ann@example.com"}]
        ]

    _run(tmp_path, channel, scenario)


class Unwell:
    @hookimpl
    def health(self, config: Config) -> ChannelHealth:
        return ChannelHealth(ok=False, detail="token expired", checks={"token": "expired"})


def test_hook_health(tmp_path):
    """``health`` answers the channel's health route (503 when not ok) and is reported in
    /health, which turns degraded."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        own = await conductor.simulate_get("/api/channels/probe/health", headers=AUTH)
        assert own.status_code == 503
        assert own.json["channel"] == "probe"
        assert (own.json["detail"], own.json["checks"]) == ("token expired", {"token": "expired"})
        overall = await conductor.simulate_get("/health")
        assert overall.json["status"] == "degraded"
        assert overall.json["channels"]["probe"]["ok"] is False

    _run(tmp_path, Unwell(), scenario)


class Things:
    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, thing_id: str
    ) -> None:
        resp.media = {"thing": thing_id, "channel": self.inbox.channel}


class Hello:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.text = "hello"


class Router:
    @hookimpl
    def channel_routes(self, channel: str, inbox: Inbox) -> list[ChannelRoute]:
        return [
            ChannelRoute("things/{thing_id}", Things(inbox), permission="channels:read"),
            ChannelRoute("hello", Hello(), public=True),
        ]


class BadRouter:
    @hookimpl
    def channel_routes(self) -> list[object]:
        return ["not a route"]


def test_hook_channel_routes(tmp_path):
    """``channel_routes`` mounts routes under the channel's prefix, with field templates,
    behind the API key unless public; a result that is not a ChannelRoute unloads the
    channel (reported as a failed plugin, its routes 404) without stopping start-up."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        thing = await conductor.simulate_get("/api/channels/probe/things/t-9", headers=AUTH)
        assert thing.json["thing"] == "t-9"
        assert thing.json["channel"] == "probe"
        unauthenticated = await conductor.simulate_get("/api/channels/probe/things/t-9")
        assert unauthenticated.status_code == 401
        public = await conductor.simulate_get("/api/channels/probe/hello")
        assert (public.status_code, public.text) == (200, "hello")

    async def unloaded(conductor: testing.ASGIConductor) -> None:
        plugins = (await conductor.simulate_get("/api/plugins", headers=AUTH)).json
        (failure,) = plugins["failed"]
        assert failure["name"] == "probe"
        assert "returned str, not ChannelRoute" in failure["error"]
        missing = await conductor.simulate_get("/api/channels/probe/health", headers=AUTH)
        assert missing.status_code == 404

    _run(tmp_path, Router(), scenario)
    _run(tmp_path / "bad", BadRouter(), unloaded)


PROBE_SETTINGS = [
    Setting("PROBE_TOKEN", "the token probe signs its webhooks with", secret=True, required=True),
    Setting("PROBE_GREETING", "what probe says first"),
]


class Configurable:
    """Declares its variables, and reads its token from ``config.settings``."""

    @hookimpl
    async def settings(self) -> list[Setting]:
        return PROBE_SETTINGS

    @hookimpl
    async def receive(self, request: WebhookRequest, config: Config) -> WebhookResult:
        expected = config.settings.get("PROBE_TOKEN", "")
        if not expected or request.header("X-Probe-Token") != expected:
            raise WebhookRejected("wrong token")
        item = json.loads(request.body)
        return WebhookResult(messages=(InboundMessage(item["id"], item["from"], text="hi"),))


class Undeclared:
    @hookimpl
    def health(self) -> ChannelHealth:
        return ChannelHealth(ok=True)


class Twice:
    @hookimpl
    def settings(self) -> list[Setting]:
        return [Setting("PROBE_A", "one"), Setting("PROBE_A", "again")]


class ServerOwn:
    @hookimpl
    def settings(self) -> list[Setting]:
        return [Setting("PROBE_A", "one"), Setting("OMNICHANNEL_PUBLIC_URL", "the server's")]


class Wrong:
    @hookimpl
    def settings(self) -> object:
        return {"PROBE_A": "not a list of Setting"}


class Crashing:
    @hookimpl
    def settings(self) -> list[Setting]:
        raise RuntimeError("boom")


def _declared(channel: object) -> tuple[Setting, ...]:
    """What a module gets from ``context.channels.declared_settings`` for ``channel``."""
    plugins = load_plugins(None, extra=[("probe", channel)])
    channels = Channels(plugins, ChannelDispatcher(plugins))
    try:
        return asyncio.run(channels.declared_settings("probe", Config()))
    finally:
        channels.shutdown()


def test_hook_settings(tmp_path):
    """``settings`` declares the channel's variables, as modules get them (checked: a list
    of Setting, each name once, none of the server's own ``OMNICHANNEL_*``; none without the
    hook); what the channel then reads through
    ``config.settings`` is the stored value where the environment sets none, used by the
    very next webhook after a replace, no restart; the environment wins over it."""
    assert _declared(Configurable()) == tuple(PROBE_SETTINGS)
    assert _declared(Undeclared()) == ()
    for bad, said in (
        (Twice(), "PROBE_A more than once"),
        (Wrong(), "list of Setting"),
        (ServerOwn(), "declares OMNICHANNEL_PUBLIC_URL: the server's own"),
    ):
        with pytest.raises(ChannelFailed, match=said):
            _declared(bad)
    with pytest.raises(ChannelFailed, match="RuntimeError"):
        _declared(Crashing())

    stored = StoredSettings()

    async def webhook(conductor: testing.ASGIConductor, token: str, item_id: str) -> int:
        body = {"id": item_id, "from": "+100"}
        headers = {"X-Probe-Token": token}
        answer = await conductor.simulate_post(
            "/api/channels/probe/webhook", json=body, headers=headers
        )
        return answer.status_code

    async def from_the_store(conductor: testing.ASGIConductor) -> None:
        assert await webhook(conductor, "", "m0") == 403  # nothing set: nothing accepted
        assert await webhook(conductor, "first", "m1") == 403
        stored.replace({"PROBE_TOKEN": "first"}, 1)
        assert await webhook(conductor, "first", "m2") == 200
        stored.replace({"PROBE_TOKEN": "second"}, 2)
        assert await webhook(conductor, "first", "m3") == 403
        assert await webhook(conductor, "second", "m4") == 200

    async def environment_wins(conductor: testing.ASGIConductor) -> None:
        assert await webhook(conductor, "second", "m5") == 403
        assert await webhook(conductor, "pinned", "m6") == 200

    channels = {"probe": Configurable()}
    run_app(tmp_path, channels, from_the_store, stored_settings=stored)
    run_app(tmp_path, channels, environment_wins, {"PROBE_TOKEN": "pinned"}, stored_settings=stored)
