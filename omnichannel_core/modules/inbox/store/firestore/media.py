"""``replace_media`` on Firestore: a provider's media, once kept, named in its message, in
one transaction with its event."""

from __future__ import annotations

import attrs

from omnichannel_core.module import Media, Message, utcnow
from omnichannel_core.module.firestore import Transaction, json_text, log_event
from omnichannel_core.modules.inbox import events
from omnichannel_core.modules.inbox.events import InboxEvent
from omnichannel_core.modules.inbox.store.firestore.documents import (
    Layout,
    read_conversation,
    read_message,
)
from omnichannel_core.modules.inbox.store.media import with_kept_media


async def replace_media(
    transaction: Transaction,
    layout: Layout,
    message_id: str,
    index: int,
    provider_url: str,
    media: Media,
) -> Message | None:
    reference = layout.message(message_id)
    [snapshot] = await transaction.get(reference)
    message = read_message(snapshot)
    replaced = with_kept_media(message, index, provider_url, media)
    if replaced is None:
        return None
    [conversation] = await transaction.get(layout.conversation(message.conversation_id))
    assignee = read_conversation(conversation).assignee
    now = utcnow()
    transaction.update(reference, {"media_json": json_text(replaced), "updated_at": now})
    log_event(
        transaction,
        layout.database,
        InboxEvent.MESSAGE_UPDATED,
        message_id,
        message.conversation_id,
        (assignee,),
        events.message_updated(message.channel, ["media"]),
    )
    return attrs.evolve(message, media=replaced, updated_at=now)
