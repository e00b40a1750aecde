"""The raw MIME webhook's door: who may post mail, and where the mail is in what they post.

``POST /api/channels/email/webhook`` is public; the caller proves itself with
``EMAIL_INBOUND_SECRET``, as ``Authorization: Bearer <secret>`` (a Postfix pipe, an SES
Lambda) or as the password of HTTP basic auth, any user name, so that a provider that only
takes a URL can carry it (``https://inbound:<secret>@chat.example.com/...``). It is compared
in constant time, first by the channel's ``webhook_body_limit`` on the headers alone, so a
caller without it is refused before a byte of its body is read (and again in ``receive``).
The body then arrives streamed to a file (``request.body_file``), and stays there:

- ``message/rfc822`` (or ``application/octet-stream``): the body is the mail;
- ``multipart/form-data`` or ``application/x-www-form-urlencoded``: a form, whose field
  ``email`` (SendGrid Inbound Parse, "POST the raw, full MIME message") or ``body-mime``
  (a Mailgun route to a URL ending in ``mime``) is the mail. The field is copied out of the
  form into a file of its own, a chunk at a time; the rest of the form is skipped.

Any other content type is refused with 415, naming those taken.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import io
import tempfile
from collections.abc import Callable
from email.message import Message
from email.parser import BytesHeaderParser
from typing import BinaryIO
from urllib.parse import unquote_to_bytes

from omnichannel_core.channel import (
    ChannelUnavailable,
    InvalidInput,
    UnsupportedMediaType,
    WebhookRejected,
    WebhookRequest,
)
from omnichannel_email.settings import EmailSettings

RAW_TYPES = ("message/rfc822", "application/octet-stream")
MULTIPART = "multipart/form-data"
URLENCODED = "application/x-www-form-urlencoded"
MAIL_FIELDS = (b"email", b"body-mime")
"""The form fields that carry the raw mail: SendGrid's, then Mailgun's."""
CHUNK = 64 * 1024
IN_MEMORY = 1024 * 1024
"""How much of a mail copied out of a form stays in memory; the rest goes to disk."""
MAX_PART_HEADERS = 16 * 1024
MAX_FIELD_NAME = 256
ACCEPTED = "message/rfc822, multipart/form-data or application/x-www-form-urlencoded"


def authenticate(request: WebhookRequest, settings: EmailSettings, channel: str) -> None:
    """Return when the request presents ``EMAIL_INBOUND_SECRET``; ChannelUnavailable (503)
    when none is configured (or one too short to be safe), WebhookRejected (403) when it
    is missing or wrong."""
    secret = settings.inbound_secret
    if secret is None:
        raise ChannelUnavailable(
            "the email webhook is off: EMAIL_INBOUND_SECRET is not set", channel=channel
        )
    refused = [problem for problem in settings.invalid if "EMAIL_INBOUND_SECRET" in problem]
    if refused:
        raise ChannelUnavailable(f"the email webhook is off: {refused[0]}", channel=channel)
    presented = _presented_secret(request.header("Authorization"))
    if presented is None:
        raise WebhookRejected(
            "send EMAIL_INBOUND_SECRET as Authorization: Bearer <secret>, or as the basic-auth"
            " password",
            channel=channel,
        )
    if not hmac.compare_digest(presented, secret.encode()):
        raise WebhookRejected("wrong EMAIL_INBOUND_SECRET", channel=channel)


def _presented_secret(authorization: str | None) -> bytes | None:
    """The secret in an ``Authorization`` header: a bearer token, or a basic-auth password
    (whatever the user name); None when there is none."""
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    credentials = credentials.strip()
    if not credentials:
        return None
    if scheme.lower() == "bearer":
        return credentials.encode()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True)
        except (binascii.Error, ValueError):
            return None
        _user, colon, password = decoded.partition(b":")
        return password if colon and password else None
    return None


def mail_source(request: WebhookRequest) -> BinaryIO:
    """The mail the request carries, as a binary file at its start: the body itself, or the
    form field that holds it (see the module). UnsupportedMediaType (415) for another
    content type; InvalidInput (400) for an empty body, or a form without the mail."""
    body = request.body_file if request.body_file is not None else io.BytesIO(request.body)
    content_type = _content_type(request.header("Content-Type"))
    media_type = content_type.get_content_type()
    if request.header("Content-Type") is None or media_type in RAW_TYPES:
        mail = body
    elif media_type == MULTIPART:
        boundary = content_type.get_param("boundary")
        if not isinstance(boundary, str) or not boundary:
            raise InvalidInput("a multipart/form-data body needs its boundary parameter")
        mail = _multipart_field(body, boundary.encode())
    elif media_type == URLENCODED:
        mail = _urlencoded_field(body)
    else:
        raise UnsupportedMediaType(
            f"send the mail as {ACCEPTED}, not {media_type}", content_type=media_type
        )
    if not mail.read(1):
        raise InvalidInput("the body holds no mail: post one message (RFC 5322)")
    mail.seek(0)
    return mail


def _content_type(value: str | None) -> Message:
    """The ``Content-Type`` header, parsed as a mail header is (parameters, quoting)."""
    header = Message()
    header["Content-Type"] = value or "message/rfc822"
    return header


def _spool() -> BinaryIO:
    return tempfile.SpooledTemporaryFile(max_size=IN_MEMORY)  # type: ignore[return-value]


def _not_in_form() -> InvalidInput:
    return InvalidInput(
        "the form has no mail: send it in the field email (SendGrid, raw mode) or body-mime"
        " (Mailgun, a route to a URL ending in mime)"
    )


class _Scanner:
    """A binary file read a chunk at a time, searched for markers across chunk edges."""

    def __init__(self, source: BinaryIO, start: bytes = b"") -> None:
        self.source = source
        self.buffer = bytearray(start)

    def _fill(self) -> bool:
        chunk = self.source.read(CHUNK)
        self.buffer += chunk
        return bool(chunk)

    def startswith(self, prefix: bytes) -> bool:
        while len(self.buffer) < len(prefix) and self._fill():
            pass
        return self.buffer.startswith(prefix)

    def skip(self, count: int) -> None:
        del self.buffer[:count]

    def through(
        self, marker: bytes, sink: Callable[[bytes], object] | None, limit: int | None = None
    ) -> bool:
        """Consume up to and including ``marker``, handing what comes before it to
        ``sink`` (None: dropped); False when the file ends first, or more than ``limit``
        bytes come before it."""
        seen = 0
        while True:
            found = self.buffer.find(marker)
            if found >= 0:
                if limit is not None and seen + found > limit:
                    return False
                if sink is not None:
                    sink(bytes(self.buffer[:found]))
                del self.buffer[: found + len(marker)]
                return True
            keep = len(marker) - 1  # the start of a marker the next chunk completes
            if len(self.buffer) > keep:
                cut = len(self.buffer) - keep
                seen += cut
                if limit is not None and seen > limit:
                    return False
                if sink is not None:
                    sink(bytes(self.buffer[:cut]))
                del self.buffer[:cut]
            if not self._fill():
                return False

    def more(self) -> bool:
        """Whether anything is left."""
        return bool(self.buffer) or self._fill()

    def rest(self, sink: Callable[[bytes], object] | None) -> None:
        """Hand everything left to ``sink`` (None: drop it)."""
        while self.more():
            if sink is not None:
                sink(bytes(self.buffer))
            self.buffer.clear()


def _field_name(headers: bytes) -> bytes | None:
    """The ``name`` of a form part, from its ``Content-Disposition``."""
    parsed = BytesHeaderParser().parsebytes(headers + b"\r\n\r\n")
    name = parsed.get_param("name", header="content-disposition")
    if isinstance(name, tuple):  # RFC 2231 encoded
        name = name[2]
    return name.encode("utf-8", "replace") if isinstance(name, str) else None


def _multipart_field(body: BinaryIO, boundary: bytes) -> BinaryIO:
    """The first of :data:`MAIL_FIELDS` in a ``multipart/form-data`` body, copied to a file
    of its own."""
    delimiter = b"\r\n--" + boundary
    scanner = _Scanner(body, start=b"\r\n")  # the first delimiter may open the body
    if not scanner.through(delimiter, None):
        raise InvalidInput("the multipart/form-data body has no part: is its boundary right?")
    found: dict[bytes, BinaryIO] = {}
    try:
        while not scanner.startswith(b"--"):  # "--" after a delimiter closes the form
            if not scanner.through(b"\r\n", None, limit=MAX_PART_HEADERS):  # padding
                raise InvalidInput("the multipart/form-data body ends in a part's headers")
            headers = bytearray()
            if scanner.startswith(b"\r\n"):
                scanner.skip(2)  # a part without headers
            elif not scanner.through(b"\r\n\r\n", headers.extend, limit=MAX_PART_HEADERS):
                raise InvalidInput("a part of the multipart/form-data body has no end of headers")
            name = _field_name(bytes(headers))
            sink = None
            if name in MAIL_FIELDS and name not in found:
                found[name] = _spool()
                sink = found[name].write
            if not scanner.through(delimiter, sink):
                raise InvalidInput("the multipart/form-data body ends before its last boundary")
        return _first_field(found)
    except BaseException:
        for spool in found.values():
            spool.close()
        raise


def _urlencoded_field(body: BinaryIO) -> BinaryIO:
    """The first of :data:`MAIL_FIELDS` in an ``application/x-www-form-urlencoded`` body,
    decoded into a file of its own."""
    scanner = _Scanner(body)
    found: dict[bytes, BinaryIO] = {}
    try:
        while scanner.more():
            name = bytearray()
            if not scanner.through(b"=", name.extend, limit=MAX_FIELD_NAME):
                break  # no value follows (or a name no form of a provider has)
            key = _unquote(bytes(name).rpartition(b"&")[2])  # after any pair without "="
            decoder = None
            if key in MAIL_FIELDS and key not in found:
                found[key] = _spool()
                decoder = _PercentDecoder(found[key].write)
            sink = decoder.feed if decoder is not None else None
            if not scanner.through(b"&", sink):
                scanner.rest(sink)
            if decoder is not None:
                decoder.close()
        return _first_field(found)
    except BaseException:
        for spool in found.values():
            spool.close()
        raise


def _unquote(value: bytes) -> bytes:
    return unquote_to_bytes(value.replace(b"+", b" "))


def _first_field(found: dict[bytes, BinaryIO]) -> BinaryIO:
    """The mail of the first :data:`MAIL_FIELDS` present, rewound; the others closed."""
    chosen = next((found.pop(name) for name in MAIL_FIELDS if name in found), None)
    for spool in found.values():
        spool.close()
    if chosen is None:
        raise _not_in_form()
    chosen.seek(0)
    return chosen


class _PercentDecoder:
    """Decodes a urlencoded value fed in pieces: ``+`` is a space, ``%XX`` a byte, even when
    a piece ends inside an escape."""

    def __init__(self, write: Callable[[bytes], object]) -> None:
        self.write = write
        self.pending = b""

    def feed(self, data: bytes) -> None:
        data = self.pending + data
        cut = len(data)
        escape = data.rfind(b"%", max(0, cut - 2))
        if escape >= 0:  # "%" or "%X" at the end: wait for the rest of the escape
            cut = escape
        self.pending = data[cut:]
        self.write(_unquote(data[:cut]))

    def close(self) -> None:
        if self.pending:
            self.write(_unquote(self.pending))
            self.pending = b""
