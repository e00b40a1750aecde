"""The inbox API: contacts, conversations and their messages, single messages."""

from __future__ import annotations

import falcon
import falcon.asgi

from omnichannel_core.config import Config
from omnichannel_core.inbox import Inbox
from omnichannel_core.models import Page
from omnichannel_core.serialization import to_json
from omnichannel_core.web import payloads
from omnichannel_core.web.body import read_json_object


def page_body(page: Page) -> dict:
    """The one list envelope: ``{"items": [...], "next_cursor": str | null}``."""
    return {"items": to_json(page.items), "next_cursor": page.next_cursor}


class _InboxResource:
    def __init__(self, inbox: Inbox, config: Config) -> None:
        self.inbox = inbox
        self.store = inbox.store
        self.config = config


class Contacts(_InboxResource):
    """``GET /api/contacts?q=&cursor=&limit=``"""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        cursor, limit = payloads.page_params(req)
        search = payloads.filter_param(req, "q")
        resp.media = page_body(await self.store.list_contacts(search, cursor, limit))


class ContactItem(_InboxResource):
    """``GET`` and ``PATCH /api/contacts/{contact_id}``"""

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, contact_id: str
    ) -> None:
        resp.media = to_json(await self.store.get_contact(contact_id))

    async def on_patch(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, contact_id: str
    ) -> None:
        changes = payloads.contact_update(await read_json_object(req, self.config.max_body_bytes))
        resp.media = to_json(await self.store.update_contact(contact_id, **changes))


class Conversations(_InboxResource):
    """``GET /api/conversations?status=&channel=&assignee=&cursor=&limit=``"""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        cursor, limit = payloads.page_params(req)
        status = req.get_param("status")
        page = await self.store.list_conversations(
            status=payloads.conversation_status(status, "status") if status else None,
            channel=payloads.filter_param(req, "channel"),
            assignee=payloads.filter_param(req, "assignee"),
            cursor=cursor,
            limit=limit,
        )
        resp.media = page_body(page)


class ConversationItem(_InboxResource):
    """``GET`` and ``PATCH /api/conversations/{conversation_id}``"""

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, conversation_id: str
    ) -> None:
        resp.media = to_json(await self.store.get_conversation(conversation_id))

    async def on_patch(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, conversation_id: str
    ) -> None:
        data = await read_json_object(req, self.config.max_body_bytes)
        changes = payloads.conversation_update(data)
        resp.media = to_json(await self.store.update_conversation(conversation_id, **changes))


class ConversationMessages(_InboxResource):
    """``GET`` (cursor-paged, oldest first) and ``POST`` (reply) on a conversation's messages."""

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, conversation_id: str
    ) -> None:
        cursor, limit = payloads.page_params(req)
        resp.media = page_body(await self.store.list_messages(conversation_id, cursor, limit))

    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, conversation_id: str
    ) -> None:
        key = payloads.idempotency_key(req)
        data = await read_json_object(req, self.config.max_body_bytes)
        request = payloads.outbound_request(data)
        message, created = await self.inbox.reply(conversation_id, request, key)
        resp.status = 201 if created else 200
        resp.media = to_json(message)


class MessageItem(_InboxResource):
    """``GET /api/messages/{message_id}``: a message with its delivery status."""

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, message_id: str
    ) -> None:
        resp.media = to_json(await self.store.get_message(message_id))


def mount_inbox(app: falcon.asgi.App, inbox: Inbox, config: Config) -> None:
    app.add_route("/api/contacts", Contacts(inbox, config))
    app.add_route("/api/contacts/{contact_id}", ContactItem(inbox, config))
    app.add_route("/api/conversations", Conversations(inbox, config))
    app.add_route("/api/conversations/{conversation_id}", ConversationItem(inbox, config))
    app.add_route(
        "/api/conversations/{conversation_id}/messages", ConversationMessages(inbox, config)
    )
    app.add_route("/api/messages/{message_id}", MessageItem(inbox, config))
