"""A channel's own routes get a ``ChannelInbox`` confined to that channel: through them, a
message or conversation of another channel is not found (404), whatever its id, while the
channel's own are; what they receive is stored under the channel, what they send goes out
on it, an outbound message is found by provider id on the channel only, and a
conversation by address likewise.

Two instances of one small channel (``probe`` and ``other``), whose routes hand the
inbox's answers out by id, beside the built-in ``http`` channel, in the real app in-process;
for the lookup by address, two that keep their ``ChannelInbox`` and call it directly.
"""

from __future__ import annotations

import asyncio
from typing import Any

import falcon
import pytest
from falcon import testing

from omnichannel_core.channel import (
    ChannelInbox,
    ChannelRoute,
    InboundMessage,
    NotFound,
    OutboundMessage,
    OutboundRequest,
    SendResult,
    WebhookResult,
    answer_sent,
    hookimpl,
    prefer_wait,
    read_json_object,
    to_json,
)
from omnichannel_core.testing import AUTH, run_app
from tests.support.signing import (
    SIGNATURE_HEADER,
    WEBHOOK_PATH,
    WEBHOOK_SECRET,
    encode,
    inbound_message,
    signature,
    unique,
)

BODY_LIMIT = 64 * 1024


class MessageById:
    """``GET messages/{id}``: ``inbox.get_message``, checked for the caller."""

    def __init__(self, inbox: ChannelInbox) -> None:
        self.inbox = inbox

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, id: str) -> None:
        message = await self.inbox.get_message(id)
        await self.inbox.check_visible(req.context.principal, message)
        resp.media = to_json(message)


class ConversationById:
    """``GET conversations/{id}``: ``inbox.get_conversation``."""

    def __init__(self, inbox: ChannelInbox) -> None:
        self.inbox = inbox

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, id: str) -> None:
        resp.media = to_json(await self.inbox.get_conversation(id))


class OutboundByProviderId:
    """``GET outbound/{id}``: ``inbox.find_outbound``, 404 when it finds nothing."""

    def __init__(self, inbox: ChannelInbox) -> None:
        self.inbox = inbox

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, id: str) -> None:
        message = await self.inbox.find_outbound(id)
        if message is None:
            raise NotFound(f"no {self.inbox.channel} outbound message {id!r}")
        resp.media = to_json(message)


class Send:
    """``POST send`` ``{"to", "text", "key"?}``: ``inbox.send``; 202 queued, 201 once sent
    (``Prefer: wait``), or 200 on a replay."""

    def __init__(self, inbox: ChannelInbox) -> None:
        self.inbox = inbox

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        data = await read_json_object(req, BODY_LIMIT)
        request = OutboundRequest(text=data["text"])
        wait = prefer_wait(req)
        message, created = await self.inbox.send(
            data["to"],
            request,
            data.get("key"),
            wait=wait,
            new_conversation=data.get("new_conversation", False),
        )
        answer_sent(resp, message, created, wait)


class MessagesOf:
    """``GET conversations/{id}/messages``: ``inbox.list_messages``, one page."""

    def __init__(self, inbox: ChannelInbox) -> None:
        self.inbox = inbox

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, id: str) -> None:
        page = await self.inbox.list_messages(id, None, 50)
        resp.media = to_json(page)


class Receive:
    """``POST receive`` ``{"id", "from", "text"}``: ``inbox.receive`` of one message."""

    def __init__(self, inbox: ChannelInbox) -> None:
        self.inbox = inbox

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        data = await read_json_object(req, BODY_LIMIT)
        message = InboundMessage(
            provider_message_id=data["id"], sender=data["from"], text=data["text"]
        )
        await self.inbox.receive(WebhookResult(messages=(message,)))
        resp.status = 204


class Confined:
    """A channel whose own routes hand out what its ``ChannelInbox`` answers, by id. Its
    ``send`` numbers the messages it sends ``provider-1``, ``provider-2``... so two
    instances give the same provider ids."""

    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []

    @hookimpl
    def send(self, message: OutboundMessage) -> SendResult:
        self.sent.append(message)
        return SendResult(provider_message_id=f"provider-{len(self.sent)}")

    @hookimpl
    def channel_routes(self, inbox: ChannelInbox) -> list[ChannelRoute]:
        read = "conversations:read"
        return [
            ChannelRoute("messages/{id}", MessageById(inbox), permission=read),
            ChannelRoute("conversations/{id}", ConversationById(inbox), permission=read),
            ChannelRoute("conversations/{id}/messages", MessagesOf(inbox), permission=read),
            ChannelRoute("outbound/{id}", OutboundByProviderId(inbox), permission=read),
            ChannelRoute("send", Send(inbox), permission="messages:send"),
            ChannelRoute("receive", Receive(inbox), permission="messages:send"),
        ]


