"""The raw MIME webhook, ``POST /api/channels/email/webhook``, through the real server: who
may post (the inbound secret as a bearer token or a basic-auth password), what it takes
(a mail as the body, or in SendGrid's and Mailgun's forms), how large, and what a real
mail of each client's shape becomes once stored (the ``corpus/`` of test_email_parse.py).
"""

from __future__ import annotations

import base64
import email
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from falcon import testing
from omnichannel_email.channel import EmailChannel
from omnichannel_email.settings import DEFAULT_MAX_MESSAGE_BYTES
from smtp_server import INBOUND_SECRET, email_env, serving
from test_email_parse import CORPUS, MESSAGES, OWN_ADDRESS

from omnichannel_core.testing.in_process import run_app
from omnichannel_core.testing.inbox_reader import InboxReader
from omnichannel_core.testing.server import ServerProcess

WEBHOOK = "/api/channels/email/webhook"
RFC822 = {"Content-Type": "message/rfc822"}
BEARER = {"Authorization": f"Bearer {INBOUND_SECRET}", **RFC822}


def mail(text: str = "Where is my parcel?", **headers: str) -> tuple[bytes, str]:
    """A plain mail from a sender of its own, and its provider message id."""
    message_id = f"{uuid.uuid4().hex}@mail.example.org"
    fields = {
        "From": f"Ana <ana-{uuid.uuid4().hex[:8]}@example.org>",
        "To": OWN_ADDRESS,
        "Subject": "Parcel",
        "Date": "Mon, 02 Jun 2025 09:30:00 +0000",
        "Message-ID": f"<{message_id}>",
        **{name.replace("_", "-"): value for name, value in headers.items()},
    }
    head = "".join(f"{name}: {value}\r\n" for name, value in fields.items())
    return (head + "\r\n" + text + "\r\n").encode(), message_id


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The real server taking mail for the corpus's business, at the default size limit."""
    env = email_env(None, EMAIL_FROM_ADDRESS=OWN_ADDRESS)
    with serving(tmp_path_factory.mktemp("webhook"), env) as server:
        yield server


@pytest.fixture
def provider(server: ServerProcess) -> Iterator[httpx.Client]:
    """A client without the API key: a mail provider."""
    with server.client(None) as client:
        yield client


@pytest.fixture
def inbox(server: ServerProcess) -> Iterator[InboxReader]:
    with server.client() as client:
        yield InboxReader(client, "email")


def stored(inbox: InboxReader, message_id: str) -> dict:
    """The one message stored with ``message_id``."""
    [message] = inbox.messages_with_provider_id("email", message_id)
    return message


def test_a_mail_posted_with_the_bearer_secret_is_stored(provider, inbox):
    """A mail posted with ``Authorization: Bearer <EMAIL_INBOUND_SECRET>`` and
    ``message/rfc822`` is answered 200 once stored, with its text, from its sender."""
    source, message_id = mail("Where is my parcel?")
    response = provider.post(WEBHOOK, content=source, headers=BEARER)
    assert response.status_code == 200, response.text
    message = stored(inbox, message_id)
    assert (message["direction"], message["text"]) == ("inbound", "Where is my parcel?")


@pytest.mark.parametrize("user", ["inbound", "", "ops@example.org"])
def test_the_secret_as_the_basic_auth_password_is_taken_whatever_the_user(provider, inbox, user):
    """The secret works as the basic-auth password, with any user name (a provider's
    webhook URL ``https://user:secret@host/...``)."""
    source, message_id = mail()
    headers = {**basic(user, INBOUND_SECRET), **RFC822}
    response = provider.post(WEBHOOK, content=source, headers=headers)
    assert response.status_code == 200, response.text
    assert stored(inbox, message_id)["text"] == "Where is my parcel?"


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer not-the-inbound-secret-at-all"},
        basic("inbound", "not-the-inbound-secret-at-all"),
        basic(INBOUND_SECRET, ""),  # the secret as the user name is no password
        {"Authorization": f"Token {INBOUND_SECRET}"},
        {},
    ],
    ids=["wrong-bearer", "wrong-password", "secret-as-user", "other-scheme", "none"],
)
def test_a_missing_or_wrong_secret_is_refused(provider, inbox, headers):
    """A wrong secret, or none, is refused with 403 webhook_rejected, and nothing is
    stored."""
    source, message_id = mail()
    response = provider.post(WEBHOOK, content=source, headers={**headers, **RFC822})
    assert response.status_code == 403
    assert response.json()["error"] == "webhook_rejected"
    assert inbox.messages_with_provider_id("email", message_id) == []


