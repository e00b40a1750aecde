"""Customer events (messages, postbacks, referrals) as the core's InboundMessage.

The customer is their page-scoped id (PSID, ``sender.id``): the contact's identity on the
channel and the conversation's address. What Messenger says beyond text and media goes under
``metadata["facebook"]``, always with ``kind`` and ``page_id``:

- a message: ``text``; image, audio, video and file attachments as ``media`` (content type
  guessed from the URL when it tells); every attachment also listed, in order, in
  ``attachments`` (``{"type", "url"?, "title"?, "sticker_id"?}``); a shared location as
  ``metadata["location"]`` (``latitude``, ``longitude``, ``label``, ``url``); a quick reply's
  ``quick_reply: {"payload"}``; ``reply_to`` (the mid answered); an ad's ``referral``.
- a postback (a button tapped): the button's title as the text, ``postback: {"title",
  "payload"}`` and its ``referral`` when it opened the thread.
- a referral (m.me link, ad, plugin on an existing thread): no text, ``referral: {...}``.

The provider id is the ``mid``. Postbacks of older API versions and referrals have none: their
id is made from (kind, sender, timestamp), so the same event delivered again stores once.
"""

from __future__ import annotations

import math
import mimetypes
from typing import Any
from urllib.parse import urlsplit

import structlog

from omnichannel_core.channel import (
    InboundMessage,
    Media,
)
from omnichannel_facebook.webhook_events import MessagingEvent

log = structlog.get_logger("omnichannel.facebook")

MEDIA_TYPES = frozenset({"image", "audio", "video", "file"})
REFERRAL_FIELDS = ("ref", "source", "type", "ad_id", "referer_uri", "ads_context_data")
MAX_FIELD = 2000


def synthetic_id(kind: str, sender: str, timestamp_ms: int) -> str:
    """The provider id of an event that has no ``mid``: the same for the same event."""
    return f"{kind}:{sender}:{timestamp_ms}"


def _string(value: Any, limit: int = MAX_FIELD) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _guess_type(url: str) -> str | None:
    guessed, _ = mimetypes.guess_type(urlsplit(url).path)
    return guessed


