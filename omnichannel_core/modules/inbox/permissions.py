"""The permissions of the inbox: contacts, conversations, replies, sends, channels."""

from __future__ import annotations

from omnichannel_core.module import PermissionSpec, Role

CONTACTS_READ = "contacts:read"
CONVERSATIONS_READ = "conversations:read"
CONVERSATIONS_WRITE = "conversations:write"
"""Status, assignment, marking read."""
CONVERSATIONS_REPLY = "conversations:reply"
MESSAGES_SEND = "messages:send"
"""Sending to any address through a channel's own routes, outside a conversation."""
CHANNELS_READ = "channels:read"
"""Channel health."""
OUTBOX_READ = "outbox:read"
"""What the outbox holds, per channel."""

TEAM = (Role.SUPERVISOR, Role.AGENT)

PERMISSIONS = [
    PermissionSpec(CONTACTS_READ, "read contacts", TEAM, scopes=("read",)),
    PermissionSpec(CONVERSATIONS_READ, "read conversations and messages", TEAM, scopes=("read",)),
    PermissionSpec(
        CONVERSATIONS_WRITE, "change a conversation's status, assignee, unread count", TEAM
    ),
    PermissionSpec(CONVERSATIONS_REPLY, "reply in a conversation", TEAM, scopes=("send",)),
    PermissionSpec(
        MESSAGES_SEND,
        "send to any address through a channel, outside a conversation",
        (Role.SUPERVISOR,),
        scopes=("send",),
    ),
    PermissionSpec(CHANNELS_READ, "read channels' health", TEAM, scopes=("read", "send")),
    PermissionSpec(
        OUTBOX_READ, "read what the outbox holds", (Role.SUPERVISOR,), scopes=("read", "send")
    ),
]
