"""The Twilio channel's own routes, in the seed's request shape, each declared with its
:class:`Operation`: the core checks the body before the responder runs (400 naming the field)
and lists the routes in ``GET /api/openapi.json``.

- ``POST send/whatsapp`` and ``POST send/sms`` (``messages:send``): a :class:`TwilioSend`,
  ``{"to": "+1234567890", "message": "...", "media_urls": ["https://..."], "content_sid":
  "HX...", "content_variables": {...}, "send_at": "2027-01-31T09:30:00+01:00"}``;
  ``Idempotency-Key`` honoured. 503 before anything is stored while the channel is not
  configured. The message is stored ``queued`` and answered 202; the outbox sends it
  (docs/delivery.md), ``send_at`` not before then. With ``Prefer: wait=N`` the answer
  waits up to N seconds: 201 once Twilio took the message, or the error met (422, 504
  in doubt, 502 while still retried) with ``stored_message``; still 202 when N seconds
  passed before any attempt failed. 200 on an idempotent replay.
- ``GET message/{message_id}/status`` (``conversations:read``; an agent sees only the messages of
  their own or unassigned conversations): a message by our id (``msg_...``) or Twilio's
  SID.
"""

from __future__ import annotations

import re
from typing import Any

import attrs
import falcon
import falcon.asgi

from omnichannel_core.channel import (
    MAX_URL,
    SEND_ANSWERS,
    SEND_NOTES,
    ChannelInbox,
    ChannelRoute,
    Config,
    IdempotencyHeaders,
    InvalidInput,
    Media,
    Message,
    NotFound,
    Operation,
    OutboundRequest,
    Response,
    answer_sent,
    field,
    prefer_wait,
    send_at_field,
    send_at_of,
    to_json,
)
from omnichannel_twilio.outbound import MAX_BODY_CHARACTERS, MAX_MEDIA_URLS
from omnichannel_twilio.settings import E164, WHATSAPP_PREFIX, TwilioSettings

CONTENT_SID = re.compile(r"^HX[0-9A-Za-z]{1,62}$")
TWILIO_MESSAGE_SID = re.compile(r"^(SM|MM|IM)[0-9A-Za-z]{1,62}$")
HTTPS_URL = "^https://"


@attrs.frozen
class TwilioSend:
    """A message to one phone number: a text, up to 10 media URLs, or a WhatsApp template
    (`content_sid`, with which `message` is optional)."""

    to: str = field(
        pattern=E164.pattern,
        description="the recipient's phone number in E.164, on WhatsApp too (no prefix)",
        message="required: an E.164 phone number like +15551234567",
    )
    message: str | None = field(
        default=None,
        max_length=MAX_BODY_CHARACTERS,
        description="the text; required unless content_sid is given",
    )
    media_urls: tuple[str, ...] | None = field(
        default=None,
        max_items=MAX_MEDIA_URLS,
        items={"pattern": HTTPS_URL, "maxLength": MAX_URL},
        description=f"https URLs Twilio fetches, each at most {MAX_URL} characters",
    )
    content_sid: str | None = field(
        default=None,
        pattern=CONTENT_SID.pattern,
        description="a WhatsApp template of Twilio's Content API",
        message="must be a Content SID like HXb5b62575e6e4ff6129ad7c8efe1f983e",
    )
    content_variables: dict[str, Any] | None = field(
        default=None, description="the template's variables; only with content_sid"
    )
    send_at: str | None = send_at_field()

    def __attrs_post_init__(self) -> None:
        send_at_of(self.send_at)  # a bad time is a 400 before anything is stored
        if self.content_sid is None:
            if self.content_variables is not None:
                raise InvalidInput(
                    "content_variables: only with content_sid", field="content_variables"
                )
            if self.message is None or not self.message.strip():
                raise InvalidInput(
                    "message: required: a non-empty string (optional with content_sid)",
                    field="message",
                )

    def request(self) -> OutboundRequest:
        """What to send to :attr:`to`."""
        metadata: dict[str, Any] = {}
        if self.content_sid is not None:
            metadata["content_sid"] = self.content_sid
            if self.content_variables is not None:
                metadata["content_variables"] = self.content_variables
        media = tuple(Media(url=url) for url in self.media_urls or ())
        return OutboundRequest(
            text=self.message or None,
            media=media,
            metadata=metadata,
            send_at=send_at_of(self.send_at),
        )


