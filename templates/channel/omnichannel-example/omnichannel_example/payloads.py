"""The provider's JSON, read into what the core stores.

The webhook carries customer messages::

    {"messages": [{"id": "m-1", "from": "user-42", "name": "Ada", "text": "Hello",
                   "attachments": [{"url": "https://...", "content_type": "image/png"}],
                   "sent_at": "2024-05-01T12:00:00Z"}]}

and the status callback what became of the messages we sent::

    {"statuses": [{"message_id": "p-9", "status": "delivered", "at": "2024-05-01T12:00:05Z",
                   "error": {"code": "blocked", "message": "..."}}]}

Anything malformed raises InvalidInput (400, nothing stored) naming the field, before an
``InboundMessage`` is built: a value the core's types refuse would be a 502 instead.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from omnichannel_core.channel import (
    MAX_ID_LENGTH,
    DeliveryStatus,
    InboundMessage,
    InvalidInput,
    Media,
    StatusUpdate,
)

STATUSES = {
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.READ,
    "failed": DeliveryStatus.FAILED,
}
"""The provider's statuses, as the core's: it applies them forward only."""


def parse_body(body: bytes) -> dict[str, Any]:
    """The JSON object of a (signed) request body."""
    try:
        data = json.loads(body)
    except ValueError:
        raise InvalidInput("body: not JSON") from None
    if not isinstance(data, dict):
        raise InvalidInput("body: must be a JSON object")
    return data


def _items(data: dict[str, Any], field: str, required: bool = True) -> list[dict[str, Any]]:
    items = data.get(field, None if required else [])
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise InvalidInput(f"{field}: must be a list of objects")
    return items


def _identifier(item: dict[str, Any], field: str) -> str:
    value = item.get(field)
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise InvalidInput(f"{field}: required, a string of 1 to {MAX_ID_LENGTH} characters")
    return value


def _text(item: dict[str, Any], field: str) -> str | None:
    value = item.get(field)
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"{field}: must be a string")
    return value


def _time(item: dict[str, Any], field: str) -> datetime | None:
    value = _text(item, field)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.utcoffset() is None:
        raise InvalidInput(f"{field}: must be an ISO 8601 time with its offset")
    return moment


def _media(item: dict[str, Any]) -> tuple[Media, ...]:
    media = []
    for index, attachment in enumerate(_items(item, "attachments", required=False)):
        url = attachment.get("url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise InvalidInput(f"attachments[{index}].url: must be an http(s) URL")
        media.append(Media(url=url, content_type=_text(attachment, "content_type")))
    return tuple(media)


def _inbound(item: dict[str, Any]) -> InboundMessage:
    message = InboundMessage(
        provider_message_id=_identifier(item, "id"),
        sender=_identifier(item, "from"),
        sender_name=_text(item, "name"),
        text=_text(item, "text"),
        media=_media(item),
        sent_at=_time(item, "sent_at"),
    )
    if not message.text and not message.media:
        raise InvalidInput("text: a message needs a text or an attachment")
    return message


def inbound_messages(data: dict[str, Any]) -> tuple[InboundMessage, ...]:
    """The customer messages of a webhook; an empty batch is valid and stores nothing."""
    return tuple(_inbound(item) for item in _items(data, "messages"))


def _status_update(item: dict[str, Any]) -> StatusUpdate:
    value = item.get("status")
    status = STATUSES.get(value) if isinstance(value, str) else None
    if status is None:
        raise InvalidInput(f"status: must be one of {', '.join(STATUSES)}")
    error = item.get("error") or {}
    if not isinstance(error, dict):
        raise InvalidInput("error: must be an object")
    return StatusUpdate(
        provider_message_id=_identifier(item, "message_id"),
        status=status,
        error_code=_text(error, "code"),
        error_message=_text(error, "message"),
        at=_time(item, "at"),
    )


def status_updates(data: dict[str, Any]) -> tuple[StatusUpdate, ...]:
    """The delivery statuses of a status callback."""
    return tuple(_status_update(item) for item in _items(data, "statuses"))
