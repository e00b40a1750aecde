"""``ChannelInbox.receive`` answers what it stored for each inbound message (a
:class:`Received`): the stored message and its conversation, whether it is new, and the
attachments the media store refused, so a channel's own route (a visitor posting a message)
can answer the stored id. A channel whose route hands that answer out, in the real app
in-process."""

from __future__ import annotations

import base64
from typing import Any

import falcon
from falcon import testing

from omnichannel_core.channel import (
    Attachment,
    ChannelInbox,
    ChannelRoute,
    InboundMessage,
    Received,
    RefusedMedia,
    WebhookResult,
    hookimpl,
    read_json_object,
    to_json,
)
from omnichannel_core.testing import AUTH, run_app
from tests.support.signing import unique

BODY_LIMIT = 256 * 1024
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
HTML = b"<script>alert(1)</script>"


class Receive:
    """``POST receive`` ``{"id", "from", "text", "files"?: [{"b64", "type", "name"}]}``:
    ``inbox.receive`` of one message; answers what it stored."""

    def __init__(self, inbox: ChannelInbox) -> None:
        self.inbox = inbox

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        data = await read_json_object(req, BODY_LIMIT)
        files = tuple(
            Attachment(base64.b64decode(item["b64"]), item["type"], item["name"])
            for item in data.get("files", ())
        )
        message = InboundMessage(
            provider_message_id=data["id"], sender=data["from"], text=data["text"], media=files
        )
        (received,) = await self.inbox.receive(WebhookResult(messages=(message,)))
        assert isinstance(received, Received)
        resp.media = to_json(received)


class Visitors:
    """A channel whose route stores what a visitor posts and answers the stored ids."""

    @hookimpl
    def channel_routes(self, inbox: ChannelInbox) -> list[ChannelRoute]:
        return [ChannelRoute("receive", Receive(inbox), permission="messages:send")]


async def post(conductor: testing.ASGIConductor, body: dict[str, Any]) -> dict[str, Any]:
    result = await conductor.simulate_post(
        "/api/channels/visitors/receive", json=body, headers=AUTH
    )
    assert result.status_code == 200, result.text
    answer: dict[str, Any] = result.json
    return answer


def test_receive_answers_the_new_message_and_its_conversation(tmp_path):
    """A new message: created, its id and conversation's as the inbox API shows them, and
    nothing refused."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        body = {"id": unique("in"), "from": unique("vis_"), "text": "hello"}
        received = await post(conductor, body)
        assert received["created"] is True
        assert received["media_refused"] == []
        message = await conductor.simulate_get(
            f"/api/messages/{received['message_id']}", headers=AUTH
        )
        assert message.json["text"] == "hello"
        assert message.json["conversation_id"] == received["conversation_id"]
        conversation = await conductor.simulate_get(
            f"/api/conversations/{received['conversation_id']}", headers=AUTH
        )
        assert (conversation.json["channel"], conversation.json["address"]) == (
            "visitors",
            body["from"],
        )

    run_app(tmp_path, {"visitors": Visitors()}, scenario)


def test_a_duplicate_answers_the_message_stored_first(tmp_path):
    """The same provider message id again (a resend after a drop): not created, the ids of
    the message stored the first time, and nothing written; another message of the same
    sender lands in the same conversation."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        sender = unique("vis_")
        body = {"id": unique("in"), "from": sender, "text": "once"}
        first = await post(conductor, body)
        again = await post(conductor, {**body, "text": "twice?"})
        assert again == {**first, "created": False}
        later = await post(conductor, {"id": unique("in"), "from": sender, "text": "later"})
        assert later["created"] is True
        assert later["message_id"] != first["message_id"]
        assert later["conversation_id"] == first["conversation_id"]
        messages = await conductor.simulate_get(
            f"/api/conversations/{first['conversation_id']}/messages", headers=AUTH
        )
        assert [m["text"] for m in messages.json["items"]] == ["once", "later"]

    run_app(tmp_path, {"visitors": Visitors()}, scenario)


def test_a_refused_attachment_is_reported_and_the_kept_one_is_stored(tmp_path):
    """An attachment of a type the media store does not take is listed in the answer (name,
    type, size, reason) while the message is stored with the one it kept; its duplicate
    answers the same refusal."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        files = [
            {"b64": base64.b64encode(PNG).decode(), "type": "image/png", "name": "a.png"},
            {"b64": base64.b64encode(HTML).decode(), "type": "text/html", "name": "x.html"},
        ]
        body = {"id": unique("in"), "from": unique("vis_"), "text": "look", "files": files}
        received = await post(conductor, body)
        assert received["created"] is True
        (refused,) = received["media_refused"]
        assert (refused["filename"], refused["content_type"], refused["size"]) == (
            "x.html",
            "text/html",
            len(HTML),
        )
        assert "text/html" in refused["reason"]
        message = await conductor.simulate_get(
            f"/api/messages/{received['message_id']}", headers=AUTH
        )
        assert [item["filename"] for item in message.json["media"]] == ["a.png"]
        again = await post(conductor, body)
        assert again == {**received, "created": False}

    run_app(tmp_path, {"visitors": Visitors()}, scenario)


def test_refusals_are_read_from_whatever_the_metadata_lists():
    """``RefusedMedia.listed_in`` takes the core's entries, keeps what it can of a
    malformed one, and reads nothing from metadata without a list."""
    core = {"filename": "x.html", "content_type": "text/html", "size": 25, "reason": "no"}
    odd = {"filename": 3, "size": True}
    assert RefusedMedia.listed_in({"media_refused": [core, odd, "gone"]}) == (
        RefusedMedia("x.html", "text/html", 25, "no"),
        RefusedMedia(None, None, None, "not kept"),
        RefusedMedia(None, None, None, "gone"),
    )
    assert RefusedMedia.listed_in({}) == ()
    assert RefusedMedia.listed_in({"media_refused": "x"}) == ()
