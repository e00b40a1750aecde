"""Inbound Twilio media fetched into the media store, through the real server and the fake
Twilio API: the ``MediaUrl`` asked with the account's basic auth, Twilio's redirect to its
CDN followed without credentials, the bytes kept and downloaded by an agent; a URL on a host
Twilio does not use never fetched."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from omnichannel_twilio.media import media_fetch_of
from twilio_signing import ACCOUNT_SID, AUTH_TOKEN, post_webhook, sms_form, unique_phone

from omnichannel_core.channel import ChannelUnavailable, Config, Media
from omnichannel_core.testing.inbox_reader import InboxReader
from omnichannel_core.testing.server import ServerProcess

PHOTO = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 64
BASIC = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()


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


def mms(client: httpx.Client, *urls: str) -> tuple[InboxReader, str]:
    """Post a signed MMS naming ``urls``; the inbox and the sender's phone."""
    phone = unique_phone()
    fields = {"NumMedia": str(len(urls))}
    for index, url in enumerate(urls):
        fields[f"MediaUrl{index}"] = url
        fields[f"MediaContentType{index}"] = "image/jpeg"
    assert post_webhook(client, sms_form(phone, "look", **fields)).status_code == 200
    return InboxReader(client, "twilio"), phone


def test_mms_media_is_fetched_with_basic_auth_and_kept(client, fake_twilio):
    """The webhook stores Twilio's URL; the job asks Twilio's API for it with the account
    SID and auth token, follows the redirect to the CDN without them, and keeps the photo:
    the message then names it, and the API serves it as a download."""
    url = fake_twilio.add_media(PHOTO, "image/jpeg")
    inbox, phone = mms(client, url)
    [stored] = inbox.messages_of(phone)
    assert stored["media"][0]["url"] == url

    def kept() -> Any:
        [message] = inbox.messages_of(phone)
        return message if message["media"][0]["id"] else None

    message = eventually(kept)
    item = message["media"][0]
    assert item["url"] == f"/api/messages/{message['id']}/media/0"
    assert (item["content_type"], item["size"]) == ("image/jpeg", len(PHOTO))
    download = client.get(item["url"])
    assert download.status_code == 200
    assert download.content == PHOTO
    assert download.headers["content-disposition"].startswith("attachment;")
    path = url.removeprefix(fake_twilio.url)
    asked = [r for r in fake_twilio.media_requests() if r.path == path]
    assert asked and all(r.headers["authorization"] == BASIC for r in asked)
    served = [r for r in fake_twilio.cdn_requests() if r.path.endswith(path.rpartition("/")[2])]
    assert served and all("authorization" not in r.headers for r in served)


def test_media_on_a_host_twilio_does_not_use_is_never_fetched(client, fake_twilio):
    """A MediaUrl on a host that is neither Twilio's API nor its CDN stays a link, and its
    route says why; one Twilio no longer has (404) likewise."""
    gone = fake_twilio.add_media(b"", "image/jpeg").rpartition("/")[0] + "/MEunknown"
    inbox, phone = mms(client, "https://media.example.org/cat.jpg", gone)

    def given_up() -> Any:
        [message] = inbox.messages_of(phone)
        reasons = []
        for index in (0, 1):
            answer = client.get(f"/api/messages/{message['id']}/media/{index}")
            if answer.json().get("fetch") != "failed":
                return None
            reasons.append(answer.json()["reason"])
        return reasons

    foreign, missing = eventually(given_up)
    assert "media.example.org" in foreign and "not one the channel allows" in foreign
    assert "answered 404" in missing
    [message] = inbox.messages_of(phone)
    assert [item["id"] for item in message["media"]] == [None, None]


def config_of(**environ: str) -> Config:
    base = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN}
    return Config(environ={**base, **environ})


def test_media_fetch_names_twilio_hosts_and_sends_credentials_to_the_api_only():
    """A MediaUrl on the API's host gets basic auth, and may be redirected to Twilio's CDN
    hosts; one on another host gets no credentials; TWILIO_MEDIA_HOSTS replaces the CDN
    hosts; without credentials the channel is unavailable (the job tries again later)."""
    api = "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1"
    fetch = media_fetch_of(Media(url=api), config_of(), "twilio")
    assert fetch.url == api
    assert fetch.hosts == ("api.twilio.com", "*.twiliocdn.com", "s3-external-1.amazonaws.com")
    assert fetch.headers == {"Authorization": BASIC}
    elsewhere = media_fetch_of(Media(url="https://mms.twiliocdn.com/x"), config_of(), "twilio")
    assert elsewhere.headers == {}
    plain = media_fetch_of(Media(url=api.replace("https", "http")), config_of(), "twilio")
    assert plain.headers == {}  # not the API's origin: no credentials over plain http
    proxied = config_of(
        TWILIO_API_BASE_URL="http://127.0.0.1:8080", TWILIO_MEDIA_HOSTS="cdn.test, *.media.test"
    )
    fetch = media_fetch_of(Media(url="http://127.0.0.1:8080/m"), proxied, "twilio")
    assert fetch.hosts == ("127.0.0.1", "cdn.test", "*.media.test")
    assert fetch.headers == {"Authorization": BASIC}
    with pytest.raises(ChannelUnavailable):
        media_fetch_of(Media(url=api), Config(environ={}), "twilio")


def test_stored_media_hosts_and_credentials_are_used():
    """Hosts and credentials an admin stored are what the media fetch uses, the
    environment's winning where it sets them."""
    settings = Config(environ={"TWILIO_ACCOUNT_SID": ACCOUNT_SID})
    settings.stored_settings.replace(
        {"TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_MEDIA_HOSTS": "cdn.stored.test"}, 1
    )
    api = "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1"
    fetch = media_fetch_of(Media(url=api), settings, "twilio")
    assert fetch.hosts == ("api.twilio.com", "cdn.stored.test")
    assert fetch.headers == {"Authorization": BASIC}
