"""The services modules offer each other, declared here so that every module (and channel)
can name them without importing the module that provides them.

A module provides a service by returning ``{Interface: implementation}`` from
``register_services``; another gets it with ``context.service(Interface)``. The built-in
modules provide these:

- :class:`InboxReader` (the inbox): read contacts, conversations and messages;
- :class:`UserDirectory` (access): look a user up by id;
- :class:`ChannelInbox` (the inbox, one per channel): what a channel's own routes may do.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

import attrs

from omnichannel_core.hooktypes import WebhookResult
from omnichannel_core.models import Contact, Conversation, ConversationStatus, Media, Message
from omnichannel_core.paging import Page
from omnichannel_core.policy import Principal, Role


@attrs.frozen
class OutboundRequest:
    """What an agent, a program or a channel's own route asks to send."""

    text: str | None = None
    media: tuple[Media, ...] = ()
    metadata: dict[str, Any] = attrs.field(factory=dict)
    send_at: datetime | None = None
    """Not sent before this time (a scheduled message); None: as soon as its pace allows."""


@attrs.frozen
class UserSummary:
    """A user as other modules see them: no email, no secrets."""

    id: str
    display_name: str
    role: Role
    active: bool


class UserDirectory(Protocol):
    async def user(self, user_id: str) -> UserSummary | None:
        """The user with this id, or None."""


class InboxReader(Protocol):
    """Reading the inbox. Records come back as the API shows them (`omnichannel_core.models`);
    each raises NotFound for an unknown id."""

    async def get_contact(self, contact_id: str) -> Contact: ...

    async def get_conversation(self, conversation_id: str) -> Conversation: ...

    async def get_message(self, message_id: str) -> Message: ...

    async def list_messages(self, conversation_id: str, cursor: str | None, limit: int) -> Page:
        """A conversation's messages, oldest first."""

    async def list_conversations(
        self,
        status: ConversationStatus | None = None,
        channel: str | None = None,
        assignee: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page:
        """Conversations, most recent activity first."""


class ChannelInbox(Protocol):
    """What a channel's own routes (``channel_routes``) may do with the inbox: store and read
    its own messages and conversations, never another channel's, nor anything else.

    :attr:`channel` is the channel's name; every method works on that channel only (a
    message or conversation of another answers NotFound).
    """

    channel: str

    async def receive(self, result: WebhookResult) -> None:
        """Store what ``result`` holds, as a webhook's would be: messages (deduped), then
        statuses, then watermarks. Returns once it is durable."""

    async def send(
        self,
        to: str,
        request: OutboundRequest,
        idempotency_key: str | None = None,
        *,
        display_name: str | None = None,
        reply_to: str | None = None,
        wait: float | None = None,
    ) -> tuple[Message, bool]:
        """Queue a message to the address ``to`` on this channel (the outbox sends it),
        opening the contact and conversation when new; the message and whether it is new
        (False: an Idempotency-Key replay). ``reply_to`` is where it goes when not ``to``
        (``whatsapp:+1555...`` for the contact ``+1555...``). With ``wait`` (a caller's
        ``Prefer: wait``, :func:`prefer_wait`), wait that long at most for the first
        attempt: DeliveryFailed when it failed. Answer with :func:`answer_sent`."""

    async def get_message(self, message_id: str) -> Message:
        """A message of this channel."""

    async def find_outbound(self, provider_message_id: str) -> Message | None:
        """The outbound message the provider knows by this id on this channel, if any."""

    async def get_conversation(self, conversation_id: str) -> Conversation:
        """A conversation of this channel."""

    async def check_visible(self, principal: Principal, message: Message) -> None:
        """Raise Forbidden unless ``principal`` may see the conversation ``message`` is in
        (an agent: theirs or nobody's): every route that hands out a message asks."""
