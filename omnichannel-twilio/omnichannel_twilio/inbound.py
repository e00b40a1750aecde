"""A Twilio messaging webhook's parameters as the core's InboundMessage.

SMS and WhatsApp arrive on one webhook; ``From`` tells them apart (``whatsapp:+1555...`` or
``+1555...``). The contact is the bare E.164 number on both, so one phone is one contact and
one conversation, answering on the channel the customer last wrote on (``reply_to``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from omnichannel_core.channel import (
    Consent,
    InboundMessage,
    InvalidInput,
    Media,
)
from omnichannel_twilio.settings import WHATSAPP_PREFIX
from omnichannel_twilio.signature import first

EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
TWIML_CONTENT_TYPE = "text/xml"
MAX_MEDIA_ITEMS = 10
"""Twilio delivers at most 10 media items per message."""

OPT_OUT_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})
OPT_OUT_TYPES = {"STOP": Consent.OPT_OUT, "START": Consent.OPT_IN}


def _required(params: Mapping[str, list[str]], *names: str) -> str:
    for name in names:
        value = first(params, name)
        if value:
            return value
    raise InvalidInput(f"{names[0]}: required", field=names[0])


def consent_of(params: Mapping[str, list[str]], kind: str) -> Consent | None:
    """Opt-out or opt-in, for SMS only (Twilio's keyword handling is SMS's; on WhatsApp
    "Cancel" is just a word in a chat): ``OptOutType`` when present, else the body as one of
    Twilio's default keywords."""
    if kind != "sms":
        return None
    opt_out_type = first(params, "OptOutType")
    if opt_out_type is not None:
        return OPT_OUT_TYPES.get(opt_out_type.strip().upper())
    keyword = (first(params, "Body") or "").strip().upper()
    if keyword in OPT_OUT_KEYWORDS:
        return Consent.OPT_OUT
    if keyword in OPT_IN_KEYWORDS:
        return Consent.OPT_IN
    return None


def _count(raw: str | None) -> int | None:
    """A small count Twilio sent (``NumMedia``, ``NumSegments``), or None when unusable."""
    value = (raw or "").strip()
    if value.isascii() and value.isdigit() and len(value) <= 4:
        return int(value)
    return None


def media_of(params: Mapping[str, list[str]]) -> tuple[Media, ...]:
    """Every media item: ``MediaUrl{i}`` with ``MediaContentType{i}`` for i below
    ``NumMedia``. The message is signed by Twilio, so an odd ``NumMedia`` does not lose it:
    the items present are kept (at most 10)."""
    announced = _count(first(params, "NumMedia"))
    items = []
    for index in range(min(MAX_MEDIA_ITEMS, MAX_MEDIA_ITEMS if announced is None else announced)):
        url = first(params, f"MediaUrl{index}")
        if url:
            items.append(Media(url=url, content_type=first(params, f"MediaContentType{index}")))
    return tuple(items)


def _coordinate(raw: str | None) -> float | None:
    try:
        value = float(raw) if raw is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def location_of(params: Mapping[str, list[str]]) -> dict[str, Any] | None:
    """A shared location (WhatsApp): latitude and longitude, with address and label if
    given; None when the message holds no usable coordinates."""
    latitude = _coordinate(first(params, "Latitude"))
    longitude = _coordinate(first(params, "Longitude"))
    if latitude is None or longitude is None:
        return None
    location: dict[str, Any] = {"latitude": latitude, "longitude": longitude}
    for name in ("Address", "Label"):
        value = first(params, name)
        if value:
            location[name.lower()] = value
    return location


def inbound_message(params: Mapping[str, list[str]]) -> InboundMessage:
    """The message a verified webhook carries; InvalidInput without ``MessageSid``/``From``."""
    sid = _required(params, "MessageSid", "SmsSid")
    sender = _required(params, "From")
    kind = "whatsapp" if sender.startswith(WHATSAPP_PREFIX) else "sms"
    number = sender.removeprefix(WHATSAPP_PREFIX)
    if not number:
        raise InvalidInput("From: has no address after whatsapp:", field="From")
    twilio: dict[str, Any] = {"to": first(params, "To"), "kind": kind}
    segments = _count(first(params, "NumSegments"))
    if segments is not None:
        twilio["num_segments"] = segments
    metadata: dict[str, Any] = {"twilio": twilio}
    location = location_of(params)
    if location is not None:
        metadata["location"] = location
    reply_to = sender if kind == "whatsapp" else None
    sender_name = first(params, "ProfileName") or None
    text = first(params, "Body") or None
    media = media_of(params)
    consent = consent_of(params, kind)
    try:
        return InboundMessage(
            provider_message_id=sid,
            sender=number,
            reply_to=reply_to,
            sender_name=sender_name,
            text=text,
            media=media,
            metadata=metadata,
            consent=consent,
        )
    except (TypeError, ValueError) as error:  # e.g. an id longer than the core accepts
        raise InvalidInput(f"unusable webhook parameters: {error}") from None
