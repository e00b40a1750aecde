"""``replace_media`` on SQLite: a provider's media, once kept, named in its message."""

from __future__ import annotations

import sqlite3

from omnichannel_core.module import Media, Message, format_timestamp, utcnow
from omnichannel_core.module.sqlite import append_event, json_text
from omnichannel_core.modules.inbox import events
from omnichannel_core.modules.inbox.events import InboxEvent
from omnichannel_core.modules.inbox.store.media import with_kept_media
from omnichannel_core.modules.inbox.store.sqlite.rows import fetch_conversation, fetch_message


def replace_media(
    connection: sqlite3.Connection, message_id: str, index: int, provider_url: str, media: Media
) -> Message | None:
    message = fetch_message(connection, message_id)
    replaced = with_kept_media(message, index, provider_url, media)
    if replaced is None:
        return None
    now = format_timestamp(utcnow())
    connection.execute(
        "UPDATE messages SET media = ?, updated_at = ? WHERE id = ?",
        (json_text(replaced), now, message_id),
    )
    conversation = fetch_conversation(connection, message.conversation_id)
    append_event(
        connection,
        InboxEvent.MESSAGE_UPDATED,
        message_id,
        conversation.id,
        (conversation.assignee,),
        now,
        events.message_updated(message.channel, ["media"]),
    )
    return fetch_message(connection, message_id)