@pytest.mark.parametrize("secret", [None, "short-secret"], ids=["unset", "too-short"])
def test_without_a_usable_inbound_secret_the_webhook_is_unavailable(tmp_path: Path, secret):
    """With no EMAIL_INBOUND_SECRET configured, or one under 16 characters, the webhook
    answers 503 saying so, whatever the caller sends (the short secret itself included)."""

    async def scenario(conductor: testing.ASGIConductor) -> None:
        response = await conductor.simulate_post(
            WEBHOOK, body=mail()[0], headers={"Authorization": f"Bearer {secret}", **RFC822}
        )
        assert response.status_code == 503
        assert response.json["error"] == "channel_unavailable"
        assert "EMAIL_INBOUND_SECRET" in response.json["message"]

    environ = {"EMAIL_FROM_ADDRESS": OWN_ADDRESS, "EMAIL_SMTP_HOST": "127.0.0.1"}
    if secret is not None:
        environ["EMAIL_INBOUND_SECRET"] = secret
    run_app(tmp_path, {"email": EmailChannel()}, scenario, environ)


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", "image/png"])
def test_another_content_type_is_refused_with_415(provider, content_type):
    """A body that is neither a mail nor a provider's form is refused with 415 naming what
    is taken."""
    response = provider.post(
        WEBHOOK,
        content=mail()[0],
        headers={"Authorization": f"Bearer {INBOUND_SECRET}", "Content-Type": content_type},
    )
    assert response.status_code == 415
    body = response.json()
    assert body["error"] == "unsupported_media_type"
    assert "message/rfc822" in body["message"] and body["content_type"] == content_type


def test_an_empty_body_is_refused_with_400(provider):
    """An authenticated post with no mail in it is a 400."""
    response = provider.post(WEBHOOK, content=b"", headers=BEARER)
    assert response.status_code == 400


def test_a_mail_over_the_limit_is_refused_with_413(provider):
    """A body over EMAIL_MAX_MESSAGE_BYTES (25 MB by default) is refused with 413 and a
    JSON error naming the limit, before ``receive`` reads it."""
    source, _ = mail("x" * (DEFAULT_MAX_MESSAGE_BYTES + 1024))
    response = provider.post(WEBHOOK, content=source, headers=BEARER, timeout=60)
    assert response.status_code == 413
    assert response.json() == {
        "error": "content_too_large",
        "message": f"request body is larger than {DEFAULT_MAX_MESSAGE_BYTES} bytes",
    }


def test_a_large_mail_under_the_limit_is_stored(provider, inbox):
    """A 20 MB mail (a large attachment) is taken whole, streamed rather than held."""
    source, message_id = mail("See the attached video.\r\n" + "v" * (20 * 1024 * 1024))
    response = provider.post(WEBHOOK, content=source, headers=BEARER, timeout=60)
    assert response.status_code == 200, response.text
    assert stored(inbox, message_id)["text"].startswith("See the attached video.")


def test_a_sendgrid_raw_form_is_read_from_its_email_field(provider, inbox):
    """SendGrid Inbound Parse in raw mode posts multipart/form-data whose ``email`` field is
    the mail; the other fields are ignored."""
    source, message_id = mail("Sent through SendGrid")
    response = provider.post(
        WEBHOOK,
        data={"to": OWN_ADDRESS, "from": "ana@example.org", "charsets": "{}"},
        files={"email": (None, source, "text/plain")},
        headers=basic("inbound", INBOUND_SECRET),
    )
    assert response.status_code == 200, response.text
    assert stored(inbox, message_id)["text"] == "Sent through SendGrid"


