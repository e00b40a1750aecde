"""Messenger attachments fetched into the media store, through the real server and the fake
Graph API's CDN: the attachment URL fetched without the page's token, the bytes kept and
downloaded by an agent; an expired URL, or one off Facebook's CDN hosts, given up."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from messenger_events import attachment, message_event, post_webhook, unique_psid, webhook
from omnichannel_facebook.media import media_fetch_of

from omnichannel_core.channel import Config, Media
from omnichannel_core.testing.inbox_reader import InboxReader
from omnichannel_core.testing.server import ServerProcess

PDF = b"%PDF-1.7\n" + b"1 0 obj << /Type /Catalog >> endobj\n" * 100
PHOTO = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 16


@pytest.fixture
def client(media_server: ServerProcess) -> Iterator[httpx.Client]:
    with media_server.client() as client:
        yield client


def eventually(check: Callable[[], Any], seconds: float = 20) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.05)


def test_attachments_are_fetched_from_the_cdn_and_kept(client, fake_graph):
    """A file and an image attachment are stored as their CDN URLs, then fetched (with no
    token) and kept: the message names them by id, with the types the bytes have, and the
    API serves them as downloads."""
    psid = unique_psid()
    urls = [
        fake_graph.add_attachment(PDF, "application/pdf", "report.pdf"),
        fake_graph.add_attachment(PHOTO, "image/png", "photo.png"),
    ]
    attachments = [attachment("file", urls[0]), attachment("image", urls[1])]
    assert post_webhook(
        client, webhook(message_event(psid, {"attachments": attachments}))
    ).is_success
    inbox = InboxReader(client, "facebook")
    [stored] = inbox.messages_of(psid)
    assert [item["url"] for item in stored["media"]] == urls

    def kept() -> Any:
        [message] = inbox.messages_of(psid)
        return message if all(item["id"] for item in message["media"]) else None

    message = eventually(kept)
    assert [(item["content_type"], item["size"]) for item in message["media"]] == [
        ("application/pdf", len(PDF)),
        ("image/png", len(PHOTO)),
    ]
    for item, content in zip(message["media"], (PDF, PHOTO), strict=True):
        download = client.get(item["url"])
        assert download.status_code == 200
        assert download.content == content
    served = fake_graph.cdn_requests()
    assert len(served) >= 2
    assert all("authorization" not in r.headers and "access_token" not in r.path for r in served)


def test_expired_and_foreign_urls_are_given_up(client, fake_graph):
    """A CDN URL that no longer works (403) and one on a host that is not Facebook's CDN are
    not kept: the message keeps the URLs, and the media route says why."""
    psid = unique_psid()
    expired = fake_graph.cdn_url + "/v/t39/unknown/gone.jpg?oe=1"
    foreign = "https://files.example.org/a.jpg"
    attachments = [attachment("image", expired), attachment("image", foreign)]
    assert post_webhook(
        client, webhook(message_event(psid, {"attachments": attachments}))
    ).is_success
    inbox = InboxReader(client, "facebook")

    def reasons() -> Any:
        [message] = inbox.messages_of(psid)
        answers = [client.get(f"/api/messages/{message['id']}/media/{i}").json() for i in (0, 1)]
        if any(answer.get("fetch") != "failed" for answer in answers):
            return None
        return [answer["reason"] for answer in answers]

    gone, elsewhere = eventually(reasons)
    assert "answered 403" in gone
    assert "files.example.org" in elsewhere
    [message] = inbox.messages_of(psid)
    assert [item["url"] for item in message["media"]] == [expired, foreign]


def test_media_fetch_names_facebooks_cdn_and_no_credentials():
    """Attachments come from Facebook's CDN hosts (FACEBOOK_MEDIA_HOSTS replaces them),
    fetched with no token."""
    url = "https://scontent.xx.fbcdn.net/v/t1/photo.jpg?oh=1"
    fetch = media_fetch_of(Media(url=url), Config())
    assert (fetch.url, fetch.hosts, dict(fetch.headers)) == (
        url,
        ("*.fbcdn.net", "*.fbsbx.com"),
        {},
    )
    narrowed = media_fetch_of(Media(url=url), Config(environ={"FACEBOOK_MEDIA_HOSTS": "cdn.test"}))
    assert narrowed.hosts == ("cdn.test",)
