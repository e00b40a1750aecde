"""The inbox API: conversations and their messages, single messages (the contacts API is
the CRM module's).

Each resource declares its operations (the permission each method needs, checked by the
core); an agent's limits to their own or unassigned conversations are applied here, through
`omnichannel_core.modules.inbox.visibility`."""

from __future__ import annotations

import falcon
import falcon.asgi

from omnichannel_core.module import (
    SEND_ANSWERS,
    SEND_NOTES,
    UNSET,
    Conversation,
    ConversationChange,
    IdempotencyHeaders,
    InvalidInput,
    Message,
    ModuleContext,
    Operation,
    PageOf,
    PageQuery,
    Principal,
    Response,
    Route,
    UserDirectory,
    answer_sent,
    audit_entry,
    author_of,
    caller_address,
    prefer_wait,
    to_json,
)
from omnichannel_core.modules.inbox.bodies import (
    ConversationsQuery,
    ConversationUpdate,
    Reply,
)
from omnichannel_core.modules.inbox.events import TypingParty
from omnichannel_core.modules.inbox.permissions import (
    CONVERSATIONS_READ,
    CONVERSATIONS_REPLY,
    CONVERSATIONS_WRITE,
)
from omnichannel_core.modules.inbox.service import Inbox
from omnichannel_core.modules.inbox.visibility import (
    check_assignment,
    check_message_visible,
    visible_conversation,
)

AGENTS_SEE_THEIRS = (
    "An agent may work only conversations assigned to them or to nobody; any other answers"
    " 403 `forbidden`."
)

SENT = SEND_ANSWERS
SEND_ERRORS = (
    "NotFound",
    "Conflict",
    "SendRejected",
    "NotImplemented",
    "SendFailed",
    "SendOutcomeUnknown",
    "SendUnavailable",
)
"""What a send may answer besides 202, 201 and 200."""


class _InboxResource:
    def __init__(self, inbox: Inbox, context: ModuleContext) -> None:
        self.inbox = inbox
        self.store = inbox.store
        self.context = context

    async def visible_conversation(
        self, req: falcon.asgi.Request, conversation_id: str
    ) -> Conversation:
        """The conversation, if the caller may see it (an agent: theirs or nobody's)."""
        return await visible_conversation(self.store, req.context.principal, conversation_id)


class Conversations(_InboxResource):
    """``GET /api/conversations?status=&channel=&assignee=&cursor=&limit=``; an agent gets
    only the conversations assigned to them or to nobody."""

    operations = {
        "GET": Operation(
            "List conversations by last activity, newest first",
            permission=CONVERSATIONS_READ,
            query=ConversationsQuery,
            responses={200: Response(PageOf(Conversation), "One page of conversations.")},
            notes="An agent gets only the conversations assigned to them or to nobody.",
            operation_id="listConversations",
            tags=("conversations",),
        )
    }

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        query: ConversationsQuery = req.context.query
        principal: Principal = req.context.principal
        page = await self.store.list_conversations(
            status=query.status,
            channel=query.channel,
            assignee=query.assignee,
            cursor=query.cursor,
            limit=query.limit,
            assigned_to_or_unassigned=principal.id if principal.is_agent else None,
        )
        resp.media = to_json(page)


class ConversationItem(_InboxResource):
    """``GET`` and ``PATCH /api/conversations/{conversation_id}``. The assignee is a user's
    id; an agent may take an unassigned conversation or give back their own. Assignments
    are audited."""

    operations = {
        "GET": Operation(
            "Get a conversation",
            permission=CONVERSATIONS_READ,
            responses={200: Response(Conversation, "The conversation.")},
            errors=("NotFound",),
            notes=AGENTS_SEE_THEIRS,
            operation_id="getConversation",
            tags=("conversations",),
        ),
        "PATCH": Operation(
            "Change a conversation's status or assignee",
            permission=CONVERSATIONS_WRITE,
            body=ConversationUpdate,
            responses={200: Response(Conversation, "The conversation as changed.")},
            errors=("NotFound", "AssigneeChanged"),
            notes=AGENTS_SEE_THEIRS
            + " An agent may take an unassigned conversation or give back their own, and"
            " assign it to no one else. Assignments are written to the audit log.",
            operation_id="updateConversation",
            tags=("conversations",),
        ),
    }

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, conversation_id: str
    ) -> None:
        resp.media = to_json(await self.visible_conversation(req, conversation_id))

    async def on_patch(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, conversation_id: str
    ) -> None:
        changes = req.context.body.changes()
        current = await self.visible_conversation(req, conversation_id)
        principal: Principal = req.context.principal
        audit = None
        if "assignee" in changes and changes["assignee"] != current.assignee:
            check_assignment(principal, current.assignee, changes["assignee"])
            await self._check_assignee(changes["assignee"])
            details = {"from": current.assignee, "to": changes["assignee"]}
            audit = audit_entry(
                principal,
                "conversation.assigned",
                "conversation",
                conversation_id,
                details,
                caller_address(req, self.context.config),
            )
        # What was checked above (an assignment's audit entry, an agent's right to see the
        # conversation) holds when the change is made, or the answer is 409.
        guarded = audit is not None or principal.is_agent
        updated = await self.store.update_conversation(
            conversation_id,
            **changes,
            expected_assignee=current.assignee if guarded else UNSET,
            audit=audit,
            by=author_of(principal, current.channel),
        )
        resp.media = to_json(updated)

    async def _check_assignee(self, assignee: str | None) -> None:
        if assignee is None:
            return
        user = await self.context.service(UserDirectory).user(assignee)
        if user is None or not user.active:
            raise InvalidInput("assignee must be the id of an active user", field="assignee")


