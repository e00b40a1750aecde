"""Reading the inbox, for other modules (:class:`omnichannel_core.module.InboxReader`,
:class:`omnichannel_core.module.InboxHistory`)."""

from __future__ import annotations

from omnichannel_core.module import (
    Contact,
    Conversation,
    ConversationChange,
    ConversationRecord,
    ConversationStatus,
    Message,
    Page,
)
from omnichannel_core.modules.inbox.store import InboxStore


class StoreReader:
    def __init__(self, store: InboxStore) -> None:
        self.store = store

    async def get_contact(self, contact_id: str) -> Contact:
        return await self.store.get_contact(contact_id)

    async def get_conversation(self, conversation_id: str) -> Conversation:
        return await self.store.get_conversation(conversation_id)

    async def get_message(self, message_id: str) -> Message:
        return await self.store.get_message(message_id)

    async def list_messages(self, conversation_id: str, cursor: str | None, limit: int) -> Page:
        return await self.store.list_messages(conversation_id, cursor, limit)

    async def list_conversations(
        self,
        status: ConversationStatus | None = None,
        channel: str | None = None,
        assignee: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page:
        return await self.store.list_conversations(status, channel, assignee, cursor, limit)


class StoreHistory:
    """The conversations' history, for a module that rebuilds what it derives from it
    (:class:`omnichannel_core.module.InboxHistory`)."""

    def __init__(self, store: InboxStore) -> None:
        self.store = store

    async def scan(
        self, cursor: str | None, limit: int
    ) -> tuple[list[ConversationRecord], str | None]:
        return await self.store.scan_history(cursor, limit)

    async def changes(self, conversation_id: str) -> tuple[ConversationChange, ...]:
        return await self.store.conversation_changes(conversation_id)
