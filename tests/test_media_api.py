"""The media store in the app: attachments kept before the webhook is answered, a
provider's media fetched by the ``media.fetch`` job through the channel's ``media_fetch``
hook, downloads that only those who may see the message get (as attachments, sandboxed),
and uploads attached to sends by id, whose bytes ``send`` reads through its inbox."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import falcon.asgi
import pytest
from falcon import testing

from omnichannel_core import hookimpl
from omnichannel_core.app import assemble
from omnichannel_core.channel import (
    Attachment,
    ChannelInbox,
    ChannelRoute,
    Config,
    InboundMessage,
    Media,
    MediaFetch,
    OutboundMessage,
    OutboundRequest,
    SendResult,
    WebhookRequest,
    WebhookResult,
    answer_sent,
    read_json_object,
)
from omnichannel_core.models import media_url
from omnichannel_core.plugins.loading import load_plugins
from omnichannel_core.store import open_database
from omnichannel_core.testing.fake_provider import FakeProvider, ScriptedResponse
from omnichannel_core.testing.in_process import API_KEY, AUTH, run_app
from tests.support.signing import unique
from tests.support.users import PASSWORD

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 8
PDF = b"%PDF-1.7\n" + b"1 0 obj << >> endobj\n" * 20
TOKEN = "files-token"
WEBHOOK = "/api/channels/files/webhook"
SANDBOX = "default-src 'none'; sandbox; frame-ancestors 'none'"


class FilesChannel:
    """A channel whose webhook brings attachments (base64 in JSON, as an email's parts) and
    names a provider's media by URL; its provider's media hosts are on loopback. Its
    ``send`` reads each kept item's bytes through its inbox, and remembers them."""

    def __init__(self) -> None:
        self.sent: list[tuple[OutboundMessage, list[bytes]]] = []

    @hookimpl
    def receive(self, request: WebhookRequest) -> WebhookResult:
        data = json.loads(request.body)
        media: list[Media | Attachment] = [
            Attachment(
                base64.b64decode(item["b64"]),
                item["type"],
                item.get("name"),
                role=item.get("role", "attachment"),
                content_id=item.get("cid"),
            )
            for item in data.get("attachments", ())
        ]
        media += [
            Media(url=item["url"], content_type=item.get("type")) for item in data.get("media", ())
        ]
        message = InboundMessage(
            provider_message_id=data["id"], sender=data["from"], text=data.get("text"), media=media
        )
        return WebhookResult(messages=(message,))

    @hookimpl
    def media_fetch(self, media: Media, config: Config) -> MediaFetch:
        return MediaFetch(
            url=media.url,
            hosts=("127.0.0.1",),
            headers={"Authorization": f"Bearer {config.environ['FILES_TOKEN']}"},
        )

    @hookimpl
    async def send(self, message: OutboundMessage, inbox: ChannelInbox) -> SendResult:
        contents = [await inbox.read_media(item) for item in message.media if item.id]
        self.sent.append((message, contents))
        return SendResult(provider_message_id=unique("out"))


def attachment(content: bytes, content_type: str, name: str | None = None, **more: Any) -> dict:
    return {"b64": base64.b64encode(content).decode(), "type": content_type, "name": name, **more}


async def eventually(check: Callable[[], Awaitable[Any]], seconds: float = 15) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, "not within the time"
        await asyncio.sleep(0.05)


async def post_webhook(conductor: testing.ASGIConductor, body: dict) -> dict:
    """Post ``body`` to the channel's webhook; the stored message, as the API answers it."""
    answered = await conductor.simulate_post(WEBHOOK, json=body)
    assert answered.status_code == 200, answered.text
    return await message_of(conductor, body["from"])


async def message_of(conductor: testing.ASGIConductor, sender: str) -> dict:
    conversations = await conductor.simulate_get(
        "/api/conversations", params={"channel": "files"}, headers=AUTH
    )
    (conversation,) = [c for c in conversations.json["items"] if c["address"] == sender]
    messages = await conductor.simulate_get(
        f"/api/conversations/{conversation['id']}/messages", headers=AUTH
    )
    return messages.json["items"][-1]


def app(
    tmp_path: Path, scenario: Any, channel: FilesChannel | None = None, **settings: Any
) -> None:
    environ = {"FILES_TOKEN": TOKEN}
    settings = {"media_fetch_private": True, "media_fetch_retry_seconds": 3, **settings}
    run_app(
        tmp_path, {"files": channel or FilesChannel()}, scenario, environ, jobs=True, **settings
    )


def stored_files(tmp_path: Path) -> list[Path]:
    return [path for path in (tmp_path / "media").rglob("*") if path.is_file()]


def media_records(tmp_path: Path) -> int:
    """How many media items the SQLite store describes (each file is one or more of them)."""
    with contextlib.closing(sqlite3.connect(tmp_path / "store.db")) as connection:
        (count,) = connection.execute("SELECT count(*) FROM media_items").fetchone()
    return int(count)


def test_attachments_are_kept_before_the_webhook_is_answered(tmp_path):
    """Each attachment is in the media store when the provider gets its answer: the stored
    message names it by id with its checked type, size, name, role and Content-ID, and the
    route that serves it as url; one of a type the store does not keep is left out and
    listed with why. A retried webhook stores the message, the bytes and their media records
    once."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        body = {
            "id": unique("mail"),
            "from": unique("ada") + "@example.com",
            "text": "see attached",
            "attachments": [
                attachment(PNG, "image/jpeg", "photo.jpg"),  # a PNG, whatever it says
                attachment(JPEG, "image/jpeg", None, role="inline", cid="logo@x"),
                attachment(b"<script>alert(1)</script>", "text/html", "page.html"),
            ],
        }
        message = await post_webhook(conductor, body)
        first, inline = message["media"]
        assert first["id"].startswith("med_") and first["url"] == media_url(message["id"], 0)
        assert (first["content_type"], first["size"], first["filename"]) == (
            "image/png",
            len(PNG),
            "photo.jpg",
        )
        assert (first["role"], inline["role"], inline["content_id"]) == (
            "attachment",
            "inline",
            "logo@x",
        )
        assert inline["url"] == media_url(message["id"], 1)
        (refused,) = message["metadata"]["media_refused"]
        assert refused["filename"] == "page.html" and refused["size"] == 25
        assert "text/html" in refused["reason"]

        download = await conductor.simulate_get(first["url"], headers=AUTH)
        assert download.status_code == 200
        assert download.content == PNG
        assert download.headers["content-type"] == "image/png"
        assert download.headers["content-disposition"] == 'attachment; filename="photo.jpg"'
        assert download.headers["x-content-type-options"] == "nosniff"
        assert download.headers["content-security-policy"] == SANDBOX
        unnamed = await conductor.simulate_get(inline["url"], headers=AUTH)
        assert unnamed.headers["content-disposition"] == (
            f'attachment; filename="{message["id"]}-1"'
        )

        assert len(stored_files(tmp_path)) == 2
        records = media_records(tmp_path)
        for _ in range(3):
            again = await conductor.simulate_post(WEBHOOK, json=body)
            assert again.status_code == 200
        assert await message_of(conductor, body["from"]) == message
        assert len(stored_files(tmp_path)) == 2
        assert media_records(tmp_path) == records  # none left over by the retries

    app(tmp_path, scenario)


@pytest.fixture
def provider_media() -> Iterator[FakeProvider]:
    """The provider's media host: a photo at /photo, 404 elsewhere."""

    def answer(request: Any) -> ScriptedResponse:
        if request.path == "/photo":
            return ScriptedResponse(200, JPEG, "image/jpeg")
        return ScriptedResponse(404, b"{}")

    with FakeProvider(answer=answer) as provider:
        yield provider


def test_hook_media_fetch(tmp_path, provider_media):
    """A provider's media is stored as its URL and fetched by the job through the channel's
    ``media_fetch``, with its credentials: the message then names the kept bytes, which
    download like an attachment's. One the provider no longer has is given up, keeps its
    URL, and its route says why."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        photo, gone = provider_media.url + "/photo", provider_media.url + "/gone"
        body = {
            "id": unique("mms"),
            "from": unique("+1555"),
            "media": [{"url": photo, "type": "image/jpeg"}, {"url": gone}],
        }
        message = await post_webhook(conductor, body)
        assert [item["url"] for item in message["media"]] == [photo, gone]
        assert [item["id"] for item in message["media"]] == [None, None]

        async def fetched() -> dict | None:
            current = await message_of(conductor, body["from"])
            return current if current["media"][0]["id"] else None

        kept = (await eventually(fetched))["media"][0]
        assert kept["url"] == media_url(message["id"], 0)
        assert (kept["content_type"], kept["size"]) == ("image/jpeg", len(JPEG))
        download = await conductor.simulate_get(kept["url"], headers=AUTH)
        assert download.content == JPEG
        asked = [r for r in provider_media.requests if r.path == "/photo"]
        assert asked and all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in asked)

        async def given_up() -> Any:
            answer = await conductor.simulate_get(media_url(message["id"], 1), headers=AUTH)
            return answer if answer.json.get("fetch") == "failed" else None

        refused = await eventually(given_up)
        assert refused.status_code == 404
        assert "answered 404" in refused.json["reason"]
        assert (await message_of(conductor, body["from"]))["media"][1]["url"] == gone

    app(tmp_path, scenario)


def test_a_provider_that_fails_is_tried_again(tmp_path):
    """A 503 is tried again, after a short pause, and the media kept once the provider
    answers."""
    answers = [ScriptedResponse(503, b"{}"), ScriptedResponse(200, PDF, "application/pdf")]
    with FakeProvider() as provider:
        provider.queue(*answers)

        async def scenario(conductor: testing.ASGIConductor) -> None:
            body = {"id": unique("m"), "from": unique("+1555"), "media": [{"url": provider.url}]}
            await post_webhook(conductor, body)

            async def kept() -> Any:
                return (await message_of(conductor, body["from"]))["media"][0]["id"]

            await eventually(kept)
            assert len(provider.requests) == 2
            media = (await message_of(conductor, body["from"]))["media"][0]
            assert media["content_type"] == "application/pdf"

        app(tmp_path, scenario)


async def user_client(conductor: testing.ASGIConductor, role: str) -> tuple[dict, dict]:
    """A new user of ``role`` and the headers of their session."""
    email = f"{unique(role)}@example.com"
    created = await conductor.simulate_post(
        "/api/users",
        json={"email": email, "display_name": role, "role": role, "password": PASSWORD},
        headers=AUTH,
    )
    assert created.status_code == 201, created.text
    tokens = await conductor.simulate_post(
        "/api/auth/login", json={"email": email, "password": PASSWORD}
    )
    return created.json, {"Authorization": f"Bearer {tokens.json['access_token']}"}


def test_agents_download_the_media_of_conversations_they_may_see(tmp_path):
    """An agent downloads a message's media while its conversation is unassigned or
    theirs, and gets 403 once it is another's; an unknown message or place is 404."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        ada, as_ada = await user_client(conductor, "agent")
        bob, _ = await user_client(conductor, "agent")
        body = {
            "id": unique("m"),
            "from": unique("+1555"),
            "attachments": [attachment(PDF, "application/pdf", "x.pdf")],
        }
        message = await post_webhook(conductor, body)
        url = message["media"][0]["url"]
        assert (await conductor.simulate_get(url, headers=as_ada)).content == PDF
        path = f"/api/conversations/{message['conversation_id']}"
        assigned = await conductor.simulate_patch(path, json={"assignee": bob["id"]}, headers=AUTH)
        assert assigned.status_code == 200
        refused = await conductor.simulate_get(url, headers=as_ada)
        assert refused.status_code == 403
        assert refused.json["error"] == "forbidden"
        await conductor.simulate_patch(path, json={"assignee": ada["id"]}, headers=AUTH)
        assert (await conductor.simulate_get(url, headers=as_ada)).status_code == 200
        for missing in (
            f"/api/messages/{message['id']}/media/1",
            f"/api/messages/{message['id']}/media/x",
            "/api/messages/msg_none/media/0",
        ):
            assert (await conductor.simulate_get(missing, headers=AUTH)).status_code == 404

    app(tmp_path, scenario)


def test_uploads_are_sent_by_id_and_read_through_the_inbox(tmp_path):
    """An upload answers its id and what the bytes were checked to be; a reply naming it by
    ``media_id`` stores a message that names the kept bytes (the route as url), which the
    channel's ``send`` reads through its inbox. The same Idempotency-Key replays; an id the
    store does not keep is 400 naming the item."""
    channel = FilesChannel()

    async def scenario(conductor: testing.ASGIConductor) -> None:
        message = await post_webhook(
            conductor, {"id": unique("m"), "from": unique("+1555"), "text": "hi"}
        )
        uploaded = await conductor.simulate_post(
            "/api/media",
            body=PNG,
            params={"filename": "../chart.png"},
            headers={**AUTH, "Content-Type": "application/octet-stream"},
        )
        assert uploaded.status_code == 201, uploaded.text
        upload = uploaded.json
        assert (upload["content_type"], upload["size"], upload["filename"]) == (
            "image/png",
            len(PNG),
            "chart.png",
        )
        assert upload["uploaded_by"] == "api_key:bootstrap"
        path = f"/api/conversations/{message['conversation_id']}/messages"
        reply = {
            "text": "the chart",
            "media": [{"media_id": upload["id"]}, "https://example.com/a.png"],
        }
        headers = {**AUTH, "Idempotency-Key": unique("key"), "Prefer": "wait=10"}
        sent = await conductor.simulate_post(path, json=reply, headers=headers)
        assert sent.status_code == 201, sent.text
        kept, linked = sent.json["media"]
        assert kept["id"] == upload["id"]
        assert kept["url"] == media_url(sent.json["id"], 0)
        assert (kept["content_type"], kept["size"], kept["filename"]) == (
            "image/png",
            len(PNG),
            "chart.png",
        )
        assert linked == {**linked, "url": "https://example.com/a.png", "id": None}
        ((outbound, contents),) = channel.sent
        assert outbound.media[0].id == upload["id"]
        assert contents == [PNG]
        replayed = await conductor.simulate_post(path, json=reply, headers=headers)
        assert (replayed.status_code, replayed.json["id"]) == (200, sent.json["id"])

        unknown = {"media": [{"url": "https://example.com/b.png"}, {"media_id": "med_unknown"}]}
        refused = await conductor.simulate_post(path, json=unknown, headers=AUTH)
        assert refused.status_code == 400
        assert refused.json["field"] == "media[1].media_id"
        both = {"media": [{"media_id": upload["id"], "url": "https://example.com/b.png"}]}
        assert (await conductor.simulate_post(path, json=both, headers=AUTH)).status_code == 400

    app(tmp_path, scenario, channel)


def test_an_upload_is_read_by_its_uploader_and_admins_only(tmp_path):
    """Before a message holds it, an upload is read back by its uploader and by callers
    with media:read_all (the admin key); another agent gets 404, as for no such media."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        _, as_ada = await user_client(conductor, "agent")
        _, as_bob = await user_client(conductor, "agent")
        uploaded = await conductor.simulate_post(
            "/api/media", body=PDF, headers={**as_ada, "Content-Type": "application/pdf"}
        )
        assert uploaded.status_code == 201, uploaded.text
        path = f"/api/media/{uploaded.json['id']}"
        assert uploaded.json["uploaded_by"].startswith("user:")
        mine = await conductor.simulate_get(path, headers=as_ada)
        assert (mine.status_code, mine.content) == (200, PDF)
        assert mine.headers["content-security-policy"] == SANDBOX
        assert (await conductor.simulate_get(path, headers=AUTH)).status_code == 200
        theirs = await conductor.simulate_get(path, headers=as_bob)
        assert (theirs.status_code, theirs.json["error"]) == (404, "not_found")
        assert (
            await conductor.simulate_get("/api/media/med_none", headers=AUTH)
        ).status_code == 404

    app(tmp_path, scenario)


def test_uploads_are_limited_in_size_and_type(tmp_path):
    """More than OMNICHANNEL_MEDIA_MAX_BYTES is 413; a type not allowed 415 naming it; no
    bytes 400; a picture that is not one is kept as a download."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        async def upload(content: bytes, content_type: str) -> testing.Result:
            return await conductor.simulate_post(
                "/api/media", body=content, headers={**AUTH, "Content-Type": content_type}
            )

        too_large = await upload(b"\x00" * 2049, "application/octet-stream")
        assert (too_large.status_code, too_large.json["error"]) == (413, "content_too_large")
        assert "OMNICHANNEL_MEDIA_MAX_BYTES" in too_large.json["message"]
        html = await upload(b"<html></html>", "text/html; charset=utf-8")
        assert (html.status_code, html.json["error"]) == (415, "unsupported_media_type")
        assert "text/html" in html.json["message"]
        assert (await upload(b"", "image/png")).status_code == 400
        disguised = await upload(b"MZ\x90\x00 an executable", "image/png")
        assert disguised.json["content_type"] == "application/octet-stream"

    app(tmp_path, scenario, media_max_bytes=2048)


def test_without_the_media_module_attachments_are_listed_not_kept(tmp_path):
    """With the media module disabled, a webhook's attachments are left out and listed as
    not kept, its provider media stays a link, and the message is stored all the same."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        body = {
            "id": unique("m"),
            "from": unique("+1555"),
            "text": "hello",
            "attachments": [attachment(PDF, "application/pdf", "x.pdf")],
            "media": [{"url": "https://example.com/x.jpg"}],
        }
        message = await post_webhook(conductor, body)
        assert message["text"] == "hello"
        assert [item["url"] for item in message["media"]] == ["https://example.com/x.jpg"]
        (refused,) = message["metadata"]["media_refused"]
        assert "media store is not loaded" in refused["reason"]
        plugins = await conductor.simulate_get("/api/plugins", headers=AUTH)
        assert "media" not in [item["name"] for item in plugins.json["items"]]

    config = Config(
        data_dir=tmp_path,
        store_url=f"sqlite:///{tmp_path / 'store.db'}",
        api_keys=(API_KEY,),
        plugins_dir=tmp_path / "no-plugins",
        environ={"FILES_TOKEN": TOKEN},
    )
    plugins = load_plugins(None, disabled={"media"}, extra=[("files", FilesChannel())])
    application, _ = assemble(config, plugins, open_database(config.store_url))

    async def conducted() -> None:
        async with testing.ASGIConductor(application) as conductor:
            await scenario(conductor)

    asyncio.run(conducted())


def test_a_fetch_waits_in_the_store_for_a_runner(tmp_path, provider_media):
    """A provider's media queued while no job runner runs is fetched by the first runner
    that starts later, on the same store: the queue is durable, not a runner's memory."""
    sender = unique("+1555")
    body = {"id": unique("m"), "from": sender, "media": [{"url": provider_media.url + "/photo"}]}

    async def receive(conductor: testing.ASGIConductor) -> None:
        assert (await post_webhook(conductor, body))["media"][0]["id"] is None

    run_app(tmp_path, {"files": FilesChannel()}, receive, {"FILES_TOKEN": TOKEN})
    assert provider_media.requests == []

    async def fetch(conductor: testing.ASGIConductor) -> None:
        async def kept() -> Any:
            return (await message_of(conductor, sender))["media"][0]["id"]

        await eventually(kept)

    app(tmp_path, fetch)
    assert [r.path for r in provider_media.requests] == ["/photo"]


# who may attach kept media (docs/media.md, "Who may read what") --------------------------


async def kept_pdf(conductor: testing.ASGIConductor, assignee: str | None) -> dict:
    """A customer's message with a PDF the server keeps, in a new conversation assigned to
    ``assignee``: the message, as the API answers it."""
    body = {
        "id": unique("m"),
        "from": unique("+1555"),
        "attachments": [attachment(PDF, "application/pdf", "contract.pdf")],
    }
    message = await post_webhook(conductor, body)
    await assign(conductor, message["conversation_id"], assignee)
    return message


async def conversation_of(conductor: testing.ASGIConductor, assignee: str | None) -> str:
    """A new conversation (a customer's text), assigned to ``assignee``: its id."""
    message = await post_webhook(conductor, {"id": unique("m"), "from": unique("+1555")})
    await assign(conductor, message["conversation_id"], assignee)
    return str(message["conversation_id"])


async def assign(conductor: testing.ASGIConductor, conversation: str, assignee: str | None) -> None:
    path = f"/api/conversations/{conversation}"
    assigned = await conductor.simulate_patch(path, json={"assignee": assignee}, headers=AUTH)
    assert assigned.status_code == 200, assigned.text


async def upload(conductor: testing.ASGIConductor, headers: dict, content: bytes = PNG) -> str:
    uploaded = await conductor.simulate_post(
        "/api/media", body=content, headers={**headers, "Content-Type": "image/png"}
    )
    assert uploaded.status_code == 201, uploaded.text
    return str(uploaded.json["id"])


async def attach(
    conductor: testing.ASGIConductor, conversation: str, media_id: str, headers: dict
) -> testing.Result:
    """A reply in ``conversation`` naming ``media_id``, answered once sent."""
    return await conductor.simulate_post(
        f"/api/conversations/{conversation}/messages",
        json={"text": "attached", "media": [{"media_id": media_id}]},
        headers={**headers, "Prefer": "wait=10"},
    )


def refusal(answered: testing.Result, media_id: str) -> dict:
    """A 400's body with the id it names blanked (and the request's own id left out): what
    two refusals must share to be told apart by nothing but the id given."""
    assert answered.status_code == 400, answered.text
    text = json.dumps({key: value for key, value in answered.json.items() if key != "request_id"})
    return dict(json.loads(text.replace(media_id, "<id>")))


def test_media_a_caller_may_not_read_is_refused_as_an_unknown_id(tmp_path):
    """An agent who may not see a kept item (a customer's PDF in another agent's
    conversation, or another agent's upload not yet sent) cannot attach it to a reply in
    their own conversation: 400 naming the item, word for word the answer for an id that
    does not exist, and nothing is stored or sent. So is a supervisor who sends through a
    channel's generic route with another's upload."""
    channel = FilesChannel()

    async def scenario(conductor: testing.ASGIConductor) -> None:
        ada, as_ada = await user_client(conductor, "agent")
        bob, as_bob = await user_client(conductor, "agent")
        _, as_sue = await user_client(conductor, "supervisor")
        pdf = (await kept_pdf(conductor, ada["id"]))["media"][0]
        assert (await conductor.simulate_get(pdf["url"], headers=as_bob)).status_code == 403
        assert (
            await conductor.simulate_get(f"/api/media/{pdf['id']}", headers=as_bob)
        ).status_code == 404
        adas_upload = await upload(conductor, as_ada)
        bobs = await conversation_of(conductor, bob["id"])

        unknown_id = "med_0000000000000000000000000"
        unknown = refusal(await attach(conductor, bobs, unknown_id, as_bob), unknown_id)
        assert unknown["field"] == "media[0].media_id"
        for media_id in (pdf["id"], adas_upload):
            answered = await attach(conductor, bobs, media_id, as_bob)
            assert refusal(answered, media_id) == unknown
        messages = await conductor.simulate_get(f"/api/conversations/{bobs}/messages", headers=AUTH)
        assert [m["direction"] for m in messages.json["items"]] == ["inbound"]

        send = "/api/channels/files/messages"
        for media_id in (unknown_id, adas_upload):
            body = {"to": unique("+1555"), "media": [{"media_id": media_id}]}
            answered = await conductor.simulate_post(send, json=body, headers=as_sue)
            assert refusal(answered, media_id) == unknown
        assert channel.sent == []

    app(tmp_path, scenario, channel)


def test_uploaders_and_admins_attach_kept_media(tmp_path):
    """An agent attaches their own upload; a caller with media:read_all (the admin key)
    attaches any kept item, a customer's PDF in an agent's conversation too. The channel's
    ``send`` gets the bytes."""
    channel = FilesChannel()

    async def scenario(conductor: testing.ASGIConductor) -> None:
        ada, as_ada = await user_client(conductor, "agent")
        mine = await upload(conductor, as_ada)
        adas = await conversation_of(conductor, ada["id"])
        sent = await attach(conductor, adas, mine, as_ada)
        assert sent.status_code == 201, sent.text
        assert sent.json["media"][0]["id"] == mine

        pdf = (await kept_pdf(conductor, ada["id"]))["media"][0]
        elsewhere = await conversation_of(conductor, None)
        by_admin = await attach(conductor, elsewhere, pdf["id"], AUTH)
        assert by_admin.status_code == 201, by_admin.text
        assert [contents for _, contents in channel.sent] == [[PNG], [PDF]]

    app(tmp_path, scenario, channel)


def test_who_may_see_a_message_holding_an_item_may_attach_it(tmp_path, provider_media):
    """A kept item is attached by whoever may see a message that holds it: a customer's
    attachment, an agent's upload once sent, a provider's media once fetched. An agent may
    while the conversation is unassigned (or theirs), not while it is another's; a
    supervisor, who sees every conversation, may through the generic send route."""
    channel = FilesChannel()

    async def scenario(conductor: testing.ASGIConductor) -> None:
        ada, as_ada = await user_client(conductor, "agent")
        bob, as_bob = await user_client(conductor, "agent")
        _, as_sue = await user_client(conductor, "supervisor")
        bobs = await conversation_of(conductor, bob["id"])

        message = await kept_pdf(conductor, ada["id"])
        pdf = message["media"][0]
        assert (await attach(conductor, bobs, pdf["id"], as_bob)).status_code == 400
        await assign(conductor, message["conversation_id"], None)
        forwarded = await attach(conductor, bobs, pdf["id"], as_bob)
        assert forwarded.status_code == 201, forwarded.text

        upload_id = await upload(conductor, as_ada)
        unassigned = await conversation_of(conductor, None)
        assert (await attach(conductor, unassigned, upload_id, as_ada)).status_code == 201
        assert (await attach(conductor, bobs, upload_id, as_bob)).status_code == 201

        body: dict[str, Any] = {
            "id": unique("mms"),
            "from": unique("+1555"),
            "media": [{"url": provider_media.url + "/photo"}],
        }
        fetched_message = await post_webhook(conductor, body)
        await assign(conductor, fetched_message["conversation_id"], ada["id"])

        async def fetched() -> Any:
            return (await message_of(conductor, body["from"]))["media"][0]["id"]

        photo = await eventually(fetched)
        assert (await attach(conductor, bobs, photo, as_bob)).status_code == 400
        adas = await conversation_of(conductor, ada["id"])
        assert (await attach(conductor, adas, photo, as_ada)).status_code == 201

        send = "/api/channels/files/messages"
        body = {"to": unique("+1555"), "media": [{"media_id": photo}]}
        by_sue = await conductor.simulate_post(
            send, json=body, headers={**as_sue, "Prefer": "wait=10"}
        )
        assert by_sue.status_code == 201, by_sue.text
        assert [contents for _, contents in channel.sent] == [[PDF], [PNG], [PNG], [JPEG], [JPEG]]

    app(tmp_path, scenario, channel)


class SendsByRoute:
    """A channel's own ``POST send`` ``{"to", "media_id", "for_caller"}``: through its
    ``ChannelInbox.send``, passing the caller as ``principal`` when ``for_caller``."""

    def __init__(self, inbox: ChannelInbox) -> None:
        self.inbox = inbox

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        data = await read_json_object(req, 4096)
        request = OutboundRequest(media=(Media(url="", id=data["media_id"]),))
        principal = req.context.principal if data["for_caller"] else None
        message, created = await self.inbox.send(data["to"], request, principal=principal)
        answer_sent(resp, message, created, None)


class FilesWithRoutes(FilesChannel):
    @hookimpl
    def channel_routes(self, inbox: ChannelInbox) -> list[ChannelRoute]:
        return [ChannelRoute("send", SendsByRoute(inbox), permission="messages:send")]


def test_a_channels_own_route_attaches_kept_media_only_for_its_caller(tmp_path):
    """``ChannelInbox.send`` with the route's caller as ``principal`` attaches what the
    caller may read (and refuses, as unknown, what they may not: another's upload not yet
    sent); without a principal (a program's own send) any kept media is refused, whoever
    the caller."""
    channel = FilesWithRoutes()

    async def scenario(conductor: testing.ASGIConductor) -> None:
        _, as_sue = await user_client(conductor, "supervisor")
        mine = await upload(conductor, as_sue)
        _, as_tom = await user_client(conductor, "supervisor")
        route = "/api/channels/files/send"

        async def send(media_id: str, headers: dict, for_caller: bool) -> testing.Result:
            body = {"to": unique("+1555"), "media_id": media_id, "for_caller": for_caller}
            return await conductor.simulate_post(route, json=body, headers=headers)

        unknown = refusal(await send("med_none", as_tom, True), "med_none")
        assert refusal(await send(mine, as_tom, True), mine) == unknown  # not sent yet
        assert (await send(mine, as_sue, True)).status_code == 202
        for headers in (as_sue, AUTH):
            without = await send(mine, headers, False)
            assert without.status_code == 400, without.text
            assert without.json["field"] == "media"
            assert "media_id" in without.json["message"]

    app(tmp_path, scenario, channel)