@pytest.mark.parametrize("form", ["urlencoded", "multipart"])
def test_a_mailgun_mime_post_is_read_from_its_body_mime_field(provider, inbox, form):
    """A Mailgun route to a URL ending in ``mime`` posts the mail in ``body-mime``, as a
    urlencoded form (or multipart when it sends files)."""
    source, message_id = mail("Sent through Mailgun")
    fields = {"recipient": OWN_ADDRESS, "timestamp": "1717320000", "body-mime": source}
    auth = basic("api", INBOUND_SECRET)
    url = WEBHOOK + "?format=mime"
    if form == "urlencoded":
        body = urlencode(fields).encode()
        headers = {**auth, "Content-Type": "application/x-www-form-urlencoded"}
        response = provider.post(url, content=body, headers=headers)
    else:
        files = {name: (None, value) for name, value in fields.items()}
        response = provider.post(url, files=files, headers=auth)
    assert response.status_code == 200, response.text
    assert stored(inbox, message_id)["text"] == "Sent through Mailgun"


def test_a_form_without_the_mail_is_refused_with_400(provider):
    """A provider form without ``email`` or ``body-mime`` (SendGrid's parsed mode, say) is
    a 400 naming the fields it needs."""
    response = provider.post(
        WEBHOOK,
        data={"to": OWN_ADDRESS, "text": "parsed, not raw"},
        headers=basic("inbound", INBOUND_SECRET),
    )
    assert response.status_code == 400
    assert "body-mime" in response.json()["message"]


def test_the_same_mail_posted_twice_is_stored_once(provider, inbox):
    """A provider's retry (the same Message-ID) is answered 200 and stored once."""
    source, message_id = mail("Retried")
    for _ in range(2):
        assert provider.post(WEBHOOK, content=source, headers=BEARER).status_code == 200
    assert len(inbox.messages_with_provider_id("email", message_id)) == 1


def test_a_reply_joins_its_thread_and_a_stranger_citing_it_does_not(provider, inbox):
    """A reply from the same sender naming the first mail (In-Reply-To) joins its
    conversation; a mail from someone else citing it starts one of its own, flagged."""
    sender = f"thread-{uuid.uuid4().hex[:8]}@example.org"
    first, first_id = mail("First", From=sender)
    reply, reply_id = mail("Second", From=sender, In_Reply_To=f"<{first_id}>")
    stranger, stranger_id = mail("Let me in", In_Reply_To=f"<{first_id}>")
    for source in (first, reply, stranger):
        assert provider.post(WEBHOOK, content=source, headers=BEARER).status_code == 200
    conversation = stored(inbox, first_id)["conversation_id"]
    assert stored(inbox, reply_id)["conversation_id"] == conversation
    outsider = stored(inbox, stranger_id)
    assert outsider["conversation_id"] != conversation
    assert outsider["metadata"].get("thread_refused") is True


@pytest.mark.parametrize(
    "charset", [b"utf-8\x00", b"utf-8\xff", b"\x00"], ids=["nul", "8bit", "only-nul"]
)
def test_a_charset_name_no_codec_can_look_up_is_read_as_undeclared(provider, inbox, charset):
    """A charset name with a NUL or a raw 8-bit byte (the codec registry raises ValueError
    on it, not LookupError) is taken as no charset: the text is read as UTF-8, and the mail
    is stored (200), not refused with a 502."""
    source, message_id = mail("Où est mon colis ?")
    head, _, body = source.partition(b"\r\n\r\n")
    content_type = b'Content-Type: text/plain; charset="' + charset + b'"\r\n'
    source = head + b"\r\nMIME-Version: 1.0\r\n" + content_type + b"\r\n" + body
    response = provider.post(WEBHOOK, content=source, headers=BEARER)
    assert response.status_code == 200, response.text
    assert stored(inbox, message_id)["text"] == "Où est mon colis ?"


def _message_id(raw: bytes) -> str:
    header = email.message_from_bytes(raw)["Message-ID"]
    return str(header).strip().strip("<>")


