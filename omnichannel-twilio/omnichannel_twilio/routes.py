"""The Twilio channel's own routes, in the seed's request shape.

- ``POST send/whatsapp`` and ``POST send/sms`` (``messages:send``): ``{"to": "+1234567890",
  "message": "...", "media_urls": ["https://..."], "content_sid": "HX...",
  "content_variables": {...}}``;
  ``Idempotency-Key`` honoured. 201 with the stored message, 200 on an idempotent replay.
- ``GET message/{id}/status`` (``conversations:read``; an agent sees only the messages of
  their own or unassigned conversations): a message by our id (``msg_...``) or Twilio's
  SID.
"""

from __future__ import annotations

import re
from typing import Any

import falcon
import falcon.asgi

from omnichannel_core.channel import (
    MAX_URL,
    ChannelInbox,
    ChannelRoute,
    Config,
    InvalidInput,
    Media,
    Message,
    NotFound,
    OutboundRequest,
    idempotency_key,
    read_json_object,
    to_json,
)
from omnichannel_twilio.outbound import MAX_BODY_CHARACTERS, MAX_MEDIA_URLS
from omnichannel_twilio.settings import E164, WHATSAPP_PREFIX, TwilioSettings

SEND_FIELDS = frozenset({"to", "message", "media_urls", "content_sid", "content_variables"})
CONTENT_SID = re.compile(r"^HX[0-9A-Za-z]{1,62}$")
TWILIO_MESSAGE_SID = re.compile(r"^(SM|MM|IM)[0-9A-Za-z]{1,62}$")


def _fail(field: str, problem: str) -> InvalidInput:
    return InvalidInput(f"{field}: {problem}", field=field)


def _recipient(data: dict[str, Any]) -> str:
    to = data.get("to")
    if not isinstance(to, str) or not E164.match(to):
        raise _fail("to", "required: an E.164 phone number like +15551234567")
    return to


def _media(value: Any) -> tuple[Media, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _fail("media_urls", "must be a list of https URLs")
    if len(value) > MAX_MEDIA_URLS:
        raise _fail("media_urls", f"at most {MAX_MEDIA_URLS} URLs")
    for index, url in enumerate(value):
        if not isinstance(url, str) or not url.startswith("https://") or len(url) > MAX_URL:
            raise _fail(f"media_urls[{index}]", f"must be an https URL of at most {MAX_URL} chars")
    return tuple(Media(url=url) for url in value)


def _template(data: dict[str, Any]) -> dict[str, Any]:
    content_sid = data.get("content_sid")
    variables = data.get("content_variables")
    if content_sid is None:
        if variables is not None:
            raise _fail("content_variables", "only with content_sid")
        return {}
    if not isinstance(content_sid, str) or not CONTENT_SID.match(content_sid):
        raise _fail("content_sid", "must be a Content SID like HXb5b62575e6e4ff6129ad7c8efe1f983e")
    if variables is None:
        return {"content_sid": content_sid}
    if not isinstance(variables, dict):
        raise _fail("content_variables", "must be an object")
    return {"content_sid": content_sid, "content_variables": variables}


def _text(data: dict[str, Any], template: bool) -> str | None:
    text = data.get("message")
    if text is None and template:
        return None
    if not isinstance(text, str) or not (text.strip() or template):
        raise _fail("message", "required: a non-empty string (optional with content_sid)")
    if len(text) > MAX_BODY_CHARACTERS:
        raise _fail("message", f"must be at most {MAX_BODY_CHARACTERS} characters")
    return text or None


def send_request(data: dict[str, Any]) -> tuple[str, OutboundRequest]:
    """The recipient and what to send, from the seed's JSON body; InvalidInput (400) for
    anything wrong, before anything is stored."""
    unknown = sorted(set(data) - SEND_FIELDS)
    if unknown:
        raise _fail(unknown[0], f"unknown field; allowed: {', '.join(sorted(SEND_FIELDS))}")
    to = _recipient(data)
    metadata = _template(data)
    text = _text(data, template=bool(metadata))
    return to, OutboundRequest(text=text, media=_media(data.get("media_urls")), metadata=metadata)


class SendResource:
    """``POST send/whatsapp`` or ``POST send/sms``."""

    def __init__(self, channel: str, inbox: ChannelInbox, config: Config, whatsapp: bool) -> None:
        self.channel = channel
        self.inbox = inbox
        self.config = config
        self.whatsapp = whatsapp

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        # unconfigured: 503 naming what is missing, before anything is stored
        TwilioSettings.from_config(self.config).require_configured(self.channel)
        key = idempotency_key(req)
        data = await read_json_object(req, self.config.max_body_bytes)
        to, request = send_request(data)
        reply_to = WHATSAPP_PREFIX + to if self.whatsapp else None
        message, created = await self.inbox.send(to, request, key, reply_to=reply_to)
        resp.status = 201 if created else 200
        resp.media = to_json(message)


class MessageStatusResource:
    """``GET message/{id}/status``: the stored message, by our id or Twilio's SID."""

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

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, id: str) -> None:
        message = await self._find(id)
        if message is None:
            raise NotFound(f"no {self.channel} message {id!r}", message_id=id)
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
            "message/{id}/status",
            MessageStatusResource(channel, inbox),
            permission="conversations:read",
        ),
    ]
