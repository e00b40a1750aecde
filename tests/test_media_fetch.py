"""Fetching a provider's media by the SSRF rules, against real HTTP servers on loopback:
the channel's hosts only, redirects followed by hand and checked at every hop, credentials
for the first host only, private addresses refused unless allowed, the size capped while
the body streams."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from omnichannel_core.hooktypes import MediaFetch
from omnichannel_core.modules.media.fetch import (
    MAX_REDIRECTS,
    Fetched,
    FetchFailed,
    FetchRefused,
    fetch_client,
    fetch_media,
    host_allowed,
    is_public,
)
from omnichannel_core.testing.fake_provider import FakeProvider, ScriptedResponse
from omnichannel_core.testing.server import free_port

PHOTO = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40
LIMIT = 100_000
AUTH = {"Authorization": "Basic c2lkOnRva2Vu"}


def fetch(spec: MediaFetch, limit: int = LIMIT, allow_private: bool = True) -> Fetched:
    async def run() -> Fetched:
        async with fetch_client() as client:
            return await fetch_media(spec, limit, allow_private, client)

    return asyncio.run(run())


def on_localhost(provider: FakeProvider, path: str) -> str:
    """The fake's URL by another name (``localhost``): another host, the same server."""
    return provider.url.replace("127.0.0.1", "localhost") + path


@pytest.fixture
def cdn() -> Iterator[FakeProvider]:
    """Where bytes are: answers every request with the photo."""
    photo = ScriptedResponse(
        200, PHOTO, "image/jpeg", headers={"Content-Disposition": 'inline; filename="cat.jpg"'}
    )
    with FakeProvider(default=photo) as provider:
        yield provider


@pytest.fixture
def api() -> Iterator[FakeProvider]:
    """A provider's API: answers as scripted (redirects, errors)."""
    with FakeProvider() as provider:
        yield provider


def test_media_is_fetched_from_an_allowed_host_with_its_credentials(cdn):
    """The bytes, their type and the name the server gave; the request carried the
    channel's headers and named the host it was made for."""
    fetched = fetch(MediaFetch(cdn.url + "/m/1", hosts=("127.0.0.1",), headers=AUTH))
    assert fetched == Fetched(PHOTO, "image/jpeg", "cat.jpg")
    (request,) = cdn.requests
    assert request.path == "/m/1"
    assert request.headers["authorization"] == AUTH["Authorization"]
    assert request.headers["host"] == cdn.url.removeprefix("http://")


def test_a_host_the_channel_does_not_name_is_never_contacted(cdn):
    """A URL on another host than the channel's is refused before any connection."""
    with pytest.raises(FetchRefused, match="not one the channel allows"):
        fetch(MediaFetch(cdn.url + "/m/1", hosts=("media.example.com", "*.127.0.0.1")))
    with pytest.raises(FetchRefused, match="only http"):
        fetch(MediaFetch("file:///etc/passwd", hosts=("",)))
    assert cdn.requests == []


def test_private_addresses_are_refused_unless_allowed(cdn):
    """Without OMNICHANNEL_MEDIA_FETCH_PRIVATE a host that resolves to a loopback address is
    refused, even when the channel names it, and nothing is sent."""
    for url in (cdn.url, on_localhost(cdn, "")):
        with pytest.raises(FetchRefused, match="private, loopback or link-local"):
            fetch(MediaFetch(url + "/m/1", hosts=("127.0.0.1", "localhost")), allow_private=False)
    assert cdn.requests == []


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # the cloud metadata service
        ("100.64.0.1", False),  # shared address space
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),  # loopback, written as IPv6
        ("::ffff:8.8.8.8", True),
        ("::7f00:1", False),  # IPv4-compatible 127.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of the metadata service
        ("64:ff9b:1::a9fe:a9fe", False),  # local-use NAT64
        ("2002:7f00:1::1", False),  # 6to4 of 127.0.0.1
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),  # Teredo
        ("240.0.0.1", False),  # reserved
    ],
)
def test_only_public_addresses_count_as_public(address, public):
    """Private, loopback, link-local, shared and reserved addresses are refused, written as
    IPv4 or as any IPv6 form that carries an IPv4 address."""
    assert is_public(address) is public


def test_host_patterns_match_subdomains_only():
    """``*.example.com`` is any subdomain of it, not the domain itself; case and a final dot
    do not count."""
    assert host_allowed("mms.twiliocdn.com", ("*.twiliocdn.com",))
    assert host_allowed("A.B.TwilioCDN.com.", ("*.twiliocdn.com",))
    assert not host_allowed("twiliocdn.com", ("*.twiliocdn.com",))
    assert not host_allowed("eviltwiliocdn.com", ("*.twiliocdn.com",))
    assert not host_allowed("twiliocdn.com.evil.net", ("*.twiliocdn.com",))
    assert host_allowed("api.twilio.com", ("api.twilio.com",))