SEND_ERRORS = ("Conflict", "SendRejected", "SendFailed", "SendOutcomeUnknown", "ChannelUnavailable")


def send_operation(whatsapp: bool) -> Operation:
    """``POST send/whatsapp`` or ``POST send/sms``."""
    return Operation(
        "Send a WhatsApp message" if whatsapp else "Send an SMS",
        body=TwilioSend,
        headers=IdempotencyHeaders,
        responses=SEND_ANSWERS,
        errors=SEND_ERRORS,
        notes=SEND_NOTES
        + " It goes through Twilio"
        + (" on WhatsApp, to `whatsapp:` + `to`." if whatsapp else " as an SMS (or MMS)."),
        operation_id="sendWhatsapp" if whatsapp else "sendSms",
    )


class SendResource:
    """``POST send/whatsapp`` or ``POST send/sms``."""

    def __init__(self, channel: str, inbox: ChannelInbox, config: Config, whatsapp: bool) -> None:
        self.channel = channel
        self.inbox = inbox
        self.config = config
        self.whatsapp = whatsapp
        self.operations = {"POST": send_operation(whatsapp)}

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        # unconfigured: 503 naming what is missing, before anything is stored
        TwilioSettings.from_config(self.config).require_configured(self.channel)
        body: TwilioSend = req.context.body
        key = req.context.headers.idempotency_key
        reply_to = WHATSAPP_PREFIX + body.to if self.whatsapp else None
        wait = prefer_wait(req)
        message, created = await self.inbox.send(
            body.to, body.request(), key, reply_to=reply_to, wait=wait
        )
        answer_sent(resp, message, created, wait)


class MessageStatusResource:
    """``GET message/{message_id}/status``: the stored message, by our id or Twilio's SID."""

    operations = {
        "GET": Operation(
            "A message, by our id or Twilio's SID",
            responses={200: Response(Message, "The stored message.")},
            errors=("NotFound",),
            notes="`message_id` is our id (`msg_...`, any direction) or the SID Twilio gave a"
            " message we sent (`SM...`, `MM...`). An agent sees only the messages of"
            " conversations assigned to them or to nobody.",
            operation_id="getMessageStatus",
        )
    }

    def __init__(self, channel: str, inbox: ChannelInbox) -> None:
        self.channel = channel
        self.inbox = inbox

    async def _find(self, message_id: str) -> Message | None:
        if message_id.startswith("msg_"):
            try:
                return await self.inbox.get_message(message_id)
            except NotFound:
                return None
        if TWILIO_MESSAGE_SID.match(message_id):
            return await self.inbox.find_outbound(message_id)
        return None

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, message_id: str
    ) -> None:
        message = await self._find(message_id)
        if message is None:
            raise NotFound(f"no {self.channel} message {message_id!r}", message_id=message_id)
        await self.inbox.check_visible(req.context.principal, message)
        resp.status = falcon.HTTP_200
        resp.media = to_json(message)


def twilio_routes(channel: str, inbox: ChannelInbox, config: Config) -> list[ChannelRoute]:
    return [
        ChannelRoute(
            "send/whatsapp",
            SendResource(channel, inbox, config, whatsapp=True),
            permission="messages:send",
        ),
        ChannelRoute(
            "send/sms",
            SendResource(channel, inbox, config, whatsapp=False),
            permission="messages:send",
        ),
        ChannelRoute(
            "message/{message_id}/status",
            MessageStatusResource(channel, inbox),
            permission="conversations:read",
        ),
    ]