class ConversationMessages(_InboxResource):
    """``GET`` (cursor-paged, oldest first) and ``POST`` (reply) on a conversation's messages."""

    operations = {
        "GET": Operation(
            "List a conversation's messages, oldest first",
            permission=CONVERSATIONS_READ,
            query=PageQuery,
            responses={200: Response(PageOf(Message), "One page of messages, in order.")},
            errors=("NotFound",),
            notes=AGENTS_SEE_THEIRS,
            operation_id="listMessages",
            tags=("messages",),
        ),
        "POST": Operation(
            "Reply: send through the conversation's channel",
            permission=CONVERSATIONS_REPLY,
            body=Reply,
            headers=IdempotencyHeaders,
            responses=SENT,
            errors=SEND_ERRORS,
            notes=AGENTS_SEE_THEIRS + " " + SEND_NOTES,
            operation_id="reply",
            tags=("messages",),
        ),
    }

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, conversation_id: str
    ) -> None:
        if req.context.principal.is_agent:  # everyone else sees every conversation
            await self.visible_conversation(req, conversation_id)
        query: PageQuery = req.context.query
        page = await self.store.list_messages(conversation_id, query.cursor, query.limit)
        resp.media = to_json(page)

    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, conversation_id: str
    ) -> None:
        key = req.context.headers.idempotency_key
        request = req.context.body.request()
        expected = UNSET
        if req.context.principal.is_agent:  # and it must still be theirs when stored
            expected = (await self.visible_conversation(req, conversation_id)).assignee
        message, created = await self.inbox.reply(
            conversation_id, request, key, expected, principal=req.context.principal
        )
        wait = prefer_wait(req)
        if created and wait:
            message = await self.inbox.outcome(message, wait)
        answer_sent(resp, message, created, wait)


class ConversationTyping(_InboxResource):
    """``POST /api/conversations/{conversation_id}/typing``: the caller is typing an answer
    in the conversation (``conversation.typing``, throttled by the inbox)."""

    operations = {
        "POST": Operation(
            "Say the caller is typing in a conversation",
            permission=CONVERSATIONS_REPLY,
            responses={
                204: Response(
                    None,
                    "Noted: `conversation.typing` is logged, unless one of the caller's was"
                    " these last seconds.",
                )
            },
            errors=("NotFound",),
            notes=AGENTS_SEE_THEIRS
            + " Logs `conversation.typing` (`by` `user`, the caller's `user_id`, null"
            " for an API key) for the realtime stream and the conversation's channel (a web"
            " chat shows it to the visitor); at most one per caller and conversation every"
            " 3 seconds, so a client may call it on every keystroke.",
            operation_id="signalTyping",
            tags=("conversations",),
        )
    }

    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, conversation_id: str
    ) -> None:
        principal: Principal = req.context.principal
        await self.visible_conversation(req, conversation_id)  # as a reply: 404, or 403
        user_id = principal.id if principal.kind == "user" else None
        await self.inbox.typing(conversation_id, TypingParty.USER, user_id)
        resp.status = 204


class ConversationHistory(_InboxResource):
    """``GET /api/conversations/{conversation_id}/history`` (cursor-paged, oldest first):
    each change of the conversation's status or assignee, kept for good (the event log is
    pruned)."""

    operations = {
        "GET": Operation(
            "List a conversation's changes of status and assignee, oldest first",
            permission=CONVERSATIONS_READ,
            query=PageQuery,
            responses={
                200: Response(
                    PageOf(ConversationChange),
                    "One page of changes, oldest first: who made each (`by`: null for the"
                    " contact, whose message reopened it) and when.",
                )
            },
            errors=("NotFound",),
            notes=AGENTS_SEE_THEIRS,
            operation_id="listConversationHistory",
            tags=("conversations",),
        )
    }

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, conversation_id: str
    ) -> None:
        if req.context.principal.is_agent:
            await self.visible_conversation(req, conversation_id)
        query: PageQuery = req.context.query
        page = await self.store.list_changes(conversation_id, query.cursor, query.limit)
        resp.media = to_json(page)


class MessageItem(_InboxResource):
    """``GET /api/messages/{message_id}``: a message with its delivery status."""

    operations = {
        "GET": Operation(
            "Get a message with its delivery status",
            permission=CONVERSATIONS_READ,
            responses={200: Response(Message, "The message.")},
            errors=("NotFound",),
            notes="An agent may read only messages of conversations assigned to them or to"
            " nobody; any other answers 403 `forbidden`.",
            operation_id="getMessage",
            tags=("messages",),
        )
    }

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, message_id: str
    ) -> None:
        message = await self.store.get_message(message_id)
        await check_message_visible(self.store, req.context.principal, message)
        resp.media = to_json(message)


def inbox_routes(inbox: Inbox, context: ModuleContext) -> list[Route]:
    resources = {
        "/api/conversations": Conversations,
        "/api/conversations/{conversation_id}": ConversationItem,
        "/api/conversations/{conversation_id}/messages": ConversationMessages,
        "/api/conversations/{conversation_id}/typing": ConversationTyping,
        "/api/conversations/{conversation_id}/history": ConversationHistory,
        "/api/messages/{message_id}": MessageItem,
    }
    return [Route(path, resource(inbox, context)) for path, resource in resources.items()]
