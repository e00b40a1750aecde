"""The inbox API: contacts, conversations and their messages, single messages.

Each resource declares the permission each method needs (checked by the authorization
middleware); an agent's limits to their own or unassigned conversations are applied here,
through `omnichannel_core.access.policy`."""

from __future__ import annotations

import falcon
import falcon.asgi

from omnichannel_core.access.policy import (
    Permission,
    Principal,
    check_assignment,
    check_message_visible,
    visible_conversation,
)
from omnichannel_core.access.service import Access
from omnichannel_core.config import Config
from omnichannel_core.errors import InvalidInput, NotFound
from omnichannel_core.inbox import Inbox
from omnichannel_core.models import Conversation, Page
from omnichannel_core.serialization import to_json
from omnichannel_core.store import UNSET
from omnichannel_core.web import payloads
from omnichannel_core.web.body import read_json_object
from omnichannel_core.web.client_address import client_address


def page_body(page: Page) -> dict:
    """The one list envelope: ``{"items": [...], "next_cursor": str | null}``."""
    return {"items": to_json(page.items), "next_cursor": page.next_cursor}


class _InboxResource:
    permissions: dict[str, Permission] = {}

    def __init__(self, inbox: Inbox, access: Access, config: Config) -> None:
        self.inbox = inbox
        self.store = inbox.store
        self.access = access
        self.config = config

    async def visible_conversation(
        self, req: falcon.asgi.Request, conversation_id: str
    ) -> Conversation:
        """The conversation, if the caller may see it (an agent: theirs or nobody's)."""
        return await visible_conversation(self.store, req.context.principal, conversation_id)

    async def _check_visible(self, req: falcon.asgi.Request, conversation_id: str) -> None:
        if req.context.principal.is_agent:  # everyone else sees every conversation
            await self.visible_conversation(req, conversation_id)


class Contacts(_InboxResource):
    """``GET /api/contacts?q=&cursor=&limit=``"""

    permissions = {"GET": Permission.CONTACTS_READ}

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        cursor, limit = payloads.page_params(req)
        search = payloads.filter_param(req, "q")
        resp.media = page_body(await self.store.list_contacts(search, cursor, limit))


class ContactItem(_InboxResource):
    """``GET`` and ``PATCH /api/contacts/{contact_id}``"""

    permissions = {"GET": Permission.CONTACTS_READ, "PATCH": Permission.CONTACTS_WRITE}

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
    """``GET /api/conversations?status=&channel=&assignee=&cursor=&limit=``; an agent gets
    only the conversations assigned to them or to nobody."""

    permissions = {"GET": Permission.CONVERSATIONS_READ}

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        cursor, limit = payloads.page_params(req)
        status = req.get_param("status")
        principal: Principal = req.context.principal
        page = await self.store.list_conversations(
            status=payloads.conversation_status(status, "status") if status else None,
            channel=payloads.filter_param(req, "channel"),
            assignee=payloads.filter_param(req, "assignee"),
            cursor=cursor,
            limit=limit,
            assigned_to_or_unassigned=principal.id if principal.is_agent else None,
        )
        resp.media = page_body(page)


class ConversationItem(_InboxResource):
    """``GET`` and ``PATCH /api/conversations/{conversation_id}``. The assignee is a user's
    id; an agent may take an unassigned conversation or give back their own. Assignments
    are audited."""

    permissions = {"GET": Permission.CONVERSATIONS_READ, "PATCH": Permission.CONVERSATIONS_WRITE}

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, conversation_id: str
    ) -> None:
        resp.media = to_json(await self.visible_conversation(req, conversation_id))

    async def on_patch(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, conversation_id: str
    ) -> None:
        data = await read_json_object(req, self.config.max_body_bytes)
        changes = payloads.conversation_update(data)
        current = await self.visible_conversation(req, conversation_id)
        principal: Principal = req.context.principal
        audit = None
        if "assignee" in changes and changes["assignee"] != current.assignee:
            check_assignment(principal, current.assignee, changes["assignee"])
            await self._check_assignee(changes["assignee"])
            audit = self.access.assignment_entry(
                principal,
                conversation_id,
                current.assignee,
                changes["assignee"],
                client_address(req, self.config.trust_proxy, self.config.proxy_header),
            )
        # What was checked above (an assignment's audit entry, an agent's right to see the
        # conversation) holds when the change is made, or the answer is 409.
        guarded = audit is not None or principal.is_agent
        updated = await self.store.update_conversation(
            conversation_id,
            **changes,
            expected_assignee=current.assignee if guarded else UNSET,
            audit=audit,
        )
        resp.media = to_json(updated)

    async def _check_assignee(self, assignee: str | None) -> None:
        if assignee is None:
            return
        try:
            user = await self.store.get_user(assignee)
        except NotFound:
            user = None
        if user is None or not user.active:
            raise InvalidInput("assignee must be the id of an active user", field="assignee")


class ConversationMessages(_InboxResource):
    """``GET`` (cursor-paged, oldest first) and ``POST`` (reply) on a conversation's messages."""

    permissions = {"GET": Permission.CONVERSATIONS_READ, "POST": Permission.CONVERSATIONS_REPLY}

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, conversation_id: str
    ) -> None:
        await self._check_visible(req, conversation_id)
        cursor, limit = payloads.page_params(req)
        resp.media = page_body(await self.store.list_messages(conversation_id, cursor, limit))

    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, conversation_id: str
    ) -> None:
        key = payloads.idempotency_key(req)
        data = await read_json_object(req, self.config.max_body_bytes)
        request = payloads.outbound_request(data)
        expected = UNSET
        if req.context.principal.is_agent:  # and it must still be theirs when stored
            expected = (await self.visible_conversation(req, conversation_id)).assignee
        message, created = await self.inbox.reply(conversation_id, request, key, expected)
        resp.status = 201 if created else 200
        resp.media = to_json(message)


class MessageItem(_InboxResource):
    """``GET /api/messages/{message_id}``: a message with its delivery status."""

    permissions = {"GET": Permission.CONVERSATIONS_READ}

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, message_id: str
    ) -> None:
        message = await self.store.get_message(message_id)
        await check_message_visible(self.store, req.context.principal, message)
        resp.media = to_json(message)


def mount_inbox(app: falcon.asgi.App, inbox: Inbox, access: Access, config: Config) -> None:
    routes = {
        "/api/contacts": Contacts,
        "/api/contacts/{contact_id}": ContactItem,
        "/api/conversations": Conversations,
        "/api/conversations/{conversation_id}": ConversationItem,
        "/api/conversations/{conversation_id}/messages": ConversationMessages,
        "/api/messages/{message_id}": MessageItem,
    }
    for path, resource in routes.items():
        app.add_route(path, resource(inbox, access, config))
