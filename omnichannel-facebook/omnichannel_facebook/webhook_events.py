"""A Messenger webhook body as the list of events it carries, every one of them.

Facebook batches: one POST holds ``entry`` objects (one per page and moment), each with a
``messaging`` list of events (and a ``standby`` list when another app owns the thread under
the handover protocol). Every event of every entry is returned, in order. What an event is
follows from the key it carries: ``message`` (an ``echo`` when ``is_echo``), ``postback``,
``referral``, ``delivery``, ``read``, or another kind this channel does not act on
(``reaction``, ``optin``...).

The body is signed by Facebook, so one odd event must not cost the others: an event without
a sender or of the wrong shape is skipped and logged (kind and reason, never content), and
only a body that is not a JSON object with an ``entry`` list is refused (400).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import attrs
import structlog

from omnichannel_core.channel import (
    InvalidInput,
    parse_json,
)

log = structlog.get_logger("omnichannel.facebook")

KINDS = ("message", "postback", "referral", "delivery", "read")
"""The keys of the events this channel acts on, in the order they are looked for."""
MAX_TIMESTAMP_MS = 253402300799999  # 9999-12-31T23:59:59.999Z


@attrs.frozen
class MessagingEvent:
    """One event of a webhook.

    :param kind: ``message``, ``echo``, ``postback``, ``referral``, ``delivery``, ``read``, or
        the key of a kind the channel ignores.
    :param sender: ``sender.id``: the customer's page-scoped id (PSID), or the page's own id
        for an echo.
    :param recipient: ``recipient.id``: the page, or the customer for an echo.
    :param timestamp_ms: the event's time, milliseconds since the epoch (None when absent).
    :param body: the object under ``kind`` (``event["message"]`` and so on).
    :param standby: True when it came in ``standby`` (another app owns the thread).
    """

    kind: str
    sender: str
    recipient: str | None
    timestamp_ms: int | None
    body: dict[str, Any]
    standby: bool = False

    @property
    def at(self) -> datetime | None:
        """The event's time, aware UTC."""
        return from_milliseconds(self.timestamp_ms)


def from_milliseconds(value: int | None) -> datetime | None:
    """A Messenger time (milliseconds since the epoch) as an aware UTC datetime."""
    if value is None:
        return None
    return datetime.fromtimestamp(value / 1000, UTC)


def milliseconds(value: Any) -> int | None:
    """A usable millisecond timestamp, or None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value <= MAX_TIMESTAMP_MS else None


MAX_ID_DIGITS = 64


def _identifier(party: Any) -> str | None:
    """``{"id": "123"}`` -> ``"123"`` (Facebook sends ids as strings; a number is taken too).
    Page-scoped and page ids are digits: anything else is no id (a conversation with it could
    never be answered, since the Send API takes only such ids)."""
    if not isinstance(party, dict):
        return None
    value = party.get("id")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    valid = value.isascii() and value.isdigit() and len(value) <= MAX_ID_DIGITS
    return value if valid else None


def _kind(event: dict[str, Any]) -> str:
    for kind in KINDS:
        if isinstance(event.get(kind), dict):
            if kind == "message" and event["message"].get("is_echo") is True:
                return "echo"
            return kind
    others = sorted(key for key in event if key not in ("sender", "recipient", "timestamp"))
    return others[0][:40] if others else "empty"


def _event(raw: Any, standby: bool) -> MessagingEvent | None:
    if not isinstance(raw, dict):
        log.warning("facebook_event_skipped", reason="not an object")
        return None
    kind = _kind(raw)
    sender = _identifier(raw.get("sender"))
    if sender is None:
        log.warning("facebook_event_skipped", kind=kind, reason="no sender.id")
        return None
    body = raw.get(kind if kind != "echo" else "message")
    return MessagingEvent(
        kind=kind,
        sender=sender,
        recipient=_identifier(raw.get("recipient")),
        timestamp_ms=milliseconds(raw.get("timestamp")),
        body=body if isinstance(body, dict) else {},
        standby=standby,
    )


def parse_events(body: bytes) -> list[MessagingEvent]:
    """Every event of a (verified) webhook body, entry by entry, in order.

    InvalidInput unless the body is a JSON object with an ``entry`` list. A body for another
    product (``object`` other than ``page``) holds nothing for this channel: no events.
    """
    data = parse_json(body)
    if not isinstance(data, dict) or not isinstance(data.get("entry"), list):
        raise InvalidInput("webhook body must be a JSON object with an entry list")
    if data.get("object") != "page":
        log.warning("facebook_webhook_object_ignored", object=str(data.get("object"))[:40])
        return []
    events: list[MessagingEvent] = []
    for entry in data["entry"]:
        if not isinstance(entry, dict):
            log.warning("facebook_entry_skipped", reason="not an object")
            continue
        for key, standby in (("messaging", False), ("standby", True)):
            items = entry.get(key)
            if items is None:
                continue
            if not isinstance(items, list):
                log.warning("facebook_entry_skipped", reason=f"{key} is not a list")
                continue
            events.extend(e for e in (_event(raw, standby) for raw in items) if e is not None)
    return events
