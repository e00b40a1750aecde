"""The bodies of the inbox API: what its routes take and answer."""

from __future__ import annotations

from typing import Any

import attrs

from omnichannel_core.module import (
    UNSET,
    ConversationStatus,
    InvalidInput,
    MediaItems,
    OutboundRequest,
    PageQuery,
    field,
    media_field,
    media_of,
    send_at_field,
    send_at_of,
)

MAX_TEXT = 65_536
MAX_TAGS = 100
MAX_NAME = 200


@attrs.frozen
class Reply:
    """Give a non-empty text or at least one media item."""

    text: str | None = field(default=None, max_length=MAX_TEXT)
    media: MediaItems | None = media_field()
    metadata: dict[str, Any] | None = field(default=None, description="passed to the channel")
    send_at: str | None = send_at_field()

    def __attrs_post_init__(self) -> None:
        if not (self.text and self.text.strip()) and not self.media:
            raise InvalidInput(
                "text: give a non-empty text or at least one media item", field="text"
            )
        send_at_of(self.send_at)  # checked now: a bad time is a 400, not a failure later

    def request(self) -> OutboundRequest:
        return OutboundRequest(
            text=self.text,
            media=media_of(self.media),
            metadata=dict(self.metadata or {}),
            send_at=send_at_of(self.send_at),
        )


@attrs.frozen(kw_only=True)
class ChannelSend(Reply):
    """Give a non-empty text or at least one media item. Opens the contact and conversation
    when new."""

    to: str = field(
        pattern=r"\S",
        max_length=320,
        description="the recipient's address on this channel",
        message="required: the recipient's address on this channel",
    )
    name: str | None = field(default=None, max_length=MAX_NAME)
    new_conversation: bool = field(
        default=False,
        description="start a new conversation with this contact, on channels that keep"
        " several (email)",
    )


@attrs.frozen
class ConversationUpdate:
    """Give at least one field."""

    __schema_extra__ = {"minProperties": 1}

    status: ConversationStatus = UNSET
    assignee: str | None = field(
        default=UNSET,
        max_length=MAX_NAME,
        description="the id of an active user, or null to unassign",
    )
    unread_count: int = field(
        default=UNSET,
        const=0,
        description="0 marks the conversation read; no other value is accepted",
        message="may only be set to 0 (mark the conversation read)",
    )

    def changes(self) -> dict[str, Any]:
        """Keyword arguments for ``InboxStore.update_conversation``: only the fields given."""
        return {name: value for name, value in attrs.asdict(self).items() if value is not UNSET}


@attrs.frozen
class ConversationsQuery(PageQuery):
    status: ConversationStatus | None = field(default=None, description="only this status")
    channel: str | None = field(default=None, max_length=MAX_NAME, description="only this channel")
    assignee: str | None = field(
        default=None, max_length=MAX_NAME, description="only this assignee"
    )


@attrs.frozen
class ChannelHealthReport:
    """A channel's own report, named."""

    channel: str
    ok: bool
    detail: str
    checks: dict[str, Any] = field(description="channel specific")
