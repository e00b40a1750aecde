"""A module's own replies (the ``AutomatedReplies`` service: an away message), queued
through the outbox like an agent's, each at most once per key."""

from __future__ import annotations

from omnichannel_core.module import Message, OutboundRequest
from omnichannel_core.modules.inbox.service import Inbox


class InboxAutomatedReplies:
    """The inbox's :class:`~omnichannel_core.services.AutomatedReplies`."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def reply(
        self, conversation_id: str, request: OutboundRequest, idempotency_key: str
    ) -> tuple[Message, bool]:
        if request.author is None:
            raise ValueError("an automated reply names its author (OutboundRequest.author)")
        stored = await self.inbox.store.find_by_idempotency_key(idempotency_key)
        if stored is not None:  # replied before (a subscriber handed the event again)
            return stored, False
        return await self.inbox.reply(conversation_id, request, idempotency_key)
