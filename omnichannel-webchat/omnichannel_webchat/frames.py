"""What a visitor is shown: the frames the socket (and the long-polling fallback) sends.

A visitor sees their own messages, the agents' messages once they are sent (never a
scheduled, queued, cancelled or failed one), their conversation's status, an agent typing,
and when an agent has read them. Never an agent's name or id, a message's metadata, or
anything of another conversation. Records come as the inbox tells them (JSON-ready, as an
agent sees them) and are cut down here, in one place.
"""

from __future__ import annotations

from typing import Any

from omnichannel_core.channel import ConversationEvent, DeliveryStatus

SHOWN_OUTBOUND = frozenset({DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.READ})
"""An agent's message reaches the visitor once the channel sent it (`send`)."""

Frame = dict[str, Any]


def visitor_message(record: Any) -> Frame | None:
    """A stored message (as JSON) as its visitor sees it; None when they do not (yet)."""
    if not isinstance(record, dict):
        return None
    inbound = record.get("direction") == "inbound"
    if not inbound and record.get("status") not in SHOWN_OUTBOUND:
        return None
    if not record.get("text") and not record.get("media"):
        return None  # a file the media store refused after all: nothing to show
    provider_id = record.get("provider_message_id") or ""
    return {
        "id": record["id"],
        "from": "visitor" if inbound else "agent",
        "text": record.get("text"),
        "at": record.get("created_at"),
        "client_id": provider_id.rpartition(":")[2] if inbound and ":" in provider_id else None,
        "status": None if inbound else record.get("status"),
        "media": [
            {
                "index": index,
                "content_type": item.get("content_type"),
                "filename": item.get("filename"),
                "size": item.get("size"),
            }
            for index, item in enumerate(record.get("media") or ())
            if item.get("id")  # kept by the server: what the visitor can download
        ],
    }


def conversation_state(record: Any) -> Frame:
    """A conversation as its visitor sees it: its id and status."""
    return {"id": record["id"], "status": record.get("status")}


def frame_of(event: ConversationEvent) -> Frame | None:
    """The frame an event of the visitor's conversation makes; None when it shows them
    nothing (an event of a type they are not told of, a message not sent yet)."""
    if event.record_name == "message":
        message = visitor_message(event.record)
        return None if message is None else {"type": "message", "message": message}
    if event.type == "conversation.updated" and event.record is not None:
        changes = event.data.get("changes") or {}
        if "status" in changes:
            return {"type": "conversation", "conversation": conversation_state(event.record)}
        unread = changes.get("unread_count")
        if unread and unread[1] == 0:
            return {"type": "seen", "up_to": event.body()["at"]}
        return None
    if event.type == "conversation.typing" and event.data.get("by") == "user":
        return {"type": "typing", "typing": True, "until": event.data.get("until")}
    return None