class Threading:
    """``Confined``'s routes, and a ``send`` that takes the ``inbox`` argument, as email's
    does to thread its answer: it notes the texts the conversation holds
    (``list_messages``) when each message goes."""

    def __init__(self) -> None:
        self.routes = Confined()
        self.sent: list[OutboundMessage] = []
        self.history: list[list[str | None]] = []

    @hookimpl
    def channel_routes(self, inbox: ChannelInbox) -> list[ChannelRoute]:
        return self.routes.channel_routes(inbox)

    @hookimpl
    async def send(self, message: OutboundMessage, inbox: ChannelInbox) -> SendResult:
        page = await inbox.list_messages(message.conversation_id, None, 50)
        self.history.append([item.text for item in page.items])
        self.sent.append(message)
        return SendResult(provider_message_id=f"provider-{len(self.sent)}")


class Keeper:
    """A channel that keeps the ``ChannelInbox`` its routes are given, whose addresses are
    lower case (its ``normalize_address``, as email's are)."""

    def __init__(self) -> None:
        self.inbox: ChannelInbox | None = None

    @hookimpl
    def normalize_address(self, address: str) -> str:
        return address.lower()

    @hookimpl
    def channel_routes(self, inbox: ChannelInbox) -> list[ChannelRoute]:
        self.inbox = inbox
        return []


WAIT = {**AUTH, "Prefer": "wait=10"}
"""A send answered once the outbox is done with it (sent, failed or in doubt)."""


def run(scenario: Any, tmp_path: Any, **channels: Confined | Threading | Keeper) -> None:
    run_app(tmp_path, channels, scenario, {"WEBHOOK_SECRET": WEBHOOK_SECRET}, jobs=True)


async def get(conductor: testing.ASGIConductor, path: str) -> testing.Result:
    return await conductor.simulate_get(path, headers=AUTH)


async def http_inbound(conductor: testing.ASGIConductor, sender: str, text: str) -> Any:
    """Store an inbound message through the built-in ``http`` channel's webhook; the
    message, as the inbox API answers it."""
    body = encode(inbound_message(sender, text))
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature(body)}
    stored = await conductor.simulate_post(WEBHOOK_PATH, body=body, headers=headers)
    assert stored.status_code == 200, stored.text
    conversations = (await get(conductor, "/api/conversations?channel=http")).json["items"]
    (conversation,) = [c for c in conversations if c["address"] == sender]
    messages = await get(conductor, f"/api/conversations/{conversation['id']}/messages")
    return messages.json["items"][-1]


def assert_not_found(result: testing.Result, text: str) -> None:
    """404, and the answer tells nothing of the record (not its text)."""
    assert result.status_code == 404, result.text
    assert result.json["error"] == "not_found"
    assert text not in result.text


def test_another_channels_message_and_conversation_are_not_found(tmp_path):
    """A message and a conversation stored through ``http`` answer 404 on ``probe``'s routes,
    by their very ids, saying nothing of them; the same ids answer on the inbox API."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        secret = "the http customer's words"
        message = await http_inbound(conductor, unique("+1555"), secret)
        conversation_id = message["conversation_id"]
        assert (await get(conductor, f"/api/messages/{message['id']}")).status_code == 200
        probe = "/api/channels/probe"
        assert_not_found(await get(conductor, f"{probe}/messages/{message['id']}"), secret)
        assert_not_found(await get(conductor, f"{probe}/conversations/{conversation_id}"), secret)

    run(scenario, tmp_path, probe=Confined())


def test_receive_stores_under_the_channel_and_only_it_finds_them(tmp_path):
    """What ``probe`` receives through its ``ChannelInbox`` is stored as ``probe``'s, in a
    ``probe`` conversation even when the sender also wrote on ``http``: ``probe``'s routes
    find it, ``other``'s do not, and the ``http`` conversation is left as it was."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        sender = unique("+1555")
        on_http = await http_inbound(conductor, sender, "on http")
        body = {"id": unique("in"), "from": sender, "text": "on probe"}
        received = await conductor.simulate_post(
            "/api/channels/probe/receive", json=body, headers=AUTH
        )
        assert received.status_code == 204, received.text

        conversations = (await get(conductor, "/api/conversations?channel=probe")).json["items"]
        (conversation,) = [c for c in conversations if c["address"] == sender]
        assert conversation["channel"] == "probe"
        assert conversation["id"] != on_http["conversation_id"]
        messages = await get(conductor, f"/api/conversations/{conversation['id']}/messages")
        (message,) = messages.json["items"]
        assert (message["channel"], message["text"]) == ("probe", "on probe")

        own = await get(conductor, f"/api/channels/probe/messages/{message['id']}")
        assert (own.status_code, own.json) == (200, message)
        mine = await get(conductor, f"/api/channels/probe/conversations/{conversation['id']}")
        assert (mine.status_code, mine.json["id"]) == (200, conversation["id"])
        other = "/api/channels/other"
        assert_not_found(await get(conductor, f"{other}/messages/{message['id']}"), "on probe")
        assert_not_found(
            await get(conductor, f"{other}/conversations/{conversation['id']}"), "on probe"
        )
        http_messages = await get(
            conductor, f"/api/conversations/{on_http['conversation_id']}/messages"
        )
        assert [m["text"] for m in http_messages.json["items"]] == ["on http"]

    run(scenario, tmp_path, probe=Confined(), other=Confined())