def _coordinate(value: Any, bound: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and -bound <= number <= bound else None


def location_of(attachment: dict[str, Any]) -> dict[str, Any] | None:
    """A location attachment's coordinates (with its title as ``label`` and its map ``url``),
    or None when it holds no usable coordinates."""
    payload = attachment.get("payload")
    coordinates = payload.get("coordinates") if isinstance(payload, dict) else None
    if not isinstance(coordinates, dict):
        return None
    latitude = _coordinate(coordinates.get("lat"), 90.0)
    longitude = _coordinate(coordinates.get("long"), 180.0)
    if latitude is None or longitude is None:
        return None
    location: dict[str, Any] = {"latitude": latitude, "longitude": longitude}
    for field, name in (("title", "label"), ("url", "url")):
        value = _string(attachment.get(field))
        if value:
            location[name] = value
    return location


def _attachments(raw: Any, facebook: dict[str, Any], metadata: dict[str, Any]) -> tuple[Media, ...]:
    """The message's media; every attachment summarized in ``facebook["attachments"]``."""
    if not isinstance(raw, list):
        return ()
    media = []
    summaries = []
    for attachment in raw:
        if not isinstance(attachment, dict):
            continue
        kind = _string(attachment.get("type"), 40) or "unknown"
        given = attachment.get("payload")
        payload: dict[str, Any] = given if isinstance(given, dict) else {}
        summary: dict[str, Any] = {"type": kind}
        url = _string(payload.get("url")) or _string(attachment.get("url"))
        if url:
            summary["url"] = url
        title = _string(attachment.get("title") or payload.get("title"), 500)
        if title:
            summary["title"] = title
        sticker = payload.get("sticker_id")
        if isinstance(sticker, int | str) and not isinstance(sticker, bool):
            summary["sticker_id"] = str(sticker)
        if kind in MEDIA_TYPES and url and url.startswith(("https://", "http://")):
            media.append(Media(url=url, content_type=_guess_type(url)))
        if kind == "location":
            location = location_of(attachment)
            if location is not None and "location" not in metadata:
                metadata["location"] = location
        summaries.append(summary)
    if summaries:
        facebook["attachments"] = summaries
    return tuple(media)


def referral_of(raw: Any) -> dict[str, Any] | None:
    """The referral's known fields (ref, source, type, ad id, referring URI...)."""
    if not isinstance(raw, dict):
        return None
    referral: dict[str, Any] = {}
    for field in REFERRAL_FIELDS:
        value = raw.get(field)
        if isinstance(value, str) and value:
            referral[field] = value[:MAX_FIELD]
        elif isinstance(value, dict):
            referral[field] = {k: v for k, v in value.items() if isinstance(v, str | int | float)}
    return referral or None


def _message_fields(event: MessagingEvent, facebook: dict[str, Any]) -> dict[str, Any]:
    body = event.body
    metadata: dict[str, Any] = {}
    quick_reply = body.get("quick_reply")
    if isinstance(quick_reply, dict) and isinstance(quick_reply.get("payload"), str):
        facebook["quick_reply"] = {"payload": quick_reply["payload"][:MAX_FIELD]}
    reply_to = body.get("reply_to")
    if isinstance(reply_to, dict) and _string(reply_to.get("mid"), 512):
        facebook["reply_to"] = reply_to["mid"]
    referral = referral_of(body.get("referral"))
    if referral:
        facebook["referral"] = referral
    media = _attachments(body.get("attachments"), facebook, metadata)
    return {
        "provider_message_id": body.get("mid"),
        "text": body.get("text") if isinstance(body.get("text"), str) else None,
        "media": media,
        "metadata": metadata,
    }


def _postback_fields(event: MessagingEvent, facebook: dict[str, Any]) -> dict[str, Any]:
    body = event.body
    postback: dict[str, Any] = {}
    for field in ("title", "payload"):
        value = _string(body.get(field))
        if value:
            postback[field] = value
    facebook["postback"] = postback
    referral = referral_of(body.get("referral"))
    if referral:
        facebook["referral"] = referral
    return {"provider_message_id": body.get("mid"), "text": postback.get("title"), "metadata": {}}


def _referral_fields(event: MessagingEvent, facebook: dict[str, Any]) -> dict[str, Any]:
    facebook["referral"] = referral_of(event.body) or {}
    return {"provider_message_id": None, "text": None, "metadata": {}}


FIELDS_OF = {
    "message": _message_fields,
    "postback": _postback_fields,
    "referral": _referral_fields,
}
CUSTOMER_KINDS = frozenset(FIELDS_OF)


def inbound_message(event: MessagingEvent) -> InboundMessage | None:
    """The message a customer event carries; None (and a warning) when it is unusable: no
    mid on a message, no mid and no timestamp on a postback or referral, an id too long."""
    facebook: dict[str, Any] = {"kind": event.kind, "page_id": event.recipient}
    if event.standby:
        facebook["standby"] = True
    fields = FIELDS_OF[event.kind](event, facebook)
    provider_id = fields.pop("provider_message_id")
    if not isinstance(provider_id, str) or not provider_id:
        if event.kind == "message" or event.timestamp_ms is None:
            log.warning("facebook_event_skipped", kind=event.kind, reason="no mid")
            return None
        provider_id = synthetic_id(event.kind, event.sender, event.timestamp_ms)
    metadata = {"facebook": facebook, **fields.pop("metadata")}
    try:
        return InboundMessage(
            provider_message_id=provider_id,
            sender=event.sender,
            sent_at=event.at,
            metadata=metadata,
            **fields,
        )
    except (TypeError, ValueError) as error:  # an id longer than the core accepts
        log.warning("facebook_event_skipped", kind=event.kind, reason=str(error)[:200])
        return None