@pytest.mark.parametrize("expected", MESSAGES, ids=lambda item: item.file)
def test_a_corpus_mail_posted_is_stored_as_its_client_wrote_it(provider, server, expected):
    """Each mail of the corpus, posted as its provider would, is stored with the text, the
    sender, the subject and the attachments (name, type, size, role, content id) the parser
    tests expect, plus its whole source (role ``original``) to download."""
    raw = (CORPUS / expected.file).read_bytes()
    response = provider.post(WEBHOOK, content=raw, headers=BEARER)
    assert response.status_code == 200, response.text
    with server.client() as client:
        message = stored(InboxReader(client, "email"), _message_id(raw))
        contact = client.get(f"/api/contacts/{message['contact_id']}").json()
        original = [item for item in message["media"] if item["role"] == "original"]
        assert len(original) == 1
        download = client.get(original[0]["url"])
        assert download.status_code == 200
        assert download.content == raw
    assert message["text"] == expected.text
    assert {"channel": "email", "address": expected.sender} in contact["identities"]
    assert message["metadata"]["email"]["subject"] == expected.subject
    assert bool(message["metadata"].get("automated")) is expected.automated
    attachments = [
        (item["filename"], item["content_type"], item["size"], item["role"], item["content_id"])
        for item in message["media"]
        if item["role"] != "original"
    ]
    assert attachments == [
        (name, content_type, size, str(role), content_id)
        for name, content_type, size, role, content_id in expected.attachments
    ]


@pytest.mark.parametrize("file", ["postfix_bounce.eml", "read_receipt.eml", "postfix_delayed.eml"])
def test_a_report_on_our_mail_is_taken_and_stores_no_message(provider, inbox, file):
    """A delivery or read report on one of our mails is answered 200 and is no message of
    its own (it moves our message's status; here that message is unknown to the server)."""
    raw = (CORPUS / file).read_bytes()
    response = provider.post(WEBHOOK, content=raw, headers=BEARER)
    assert response.status_code == 200, response.text
    assert inbox.messages_with_provider_id("email", _message_id(raw)) == []


def test_encoded_words_that_do_not_decode_are_stored_replaced(provider, inbox):
    """An encoded-word whose bytes are not its charset's (``=?utf-8?b?/w==?=``, a 0xFF)
    in the sender's name, To and an attachment's name: stored, with U+FFFD where the bytes
    were, never a lone surrogate that no store can write."""
    source, message_id = mail(
        "Hello",
        From=f"=?utf-8?b?/w==?= Ana <ana-{uuid.uuid4().hex[:8]}@example.org>",
        To=f"=?utf-8?b?/w==?= <{OWN_ADDRESS}>",
        Subject="=?utf-8?b?/w==?= order",
    )
    response = provider.post(WEBHOOK, content=source, headers=BEARER)
    assert response.status_code == 200, response.text
    message = stored(inbox, message_id)
    assert message["text"] == "Hello"
    assert message["metadata"]["email"]["from"].startswith("\ufffd Ana <ana-")
    assert message["metadata"]["email"]["subject"] == "\ufffd order"


def test_a_caller_without_the_secret_is_refused_before_its_body_is_read(server):
    """The secret is checked on the headers: a caller announcing 20 MB without it gets 403
    at once, after the first kilobyte of the body (the server hands a request on when its
    body starts), not the rest: nothing is streamed to disk for it."""
    host, port = server.base_url.removeprefix("http://").split(":")
    head = (
        f"POST {WEBHOOK} HTTP/1.1\r\nHost: {host}\r\nContent-Type: message/rfc822\r\n"
        f"Content-Length: {20 * 1024 * 1024}\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        started = time.monotonic()
        connection.sendall(head.encode() + b"x" * 1024)
        received = b""
        while b"EMAIL_INBOUND_SECRET" not in received:  # the body may come in a later read
            chunk = connection.recv(65536)
            if not chunk:
                break
            received += chunk
        answer = received.decode(errors="replace")
    assert answer.startswith("HTTP/1.1 403"), answer
    assert "EMAIL_INBOUND_SECRET" in answer
    assert time.monotonic() - started < 5  # answered without waiting for the body