def test_send_goes_out_on_the_channel_and_outbound_is_found_on_it_only(tmp_path):
    """``send`` opens a conversation on the channel and hands the message to that channel's
    ``send`` alone; ``find_outbound`` finds a provider id on its own channel only, although
    both channels' providers gave the same id; an Idempotency-Key another channel used is
    refused (409), never answered with that channel's message."""
    probe, other = Confined(), Confined()

    async def scenario(conductor: testing.ASGIConductor) -> None:
        to = unique("+1555")
        sent = await conductor.simulate_post(
            "/api/channels/other/send",
            json={"to": to, "text": "from other", "key": "key-1"},
            headers=WAIT,
        )
        assert sent.status_code == 201, sent.text
        theirs = sent.json
        assert (theirs["channel"], theirs["provider_message_id"]) == ("other", "provider-1")
        assert [m.text for m in other.sent] == ["from other"] and probe.sent == []

        assert_not_found(await get(conductor, "/api/channels/probe/outbound/provider-1"), to)
        found = await get(conductor, "/api/channels/other/outbound/provider-1")
        assert (found.status_code, found.json["id"]) == (200, theirs["id"])

        replay = await conductor.simulate_post(
            "/api/channels/probe/send",
            json={"to": to, "text": "from other", "key": "key-1"},
            headers=WAIT,
        )
        assert replay.status_code == 409, replay.text
        assert probe.sent == []

        own = await conductor.simulate_post(
            "/api/channels/probe/send", json={"to": to, "text": "from probe"}, headers=WAIT
        )
        assert own.status_code == 201, own.text
        mine = own.json
        assert (mine["channel"], mine["provider_message_id"]) == ("probe", "provider-1")
        assert mine["conversation_id"] != theirs["conversation_id"]
        assert [m.text for m in probe.sent] == ["from probe"]
        found = await get(conductor, "/api/channels/probe/outbound/provider-1")
        assert (found.status_code, found.json["id"]) == (200, mine["id"])
        found = await get(conductor, "/api/channels/other/outbound/provider-1")
        assert found.json["id"] == theirs["id"]

    run(scenario, tmp_path, probe=probe, other=other)


def test_send_is_given_the_channels_inbox_and_new_conversation_opens_one(tmp_path, recwarn):
    """The outbox hands a ``send`` that declares ``inbox`` its channel's ``ChannelInbox``:
    it reads the conversation's messages, oldest first, its own just queued among them.
    ``new_conversation`` (``ChannelInbox.send``, or ``POST .../messages``) opens another
    conversation with the contact, which later sends then go to. A channel whose ``send``
    does not declare ``inbox`` (``other``) sends as before, and pluggy warns of nothing."""
    probe, other = Threading(), Confined()

    async def scenario(conductor: testing.ASGIConductor) -> None:
        to = unique("+1555")

        async def send(text: str, **extra: Any) -> Any:
            body = {"to": to, "text": text, **extra}
            sent = await conductor.simulate_post(
                "/api/channels/probe/send", json=body, headers=WAIT
            )
            assert sent.status_code == 201, sent.text
            return sent.json

        one = await send("one")
        two = await send("two")
        three = await send("three", new_conversation=True)
        generic = await conductor.simulate_post(
            "/api/channels/probe/messages",
            json={"to": to, "text": "four", "new_conversation": True},
            headers=WAIT,
        )
        assert generic.status_code == 201, generic.text
        four = generic.json
        five = await send("five")
        assert one["conversation_id"] == two["conversation_id"]
        conversations = {one["conversation_id"], three["conversation_id"], four["conversation_id"]}
        assert len(conversations) == 3
        assert five["conversation_id"] == four["conversation_id"]
        assert probe.history == [["one"], ["one", "two"], ["three"], ["four"], ["four", "five"]]

        listed = await get(
            conductor, f"/api/channels/probe/conversations/{one['conversation_id']}/messages"
        )
        assert [m["text"] for m in listed.json["items"]] == ["one", "two"]
        on_http = await http_inbound(conductor, to, "on http")
        assert_not_found(
            await get(
                conductor,
                f"/api/channels/probe/conversations/{on_http['conversation_id']}/messages",
            ),
            "on http",
        )

        theirs = await conductor.simulate_post(
            "/api/channels/other/send", json={"to": to, "text": "plain"}, headers=WAIT
        )
        assert theirs.status_code == 201, theirs.text
        assert [m.text for m in other.sent] == ["plain"]

    run(scenario, tmp_path, probe=probe, other=other)
    assert [str(w.message) for w in recwarn if "hookspec" in str(w.message)] == []


