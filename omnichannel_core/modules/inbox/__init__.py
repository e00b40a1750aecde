"""The inbox module: contacts, conversations and messages, and every channel's HTTP surface.

It contributes the permissions of contacts, conversations, replies, sends and channels; the
``inbox`` store (SQLite and Firestore); its event types (``message.created``...); the
:class:`~omnichannel_core.module.InboxReader` service; the routes under ``/api/contacts``,
``/api/conversations``, ``/api/messages``; and, for each loaded channel, the routes under
``/api/channels/<name>/`` (webhook, status callbacks, sends, health, and the channel's own).
What happens between a channel, the store and the API is in `service`.
"""