def test_a_redirect_is_followed_and_credentials_stay_with_the_first_host(api, cdn):
    """The API answers a redirect to another host (the provider's CDN): the fetch follows it,
    by hand, and sends the channel's credentials to the API only."""
    api.queue(ScriptedResponse(307, b"", headers={"Location": on_localhost(cdn, "/cdn/1")}))
    fetched = fetch(
        MediaFetch(api.url + "/media/1", hosts=("127.0.0.1", "localhost"), headers=AUTH)
    )
    assert fetched.content == PHOTO
    (asked,) = api.requests
    assert asked.headers["authorization"] == AUTH["Authorization"]
    (served,) = cdn.requests
    assert served.path == "/cdn/1"
    assert "authorization" not in served.headers
    assert served.headers["host"] == on_localhost(cdn, "").removeprefix("http://")


def test_a_redirect_to_a_host_not_named_is_refused(api, cdn):
    """A redirect to a host the channel does not name (or to a non-http URL) ends the fetch
    there: nothing is asked of that host."""
    api.queue(ScriptedResponse(302, b"", headers={"Location": on_localhost(cdn, "/x")}))
    with pytest.raises(FetchRefused, match="'localhost' is not one the channel allows"):
        fetch(MediaFetch(api.url + "/media/1", hosts=("127.0.0.1",), headers=AUTH))
    api.queue(ScriptedResponse(302, b"", headers={"Location": "gopher://127.0.0.1/x"}))
    with pytest.raises(FetchRefused, match="only http"):
        fetch(MediaFetch(api.url + "/media/2", hosts=("127.0.0.1",)))
    assert cdn.requests == []


def test_redirects_end_after_a_few_hops(api):
    """A redirect loop ends with a refusal after MAX_REDIRECTS hops."""
    api.default = ScriptedResponse(301, b"", headers={"Location": "/again"})
    with pytest.raises(FetchRefused, match="redirects"):
        fetch(MediaFetch(api.url + "/again", hosts=("127.0.0.1",)))
    assert len(api.requests) == MAX_REDIRECTS + 1


def test_a_body_larger_than_the_limit_is_refused(cdn):
    """An announced length over the limit is refused at once; so is a body that grows past
    it while it streams (no length announced)."""
    with pytest.raises(FetchRefused, match="larger than 1000 bytes"):
        fetch(MediaFetch(cdn.url + "/big", hosts=("127.0.0.1",)), limit=1000)
    with StreamingServer(PHOTO) as url, pytest.raises(FetchRefused, match="larger than 1000"):
        fetch(MediaFetch(url, hosts=("127.0.0.1",)), limit=1000)
    with StreamingServer(PHOTO) as url:
        assert fetch(MediaFetch(url, hosts=("127.0.0.1",))).content == PHOTO


@pytest.mark.parametrize(
    ("status", "headers", "expected", "retry_after"),
    [
        (503, {"Retry-After": "7"}, FetchFailed, 7.0),
        (500, {}, FetchFailed, None),
        (429, {}, FetchFailed, None),
        (404, {}, FetchRefused, None),
        (403, {}, FetchRefused, None),
    ],
)
def test_server_errors_may_be_retried_and_refusals_not(api, status, headers, expected, retry_after):
    """5xx and 429 are worth another attempt (after the provider's Retry-After); any other
    refusal is final."""
    api.queue(ScriptedResponse(status, b"{}", headers=headers))
    with pytest.raises(expected) as failed:
        fetch(MediaFetch(api.url + "/m", hosts=("127.0.0.1",)))
    assert str(status) in str(failed.value)
    if expected is FetchFailed:
        assert failed.value.retry_after == retry_after


def test_no_connection_may_be_retried():
    """A host nobody listens on is a failure worth retrying, not a refusal."""
    url = f"http://127.0.0.1:{free_port()}/m"
    with pytest.raises(FetchFailed, match="ConnectError"):
        fetch(MediaFetch(url, hosts=("127.0.0.1",)))


class StreamingServer:
    """A server that answers every GET with ``body`` and no length (HTTP/1.0, the body ends
    when the connection closes), as a CDN streaming a file may."""

    def __init__(self, body: bytes) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.end_headers()
                for start in range(0, len(body), 1000):
                    self.wfile.write(body[start : start + 1000])

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/stream"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