def test_find_conversation_finds_a_returning_visitor_on_its_channel_only(tmp_path):
    """``find_conversation`` answers the conversation a visitor's messages went into, by
    their address in whatever case the channel's ``normalize_address`` folds, as a send
    would; another channel's inbox finds nothing at that address; an address nobody wrote
    from answers None, and no contact is made for it."""
    keeper, other = Keeper(), Keeper()

    async def scenario(conductor: testing.ASGIConductor) -> None:
        assert keeper.inbox is not None and other.inbox is not None
        visitor = unique("vis_").lower()
        message = InboundMessage(unique("in"), visitor, "hello again")
        (received,) = await keeper.inbox.receive(WebhookResult(messages=(message,)))
        found = await keeper.inbox.find_conversation(visitor.upper())
        assert found is not None
        assert (found.id, found.channel, found.address) == (
            received.conversation_id,
            "keeper",
            visitor,
        )
        assert await other.inbox.find_conversation(visitor) is None
        stranger = unique("vis_").lower()
        assert await keeper.inbox.find_conversation(stranger) is None
        contacts = await get(conductor, f"/api/contacts?q={stranger}")
        assert contacts.json["items"] == []

    run(scenario, tmp_path, keeper=keeper, other=other)


def test_fill_contact_adds_only_missing_attributes_and_loses_no_concurrent_write(tmp_path):
    """``fill_contact`` gives the conversation's contact the attributes it lacks and keeps
    those an agent set; fills racing each other and an agent's change lose none of them
    (each is one transaction of the store, not a read then a write); another channel's
    inbox does not find the conversation."""
    keeper, other = Keeper(), Keeper()

    async def scenario(conductor: testing.ASGIConductor) -> None:
        assert keeper.inbox is not None and other.inbox is not None
        message = InboundMessage(unique("in"), unique("vis_").lower(), "hello")
        (received,) = await keeper.inbox.receive(WebhookResult(messages=(message,)))
        conversation = await keeper.inbox.get_conversation(received.conversation_id)
        path = f"/api/contacts/{conversation.contact_id}"
        for key in ("email", "agent"):  # what an agent writes must be declared (the CRM's)
            declared = await conductor.simulate_post(
                "/api/crm/attributes",
                json={"key": key, "type": "text", "label": key},
                headers=AUTH,
            )
            assert declared.status_code == 201, declared.text
        patched = await conductor.simulate_patch(
            path, json={"attributes": {"email": "agent@example.test"}}, headers=AUTH
        )
        assert patched.status_code == 200, patched.text
        await keeper.inbox.fill_contact(
            conversation.id, {"email": "form@example.test", "name": "Ann"}
        )
        contact = (await get(conductor, path)).json
        assert contact["attributes"] == {"email": "agent@example.test", "name": "Ann"}

        async def agent() -> None:
            change = {"attributes": {**contact["attributes"], "agent": "note"}}
            result = await conductor.simulate_patch(path, json=change, headers=AUTH)
            assert result.status_code == 200, result.text

        fills = [keeper.inbox.fill_contact(conversation.id, {f"f{n}": "x"}) for n in range(8)]
        await asyncio.gather(*fills[:4], agent(), *fills[4:])
        attributes = (await get(conductor, path)).json["attributes"]
        assert attributes["agent"] == "note"  # no fill wrote back what it read before
        assert {"email", "name", "agent"} <= set(attributes)
        with pytest.raises(NotFound):
            await other.inbox.fill_contact(conversation.id, {"email": "x@example.test"})

    run(scenario, tmp_path, keeper=keeper, other=other)


def test_concurrent_fills_keep_every_attribute(tmp_path):
    """Ten ``fill_contact`` calls at once, each with an attribute of its own, leave all ten
    on the contact."""
    keeper = Keeper()

    async def scenario(conductor: testing.ASGIConductor) -> None:
        assert keeper.inbox is not None
        message = InboundMessage(unique("in"), unique("vis_").lower(), "hello")
        (received,) = await keeper.inbox.receive(WebhookResult(messages=(message,)))
        await asyncio.gather(
            *(
                keeper.inbox.fill_contact(received.conversation_id, {f"f{n}": str(n)})
                for n in range(10)
            )
        )
        conversation = await keeper.inbox.get_conversation(received.conversation_id)
        contact = (await get(conductor, f"/api/contacts/{conversation.contact_id}")).json
        assert contact["attributes"] == {f"f{n}": str(n) for n in range(10)}

    run(scenario, tmp_path, keeper=keeper)
