"""Receipts by time and the messaging window, end to end through the real app: a channel's
``StatusWatermark``s move the messages they cover, as the inbox API then shows them, and
``send`` is told when the customer last wrote."""

from __future__ import annotations

import json
from datetime import datetime

from falcon import testing

from omnichannel_core import hookimpl
from omnichannel_core.hooktypes import (
    InboundMessage,
    OutboundMessage,
    SendResult,
    StatusUpdate,
    StatusWatermark,
    WebhookRequest,
    WebhookResult,
)
from omnichannel_core.testing.in_process import AUTH, run_app
from omnichannel_core.timestamps import parse_timestamp

WAIT = {**AUTH, "Prefer": "wait=10"}
"""A send answered once the outbox (the job runner) is done with it."""


def _watermarks(data: dict) -> tuple[StatusWatermark, ...]:
    return tuple(
        StatusWatermark(item["recipient"], item["status"], parse_timestamp(item["up_to"]))
        for item in data.get("watermarks", ())
    )


class Receipts:
    """A channel like Messenger: webhooks carry messages and read watermarks, status
    callbacks delivery watermarks; every send is accepted and remembered."""

    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []

    @hookimpl
    def receive(self, request: WebhookRequest) -> WebhookResult:
        data = json.loads(request.body)
        messages = tuple(
            InboundMessage(item["id"], item["from"], text=item.get("text"))
            for item in data.get("messages", ())
        )
        return WebhookResult(messages=messages, watermarks=_watermarks(data))

    @hookimpl
    async def status(self, request: WebhookRequest) -> WebhookResult:
        data = json.loads(request.body)
        statuses = tuple(
            StatusUpdate(item["id"], item["status"]) for item in data.get("statuses", ())
        )
        return WebhookResult(statuses=statuses, watermarks=_watermarks(data))

    @hookimpl
    async def send(self, message: OutboundMessage) -> SendResult:
        self.sent.append(message)
        return SendResult(provider_message_id=f"rc-{message.id}")


class WrongWatermark:
    """A buggy channel: a watermark that is not a StatusWatermark, beside a message."""

    @hookimpl
    def receive(self, request: WebhookRequest) -> WebhookResult:
        message = InboundMessage("bad-1", "+1555", text="hi")
        return WebhookResult(messages=(message,), watermarks=({"status": "read"},))


async def _post(conductor: testing.ASGIConductor, hook: str, data: dict) -> None:
    response = await conductor.simulate_post(f"/api/channels/rc/{hook}", body=json.dumps(data))
    assert response.status_code == 200, response.text


def test_watermarks_move_the_messages_they_cover(tmp_path):
    """A delivery watermark (status callback) marks every reply stored up to it delivered;
    a read watermark (webhook) at the first reply's time marks only that one read; the
    customer's own message stays received, and a watermark for another address moves
    nothing."""
    channel = Receipts()

    async def scenario(conductor: testing.ASGIConductor) -> None:
        await _post(conductor, "webhook", {"messages": [{"id": "in-1", "from": "psid-1"}]})
        listed = await conductor.simulate_get("/api/conversations", headers=AUTH)
        path = f"/api/conversations/{listed.json['items'][0]['id']}/messages"
        replies = []
        for text in ("first", "second"):
            sent = await conductor.simulate_post(path, json={"text": text}, headers=WAIT)
            assert (sent.status_code, sent.json["status"]) == (201, "sent"), sent.text
            replies.append(sent.json)
        await _post(
            conductor,
            "status",
            {"watermarks": [{"recipient": "psid-2", "status": "read", "up_to": _now()}]},
        )
        await _post(
            conductor,
            "status",
            {"watermarks": [{"recipient": "psid-1", "status": "delivered", "up_to": _now()}]},
        )
        read_up_to = replies[0]["created_at"]
        await _post(
            conductor,
            "webhook",
            {"watermarks": [{"recipient": "psid-1", "status": "read", "up_to": read_up_to}]},
        )
        messages = (await conductor.simulate_get(path, headers=AUTH)).json["items"]
        assert [(m["text"], m["status"]) for m in messages] == [
            (None, "received"),
            ("first", "read"),
            ("second", "delivered"),
        ]

    run_app(tmp_path, {"rc": channel}, scenario, jobs=True)


def test_send_is_told_when_the_customer_last_wrote(tmp_path):
    """The conversation JSON has last_inbound_at: null before the customer writes, then
    the time their message was stored; each send's OutboundMessage carries the same value
    (None for a conversation the customer never wrote in)."""
    channel = Receipts()

    async def scenario(conductor: testing.ASGIConductor) -> None:
        opened = await conductor.simulate_post(
            "/api/channels/rc/messages", json={"to": "psid-1", "text": "hello"}, headers=WAIT
        )
        assert opened.status_code == 201, opened.text
        conversation_path = f"/api/conversations/{opened.json['conversation_id']}"
        conversation = (await conductor.simulate_get(conversation_path, headers=AUTH)).json
        assert conversation["last_inbound_at"] is None
        await _post(conductor, "webhook", {"messages": [{"id": "in-1", "from": "psid-1"}]})
        messages = await conductor.simulate_get(f"{conversation_path}/messages", headers=AUTH)
        wrote = messages.json["items"][-1]
        assert wrote["direction"] == "inbound"
        conversation = (await conductor.simulate_get(conversation_path, headers=AUTH)).json
        assert conversation["last_inbound_at"] == wrote["created_at"]
        reply = await conductor.simulate_post(
            f"{conversation_path}/messages", json={"text": "thanks"}, headers=WAIT
        )
        assert reply.status_code == 201, reply.text
        assert [message.last_inbound_at for message in channel.sent] == [
            None,
            parse_timestamp(wrote["created_at"]),
        ]

    run_app(tmp_path, {"rc": channel}, scenario, jobs=True)


def test_a_watermark_of_the_wrong_type_is_a_502_and_nothing_is_stored(tmp_path):
    """A channel returning something other than a StatusWatermark among its watermarks is
    answered 502 channel_failed before anything is stored, so the provider's retry finds
    the message new."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        response = await conductor.simulate_post("/api/channels/bad/webhook", body=b"{}")
        assert response.status_code == 502
        assert response.json["error"] == "channel_failed"
        listed = await conductor.simulate_get("/api/conversations", headers=AUTH)
        assert listed.json["items"] == []

    run_app(tmp_path, {"bad": WrongWatermark()}, scenario)


def _now() -> str:
    return datetime.now().astimezone().isoformat()
