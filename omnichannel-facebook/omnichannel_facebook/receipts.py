"""Delivery and read receipts, and echoes of our own sends, as status changes.

Messenger does not report each message's status; it reports watermarks:

- ``delivery``: ``{"mids": [...]?, "watermark": ms}``: every message the page sent to this
  customer before ``watermark`` was delivered. The ``mids``, when present, name some of them.
- ``read``: ``{"watermark": ms}``: every message sent before it was read.

Each becomes a :class:`StatusWatermark` for the customer (the conversation's address), which
the core applies forward-only to every outbound message of the conversation stored at or
before it; named ``mids`` also become exact :class:`StatusUpdate` s (our clock and
Facebook's may differ by a little, and the mid does not depend on either). Within one
webhook, only the latest watermark per customer and status is kept.

An echo is Messenger repeating a message the page sent. One of ours carries the
``metadata`` this channel sets on every send (``omnichannel:<message id>``): it becomes a
``sent`` update naming our message id, which settles a message whose send answer was lost.
A message sent in several parts (text, then each attachment) is known by its first part's
mid; the later parts' echoes (``omnichannel:<message id>#<part>``) change nothing.
Echoes of anything else (an agent answering in the Page inbox, another app) are not stored:
they are not the customer's, and the core stores only the customer's messages.
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog

from omnichannel_core.channel import (
    DeliveryStatus,
    StatusUpdate,
    StatusWatermark,
)
from omnichannel_facebook.webhook_events import MessagingEvent, from_milliseconds, milliseconds

log = structlog.get_logger("omnichannel.facebook")

ECHO_METADATA_PREFIX = "omnichannel:"
WATERMARK_STATUS = {"delivery": DeliveryStatus.DELIVERED, "read": DeliveryStatus.READ}
RECEIPT_KINDS = frozenset({"delivery", "read", "echo"})


PART_SEPARATOR = "#"


def echo_metadata(message_id: str, part: int = 1) -> str:
    """What a send puts in ``message.metadata`` of its ``part`` (1, 2...), for the echo to
    name the message."""
    suffix = "" if part == 1 else f"{PART_SEPARATOR}{part}"
    return ECHO_METADATA_PREFIX + message_id + suffix


def _echo_update(event: MessagingEvent) -> StatusUpdate | None:
    mid = event.body.get("mid")
    metadata = event.body.get("metadata")
    if not isinstance(metadata, str) or not metadata.startswith(ECHO_METADATA_PREFIX):
        return None  # not sent by this server
    message_id = metadata.removeprefix(ECHO_METADATA_PREFIX)
    if not isinstance(mid, str) or not mid or not message_id or PART_SEPARATOR in message_id:
        return None  # a later part: the message is known by its first part
    try:
        return StatusUpdate(
            provider_message_id=mid,
            status=DeliveryStatus.SENT,
            message_id=message_id,
            at=event.at,
        )
    except (TypeError, ValueError):  # longer than the core accepts: not one of ours
        return None


def _mid_updates(event: MessagingEvent) -> list[StatusUpdate]:
    mids = event.body.get("mids")
    if not isinstance(mids, list):
        return []
    return [
        StatusUpdate(provider_message_id=mid, status=DeliveryStatus.DELIVERED, at=event.at)
        for mid in mids
        if isinstance(mid, str) and 0 < len(mid) <= 512
    ]


def receipts(
    events: Iterable[MessagingEvent],
) -> tuple[tuple[StatusUpdate, ...], tuple[StatusWatermark, ...]]:
    """The status updates and watermarks of the receipt and echo events among ``events``."""
    updates: list[StatusUpdate] = []
    latest: dict[tuple[str, DeliveryStatus], int] = {}
    for event in events:
        if event.kind == "echo":
            update = _echo_update(event)
            if update is not None:
                updates.append(update)
            continue
        status = WATERMARK_STATUS.get(event.kind)
        if status is None:
            continue
        if status is DeliveryStatus.DELIVERED:
            updates.extend(_mid_updates(event))
        watermark = milliseconds(event.body.get("watermark"))
        if watermark is None:
            log.warning("facebook_event_skipped", kind=event.kind, reason="no watermark")
            continue
        key = (event.sender, status)
        latest[key] = max(latest.get(key, watermark), watermark)
    watermarks = []
    for (recipient, status), watermark in latest.items():
        up_to = from_milliseconds(watermark)
        assert up_to is not None
        watermarks.append(StatusWatermark(recipient=recipient, status=status, up_to=up_to))
    return tuple(updates), tuple(watermarks)
